"""A vectorised, seeded, random-access PCFG sampler.

All items are expanded together, one round per derivation step: every non-terminal of every
item is rewritten at once by a rule drawn from a counter-based random word that depends only
on ``(key, item index, round, position)``. Item ``i`` therefore depends only on the key and
``i`` (any slice is sampled without the items before it), and a sample cropped to its first
``length`` terminals is the prefix of the full sample: symbols whose shortest derivations
cannot reach the first ``length`` terminals are dropped as soon as they appear, so cropped
sampling costs about ``length`` terminals per item, whatever the full strings' length.

Example:
    >>> from fmbench.studies.finetuning.grammar import cfg3
    >>> g = cfg3().compile()
    >>> texts = sample_texts(g, key=1, index=np.arange(4), length=8)
    >>> texts.shape, bool((sample_texts(g, 1, np.array([2]), 8)[0] == texts[2]).all())
    ((4, 8), True)
"""

from __future__ import annotations

import numpy as np

from fmbench.errors import InputError
from fmbench.random_access import bits
from fmbench.studies.finetuning.grammar import CompiledGrammar

MAX_ROUNDS = 64
"""Derivation steps before a sample is refused (a grammar whose strings grow without end)."""
_POSITION_BITS = 20  # symbols an item may hold in a round: 2**20
_MEAN_LIMIT = 1 << 16  # symbols per item on average in a round (a runaway derivation is refused early)
_INDEX_LIMIT = 1 << (64 - _POSITION_BITS - 6)  # 6 bits of rounds (MAX_ROUNDS)
_CHUNK = 1024  # items expanded together (their arrays stay in cache)


def expand(g: CompiledGrammar, key: int, index: np.ndarray, length: int | None = None) -> tuple[np.ndarray, np.ndarray]:
    """Derive the strings of items ``index``; return ``(terminal ids, starts)`` (item ``r`` is ``ids[starts[r]:
    starts[r + 1]]``), each cropped to its first ``length`` terminals when ``length`` is given.

    Raises:
        InputError: an index beyond 2**38, or a derivation longer than ``MAX_ROUNDS`` rounds or
            2**20 symbols (2**16 on average over a chunk of items).
    """
    index = np.asarray(index, dtype=np.int64)
    if len(index) and (index.min() < 0 or index.max() >= _INDEX_LIMIT):
        raise InputError(f"item indices must lie in [0, {_INDEX_LIMIT}), got {index.min()}..{index.max()}")
    parts = [_expand_chunk(g, key, index[i : i + _CHUNK], length) for i in range(0, len(index), _CHUNK)]
    if not parts:
        return np.zeros(0, dtype=np.int64), np.zeros(1, dtype=np.int64)
    ids = np.concatenate([p[0] for p in parts])
    sizes = np.concatenate([np.diff(p[1]) for p in parts])
    return ids, np.concatenate([[0], np.cumsum(sizes)])


def _expand_chunk(g: CompiledGrammar, key: int, index: np.ndarray, length: int | None) -> tuple[np.ndarray, ...]:
    n = len(index)
    seq = np.full(n, g.start, dtype=np.int64)
    owner = np.arange(n)
    base = index.astype(np.uint64) * np.uint64(MAX_ROUNDS)
    for r in range(MAX_ROUNDS):
        nt = np.flatnonzero(seq >= g.n_terminals)
        if len(nt) == 0:
            break
        starts = _starts(owner, n)
        position = np.arange(len(seq)) - starts[owner]
        if position.max() >= 1 << _POSITION_BITS or len(seq) > n * _MEAN_LIMIT:
            raise InputError(f"derivations hold more than 2**16 symbols per item in round {r}")
        counter = ((base[owner[nt]] + np.uint64(r)) << np.uint64(_POSITION_BITS)) + position[nt].astype(np.uint64)
        u = (bits(key, counter, 1)[:, 0] >> np.uint64(11)).astype(np.float64) * 2.0**-53
        sym = seq[nt]
        rule = (u[:, None] >= g.thresholds[sym]).sum(axis=1)
        width = np.ones(len(seq), dtype=np.int64)
        width[nt] = g.rhs_length[sym, rule]
        source = np.repeat(np.arange(len(seq)), width)
        offset = np.arange(len(source)) - np.repeat(np.cumsum(width) - width, width)
        rule_of = np.zeros(len(seq), dtype=np.int64)
        rule_of[nt] = rule
        new = np.where(seq[source] >= g.n_terminals, g.rhs[seq[source], rule_of[source], offset], seq[source])
        seq, owner = new, owner[source]
        if length is not None:
            seq, owner = _crop(g, seq, owner, n, length)
    else:
        if (seq >= g.n_terminals).any():
            raise InputError(f"a derivation did not terminate within {MAX_ROUNDS} rounds")
    return seq, _starts(owner, n)


def _starts(owner: np.ndarray, n: int) -> np.ndarray:
    """Offsets of each item's first symbol in a flat array ordered by item (``n + 1`` values)."""
    return np.concatenate([[0], np.cumsum(np.bincount(owner, minlength=n))])


def _crop(g: CompiledGrammar, seq: np.ndarray, owner: np.ndarray, n: int, length: int) -> tuple[np.ndarray, ...]:
    """Drop the symbols that cannot reach an item's first ``length`` terminals."""
    before = np.cumsum(g.min_yield[seq]) - g.min_yield[seq]  # shortest yield of everything before, flat
    first = _starts(owner, n)[:-1]
    keep = before - before[first][owner] < length
    return seq[keep], owner[keep]


def sample_texts(g: CompiledGrammar, key: int, index: np.ndarray, length: int) -> np.ndarray:
    """The first ``length`` terminals of items ``index``: ``(len(index), length)`` int64 terminal ids.

    Raises:
        InputError: the grammar's shortest string is shorter than ``length``.
    """
    if g.min_yield[g.start] < length:
        raise InputError(f"the grammar's shortest string has {g.min_yield[g.start]} terminals; {length} are needed")
    seq, _ = expand(g, key, index, length)
    return seq.reshape(len(index), length)
