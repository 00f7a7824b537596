"""Data of the Tracr Counter fine-tuning tasks: sequences of letters, the count to give, the spurious rule.

A document is ``<bos> x_1 ... x_n answer``: ``n`` letters drawn uniformly with replacement from
``a``-``i`` (the compiled Counter's vocabulary) and the number of ``operand`` letters among them,
predicted at the last letter. The pretrained capability counts ``a``; the fine-tuning task counts
``b``. With ``correlation`` C, each item draws whether the spurious rule count(b) = count(a) + 1
holds (probability C), then the first of its candidate sequences that meets (or misses) it, as for
the PCFG tasks (:func:`fmbench.studies.finetuning.data.with_rule`).

Example:
    >>> config = CounterConfig(operand="b", correlation=1.0, splits={"train": 2})
    >>> doc = documents(config, seed=0, split="train", index=np.arange(1))[0]
    >>> text = [config.vocab[t] for t in doc]
    >>> text[-1] == str(text.count("b")) == str(text.count("a") + 1)
    True
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import asdict, dataclass, field
from functools import cached_property

import numpy as np

from fmbench.errors import InputError
from fmbench.random_access import check_seed, integers, stream_key
from fmbench.studies.finetuning.data import with_rule


@dataclass(frozen=True)
class CounterConfig:
    """One Counter task: count ``operand`` in ``length`` letters drawn from ``letters``."""

    operand: str = "a"
    letters: str = "abcdefghi"
    length: int = 10
    correlation: float | None = None
    splits: dict[str, int] = field(default_factory=lambda: {"train": 2048, "test": 512})

    def __post_init__(self) -> None:
        if self.operand not in self.letters:
            raise InputError(f"operand {self.operand!r} is not one of the letters {self.letters!r}")
        if self.correlation is not None and not 0 <= self.correlation <= 1:
            raise InputError(f"correlation must lie in [0, 1], got {self.correlation}")
        if self.correlation is not None and not self.letters.startswith("ab"):
            raise InputError("the spurious rule count(b) = count(a) + 1 needs letters starting 'ab'")
        if self.length < 1:
            raise InputError(f"length must be >= 1, got {self.length}")

    @cached_property
    def vocab(self) -> list[str]:
        """``<bos>``, the letters, then the counts ``0 .. length`` (the compiled Counter's vocabulary)."""
        return ["<bos>", *self.letters, *(str(i) for i in range(self.length + 1))]

    @property
    def document_length(self) -> int:
        return self.length + 2

    @property
    def answer_position(self) -> int:
        """Index of the answer in a document (read from the logits at the last letter)."""
        return self.length + 1

    def to_dict(self) -> dict:
        return asdict(self)


def letters(config: CounterConfig, seed: int, split: str, index: np.ndarray) -> np.ndarray:
    """``(len(index), length)`` letter ids (0 = the first letter) of the split's items."""
    check_seed(seed)
    index = np.asarray(index, dtype=np.int64)
    key = stream_key("finetuning.tracr.counter", config.letters, config.length, seed, split)
    sample = lambda i: integers(key, i, config.length, high=len(config.letters))  # noqa: E731
    if config.correlation is None:
        return sample(index)
    rule = stream_key("finetuning.tracr.counter.rule", config.letters, config.length, seed, split)
    want = integers(rule, index, 1, high=1 << 30)[:, 0] < config.correlation * (1 << 30)
    return with_rule(sample, index, want, config.length)


def documents(config: CounterConfig, seed: int, split: str, index: np.ndarray) -> np.ndarray:
    """``(len(index), length + 2)`` token ids: ``<bos>``, the letters, the count of ``operand``."""
    if split not in config.splits:
        raise InputError(f"no split {split!r}; the splits are {list(config.splits)}")
    x = letters(config, seed, split, index)
    count = (x == config.letters.index(config.operand)).sum(axis=1)
    bos = np.zeros((len(x), 1), dtype=np.int64)
    return np.concatenate([bos, x + 1, (1 + len(config.letters) + count)[:, None]], axis=1)


def data_hash(config: CounterConfig, seed: int) -> str:
    """sha256 over the config and every split's documents (as uint8)."""
    h = hashlib.sha256(json.dumps(config.to_dict(), sort_keys=True).encode())
    for split, size in config.splits.items():
        h.update(split.encode())
        h.update(documents(config, seed, split, np.arange(size)).astype(np.uint8).tobytes())
    return h.hexdigest()
