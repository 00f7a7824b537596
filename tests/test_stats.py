"""Rank statistics on cases with a known answer."""

from __future__ import annotations

import warnings

import numpy as np
import pytest

from fmbench.stats import auroc, spearman


def test_auroc_known_cases():
    assert auroc([3, 4], [1, 2]) == 1.0  # perfect ranking
    assert auroc([1, 2], [3, 4]) == 0.0  # reversed
    assert auroc([1, 1], [1, 1]) == 0.5  # constant input
    assert auroc([2, 0], [1]) == 0.5
    assert auroc([0.9, 0.8], [0.1, 0.8]) == 0.875  # a tie counts one half: (1 + 1 + 1 + 0.5) / 4
    assert auroc([1, 2, 2], [2]) == pytest.approx(1 / 3)  # (0 + 0.5 + 0.5) / 3


def test_auroc_matches_pairwise_definition():
    rng = np.random.default_rng(0)
    pos, neg = rng.integers(0, 5, 30), rng.integers(0, 5, 20)  # many ties
    pairwise = np.mean([1.0 if p > n else 0.5 if p == n else 0.0 for p in pos for n in neg])
    assert auroc(pos, neg) == pytest.approx(pairwise)


def test_spearman_known_cases():
    assert spearman([1, 2, 3, 4], [1, 4, 9, 16]) == pytest.approx(1.0)  # perfect (monotone, not linear)
    assert spearman([1, 2, 3, 4], [4, 3, 2, 1]) == pytest.approx(-1.0)
    # ties take their average rank: x ranks 1.5, 1.5, 3, 4 against 1, 2, 3, 4 -> Pearson of the ranks
    assert spearman([5, 5, 6, 7], [1, 2, 3, 4]) == pytest.approx(0.9486832980505138)
    assert spearman([1, 2, 3, 4, 5], [2, 1, 4, 3, 5]) == pytest.approx(1 - 6 * 4 / (5 * 24))  # 0.8, no ties


def test_spearman_of_constant_input_is_zero_without_a_warning():
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert spearman([1, 2, 3], [5, 5, 5]) == 0.0
        assert spearman([7, 7], [1, 2]) == 0.0


def test_bad_input_is_refused():
    with pytest.raises(ValueError, match="both classes"):
        auroc([], [1.0])
    with pytest.raises(ValueError, match="NaN"):
        auroc([float("nan")], [1.0])
    with pytest.raises(ValueError, match="equal-length"):
        spearman([1, 2], [1])
    with pytest.raises(ValueError, match="equal-length"):
        spearman([1], [1])
    with pytest.raises(ValueError, match="NaN or infinite"):
        spearman([1, 2, float("inf")], [1, 2, 3])
