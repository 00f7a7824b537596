"""Registered PCFG tasks of arXiv:2311.12786: the five pretraining tasks and the fine-tuning (wrapper) tasks.

A pretraining task scores a sequence model's answer token. A fine-tuning task scores a
*fine-tuned* model against the task's shipped pretrained one (the pair shares one architecture):
how well it counts ``b`` (the fine-tuning task, with and without the spurious rule), and how much
of the pretraining capability (counting ``a``) survives: as it is, after pruning the units that
matter most to the fine-tuning task, in linear probes of each block, and in the steps a reverse
fine-tuning takes to bring it back.

Example:
    >>> import fmbench
    >>> task = fmbench.make_task("fmbench/PCFGFineTuneCountB08-v0")
    >>> task.finetune_config.correlation, task.split_size("test_spurious")
    (0.8, 512)
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from functools import cached_property
from pathlib import Path
from typing import Any

import numpy as np
import torch

from fmbench.models import LoadedModel, from_module, load_baseline_checkpoint, load_safetensors
from fmbench.studies.finetuning import evaluators, tracr_data, tracr_model  # noqa: F401 (registers "tracr")
from fmbench.studies.finetuning.data import PCFGConfig, data_hash, documents
from fmbench.studies.finetuning.tracr_data import CounterConfig, IdentifierConfig
from fmbench.studies.finetuning.train import make_model
from fmbench.task import INTEGER, POSITIVE, STRING, Task, evaluation_subset, params_of, stratified_subset

HERE = Path(__file__).parent
PROBABILITIES = {"type": "array", "items": {"type": "number", "minimum": 0, "maximum": 1}}
COMMON = {"text_length": POSITIVE, "grammar_seed": INTEGER, "operand_prior": PROBABILITIES}


class _PCFGTask(Task):
    """What both kinds share: the vocabulary, fixed-length documents, answer scoring."""

    config: PCFGConfig

    @property
    def vocab(self) -> list[str]:
        return self.config.vocab

    def _config_of(self, split: str) -> PCFGConfig:
        return self.config

    def split_size(self, split: str) -> int:
        self.check_split(split)
        return self._config_of(split).splits[split]

    def documents(self, split: str, seed: int, index: np.ndarray) -> np.ndarray:
        """Token ids ``(len(index), document_length)`` of items ``index`` of ``split``."""
        self.check_split(split)
        return documents(self._config_of(split), seed, split, index)

    def export_chunks(self, split: str, seed: int, chunk: int = 4096) -> Iterator[dict[str, np.ndarray]]:
        """``ids``, ``token_ids`` (whole documents) and ``answer_position``."""
        n = self.split_size(split)
        for start in range(0, n, chunk):
            index = np.arange(start, min(n, start + chunk))
            docs = self.documents(split, seed, index)
            yield {"ids": index, "token_ids": docs, "answer_position": np.full(len(index), self.config.answer_position)}

    def data_hash(self, seed: int) -> str:
        import hashlib

        h = hashlib.sha256()
        configs = {id(c): c for c in map(self._config_of, self.splits)}  # each config hashes all its splits
        for config in configs.values():
            h.update(data_hash(config, seed).encode())
        return h.hexdigest()

    def stats(self, seed: int) -> dict[str, Any]:
        c = self.config
        out: dict[str, Any] = {
            "task": self.id,
            "seed": seed,
            "vocab_size": len(c.vocab),
            "document_length": c.document_length,
        }
        for split in self.splits:
            docs = self.documents(split, seed, np.arange(self.split_size(split)))
            answers = docs[:, c.answer_position]
            values, counts = np.unique(answers, return_counts=True)
            out[split] = {
                "documents": len(docs),
                "majority_answer": c.vocab[values[counts.argmax()]],
                "majority_rate": round(float(counts.max() / len(docs)), 4),
                "answers": {c.vocab[v]: int(k) for v, k in zip(values, counts)},
            }
        return out

    def input_format(self) -> str:
        c = self.config
        return (
            f"A causal sequence model: LongTensor (B, T) of token ids in [0, {len(c.vocab)}) with T <= "
            f"{c.document_length - 1} -> logits (B, T, V), V >= {len(c.vocab)}. Documents are "
            f"'<sos> T O O' <sot> text <eot> <art> answer <eos>' with {c.text_length} text tokens; the answer is the "
            f"argmax of the logits at position {c.answer_position - 1} (the <art> token)."
        )

    def check_model(self, model: LoadedModel) -> None:
        self.interface.check(model, vocab=self.vocab, sequence_length=self.config.document_length - 1)

    def answer_accuracy(self, model: torch.nn.Module, docs: np.ndarray, device: str, batch_size: int) -> np.ndarray:
        """Per document: whether the model's argmax at ``<art>`` is the answer."""
        return evaluators.answer_correct(model, torch.from_numpy(docs), self.config.answer_position, device, batch_size)


class PCFGTask(_PCFGTask):
    """A pretraining task: answer the question about a PCFG string (accuracy per operand as breakdowns)."""

    splits = ("train", "test")
    params_schema = params_of({"task": STRING, "n_train": POSITIVE, "n_test": POSITIVE, **COMMON}, required=("task",))

    @cached_property
    def config(self) -> PCFGConfig:
        p = self.spec.params
        return PCFGConfig(
            task=p["task"],
            operand_prior=tuple(p.get("operand_prior", (0.9, 0.1, 0.0))),
            text_length=p.get("text_length", 32),
            grammar_seed=p.get("grammar_seed", 5),
            splits={"train": p.get("n_train", 16384), "test": p.get("n_test", 1024)},
        )

    def load_baseline(self, name: str) -> LoadedModel:
        entry = self.baseline_entry(name)
        if "file" in entry:
            return load_baseline_checkpoint(self, name, HERE / entry["file"])
        if name == "majority":
            train = self.documents("train", 0, np.arange(self.split_size("train")))
            table = evaluators.MajorityAnswer.fit(train, self.config.answer_position, len(self.vocab))
            return from_module(table, f"baseline:{name}", name)
        return from_module(make_model(self.config, seed=0), f"baseline:{name}", name)

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
        items = evaluation_subset(self.split_size("test"), limit)
        docs = self.documents("test", seed, items)
        ok = self.answer_accuracy(model.model, docs, device, batch_size)
        metrics = {"accuracy": float(ok.mean())}
        for op in np.unique(docs[:, 2]):
            if self.config.task != "token_at":
                metrics[f"accuracy|operand={self.vocab[op]}"] = float(ok[docs[:, 2] == op].mean())
        return metrics


FINETUNE_PARAMS = {
    "correlation": {"type": "number", "minimum": 0, "maximum": 1},
    "pretrained": STRING,
    "n_train": POSITIVE,
    "n_test": POSITIVE,
    "n_capability_train": POSITIVE,
    "prune_k": {"type": "array", "items": INTEGER},
    "n_saliency": POSITIVE,
    "reft_steps": POSITIVE,
    "reft_every": POSITIVE,
    "reft_learning_rate": {"type": "number", "exclusiveMinimum": 0},
    "reft_threshold": {"type": "number", "minimum": 0, "maximum": 1},
    "reft_optimizer": {"enum": list(evaluators.OPTIMIZERS)},
    "reft_loss": {"enum": list(evaluators.LOSSES)},
}
"""The parameters every fine-tuning task takes (PCFG and Tracr): data sizes and the evaluators' settings."""


class FineTuneTask(_PCFGTask):
    """Score a fine-tuned model (count ``b``) for how much of its pretrained capability (count ``a``) survives.

    Splits: ``train`` (the fine-tuning data, spurious rule at rate ``correlation``), ``test`` (C_Te = 0:
    the rule never answers), ``test_spurious`` (C_Te = 1: it always does), ``capability_train`` and
    ``capability_test`` (count ``a`` on natural strings: reverse fine-tuning and probe data).
    """

    splits = ("train", "test", "test_spurious", "capability_train", "capability_test")
    params_schema = params_of(
        {
            **FINETUNE_PARAMS,
            **COMMON,
        },
        required=("correlation", "pretrained"),
    )
    min_limit = 2  # the probes need two classes

    def _base(self, **kwargs: Any) -> PCFGConfig:
        p = self.spec.params
        return PCFGConfig(
            task="count", text_length=p.get("text_length", 32), grammar_seed=p.get("grammar_seed", 5), **kwargs
        )

    @cached_property
    def config(self) -> PCFGConfig:
        """The capability's config: count ``a`` on natural strings."""
        n = self.spec.params.get("n_capability_train", 4096)
        return self._base(operand_prior=(1.0,), splits={"capability_train": n, "capability_test": self._n_test})

    @property
    def _n_test(self) -> int:
        return self.spec.params.get("n_test", 512)

    @cached_property
    def finetune_config(self) -> PCFGConfig:
        """The fine-tuning data: count ``b``, the spurious rule at rate ``correlation``."""
        n = self.spec.params.get("n_train", 2048)
        return self._base(operand_prior=(0.0, 1.0), correlation=self.spec.params["correlation"], splits={"train": n})

    @cached_property
    def _tests(self) -> dict[str, PCFGConfig]:
        return {
            "test": self._base(operand_prior=(0.0, 1.0), correlation=0.0, splits={"test": self._n_test}),
            "test_spurious": self._base(
                operand_prior=(0.0, 1.0), correlation=1.0, splits={"test_spurious": self._n_test}
            ),
        }

    def _config_of(self, split: str) -> PCFGConfig:
        if split == "train":
            return self.finetune_config
        return self._tests.get(split, self.config)

    @cached_property
    def pretrained(self) -> torch.nn.Module:
        """The pair's pretrained model (the spec's ``pretrained`` checkpoint)."""
        return load_safetensors(str(HERE / self.spec.params["pretrained"])).model

    def check_model(self, model: LoadedModel) -> None:
        super().check_model(model)
        evaluators.check_same_architecture(self.pretrained, model.model)

    def load_baseline(self, name: str) -> LoadedModel:
        entry = self.baseline_entry(name)
        if name == "pretrained":  # the untouched model: trained for the pretraining task
            loaded = load_safetensors(str(HERE / entry["file"]), spec=f"baseline:{name}")
            loaded.name = name
            return loaded
        return load_baseline_checkpoint(self, name, HERE / entry["file"])

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
        """Every metric; a ``limit``-ed run (a smoke check) scores ``limit`` items per split, fits probes on
        ``limit`` items and reverse fine-tunes for at most ``limit`` steps, checked at every step."""
        p, c = self.spec.params, self.config
        net = model.model.to(device)
        pos = c.answer_position
        with torch.inference_mode():
            metrics = {
                name: float(self.answer_accuracy(net, self._docs(split, seed, limit), device, batch_size).mean())
                for name, split in (("finetune_accuracy", "test"), ("finetune_accuracy_spurious", "test_spurious"))
            }
        cap_test = torch.from_numpy(self._docs("capability_test", seed, limit))
        saliency_docs = torch.from_numpy(
            self.documents("train", seed, np.arange(min(p.get("n_saliency", 256), self.split_size("train"))))
        )
        sweep = evaluators.prune_sweep(
            net, saliency_docs, cap_test, pos, tuple(p.get("prune_k", (0, 1, 2, 4, 8, 16, 32))), device, batch_size
        )
        metrics["capability_accuracy"] = sweep[0]
        metrics["recovered_accuracy"] = max(sweep.values())
        metrics.update({f"recovered_accuracy|K={k}": v for k, v in sweep.items()})
        train_all = self.documents("capability_train", seed, np.arange(self.split_size("capability_train")))
        probe_train = train_all[stratified_subset(train_all[:, pos], limit)]
        probes = evaluators.block_probes(net, torch.from_numpy(probe_train), cap_test, pos, device, batch_size)
        metrics["probe_accuracy"] = max(probes)
        metrics.update({f"probe_accuracy|block={i}": v for i, v in enumerate(probes)})
        with torch.inference_mode():
            reference = float(
                self.answer_accuracy(self.pretrained.to(device), cap_test.numpy(), device, batch_size).mean()
            )
        steps, every = p.get("reft_steps", 400), p.get("reft_every", 25)
        if limit is not None:
            steps, every = min(steps, limit), 1
        metrics["reft_steps"] = float(
            evaluators.reverse_finetune_steps(
                net,
                lambda idx: self.documents("capability_train", seed, idx),
                self.split_size("capability_train"),
                cap_test,
                pos,
                threshold=p.get("reft_threshold", 0.9) * reference,
                max_steps=steps,
                every=every,
                learning_rate=p.get("reft_learning_rate", 1e-3),
                optimizer=p.get("reft_optimizer", "adamw"),
                loss=p.get("reft_loss", "next_token"),
                seed=seed,
                device=device,
            )
        )
        return metrics

    def _docs(self, split: str, seed: int, limit: int | None) -> np.ndarray:
        return self.documents(split, seed, evaluation_subset(self.split_size(split), limit))


class _TracrFineTuneTask(FineTuneTask):
    """What the Tracr fine-tuning tasks share: the capability / fine-tuning / test configs built by ``_make``
    from the targets ``capability`` and ``finetuned``, documents and hashes from :mod:`tracr_data`."""

    capability: str
    finetuned: str
    _make: Callable[[str, float | None, dict[str, int]], Any]  # (target, correlation, split sizes) -> a config

    @cached_property
    def config(self) -> Any:  # type: ignore[override]
        """The capability's config: ``capability`` on uniformly drawn letters."""
        n = self.spec.params.get("n_capability_train", 4096)
        return self._make(self.capability, None, {"capability_train": n, "capability_test": self._n_test})

    @cached_property
    def finetune_config(self) -> Any:  # type: ignore[override]
        """The fine-tuning data: ``finetuned``, the spurious rule at rate ``correlation``."""
        p = self.spec.params
        return self._make(self.finetuned, p["correlation"], {"train": p.get("n_train", 2048)})

    @cached_property
    def _tests(self) -> dict[str, Any]:  # type: ignore[override]
        return {
            "test": self._make(self.finetuned, 0.0, {"test": self._n_test}),
            "test_spurious": self._make(self.finetuned, 1.0, {"test_spurious": self._n_test}),
        }

    def documents(self, split: str, seed: int, index: np.ndarray) -> np.ndarray:
        """Token ids ``(len(index), length + 2)`` of items ``index`` of ``split``."""
        self.check_split(split)
        return tracr_data.documents(self._config_of(split), seed, split, index)

    def data_hash(self, seed: int) -> str:
        import hashlib

        h = hashlib.sha256()
        for config in {id(c): c for c in map(self._config_of, self.splits)}.values():
            h.update(tracr_data.data_hash(config, seed).encode())
        return h.hexdigest()


class TracrCounterFineTuneTask(_TracrFineTuneTask):
    """A fine-tuning task on the compiled Tracr Counter: the pretrained model counts ``a`` exactly; a model
    fine-tuned to count ``b`` (spurious rule count(b) = count(a) + 1 at rate ``correlation``) is scored for how
    much of counting ``a`` survives, with the same evaluators as the PCFG tasks.

    Example:
        >>> import fmbench
        >>> task = fmbench.make_task("fmbench/TracrCounterFineTuneCountB1-v0")
        >>> task.vocab[:3], task.config.answer_position
        (['<bos>', 'a', 'b'], 11)
    """

    params_schema = params_of(
        {
            **FINETUNE_PARAMS,
            "length": POSITIVE,
        },
        required=("correlation", "pretrained"),
    )

    capability, finetuned = "a", "b"

    def _make(self, target: str, correlation: float | None, splits: dict[str, int]) -> CounterConfig:
        return CounterConfig(
            operand=target, length=self.spec.params.get("length", 10), correlation=correlation, splits=splits
        )

    def input_format(self) -> str:
        c = self.config
        return (
            f"A sequence model of the compiled Tracr Counter's architecture: LongTensor (B, T) of token ids in "
            f"[0, {len(c.vocab)}) with T <= {c.document_length - 1} -> logits (B, T, V). Documents are '<bos> "
            f"x_1 ... x_{c.length} answer' (letters a-i); the answer is the argmax of the logits at the last letter."
        )


class TracrMaxFineTuneTask(_TracrFineTuneTask):
    """A fine-tuning task on the compiled Tracr Max-identifier: the pretrained model names the largest of
    ``length`` distinct letters exactly; a model fine-tuned to name the smallest (spurious rule: min = max -
    ``gap`` at rate ``correlation``) is scored for how much of naming the largest survives.

    Splits as :class:`FineTuneTask`: ``test`` never meets the rule (C_Te = 0), ``test_spurious`` always
    does (C_Te = 1); ``capability_*`` name the largest letter of uniformly drawn sequences.

    Example:
        >>> import fmbench
        >>> task = fmbench.make_task("fmbench/TracrMaxFineTuneMin1-v0")
        >>> task.finetune_config.target, task.finetune_config.gap, task.config.target
        ('min', 16, 'max')
    """

    params_schema = params_of(
        {
            **FINETUNE_PARAMS,
            "length": POSITIVE,
            "gap": POSITIVE,
        },
        required=("correlation", "pretrained"),
    )

    capability, finetuned = "max", "min"

    def _make(self, target: str, correlation: float | None, splits: dict[str, int]) -> IdentifierConfig:
        p = self.spec.params
        return IdentifierConfig(
            target=target, length=p.get("length", 10), gap=p.get("gap", 16), correlation=correlation, splits=splits
        )

    def input_format(self) -> str:
        c = self.config
        return (
            f"A sequence model of the compiled Tracr Max-identifier's architecture: LongTensor (B, T) of token ids "
            f"in [0, {len(c.vocab)}) with T <= {c.document_length - 1} -> logits (B, T, V). Documents are '<bos> "
            f"x_1 ... x_{c.length} answer' ({c.length} distinct letters a-z); the answer is the argmax of the "
            f"logits at the last letter."
        )
