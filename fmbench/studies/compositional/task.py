"""Registered composition tasks: data, stats, baselines and the greedy-decoding evaluator.

Example:
    >>> import fmbench
    >>> task = fmbench.make_task("fmbench/ComposeDirect-v0")
    >>> task.world.document_length, len(task.vocab)
    (20, 33)
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterator
from functools import cached_property
from pathlib import Path
from typing import Any

import numpy as np
import torch
from tqdm.auto import tqdm

from fmbench.decoding import greedy_answers
from fmbench.models import LoadedModel, from_module, load_baseline_checkpoint
from fmbench.studies.compositional.generator import CompositionConfig, CompositionWorld
from fmbench.studies.compositional.train import make_model
from fmbench.task import BOOLEAN, INTEGER, POSITIVE, STRING, Task, evaluation_subset, params_of

HERE = Path(__file__).parent


class CompositionTask(Task):
    """Score a causal sequence model on held-out function compositions (arXiv:2311.12997)."""

    splits = ("train", "test")
    params_schema = params_of(
        {
            "world_seed": INTEGER,
            "n_tokens": POSITIVE,
            "input_length": POSITIVE,
            "depth": POSITIVE,
            "n_functions": POSITIVE,
            "include_identity": BOOLEAN,
            "step_by_step": BOOLEAN,
            "split": STRING,
            "permutation_positions": {"type": "array", "items": INTEGER},
            "n_train_compositions": INTEGER,
            "n_identity": INTEGER,
            "with_replacement": BOOLEAN,
            "n_train_documents": POSITIVE,
            "samples_per_composition": POSITIVE,
            "max_eval_compositions": POSITIVE,
        }
    )
    """:class:`~fmbench.studies.compositional.generator.CompositionConfig`'s fields and ``world_seed``."""

    @cached_property
    def world(self) -> CompositionWorld:
        params = dict(self.spec.params)
        world_seed = params.pop("world_seed", 0)
        try:
            return CompositionWorld(CompositionConfig(**params), world_seed)
        except (TypeError, ValueError) as e:
            raise ValueError(f"{self.spec.spec_file} {self.id}: bad params ({e})") from None

    @property
    def vocab(self) -> list[str]:
        return self.world.vocab

    def split_size(self, split: str) -> int:
        return self.world.split_size(split)

    def data_hash(self, seed: int) -> str:
        return self.world.data_hash(seed)

    def export_chunks(self, split: str, seed: int) -> Iterator[dict[str, np.ndarray]]:
        """``ids`` (the document's index in the split), ``token_ids`` (the document), ``composition_token_ids``
        (its functions), ``prompt_length`` and, in ``test``, ``in_train`` (its composition is trained on)."""
        w = self.world
        for index, docs in w.iter_documents(split, seed):
            comps = w.compositions_of(split, seed, index)
            cols = {
                "ids": index,
                "token_ids": docs,
                "composition_token_ids": comps + w.config.n_tokens,
                "prompt_length": np.full(len(index), w.prompt_length),
            }
            if split == "test":
                cols["in_train"] = w.eval_in_train[index // w.config.samples_per_composition]
            yield cols

    def _names(self, comps: np.ndarray) -> list[str]:
        return [" ".join(self.world.decode(c + self.world.config.n_tokens)) for c in comps]

    def stats(self, seed: int) -> dict[str, Any]:
        w = self.world
        train_counts = Counter(
            w.compositions_of("train", seed, np.arange(w.split_size("train")))
            .dot(w.n_functions_total ** np.arange(w.config.depth))
            .tolist()
        )
        seen, held = w.eval_compositions[w.eval_in_train], w.eval_compositions[~w.eval_in_train]
        return {
            "task": self.id,
            "seed": seed,
            "vocab_size": len(w.vocab),
            "prompt_length": w.prompt_length,
            "document_length": w.document_length,
            "train": {
                "documents": w.split_size("train"),
                "compositions": len(w.train_compositions),
                "documents_per_composition": {"min": min(train_counts.values()), "max": max(train_counts.values())},
                "by_identities": _histogram(w.n_identities(w.train_compositions)),
                "by_displacement": _histogram(w.displacement(w.train_compositions)),
                "composition_list": self._names(w.train_compositions),
            },
            "test": {
                "documents": w.split_size("test"),
                "samples_per_composition": w.config.samples_per_composition,
                "seen_compositions": len(seen),
                "held_out_compositions": len(held),
                "held_out_by_identities": _histogram(w.n_identities(held)),
                "held_out_by_displacement": _histogram(w.displacement(held)),
                "held_out_list": self._names(held),
            },
        }

    def input_format(self) -> str:
        w = self.world
        return (
            f"A causal sequence model: LongTensor (B, T) of token ids in [0, {len(w.vocab)}) with "
            f"T <= {w.document_length - 1} -> logits (B, T, V), V >= {len(w.vocab)} (extra logits are "
            f"ignored). Decoding is greedy from the {w.prompt_length}-token prompt for "
            f"{w.answer_length} tokens; the vocabulary is `fmbench describe` / `task.vocab` "
            "(token i is vocab[i])."
        )

    def check_model(self, model: LoadedModel) -> None:
        self.interface.check(model, vocab=self.world.vocab, sequence_length=self.world.document_length - 1)

    def load_baseline(self, name: str) -> LoadedModel:
        entry = self.baseline_entry(name)
        if "file" not in entry:  # the untrained recipe
            return from_module(make_model(self.world, seed=0), f"baseline:{name}", name)
        return load_baseline_checkpoint(self, name, HERE / entry["file"])

    @torch.inference_mode()
    def evaluate(
        self,
        model: LoadedModel,
        seed: int,
        *,
        device: str = "cpu",
        batch_size: int = 256,
        limit: int | None = None,
        progress: bool = False,
    ) -> dict[str, float]:
        w = self.world
        n, length = w.split_size("test"), w.config.input_length
        items = evaluation_subset(n, limit)
        exact, tokens, forced_ok = (np.zeros(len(items)) for _ in range(3))
        bar = tqdm(total=len(items), disable=not progress, desc=f"seed {seed}", unit="seq", leave=False)
        for start in range(0, len(items), batch_size):
            rows = slice(start, start + batch_size)
            docs = torch.from_numpy(w.documents("test", seed, items[rows])).to(device)
            generated, forced = greedy_answers(model.model, docs, w.prompt_length, len(w.vocab))
            target = docs[:, -length:]
            exact[rows] = (generated[:, -length:] == target).all(1).cpu().numpy()
            tokens[rows] = (generated[:, -length:] == target).float().mean(1).cpu().numpy()
            forced_ok[rows] = (forced[:, -length:] == target).float().mean(1).cpu().numpy()
            bar.update(len(docs))
        bar.close()
        comp = items // w.config.samples_per_composition
        held = ~w.eval_in_train[comp]
        metrics = {
            "exact_match": exact[held].mean(),
            "token_accuracy": tokens[held].mean(),
            "teacher_forced_accuracy": forced_ok[held].mean(),
            "exact_match_seen": exact[~held].mean(),
        }
        groups = {"identities": w.n_identities(w.eval_compositions)[comp]}
        if w.config.split == "out_of_order":
            groups["displacement"] = w.displacement(w.eval_compositions)[comp]
        for group, values in groups.items():
            for v in np.unique(values[held]):
                metrics[f"exact_match|{group}={v}"] = exact[held & (values == v)].mean()
        return {k: float(v) for k, v in metrics.items()}


def _histogram(values: np.ndarray) -> dict[str, int]:
    return {str(k): int(c) for k, c in zip(*np.unique(values, return_counts=True))}
