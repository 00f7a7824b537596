"""The PCFG tasks of arXiv:2311.12786: documents, answers, operand priors and the spurious correlation.

A document is ``<sos> T O O' <sot> text <eot> <art> answer <eos>`` (the paper's
``SOS T O O' SOT Txt EOT ART Ans EOS``): ``T`` names the task, ``O`` and ``O'`` are its operands
(``_`` when unused), ``text`` is the first ``text_length`` terminals of a string of the grammar
and ``answer`` one token. The five tasks:

- ``count``: occurrences of ``O`` in the text;
- ``count_pair``: positions ``i`` with ``text[i] = O`` and ``text[i + 1] = O'``;
- ``index``: position of the first ``O`` (``none`` if absent);
- ``pair_index``: first ``i`` with ``text[i] = O`` and ``text[i + 1] = O'`` (``none`` if absent);
- ``token_at``: the terminal at position ``O`` (a number token).

Letter operands are drawn from the operand prior over the first terminals (``(0.9, 0.1, 0)``: ``a``
nine times in ten, else ``b``). A fine-tuning split with ``correlation`` C draws, per item, whether
the spurious rule ``count(b) = count(a) + 1`` holds (probability C), then the first string of the
item's candidates for which it holds (or not): C is the probability that the rule answers an item.

Example:
    >>> config = PCFGConfig(task="count", text_length=8)
    >>> docs = documents(config, seed=0, split="test", index=np.arange(2))
    >>> " ".join(config.vocab[t] for t in docs[0])
    '<sos> count a _ <sot> a b b c a a b b <eot> <art> 3 <eos>'
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from functools import cached_property

import numpy as np

from fmbench.errors import InputError
from fmbench.random_access import check_seed, integers, stream_key
from fmbench.studies.finetuning.grammar import CompiledGrammar, cfg3
from fmbench.studies.finetuning.sampler import sample_texts

TASKS = ("count", "count_pair", "index", "pair_index", "token_at")
SPECIALS = ("<sos>", "<sot>", "<eot>", "<art>", "<eos>", "_")
MAX_CANDIDATES = 4096
"""Candidate strings tried per item before a spurious-correlation split is refused."""


@dataclass(frozen=True)
class PCFGConfig:
    """One PCFG task.

    Attributes:
        task: one of ``TASKS``.
        operand_prior: probabilities of the first terminals as letter operands (``O`` and ``O'``).
        text_length: terminals of each string kept (the paper: 250; the grammar's shortest string must reach it).
        grammar_seed, level_sizes, terminals: the :func:`~fmbench.studies.finetuning.grammar.cfg3` grammar.
        correlation: ``None`` for natural strings, else the rate C at which ``count(b) = count(a) + 1`` holds.
    """

    task: str
    operand_prior: tuple[float, ...] = (0.9, 0.1, 0.0)
    text_length: int = 32
    grammar_seed: int = 5
    level_sizes: tuple[int, ...] = (1, 3, 3, 3, 3)
    terminals: str = "abc"
    correlation: float | None = None
    splits: dict[str, int] = field(default_factory=lambda: {"train": 16384, "test": 1024})

    def __post_init__(self) -> None:
        if self.task not in TASKS:
            raise InputError(f"unknown PCFG task {self.task!r}; the tasks are {list(TASKS)}")
        prior = np.asarray(self.operand_prior, dtype=float)
        if len(prior) > len(self.terminals) or prior.min() < 0 or abs(prior.sum() - 1) > 1e-9:
            raise InputError(f"operand_prior must be probabilities over the first terminals, got {self.operand_prior}")
        if self.correlation is not None and not 0 <= self.correlation <= 1:
            raise InputError(f"correlation must lie in [0, 1], got {self.correlation}")
        if self.correlation is not None and ("a" not in self.terminals or "b" not in self.terminals):
            raise InputError("the spurious rule count(b) = count(a) + 1 needs terminals 'a' and 'b'")
        if self.text_length < 2:
            raise InputError(f"text_length must be >= 2, got {self.text_length}")
        if self.grammar.min_yield[self.grammar.start] < self.text_length:
            raise InputError(
                f"the grammar's shortest string has {self.grammar.min_yield[self.grammar.start]} terminals; "
                f"text_length is {self.text_length}"
            )

    @cached_property
    def grammar(self) -> CompiledGrammar:
        return cfg3(self.level_sizes, self.terminals, seed=self.grammar_seed).compile()

    @cached_property
    def vocab(self) -> list[str]:
        """Specials, task names, terminals, numbers ``0 .. text_length`` and ``none``."""
        return [*SPECIALS, *TASKS, *self.terminals, *(str(i) for i in range(self.text_length + 1)), "none"]

    def token(self, name: str) -> int:
        return self.vocab.index(name)

    @property
    def document_length(self) -> int:
        return self.text_length + 9

    @property
    def answer_position(self) -> int:
        """Index of the answer token in a document (predicted from the logits one position before)."""
        return self.text_length + 7

    def to_dict(self) -> dict:
        return {k: v for k, v in asdict(self).items()}


def _stream(config: PCFGConfig, seed: int, split: str, what: str) -> int:
    return stream_key("finetuning.pcfg", config.grammar_seed, config.level_sizes, config.terminals, seed, split, what)


def texts(config: PCFGConfig, seed: int, split: str, index: np.ndarray) -> np.ndarray:
    """``(len(index), text_length)`` terminal ids of the split's items (the spurious rule applied if set)."""
    check_seed(seed)
    index = np.asarray(index, dtype=np.int64)
    key = _stream(config, seed, split, "text")
    if config.correlation is None:
        return sample_texts(config.grammar, key, index, config.text_length)
    u = integers(_stream(config, seed, split, "rule"), index, 1, high=1 << 30)[:, 0] / (1 << 30)
    sample = lambda i: sample_texts(config.grammar, key, i, config.text_length)  # noqa: E731
    return with_rule(sample, index, u < config.correlation, config.text_length)


def with_rule(
    sample: Callable[[np.ndarray], np.ndarray],
    index: np.ndarray,
    want: np.ndarray,
    length: int,
    holds: Callable[[np.ndarray], np.ndarray] | None = None,
) -> np.ndarray:
    """Per item, the first of its candidate texts ``sample(index * MAX_CANDIDATES + j)`` (j = 0, 1, ...; rows of
    ``length`` terminal ids) for which the rule ``holds`` (default :func:`spurious_rule_holds`) equals ``want``,
    drawn in growing rounds."""
    holds = holds or spurious_rule_holds
    out = np.zeros((len(index), length), dtype=np.int64)
    todo, first, tries = np.arange(len(index)), 0, 4
    while first < MAX_CANDIDATES:  # candidates first .. first + tries - 1 of each open item
        if not len(todo):
            return out
        j, first, tries = first + np.arange(tries), first + tries, min(2 * tries, 64)
        cand = sample((index[todo, None] * MAX_CANDIDATES + j).ravel())
        ok = (holds(cand) == np.repeat(want[todo], len(j))).reshape(len(todo), len(j))
        found = ok.any(axis=1)
        pick = cand.reshape(len(todo), len(j), -1)[np.flatnonzero(found), ok[found].argmax(axis=1)]
        out[todo[found]] = pick
        todo = todo[~found]
    raise InputError(f"no string among {MAX_CANDIDATES} candidates meets the spurious-correlation constraint")


def spurious_rule_holds(text: np.ndarray) -> np.ndarray:
    """Whether ``count(b) = count(a) + 1`` in each row of terminal ids (``a`` is id 0, ``b`` id 1)."""
    return (text == 1).sum(axis=1) == (text == 0).sum(axis=1) + 1


def operands(config: PCFGConfig, seed: int, split: str, index: np.ndarray) -> np.ndarray:
    """``(len(index), 2)`` operand token ids (``_`` where the task uses fewer)."""
    n, v = len(index), config.vocab
    draws = integers(_stream(config, seed, split, "operands"), np.asarray(index), 2, high=1 << 30) / (1 << 30)
    cdf = np.cumsum(config.operand_prior)
    letters = np.minimum((draws[..., None] >= cdf).sum(-1), len(cdf) - 1) + v.index(config.terminals[0])
    out = np.full((n, 2), v.index("_"), dtype=np.int64)
    if config.task == "token_at":
        out[:, 0] = v.index("0") + (draws[:, 0] * config.text_length).astype(np.int64)
    elif config.task in ("count", "index"):
        out[:, 0] = letters[:, 0]
    else:
        out[:] = letters
    return out


def answers(config: PCFGConfig, text: np.ndarray, ops: np.ndarray) -> np.ndarray:
    """The answer token of each document from its text (terminal ids) and operands (token ids)."""
    v = config.vocab
    first_terminal, zero, none = v.index(config.terminals[0]), v.index("0"), v.index("none")
    o, o2 = ops[:, :1] - first_terminal, ops[:, 1:] - first_terminal
    hit = text == o
    pair = hit[:, :-1] & (text[:, 1:] == o2)
    if config.task == "count":
        return zero + hit.sum(1)
    if config.task == "count_pair":
        return zero + pair.sum(1)
    if config.task == "token_at":
        return first_terminal + text[np.arange(len(text)), ops[:, 0] - zero]
    found = hit if config.task == "index" else pair
    return np.where(found.any(1), zero + found.argmax(1), none)


def documents(config: PCFGConfig, seed: int, split: str, index: np.ndarray) -> np.ndarray:
    """``(len(index), document_length)`` token ids of the split's documents."""
    if split not in config.splits:
        raise InputError(f"no split {split!r}; the splits are {list(config.splits)}")
    v = config.vocab
    text = texts(config, seed, split, index)
    ops = operands(config, seed, split, index)
    n = len(text)
    col = lambda name: np.full((n, 1), v.index(name), dtype=np.int64)  # noqa: E731
    return np.concatenate(
        [
            col("<sos>"),
            col(config.task),
            ops,
            col("<sot>"),
            text + v.index(config.terminals[0]),
            col("<eot>"),
            col("<art>"),
            answers(config, text, ops)[:, None],
            col("<eos>"),
        ],
        axis=1,
    )


def data_hash(config: PCFGConfig, seed: int, chunk: int = 8192) -> str:
    """sha256 over the config and every split's documents (as uint8)."""
    h = hashlib.sha256(json.dumps(config.to_dict(), sort_keys=True).encode())
    for split, size in config.splits.items():
        h.update(split.encode())
        for start in range(0, size, chunk):
            h.update(
                documents(config, seed, split, np.arange(start, min(size, start + chunk))).astype(np.uint8).tobytes()
            )
    return h.hexdigest()
