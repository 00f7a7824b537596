"""Batched greedy decoding for causal sequence models (token ids -> logits).

``greedy_answers`` returns exactly what step-by-step greedy decoding from the prompt
would produce, but computes it from one teacher-forced pass: while the model's argmax
equals the reference continuation, greedy decoding and teacher forcing see the same
prefix, so only rows that diverge are decoded further, from their divergence point.

Example:
    >>> import torch
    >>> copy_prev = lambda ids: torch.nn.functional.one_hot(ids, 4).float()
    >>> docs = torch.tensor([[1, 1, 1, 1], [2, 3, 3, 3]])
    >>> greedy_answers(copy_prev, docs, prompt_length=2, vocab_size=4)[0].tolist()
    [[1, 1], [3, 3]]
"""

from __future__ import annotations

from collections.abc import Callable

import torch

SequenceModel = Callable[[torch.Tensor], torch.Tensor]


def _logits(model: SequenceModel, ids: torch.Tensor, vocab_size: int) -> torch.Tensor:
    return model(ids)[..., :vocab_size]


def greedy_answers(
    model: SequenceModel, docs: torch.Tensor, prompt_length: int, vocab_size: int
) -> tuple[torch.Tensor, torch.Tensor]:
    """Greedy continuations and teacher-forced predictions of every row's answer.

    A model with an ``extend(ids, cache) -> (logits, cache)`` method (incremental decoding,
    as ``fmbench.nn.gpt.GPT`` and ``fmbench.models.HFCausalLM`` have) is decoded with its
    cache; any other model is re-run on the whole prefix at each step.

    Args:
        model: maps ``(B, T)`` token ids to ``(B, T, V)`` logits with ``V >= vocab_size``.
        docs: ``(B, prompt_length + A)`` reference documents (prompt then answer).
        prompt_length: tokens given to the model before it generates.
        vocab_size: only the first ``vocab_size`` logits are candidates.

    Returns:
        ``(generated, teacher_forced)``, both ``(B, A)`` token ids.
    """
    length = docs.shape[1]
    forced = _logits(model, docs[:, :-1], vocab_size)[:, prompt_length - 1 :].argmax(-1)
    wrong = forced != docs[:, prompt_length:]
    seq = docs.clone()
    rows = torch.nonzero(wrong.any(1)).flatten()
    if len(rows):
        first = prompt_length + wrong[rows].int().argmax(1)  # first wrong position per diverging row
        sub = seq[rows]
        start = int(first.min())
        extend = getattr(model, "extend", None)
        if extend is not None:
            logits, cache = extend(sub[:, :start], None)
        for pos in range(start, length):
            if extend is not None:
                pred = logits[:, -1, :vocab_size].argmax(-1)
            else:
                pred = _logits(model, sub[:, :pos], vocab_size)[:, -1].argmax(-1)
            # before its divergence a row's prefix is the reference, so greedy reproduces it
            sub[:, pos] = torch.where(first <= pos, pred, sub[:, pos])
            if extend is not None and pos + 1 < length:
                logits, cache = extend(sub[:, pos : pos + 1], cache)
        seq[rows] = sub
    return seq[:, prompt_length:], forced


def greedy_generate(model: SequenceModel, prompts: torch.Tensor, n_new: int, vocab_size: int) -> torch.Tensor:
    """Plain greedy decoding, one token per forward pass over the whole prefix: ``(B, n_new)``."""
    seq = prompts
    for _ in range(n_new):
        nxt = _logits(model, seq, vocab_size)[:, -1].argmax(-1, keepdim=True)
        seq = torch.cat([seq, nxt], dim=1)
    return seq[:, prompts.shape[1] :]
