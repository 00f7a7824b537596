"""Next-token training of a causal sequence model on a random-access document source.

Example:
    >>> import numpy as np
    >>> from fmbench.nn.gpt import GPT, GPTConfig
    >>> docs = lambda idx: np.tile(np.arange(6), (len(idx), 1))
    >>> model = GPT(GPTConfig(vocab_size=6, context_size=8, n_layer=1, n_embd=8))
    >>> losses = train_causal_lm(model, docs, 32, TrainConfig(batch_size=8, warmup_steps=1), seed=0)
    >>> len(losses)
    4
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import asdict, dataclass

import numpy as np
import torch
from torch import nn
from torch.nn import functional as F
from tqdm.auto import tqdm


@dataclass(frozen=True)
class TrainConfig:
    """Optimiser and schedule (defaults: arXiv:2311.12997's AdamW + warmup + cosine)."""

    batch_size: int = 16
    epochs: int = 1
    learning_rate: float = 3e-4
    min_learning_rate: float = 6e-6
    weight_decay: float = 0.1
    beta1: float = 0.9
    beta2: float = 0.95
    grad_clip: float = 1.0
    warmup_steps: int = 200

    def to_dict(self) -> dict:
        return asdict(self)


def learning_rate(step: int, total: int, c: TrainConfig) -> float:
    """Linear warmup to ``learning_rate`` then cosine decay to ``min_learning_rate``."""
    if step < c.warmup_steps:
        return c.learning_rate * (step + 1) / c.warmup_steps
    progress = (step - c.warmup_steps) / max(1, total - c.warmup_steps)
    return c.min_learning_rate + 0.5 * (1 + math.cos(math.pi * progress)) * (c.learning_rate - c.min_learning_rate)


def train_causal_lm(
    model: nn.Module,
    documents: Callable[[np.ndarray], np.ndarray],
    n_documents: int,
    config: TrainConfig,
    seed: int,
    device: str = "cpu",
    progress: bool = False,
) -> list[float]:
    """Train on every document once per epoch, in an order drawn from ``seed``; return losses.

    ``documents(index)`` returns equal-length token-id rows; the loss is next-token cross
    entropy over every position. Weight decay applies to matrices only.
    """
    model.to(device).train()
    decay = [p for p in model.parameters() if p.dim() >= 2]
    no_decay = [p for p in model.parameters() if p.dim() < 2]
    opt = torch.optim.AdamW(
        [{"params": decay, "weight_decay": config.weight_decay}, {"params": no_decay, "weight_decay": 0.0}],
        lr=config.learning_rate,
        betas=(config.beta1, config.beta2),
    )
    rng = np.random.default_rng([seed, 1])
    steps_per_epoch = n_documents // config.batch_size
    total = steps_per_epoch * config.epochs
    if total < 1:
        raise ValueError(f"{n_documents} documents make no batch of {config.batch_size}")
    losses: list[float] = []
    bar = tqdm(total=total, disable=not progress, desc="train", unit="step")
    for epoch in range(config.epochs):
        order = rng.permutation(n_documents)
        for b in range(steps_per_epoch):
            step = epoch * steps_per_epoch + b
            for group in opt.param_groups:
                group["lr"] = learning_rate(step, total, config)
            batch = torch.from_numpy(documents(order[b * config.batch_size : (b + 1) * config.batch_size])).to(device)
            logits = model(batch[:, :-1])
            loss = F.cross_entropy(logits.reshape(-1, logits.shape[-1]), batch[:, 1:].reshape(-1))
            opt.zero_grad(set_to_none=True)
            loss.backward()
            torch.nn.utils.clip_grad_norm_(model.parameters(), config.grad_clip)
            opt.step()
            losses.append(loss.item())
            bar.update()
            if step % 100 == 0:
                bar.set_postfix(loss=f"{np.mean(losses[-100:]):.3f}")
    bar.close()
    model.eval()
    return losses
