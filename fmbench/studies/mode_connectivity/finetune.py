"""Training the shipped models: the cue-reliant model, and four ways to fine-tune it (the task's baselines).

* ``pretrain``: mmc-cnn from a seeded initialisation, cross-entropy on the cued ``train`` split.
* ``naive-ft``: every weight, cross-entropy on the clean ``finetune`` split.
* ``llr``: last-layer retraining: a fresh, seeded linear head on the frozen features (the authors' LLRT).
* ``lp-ft``: ``llr``, then ``naive-ft`` from there at a tenth of the learning rate (Kumar et al. 2022).
* ``cbft``: the paper's connectivity-based fine-tuning, read from the authors' ``mech_fine_tuning.py``:
  each step first takes a *barrier step*, ``|1 - CE|`` of the model at a random point
  ``t = 0.5 + 0.5 clip(N(0, 1), -0.5, 0.5)`` (so ``t`` in [0.25, 0.75]) of the path between the
  shipped model (weight ``t``) and the fine-tuned one, on a batch of cued ``train`` images (the
  gradient reaches the fine-tuned weights times ``1 - t``), then a *clean step*, cross-entropy on a
  clean ``finetune`` batch plus ``lambda`` times the invariance loss: the squared distance between the
  normalised class means of the hidden features on the clean and on the cued batch, averaged over
  classes (after one warm-up epoch of cross-entropy alone).

Every run is seeded (initialisation, shuffling, ``t``) and uses one CPU thread, so it is
bit-reproducible. Fine-tuning reads the shipped ``cue-reliant`` checkpoint and seed 0's data.

Run (writes the shipped checkpoints unless ``--out`` is given)::

    python -m fmbench.studies.mode_connectivity.finetune --task fmbench/MMCFashionBoxFT-v0 --method all

Example:
    >>> import fmbench
    >>> task = fmbench.make_task("fmbench/MMCFashionBoxFT-v0")
    >>> model = fine_tune(task, "llr", seed=0, epochs=1, limit=256)
    >>> type(model).__name__
    'ConvNet'
"""

from __future__ import annotations

import argparse
import copy
import time
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import torch
from torch import nn
from torch.func import functional_call

from fmbench.checkpoints import save_checkpoint
from fmbench.errors import InputError
from fmbench.interfaces import seeded
from fmbench.registry import make_task
from fmbench.studies.mode_connectivity.data import split_arrays
from fmbench.studies.mode_connectivity.model import ConvNet, ConvNetConfig
from fmbench.studies.mode_connectivity.task import CUE_MODEL, MechanismTask

METHODS = ("naive-ft", "llr", "lp-ft", "cbft")
EPOCHS = {"pretrain": 3, "naive-ft": 20, "llr": 20, "lp-ft": 20, "cbft": 20}
LR = {"pretrain": 0.05, "naive-ft": 0.01, "llr": 0.05, "lp-ft": 0.05, "cbft": 0.01}
BATCH = 128
CBFT_LAMBDA = 1.0
CBFT_MARGIN = 1.0


def _split(task: MechanismTask, split: str, limit: int | None) -> tuple[torch.Tensor, torch.Tensor]:
    n = task.split_size(split) if limit is None else min(limit, task.split_size(split))
    images, labels, _ = split_arrays(task.data, 0, split, np.arange(n))
    return torch.from_numpy(images).float().div_(255), torch.from_numpy(labels)


def _batches(
    x: torch.Tensor, y: torch.Tensor, generator: torch.Generator
) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
    order = torch.randperm(len(x), generator=generator)
    for start in range(0, len(x), BATCH):
        idx = order[start : start + BATCH]
        yield x[idx], y[idx]


def _sgd(
    params: list[nn.Parameter], lr: float, steps: int
) -> tuple[torch.optim.Optimizer, torch.optim.lr_scheduler.LRScheduler]:
    opt = torch.optim.SGD(params, lr=lr, momentum=0.9, weight_decay=5e-4)
    return opt, torch.optim.lr_scheduler.CosineAnnealingLR(opt, max(1, steps))


def _cross_entropy(
    model: nn.Module,
    x: torch.Tensor,
    y: torch.Tensor,
    params: list[nn.Parameter],
    lr: float,
    epochs: int,
    generator: torch.Generator,
    train_mode: bool = True,
) -> None:
    opt, schedule = _sgd(params, lr, epochs * -(-len(x) // BATCH))
    model.train(train_mode)
    for _ in range(epochs):
        for xb, yb in _batches(x, y, generator):
            opt.zero_grad()
            nn.functional.cross_entropy(model(xb), yb).backward()
            opt.step()
            schedule.step()


def _retrain_head(model: ConvNet, x: torch.Tensor, y: torch.Tensor, epochs: int, generator: torch.Generator) -> None:
    """Last-layer retraining: a fresh head (seeded by ``generator``) on frozen features (BatchNorm in eval mode)."""
    head = nn.Linear(model.config.hidden, model.config.n_classes)
    bound = 1 / np.sqrt(model.config.hidden)
    with torch.no_grad():
        head.weight.uniform_(-bound, bound, generator=generator)
        head.bias.uniform_(-bound, bound, generator=generator)
        features = model.eval().features(x)
    _cross_entropy(head, features, y, list(head.parameters()), LR["llr"], epochs, generator)
    model.linear.load_state_dict(head.state_dict())


def _invariance(
    z_clean: torch.Tensor, y_clean: torch.Tensor, z_cued: torch.Tensor, y_cued: torch.Tensor
) -> torch.Tensor:
    """Mean over classes present in both batches of the squared distance between normalised class-mean features."""
    terms = []
    for c in range(10):
        a, b = z_clean[y_clean == c], z_cued[y_cued == c]
        if len(a) and len(b):
            diff = nn.functional.normalize(a.mean(0), dim=0) - nn.functional.normalize(b.mean(0), dim=0)
            terms.append(diff.pow(2).sum())
    return torch.stack(terms).sum() / 10 if terms else z_clean.sum() * 0


def _cbft(model: ConvNet, anchor: ConvNet, clean: tuple, cued: tuple, epochs: int, generator: torch.Generator) -> None:
    params = dict(model.named_parameters())
    anchor_params = {k: v.detach() for k, v in anchor.named_parameters()}
    buffers = {k: v.detach().clone() for k, v in anchor.named_buffers()}
    opt, schedule = _sgd(list(params.values()), LR["cbft"], epochs * -(-len(clean[0]) // BATCH))
    model.train()
    for epoch in range(epochs):
        for (xc, yc), (xq, yq) in zip(_batches(*clean, generator), _batches(*cued, generator)):
            t = float(0.5 + 0.5 * torch.randn(1, generator=generator).clamp(-0.5, 0.5))
            between = {k: t * anchor_params[k] + (1 - t) * p for k, p in params.items()}
            opt.zero_grad()
            logits = functional_call(model, {**between, **buffers}, (xq,))
            (CBFT_MARGIN - nn.functional.cross_entropy(logits, yq)).abs().backward()
            opt.step()
            opt.zero_grad()
            z_clean = model.features(xc)
            loss = nn.functional.cross_entropy(model.linear(z_clean), yc)
            if epoch >= 1:
                loss = loss + CBFT_LAMBDA * _invariance(z_clean, yc, model.features(xq), yq)
            loss.backward()
            opt.step()
            schedule.step()


def pretrain(
    task: MechanismTask, seed: int = 0, epochs: int = EPOCHS["pretrain"], limit: int | None = None, split: str = "train"
) -> ConvNet:
    """mmc-cnn trained from a seeded initialisation on ``split`` of seed 0 (``limit``: its first items)."""
    torch.set_num_threads(1)
    c, h, w = task.data.image_shape
    model = seeded(lambda: ConvNet(ConvNetConfig(in_channels=c, height=h, width=w)), seed)
    x, y = _split(task, split, limit)
    _cross_entropy(model, x, y, list(model.parameters()), LR["pretrain"], epochs, torch.Generator().manual_seed(seed))
    return model.eval()


def fine_tune(
    task: MechanismTask,
    method: str,
    seed: int = 0,
    epochs: int | None = None,
    limit: int | None = None,
    start: ConvNet | None = None,
) -> ConvNet:
    """The shipped cue-reliant model (or ``start``) fine-tuned by ``method`` with ``seed`` (module docstring)."""
    if method not in METHODS:
        raise InputError(f"unknown fine-tuning method {method!r}; use one of {METHODS}")
    torch.set_num_threads(1)
    epochs = EPOCHS[method] if epochs is None else epochs
    anchor = start if start is not None else task.cue_model().model
    model = copy.deepcopy(anchor)
    generator = torch.Generator().manual_seed(seed)
    clean = _split(task, "finetune", limit)
    if method in ("llr", "lp-ft"):
        _retrain_head(model, *clean, epochs, generator)
    if method in ("naive-ft", "lp-ft"):
        lr = LR[method] / (10 if method == "lp-ft" else 1)
        _cross_entropy(model, *clean, list(model.parameters()), lr, epochs, generator)
    if method == "cbft":
        _cbft(model, anchor.eval(), clean, _split(task, "train", limit), epochs, generator)
    return model.eval()


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--task", default="fmbench/MMCFashionBoxFT-v0")
    p.add_argument("--method", required=True, choices=["pretrain", *METHODS, "all"])
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--out", help="checkpoint path (default: the shipped one; not with --method all)")
    args = p.parse_args(argv)
    task = make_task(args.task)
    methods = ["pretrain", *METHODS] if args.method == "all" else [args.method]
    for method in methods:
        start = time.perf_counter()
        name = CUE_MODEL if method == "pretrain" else method
        model = pretrain(task, args.seed) if method == "pretrain" else fine_tune(task, method, args.seed)
        out = Path(args.out) if args.out else task.checkpoint(name)
        save_checkpoint(model, out, {"task": task.id, "name": name, "seed": args.seed})
        print(f"{method}: wrote {out} in {time.perf_counter() - start:.0f} s")


if __name__ == "__main__":
    main()
