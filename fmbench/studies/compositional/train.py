"""Train the paper's small nanoGPT on a composition task and save it as a safetensors checkpoint.

Run by hand (minutes on one CPU thread at the defaults)::

    python -m fmbench.studies.compositional.train --task fmbench/ComposeStepByStep-v0 \\
        --seed 0 --out step.safetensors

Example:
    >>> from fmbench.studies.compositional.generator import CompositionConfig, CompositionWorld
    >>> config = CompositionConfig(depth=2, n_functions=1, n_train_compositions=3, n_train_documents=64)
    >>> world = CompositionWorld(config, 0)
    >>> model, info = train_model(world, seed=0, train=TrainConfig(batch_size=32, warmup_steps=1))
    >>> info["steps"]
    2
"""

from __future__ import annotations

import argparse
import time

import torch

from fmbench.nn.gpt import GPT, GPTConfig
from fmbench.nn.lm_training import TrainConfig, train_causal_lm
from fmbench.studies.compositional.generator import CompositionWorld

DEFAULT_MODEL = {"context_size": 64, "n_layer": 2, "n_head": 1, "n_embd": 120}


def make_model(world: CompositionWorld, seed: int, **overrides: int) -> GPT:
    """The paper's small GPT sized for a world's vocabulary, initialised from ``seed``."""
    cfg = GPTConfig(vocab_size=len(world.vocab), **{**DEFAULT_MODEL, **overrides})
    return GPT(cfg, generator=torch.Generator().manual_seed(seed))


def train_model(
    world: CompositionWorld,
    seed: int,
    train: TrainConfig = TrainConfig(),
    device: str = "cpu",
    progress: bool = False,
    **model_overrides: int,
) -> tuple[GPT, dict]:
    """Train a fresh model on the world's training split (documents drawn with ``seed``)."""
    model = make_model(world, seed, **model_overrides)
    start = time.perf_counter()
    losses = train_causal_lm(
        model,
        lambda idx: world.documents("train", seed, idx),
        world.split_size("train"),
        train,
        seed=seed,
        device=device,
        progress=progress,
    )
    info = {
        "seed": seed,
        "train": train.to_dict(),
        "steps": len(losses),
        "final_loss": float(sum(losses[-100:]) / len(losses[-100:])),
        "train_seconds": round(time.perf_counter() - start, 1),
    }
    return model.cpu(), info


def main(argv: list[str] | None = None) -> None:
    from fmbench import make_task
    from fmbench.checkpoints import save_checkpoint

    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--task", required=True, help="a registered composition task id")
    p.add_argument("--seed", type=int, default=0, help="initialisation and data-order seed")
    p.add_argument("--out", required=True, help="output .safetensors path")
    p.add_argument("--threads", type=int, default=1, help="torch CPU threads")
    p.add_argument("--device", default="cpu")
    args = p.parse_args(argv)
    torch.set_num_threads(args.threads)
    task = make_task(args.task)
    model, info = train_model(task.world, args.seed, device=args.device, progress=True)
    save_checkpoint(model, args.out, {"task": task.id, "vocab": task.vocab, "trained": info})
    print(f"saved {args.out}: final loss {info['final_loss']:.4f} in {info['train_seconds']} s")


if __name__ == "__main__":
    main()
