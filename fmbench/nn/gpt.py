"""A small GPT (pre-norm decoder-only transformer), the nanoGPT shape used by the studies.

Example:
    >>> import torch
    >>> model = GPT(GPTConfig(vocab_size=12, context_size=16, n_layer=1, n_head=1, n_embd=8))
    >>> model(torch.zeros(2, 5, dtype=torch.long)).shape
    torch.Size([2, 5, 12])
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
from torch import nn
from torch.nn import functional as F

from fmbench.checkpoints import register_architecture
from fmbench.nn.config import ArchConfig


@dataclass(frozen=True)
class GPTConfig(ArchConfig):
    """Hyper-parameters; the defaults are arXiv:2311.12997's small model (0.41M parameters)."""

    vocab_size: int
    context_size: int = 64
    n_layer: int = 2
    n_head: int = 1
    n_embd: int = 120
    dropout: float = 0.0
    bias: bool = False
    mlp: bool = True

    def __post_init__(self) -> None:
        self.check_positive("vocab_size", "context_size", "n_layer", "n_head", "n_embd")
        if self.n_embd % self.n_head:
            raise ValueError(f"n_embd={self.n_embd} is not divisible by n_head={self.n_head}")


KVCache = tuple[torch.Tensor, torch.Tensor]


class _LayerNorm(nn.Module):
    def __init__(self, dim: int, bias: bool) -> None:
        super().__init__()
        self.weight = nn.Parameter(torch.ones(dim))
        self.bias = nn.Parameter(torch.zeros(dim)) if bias else None

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.layer_norm(x, self.weight.shape, self.weight, self.bias, 1e-5)


class _Block(nn.Module):
    def __init__(self, c: GPTConfig) -> None:
        super().__init__()
        self.n_head = c.n_head
        self.dropout = c.dropout
        self.ln_1 = _LayerNorm(c.n_embd, c.bias)
        self.qkv = nn.Linear(c.n_embd, 3 * c.n_embd, bias=c.bias)
        self.attn_out = nn.Linear(c.n_embd, c.n_embd, bias=c.bias)
        self.ln_2 = _LayerNorm(c.n_embd, c.bias) if c.mlp else None
        self.mlp = (
            nn.Sequential(
                nn.Linear(c.n_embd, 4 * c.n_embd, bias=c.bias),
                nn.GELU(),
                nn.Linear(4 * c.n_embd, c.n_embd, bias=c.bias),
                nn.Dropout(c.dropout),
            )
            if c.mlp
            else None
        )
        self.resid_drop = nn.Dropout(c.dropout)

    def forward(self, x: torch.Tensor, cache: KVCache | None = None) -> tuple[torch.Tensor, KVCache]:
        b, t, d = x.shape
        q, k, v = self.qkv(self.ln_1(x)).split(d, dim=2)
        q, k, v = (z.view(b, t, self.n_head, d // self.n_head).transpose(1, 2) for z in (q, k, v))
        if cache is not None:
            k, v = torch.cat([cache[0], k], dim=2), torch.cat([cache[1], v], dim=2)
        # new queries sit at the end: causal within them, full view of the cached keys
        mask = (
            None
            if cache is None or t == 1
            else torch.ones(t, k.shape[2], dtype=torch.bool, device=x.device).tril(k.shape[2] - t)
        )
        y = F.scaled_dot_product_attention(
            q, k, v, attn_mask=mask, is_causal=cache is None, dropout_p=self.dropout if self.training else 0.0
        )
        x = x + self.resid_drop(self.attn_out(y.transpose(1, 2).reshape(b, t, d)))
        if self.mlp is not None:
            x = x + self.mlp(self.ln_2(x))
        return x, (k, v)


def _rows(layer: nn.Linear, start: int, stop: int) -> tuple[torch.Tensor, torch.Tensor | None]:
    """The weight and bias of output features ``start:stop`` of ``layer``."""
    return layer.weight[start:stop], None if layer.bias is None else layer.bias[start:stop]


class GPT(nn.Module):
    """Token ids ``(B, T)`` -> next-token logits ``(B, T, vocab_size)``; tied embeddings.

    Args:
        config: the hyper-parameters.
        generator: seeds the initialisation (deterministic weights for a seed).
    """

    def __init__(self, config: GPTConfig, generator: torch.Generator | None = None) -> None:
        super().__init__()
        self.config = config
        self.vocab_size = config.vocab_size
        self.context_length = config.context_size
        self.tok_emb = nn.Embedding(config.vocab_size, config.n_embd)
        self.pos_emb = nn.Embedding(config.context_size, config.n_embd)
        self.drop = nn.Dropout(config.dropout)
        self.blocks = nn.ModuleList(_Block(config) for _ in range(config.n_layer))
        self.ln_f = _LayerNorm(config.n_embd, config.bias)
        self.head = nn.Linear(config.n_embd, config.vocab_size, bias=False)
        self.head.weight = self.tok_emb.weight
        self._init_weights(generator)

    @torch.no_grad()
    def _init_weights(self, generator: torch.Generator | None) -> None:
        residual_std = 0.02 / math.sqrt(2 * self.config.n_layer)
        for name, p in self.named_parameters():
            if p.dim() < 2:
                continue
            std = residual_std if name.endswith(("attn_out.weight", "mlp.2.weight")) else 0.02
            p.normal_(0.0, std, generator=generator)
        for module in self.modules():
            if isinstance(module, nn.Linear) and module.bias is not None:
                module.bias.zero_()

    def forward(self, ids: torch.Tensor) -> torch.Tensor:
        return self.extend(ids, None)[0]

    def extend(self, ids: torch.Tensor, cache: list[KVCache] | None) -> tuple[torch.Tensor, list[KVCache]]:
        """Logits for ``ids`` appended after the tokens summarised by ``cache``, and the new cache.

        Incremental decoding: ``extend(x[:, :5], None)`` then ``extend(x[:, 5:6], cache)``
        gives the same last logits as ``forward(x[:, :6])``.
        """
        past = 0 if cache is None else cache[0][0].shape[2]
        t = past + ids.shape[1]
        if t > self.config.context_size:
            raise ValueError(f"sequence of {t} tokens exceeds the context size {self.config.context_size}")
        pos = torch.arange(past, t, device=ids.device)
        x = self.drop(self.tok_emb(ids) + self.pos_emb(pos))
        new_cache = []
        for i, block in enumerate(self.blocks):
            x, kv = block(x, None if cache is None else cache[i])
            new_cache.append(kv)
        return self.head(self.ln_f(x)), new_cache

    def masked_last_logits(self, ids: torch.Tensor, masks: list[torch.Tensor]) -> torch.Tensor:
        """Last-position logits ``(M, B, vocab_size)`` of ``ids`` ``(B, T)`` under ``M`` unit masks at once.

        ``masks[i]`` ``(M, 4 * n_embd)`` multiplies block ``i``'s MLP hidden units (after the activation; a
        0/1 mask zeroes units, as zeroing their ``mlp.0`` rows does) for each of the ``M`` variants. Variants
        whose masks agree up to a block share its computation (the attention and the MLP up to the activation
        run once per distinct prefix of masks; a variant's MLP output is the unmasked one less its masked-off
        units' part), and the last block runs its queries and MLP at the last position only. Equal to
        ``forward`` up to float rounding; inference only (no dropout).

        Example:
            >>> model = GPT(GPTConfig(vocab_size=12, context_size=16, n_layer=2, n_head=1, n_embd=8))
            >>> ids = torch.randint(0, 12, (3, 5))
            >>> keep = torch.ones(2, 32)
            >>> keep[1, :4] = 0
            >>> out = model.masked_last_logits(ids, [torch.ones(2, 32), keep])
            >>> out.shape, torch.allclose(out[0], model(ids)[:, -1], atol=1e-6)
            (torch.Size([2, 3, 12]), True)
        """
        if not self.config.mlp or len(masks) != len(self.blocks):
            raise ValueError(f"masked_last_logits needs one mask per block ({len(self.blocks)}) and MLP blocks")
        b, t = ids.shape
        if t > self.config.context_size:
            raise ValueError(f"sequence of {t} tokens exceeds the context size {self.config.context_size}")
        x = (self.tok_emb(ids) + self.pos_emb(torch.arange(t, device=ids.device)))[None]  # (groups, B, T, d)
        group = torch.zeros(masks[0].shape[0], dtype=torch.long, device=ids.device)  # each variant's group
        for i, block in enumerate(self.blocks):
            last = i == len(self.blocks) - 1
            g, d = x.shape[0], x.shape[-1]
            h = block.ln_1(x.reshape(g * b, -1, d))
            if last:  # keys and values at every position, the query at the last one
                q = F.linear(h[:, -1:], *_rows(block.qkv, 0, d))
                k, v = F.linear(h, *_rows(block.qkv, d, 3 * d)).split(d, dim=2)
            else:
                q, k, v = block.qkv(h).split(d, dim=2)
            q, k, v = (z.reshape(g * b, z.shape[1], block.n_head, -1).transpose(1, 2) for z in (q, k, v))
            y = F.scaled_dot_product_attention(q, k, v, is_causal=not last)
            y = block.attn_out(y.transpose(1, 2).reshape(g * b, q.shape[2], d)).view(g, b, -1, d)
            x = (x[:, :, -1:] if last else x) + y
            hidden = block.mlp[1](block.mlp[0](block.ln_2(x)))  # (g, B, T, 4d): shared by the group's variants
            pairs = torch.cat([group[:, None].to(masks[i].dtype), masks[i]], dim=1)
            distinct, group = torch.unique(pairs, dim=0, return_inverse=True)
            parent, mask = distinct[:, 0].long(), distinct[:, 1:]
            # masked units: the unmasked MLP output less the masked-off part, over the few units any mask touches
            touched = (mask != 1).any(0).nonzero().squeeze(1)
            dropped = hidden[..., touched][parent] * (1 - mask[:, None, None, touched])
            off = dropped @ block.mlp[2].weight[:, touched].T
            x = (x + block.mlp[2](hidden))[parent] - off
        return self.head(self.ln_f(x[:, :, -1]))[group]


register_architecture("gpt", GPT, GPTConfig.from_dict, "sequence-model")
