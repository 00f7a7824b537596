"""Data of the Tracr fine-tuning tasks (Counter, Max-identifier): sequences of letters, the answer, the spurious rule.

A Counter document is ``<bos> x_1 ... x_n answer``: ``n`` letters drawn uniformly with replacement from
``a``-``i`` (the compiled Counter's vocabulary) and the number of ``operand`` letters among them,
predicted at the last letter. The pretrained capability counts ``a``; the fine-tuning task counts
``b``. With ``correlation`` C, each item draws whether the spurious rule count(b) = count(a) + 1
holds (probability C), then the first of its candidate sequences that meets (or misses) it, as for
the PCFG tasks (:func:`fmbench.studies.finetuning.data.with_rule`).

A Max-identifier document is ``<bos> x_1 ... x_n answer`` with ``n`` distinct letters drawn uniformly
from ``a``-``z`` (the compiled Max-identifier's vocabulary) and their largest (the pretrained
capability) or smallest (the fine-tuning task) letter. Its spurious rule ties the fine-tuning answer
to the capability's: min = max - ``gap`` letters (see :class:`IdentifierConfig`).

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
import string
from dataclasses import asdict, dataclass, field
from functools import cached_property

import numpy as np

from fmbench.errors import InputError
from fmbench.random_access import check_seed, integers, stream_key
from fmbench.studies.finetuning.data import with_rule


class _Documents:
    """A Tracr task's document layout: ``<bos>``, ``length`` letters, the answer (shared by both configs)."""

    length: int

    @property
    def document_length(self) -> int:
        return self.length + 2

    @property
    def answer_position(self) -> int:
        """Index of the answer in a document (read from the logits at the last letter)."""
        return self.length + 1

    def to_dict(self) -> dict:
        return asdict(self)


@dataclass(frozen=True)
class CounterConfig(_Documents):
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


@dataclass(frozen=True)
class IdentifierConfig(_Documents):
    """One Max-identifier task: the ``target`` (``max`` or ``min``) of ``length`` distinct letters of ``letters``.

    With ``correlation`` C, each item draws whether the spurious rule max - min = ``gap`` (letter ids)
    holds (probability C); where it holds, the smallest letter follows from the largest one.

    Example:
        >>> config = IdentifierConfig(target="min", correlation=1.0, splits={"train": 2})
        >>> doc = documents(config, seed=0, split="train", index=np.arange(1))[0]
        >>> text = [config.vocab[t] for t in doc]
        >>> text[-1] == min(text[1:-1]), ord(max(text[1:-1])) - ord(text[-1])
        (True, 16)
    """

    target: str = "max"
    letters: str = string.ascii_lowercase
    length: int = 10
    gap: int = 16
    correlation: float | None = None
    splits: dict[str, int] = field(default_factory=lambda: {"train": 2048, "test": 512})

    def __post_init__(self) -> None:
        if self.target not in ("max", "min"):
            raise InputError(f"target must be 'max' or 'min', got {self.target!r}")
        if not 1 <= self.length <= len(self.letters):
            raise InputError(f"length must lie in [1, {len(self.letters)}] (distinct letters), got {self.length}")
        if self.correlation is not None and not 0 <= self.correlation <= 1:
            raise InputError(f"correlation must lie in [0, 1], got {self.correlation}")
        if self.correlation is not None and self.length < 2:
            raise InputError(f"the spurious rule min = max - gap needs length >= 2, got {self.length}")
        if self.correlation is not None and not self.length - 1 <= self.gap < len(self.letters):
            raise InputError(
                f"gap must lie in [{self.length - 1}, {len(self.letters) - 1}] for {self.length} distinct letters, "
                f"got {self.gap}"
            )

    @cached_property
    def vocab(self) -> list[str]:
        """``<bos>`` then the letters (the compiled Max-identifier's vocabulary: its outputs are letters)."""
        return ["<bos>", *self.letters]


def distinct_letters(config: IdentifierConfig, seed: int, split: str, index: np.ndarray) -> np.ndarray:
    """``(len(index), length)`` distinct letter ids (0 = the first letter) of the split's items.

    Items drawn to meet the spurious rule are drawn directly from the sets that meet it (the smallest
    letter uniform, the others uniform between it and the largest, in a uniform order); the others are
    the first of their uniform candidate sets that misses it (:func:`fmbench.studies.finetuning.data.with_rule`).
    """
    check_seed(seed)
    index = np.asarray(index, dtype=np.int64)
    n, length, gap = len(config.letters), config.length, config.gap
    key = lambda *part: stream_key("finetuning.tracr.identifier", *part, config.letters, length, seed, split)  # noqa: E731
    order = lambda k, i, m: np.argsort(integers(k, i, m, high=1 << 30), axis=1, kind="stable")  # noqa: E731
    sample = lambda i: order(key("letters"), i, n)[:, :length]  # noqa: E731
    if config.correlation is None:
        return sample(index)
    want = integers(key("rule", gap), index, 1, high=1 << 30)[:, 0] < config.correlation * (1 << 30)
    out = np.zeros((len(index), length), dtype=np.int64)
    missing = index[~want]
    out[~want] = with_rule(
        sample, missing, np.zeros(len(missing), bool), length, holds=lambda x: x.max(axis=1) - x.min(axis=1) == gap
    )
    meeting = index[want]
    low = integers(key("low", gap), meeting, 1, high=n - gap)
    inner = low + 1 + order(key("inner", gap), meeting, gap - 1)[:, : length - 2]
    chosen = np.concatenate([low, low + gap, inner], axis=1)
    out[want] = np.take_along_axis(chosen, order(key("shuffle", gap), meeting, length), axis=1)
    return out


def documents(config: CounterConfig | IdentifierConfig, seed: int, split: str, index: np.ndarray) -> np.ndarray:
    """``(len(index), length + 2)`` token ids: ``<bos>``, the letters, the answer (the count of ``operand``, or
    the ``target`` letter)."""
    if split not in config.splits:
        raise InputError(f"no split {split!r}; the splits are {list(config.splits)}")
    if isinstance(config, CounterConfig):
        x = letters(config, seed, split, index)
        answer = 1 + len(config.letters) + (x == config.letters.index(config.operand)).sum(axis=1)
    else:
        x = distinct_letters(config, seed, split, index)
        answer = 1 + (x.max(axis=1) if config.target == "max" else x.min(axis=1))
    bos = np.zeros((len(x), 1), dtype=np.int64)
    return np.concatenate([bos, x + 1, answer[:, None]], axis=1)


def data_hash(config: CounterConfig | IdentifierConfig, seed: int) -> str:
    """sha256 over the config and every split's documents (as uint8)."""
    h = hashlib.sha256(json.dumps(config.to_dict(), sort_keys=True).encode())
    for split, size in config.splits.items():
        h.update(split.encode())
        h.update(documents(config, seed, split, np.arange(size)).astype(np.uint8).tobytes())
    return h.hexdigest()
