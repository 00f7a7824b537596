"""Rank statistics used by evaluators: AUROC and Spearman correlation, ties handled exactly.

Example:
    >>> auroc([0.9, 0.8], [0.1, 0.8])
    0.875
    >>> spearman([1, 2, 3], [10, 20, 30])
    1.0
"""

from __future__ import annotations

from typing import Sequence

import numpy as np


def ranks(x: Sequence[float]) -> np.ndarray:
    """1-based ranks of ``x``, tied values sharing their average rank.

    Example:
        >>> ranks([3.0, 1.0, 3.0]).tolist()
        [2.5, 1.0, 2.5]
    """
    x = np.asarray(x, dtype=np.float64)
    order = np.argsort(x, kind="stable")
    sorted_x = x[order]
    starts = np.r_[0, np.flatnonzero(np.diff(sorted_x)) + 1]
    ends = np.r_[starts[1:], len(x)]
    out = np.empty(len(x))
    for a, b in zip(starts, ends):
        out[order[a:b]] = (a + b + 1) / 2
    return out


def auroc(positive: Sequence[float], negative: Sequence[float]) -> float:
    """Probability that a positive scores above a negative (ties count one half).

    Raises ``ValueError`` if either side is empty.
    """
    pos, neg = np.asarray(positive, dtype=np.float64), np.asarray(negative, dtype=np.float64)
    if not len(pos) or not len(neg):
        raise ValueError(f"AUROC needs both classes, got {len(pos)} positive and {len(neg)} negative")
    r = ranks(np.concatenate([pos, neg]))[:len(pos)]
    return float((r.sum() - len(pos) * (len(pos) + 1) / 2) / (len(pos) * len(neg)))


def spearman(x: Sequence[float], y: Sequence[float]) -> float:
    """Spearman's rank correlation; 0.0 when either side is constant (no ranking to agree with).

    Example:
        >>> spearman([1, 1, 1], [1, 2, 3])
        0.0
    """
    if len(x) != len(y) or len(x) < 2:
        raise ValueError(f"Spearman correlation needs two equal-length sequences of 2+ values, got {len(x)}, {len(y)}")
    rx, ry = ranks(x), ranks(y)
    rx, ry = rx - rx.mean(), ry - ry.mean()
    denom = np.sqrt((rx**2).sum() * (ry**2).sum())
    return float((rx * ry).sum() / denom) if denom > 0 else 0.0
