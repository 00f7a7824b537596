"""A plain PyTorch forward for Tracr-compiled transformers (weights exported by ``scripts/build_tracr.py``).

Tracr (arXiv:2301.05062) compiles a RASP program into a transformer with one-hot residual
features: blocks of multi-head attention and a ReLU MLP, no layer norms, no final norm, softmax
over ``q . k / sqrt(key_size)``. fmbench ships the compiled Counter and Max-identifier programs as
safetensors and runs them here, so neither jax nor tracr is needed at run time. The vocabulary is
the task's: ``<bos>``, the input letters, then the output tokens; logits outside the program's
outputs are held at ``-1e4`` (a fixed buffer, never trained) so the argmax is tracr's decoding.

Example:
    >>> import torch
    >>> from fmbench.studies.finetuning.tracr_model import load_tracr
    >>> loaded = load_tracr("counter")
    >>> vocab = loaded.tokens
    >>> ids = torch.tensor([[vocab.index(t) for t in ["<bos>", *"abacab"]]])
    >>> vocab[loaded.model(ids)[0, -1].argmax()]
    '3'
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import torch
from torch import nn
from torch.nn import functional as F

from fmbench.checkpoints import register_architecture
from fmbench.errors import InputError
from fmbench.models import LoadedModel, load_safetensors
from fmbench.nn.config import ArchConfig

CHECKPOINTS = Path(__file__).parent / "checkpoints"
PROGRAMS = ("counter", "max")
MASKED_LOGIT = -1e4


@dataclass(frozen=True)
class TracrConfig(ArchConfig):
    """The compiled model's shape (tracr's ``TransformerConfig``) and which vocabulary ids are outputs."""

    vocab_size: int
    context_size: int
    d_model: int
    n_layer: int
    n_head: int
    key_size: int
    mlp_hidden: int
    causal: bool = False
    output_ids: list[int] = field(default_factory=list)

    def __post_init__(self) -> None:
        self.check_positive("vocab_size", "context_size", "d_model", "n_layer", "n_head", "key_size", "mlp_hidden")
        if not self.output_ids or not all(0 <= i < self.vocab_size for i in self.output_ids):
            raise ValueError(f"TracrConfig.output_ids must be non-empty ids below {self.vocab_size}")


class _Attention(nn.Module):
    def __init__(self, c: TracrConfig) -> None:
        super().__init__()
        inner = c.n_head * c.key_size
        self.n_head, self.causal = c.n_head, c.causal
        self.query, self.key, self.value = (nn.Linear(c.d_model, inner) for _ in range(3))
        self.out = nn.Linear(inner, c.d_model)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b, t, _ = x.shape
        q, k, v = (f(x).view(b, t, self.n_head, -1).transpose(1, 2) for f in (self.query, self.key, self.value))
        y = F.scaled_dot_product_attention(q, k, v, is_causal=self.causal)  # scale 1 / sqrt(key_size), as tracr
        return self.out(y.transpose(1, 2).reshape(b, t, -1))


class _Block(nn.Module):
    def __init__(self, c: TracrConfig) -> None:
        super().__init__()
        self.attn = _Attention(c)
        self.mlp = nn.Sequential(nn.Linear(c.d_model, c.mlp_hidden), nn.ReLU(), nn.Linear(c.mlp_hidden, c.d_model))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = x + self.attn(x)
        return x + self.mlp(x)


class TracrTransformer(nn.Module):
    """Token ids ``(B, T)`` -> logits ``(B, T, vocab_size)`` of a compiled Tracr program.

    ``blocks[i]`` returns the residual stream after layer ``i`` (attention then MLP); the
    MLP hidden units are the output features of ``blocks[i].mlp[0]``.
    """

    def __init__(self, config: TracrConfig) -> None:
        super().__init__()
        self.config = config
        self.vocab_size = config.vocab_size
        self.context_length = config.context_size
        self.tok_emb = nn.Embedding(config.vocab_size, config.d_model)
        self.pos_emb = nn.Embedding(config.context_size, config.d_model)
        self.blocks = nn.ModuleList(_Block(config) for _ in range(config.n_layer))
        self.unembed = nn.Linear(config.d_model, config.vocab_size, bias=False)
        offset = torch.full((config.vocab_size,), MASKED_LOGIT)
        offset[config.output_ids] = 0.0
        self.register_buffer("logit_offset", offset, persistent=False)

    def residual(self, ids: torch.Tensor) -> torch.Tensor:
        """The final residual stream ``(B, T, d_model)`` (tracr's ``transformer_output``)."""
        if ids.shape[1] > self.context_length:
            raise InputError(f"sequence of {ids.shape[1]} tokens exceeds the context size {self.context_length}")
        x = self.tok_emb(ids) + self.pos_emb(torch.arange(ids.shape[1], device=ids.device))
        for block in self.blocks:
            x = block(x)
        return x

    def forward(self, ids: torch.Tensor) -> torch.Tensor:
        return self.unembed(self.residual(ids)) + self.logit_offset


register_architecture("tracr", TracrTransformer, TracrConfig.from_dict, "sequence-model")


def load_tracr(program: str) -> LoadedModel:
    """The shipped compiled ``program`` (``counter`` or ``max``); its vocabulary is ``.tokens``."""
    if program not in PROGRAMS:
        raise InputError(f"unknown Tracr program {program!r}; shipped: {list(PROGRAMS)}")
    loaded = load_safetensors(str(CHECKPOINTS / f"tracr_{program}.safetensors"), spec=f"tracr:{program}")
    loaded.name = f"tracr-{program}"
    return loaded
