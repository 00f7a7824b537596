"""Rank statistics on cases with a known answer."""

from __future__ import annotations

import numpy as np
import pytest

from fmbench.stats import auroc, ranks, spearman


def test_auroc_known_cases():
    assert auroc([3, 4], [1, 2]) == 1.0
    assert auroc([1, 2], [3, 4]) == 0.0
    assert auroc([1, 1], [1, 1]) == 0.5
    assert auroc([2, 0], [1]) == 0.5


def test_auroc_matches_pairwise_definition():
    rng = np.random.default_rng(0)
    pos, neg = rng.integers(0, 5, 30), rng.integers(0, 5, 20)
    pairwise = np.mean([1.0 if p > n else 0.5 if p == n else 0.0 for p in pos for n in neg])
    assert auroc(pos, neg) == pytest.approx(pairwise)


def test_spearman_known_cases():
    assert spearman([1, 2, 3, 4], [1, 4, 9, 16]) == pytest.approx(1.0)
    assert spearman([1, 2, 3, 4], [4, 3, 2, 1]) == pytest.approx(-1.0)
    assert spearman([1, 2, 3], [5, 5, 5]) == 0.0
    assert ranks([1, 1, 2]).tolist() == [1.5, 1.5, 3.0]


def test_bad_input_is_refused():
    with pytest.raises(ValueError, match="both classes"):
        auroc([], [1.0])
    with pytest.raises(ValueError, match="equal-length"):
        spearman([1, 2], [1])
