"""Checks that a loaded model fits a task's interface before any scoring.

Example:
    >>> import torch
    >>> from fmbench.models import from_module
    >>> from fmbench.nn.gpt import GPT, GPTConfig
    >>> m = from_module(GPT(GPTConfig(vocab_size=8, context_size=16, n_embd=8)), "x", "x")
    >>> check_sequence_model(m, vocab=[f"t{i}" for i in range(8)], sequence_length=16)
"""

from __future__ import annotations

import torch

from fmbench.errors import ModelError, first_line
from fmbench.models import LoadedModel


def encode(encoder: object, inputs: object, n: int, dim: int | None, name: str) -> torch.Tensor:
    """``encoder(inputs)`` as ``(n, d)`` float embeddings on the CPU, else ``ModelError`` naming ``name``.

    Refuses an encoder that raises, returns anything but a 2-D tensor of ``n`` rows, changes
    width from ``dim`` (the width seen on earlier batches; ``None`` for the first), or returns
    NaN or infinity.

    Example:
        >>> encode(lambda x: x * 2, torch.ones(3, 4), 3, None, "batch 0").shape
        torch.Size([3, 4])
    """
    try:
        z = encoder(inputs)
    except Exception as e:  # the submission's own code: report whatever it raised
        raise ModelError(f"{name}: the encoder failed ({type(e).__name__}: {first_line(e, '')})") from None
    if not isinstance(z, torch.Tensor):
        raise ModelError(f"{name}: the encoder returned {type(z).__name__}, expected a ({n}, d) tensor")
    if z.dim() != 2 or z.shape[0] != n:
        raise ModelError(f"{name}: the encoder returned shape {tuple(z.shape)}, expected ({n}, d): one embedding "
                         "per input")
    if dim is not None and z.shape[1] != dim:
        raise ModelError(f"{name}: the encoder returned width {z.shape[1]} after {dim} on earlier batches")
    if not torch.isfinite(z).all():
        raise ModelError(f"{name}: the encoder returned NaN or infinite embeddings")
    return z.float().cpu()


def check_sequence_model(m: LoadedModel, vocab: list[str], sequence_length: int, device: str = "cpu") -> None:
    """Refuse a model that cannot map ``(B, sequence_length)`` ids of ``vocab`` to logits.

    Checks the declared interface, vocabulary (its size, and its tokens when the model
    carries its own) and context, then runs one tiny forward pass and checks the output's
    shape, dtype and finiteness.
    """
    vocab_size = len(vocab)
    if m.interface != "sequence-model":
        raise ModelError(f"{m.spec} has interface {m.interface!r}; this task scores a 'sequence-model'")
    if m.vocab_size is not None and m.vocab_size < vocab_size:
        raise ModelError(f"{m.spec} has {m.vocab_size} output tokens; the task's vocabulary has {vocab_size}")
    if m.tokens is not None and list(m.tokens[:vocab_size]) != list(vocab):
        wrong = next(i for i, t in enumerate(vocab) if i >= len(m.tokens) or m.tokens[i] != t)
        theirs = repr(m.tokens[wrong]) if wrong < len(m.tokens) else "missing"
        raise ModelError(f"{m.spec} has a vocabulary of its own (its token {wrong} is {theirs}, the task's is "
                         f"{vocab[wrong]!r}); train it on the task's vocabulary")
    if m.context_length is not None and m.context_length < sequence_length:
        raise ModelError(f"{m.spec} accepts {m.context_length} tokens; the task needs {sequence_length}")
    probe = torch.arange(2 * sequence_length, device=device).reshape(2, sequence_length) % vocab_size
    try:
        with torch.inference_mode():
            out = m.model(probe)
    except Exception as e:  # the model's own code: report whatever it raised
        raise ModelError(f"{m.spec} failed on a (2, {sequence_length}) batch of token ids: "
                         f"{type(e).__name__}: {e}") from None
    if not isinstance(out, torch.Tensor):
        raise ModelError(f"{m.spec} returned {type(out).__name__}; expected a logits tensor")
    if out.ndim != 3 or out.shape[:2] != (2, sequence_length) or out.shape[2] < vocab_size:
        raise ModelError(f"{m.spec} returned logits of shape {tuple(out.shape)}; expected "
                         f"(2, {sequence_length}, V) with V >= {vocab_size}")
    if not out.is_floating_point():
        raise ModelError(f"{m.spec} returned {out.dtype} logits; expected floating point")
    if not torch.isfinite(out[..., :vocab_size]).all():
        raise ModelError(f"{m.spec} returned NaN or infinite logits")
