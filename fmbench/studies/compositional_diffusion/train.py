"""Train the small conditional DDPM baseline on a split's training images and save checkpoints along the way.

The model is :class:`~fmbench.studies.compositional_diffusion.model.ConceptUNet`; the data are the
first ``n_train`` training items of the split for seed 0 (the task's ``train`` split). Each step
draws a batch of items uniformly with replacement, as the authors' loader does, and noise and times
from one seeded generator, so a run is bit-reproducible on one CPU thread (``--threads 1``, the
default). Settings: the authors' batch 64 and T = 500 with linear betas, but Adam at lr 1e-3
(theirs: 1e-4) and far fewer steps, to fit the CPU; a checkpoint is written at every step of
``--save-at`` (``<out>/step-<step>.safetensors``, its header naming the task, step and wall time).

Run (writes the shipped checkpoints unless ``--out`` is given)::

    python -m fmbench.studies.compositional_diffusion.train --split H32-train1

Example:
    >>> import tempfile
    >>> out = tempfile.mkdtemp()
    >>> train_ddpm("H32-train1", "fmbench/ConceptGenH32Train1-v0", out, steps=2, save_at=[2], n_train=8,
    ...            width=8, log=lambda _: None)
    ['step-00002.safetensors']
"""

from __future__ import annotations

import argparse
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
import torch

from fmbench.checkpoints import save_checkpoint
from fmbench.studies.compositional_diffusion.concepts import space_of
from fmbench.studies.compositional_diffusion.data import train_classes, train_images
from fmbench.studies.compositional_diffusion.model import ConceptUNet, ConceptUNetConfig

HERE = Path(__file__).parent
SAVE_AT = (100, 200, 300, 400, 500, 600, 800, 1000, 1250, 1500)


def checkpoint_dir(split: str) -> Path:
    """The folder of the shipped checkpoints of the DDPM trained on ``split``."""
    return HERE / "checkpoints" / f"ddpm-{split}"


def train_ddpm(
    split: str,
    task_id: str,
    out: str | Path,
    steps: int = 4000,
    save_at: list[int] | tuple[int, ...] = SAVE_AT,
    n_train: int = 2048,
    width: int = 16,
    batch_size: int = 64,
    lr: float = 1e-3,
    seed: int = 0,
    log: Callable[[str], None] = print,
) -> list[str]:
    """Train on ``split``'s first ``n_train`` training images of seed 0; return the checkpoint file names written."""
    torch.manual_seed(seed)
    model = ConceptUNet(ConceptUNetConfig(n_concepts=space_of(split).n_concepts, width=width))
    images = torch.from_numpy(train_images(split, 0, np.arange(n_train)))
    classes = torch.from_numpy(train_classes(split, np.arange(n_train)))
    opt = torch.optim.Adam(model.parameters(), lr=lr)
    generator = torch.Generator().manual_seed(seed)
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    written, start, recent = [], time.perf_counter(), []
    model.train()
    for step in range(1, steps + 1):
        pick = torch.randint(0, n_train, (batch_size,), generator=generator)
        loss = model.loss(images[pick], classes[pick], generator)
        opt.zero_grad()
        loss.backward()
        opt.step()
        recent.append(loss.item())
        if step in save_at:
            wall = time.perf_counter() - start
            name = f"step-{step:05d}.safetensors"
            extra = {"task": task_id, "split": split, "step": step, "wall_s": round(wall, 1), "lr": lr, "seed": seed}
            save_checkpoint(model.eval(), out / name, extra)
            model.train()
            written.append(name)
            log(f"step {step}: loss {np.mean(recent):.4f}, {wall:.0f} s")
            recent = []
    return written


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--split", default="H32-train1")
    p.add_argument("--task", default="fmbench/ConceptGenH32Train1-v0", help="the task id the checkpoints name")
    p.add_argument("--steps", type=int, default=max(SAVE_AT))
    p.add_argument("--width", type=int, default=16)
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--out", help="folder for the checkpoints (default: the shipped ones)")
    args = p.parse_args(argv)
    torch.set_num_threads(args.threads)
    out = args.out or checkpoint_dir(args.split)
    train_ddpm(args.split, args.task, out, steps=args.steps, save_at=[s for s in SAVE_AT if s <= args.steps],
               width=args.width)  # fmt: skip


if __name__ == "__main__":
    main()
