"""Rank statistics used by evaluators: AUROC (scikit-learn) and Spearman correlation (SciPy), ties averaged.

Thin wrappers that fix fmbench's conventions: AUROC takes the two classes' scores separately
and refuses an empty class; Spearman's correlation is 0.0 when either side is constant (no
ranking to agree with; SciPy returns NaN with a warning there).

Example:
    >>> auroc([0.9, 0.8], [0.1, 0.8])
    0.875
    >>> spearman([1, 2, 3], [10, 20, 30])
    1.0
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
from scipy.stats import spearmanr
from sklearn.metrics import roc_auc_score


def auroc(positive: Sequence[float], negative: Sequence[float]) -> float:
    """Probability that a positive scores above a negative (ties count one half): ``roc_auc_score``.

    Raises ``ValueError`` if either side is empty or a score is NaN or infinite.

    Example:
        >>> auroc([1, 1], [1, 1])  # constant scores rank nothing
        0.5
    """
    pos, neg = np.asarray(positive, dtype=np.float64), np.asarray(negative, dtype=np.float64)
    if not len(pos) or not len(neg):
        raise ValueError(f"AUROC needs both classes, got {len(pos)} positive and {len(neg)} negative")
    labels = np.r_[np.ones(len(pos)), np.zeros(len(neg))]
    return float(roc_auc_score(labels, np.concatenate([pos, neg])))


def spearman(x: Sequence[float], y: Sequence[float]) -> float:
    """Spearman's rank correlation (``scipy.stats.spearmanr``); 0.0 when either side is constant.

    Raises ``ValueError`` for sequences of different lengths, fewer than 2 values, or a NaN or
    infinite value.

    Example:
        >>> spearman([1, 1, 1], [1, 2, 3])
        0.0
    """
    a, b = np.asarray(x, dtype=np.float64), np.asarray(y, dtype=np.float64)
    if a.ndim != 1 or a.shape != b.shape or len(a) < 2:
        raise ValueError(f"Spearman correlation needs two equal-length sequences of 2+ values, got {len(a)}, {len(b)}")
    if not (np.isfinite(a).all() and np.isfinite(b).all()):
        raise ValueError("Spearman correlation of NaN or infinite values")
    if a.min() == a.max() or b.min() == b.max():
        return 0.0
    return float(spearmanr(a, b).statistic)
