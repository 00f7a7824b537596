"""Statistics of flip sequences and the paper's reference models, following the authors' ``utils.py``.

Flips are 0 (Heads) / 1 (Tails). Per sequence: mean (p(Tails)), alternation rate, longest run,
gzip length and the spread of the running average; per set of sequences: substring counts for
windows 5-25 and Levenshtein ratios between sequences. The three reference models fitted to
generated flips: Bernoulli(p), the windowed average (the next flip's p(Tails) pushes the last
``window`` flips' mean back to the target) and the two-parameter Markov chain (outcome bias ``p0`` =
p(Heads) and alternation ``alt``; Beta(5, 5) priors, MAP fit).

Example:
    >>> flips = [0, 1, 1, 1, 0, 0, 1]
    >>> alternation_rate(flips), longest_run(flips)
    (0.5, 3)
    >>> round(levenshtein_ratio("0101", "0110"), 3)
    0.75
"""

from __future__ import annotations

import gzip
from collections import Counter
from collections.abc import Sequence
from itertools import combinations

import numpy as np
from scipy.optimize import least_squares, minimize
from scipy.stats import beta

from fmbench.errors import InputError

MIN_PROB = 1e-9
"""Probabilities are kept in [MIN_PROB, 1 - MIN_PROB] (the authors' floor)."""
WINDOWS = (5, 10, 15, 20, 25)
"""The substring window sizes of the authors' analysis."""


def _array(flips: Sequence[int]) -> np.ndarray:
    x = np.asarray(flips, dtype=np.int64)
    if x.ndim != 1 or not ((x == 0) | (x == 1)).all():
        raise InputError(f"flips are a sequence of 0 and 1, got {list(flips)[:8]}")
    return x


def as_text(flips: Sequence[int]) -> str:
    """Flips as a string of 0/1 characters."""
    return "".join(str(int(f)) for f in _array(flips))


# ---- per-sequence statistics -------------------------------------------------------------------
def alternation_rate(flips: Sequence[int]) -> float:
    """Fraction of consecutive pairs that differ (the authors' ``p_A``); 0 for fewer than two flips."""
    x = _array(flips)
    return float(np.mean(x[1:] != x[:-1])) if len(x) > 1 else 0.0


def longest_run(flips: Sequence[int]) -> int:
    """Length of the longest run of equal flips (0 for none)."""
    x = _array(flips)
    if not len(x):
        return 0
    edges = np.flatnonzero(np.diff(x)) + 1
    return int(np.diff(np.concatenate([[0], edges, [len(x)]])).max())


def gzip_length(flips: Sequence[int]) -> int:
    """Bytes of the gzip-compressed 0/1 string (header time fixed, so it is deterministic)."""
    return len(gzip.compress(as_text(flips).encode(), mtime=0))


def running_average(flips: Sequence[int]) -> np.ndarray:
    """The running mean of the flips after a first value equal to their mean (the authors' ``run_avg``).

    Example:
        >>> running_average([1, 1, 0, 0]).tolist()
        [0.5, 0.75, 0.8333333333333334, 0.625, 0.5]
    """
    x = _array(flips).astype(float)
    if not len(x):
        raise InputError("a running average needs at least one flip")
    x = np.concatenate([[x.mean()], x])
    return np.cumsum(x) / np.arange(1, len(x) + 1)


def running_average_std(flips: Sequence[int]) -> float:
    """Standard deviation of :func:`running_average` (how far it wanders)."""
    return float(running_average(flips).std())


# ---- statistics of a set of sequences ----------------------------------------------------------
def substring_counts(sequences: Sequence[Sequence[int]], window: int) -> Counter:
    """How often each ``window``-flip substring occurs, over every sequence.

    As in the authors' ``count_substrs``, windows start at ``0 .. len - window - 1`` (the last
    window of each sequence is not counted).

    Example:
        >>> dict(substring_counts([[0, 1, 0, 1, 0]], 2))
        {'01': 2, '10': 1}
    """
    if window < 1:
        raise InputError(f"a substring window is at least 1 flip, got {window}")
    counts: Counter = Counter()
    for flips in sequences:
        text = as_text(flips)
        counts.update(text[i : i + window] for i in range(len(text) - window))
    return counts


def distinct_fraction(sequences: Sequence[Sequence[int]], window: int) -> float:
    """Distinct ``window``-flip substrings over all counted ones (1: nothing repeats); NaN if none."""
    counts = substring_counts(sequences, window)
    total = sum(counts.values())
    return len(counts) / total if total else float("nan")


def levenshtein_ratio(a: str, b: str) -> float:
    """python-Levenshtein's ``ratio``: ``1 - indel distance / (len(a) + len(b))`` (1 for two empty strings).

    The indel distance counts insertions and deletions (a substitution costs two), so the ratio is
    ``2 * LCS / (len(a) + len(b))``, LCS the longest common subsequence (bit-parallel, Allison-Dix).
    """
    if not a and not b:
        return 1.0
    masks: dict[str, int] = {}
    for i, ch in enumerate(b):
        masks[ch] = masks.get(ch, 0) | (1 << i)
    full = (1 << len(b)) - 1
    v = full
    for ch in a:
        u = v & masks.get(ch, 0)
        v = ((v + u) | (v - u)) & full
    lcs = len(b) - bin(v).count("1")
    return 2 * lcs / (len(a) + len(b))


def mean_pairwise_levenshtein(sequences: Sequence[Sequence[int]]) -> float:
    """Mean :func:`levenshtein_ratio` over distinct pairs of sequences (NaN for fewer than two)."""
    texts = [as_text(s) for s in sequences]
    ratios = [levenshtein_ratio(a, b) for a, b in combinations(texts, 2)]
    return float(np.mean(ratios)) if ratios else float("nan")


# ---- reference models --------------------------------------------------------------------------
def clip_probability(p: float) -> float:
    """``p`` kept in ``[MIN_PROB, 1 - MIN_PROB]``."""
    return float(min(max(p, MIN_PROB), 1 - MIN_PROB))


def window_p_tails(history: Sequence[int], target: float, window: int = 5) -> float:
    """The windowed-average model's p(Tails) for the next flip: ``target + (target - mean of the last window)``.

    The history starts with one pseudo-flip equal to ``target``, as in the authors' sampler
    (``WindowAvgModel.sample``); the result is clipped to [0, 1].

    Example:
        >>> window_p_tails([1, 1, 1, 1], 0.5, window=2)
        0.0
    """
    last = [target, *_array(history).tolist()][-window:]
    return _window_p(last, target)


def _window_p(last: list, target: float) -> float:
    return float(min(1.0, max(0.0, 2 * target - sum(last) / len(last))))


def window_log_likelihood(flips: Sequence[int], target: float, window: int = 5) -> float:
    """Log-probability of a sequence under the windowed-average model (each flip given the ones before).

    The authors' ``log_probability`` puts the predicted flip itself in the window; here each
    flip is predicted from the flips before it only, as the sampler generates them.
    """
    x = [target, *_array(flips).tolist()]
    total = 0.0
    for t in range(1, len(x)):
        p = clip_probability(_window_p(x[max(0, t - window) : t], target))
        total += np.log(p if x[t] == 1 else 1 - p)
    return float(total)


def markov_p_tails(previous: int | None, p0: float, alt: float) -> float:
    """p(Tails) of the two-parameter Markov chain after ``previous`` (``None``: the first flip).

    ``p0`` is the outcome bias p(Heads) and ``alt`` the alternation tendency; the transition
    weights are ``(1 - alt) * p0`` (stay Heads), ``alt * (1 - p0)`` (Heads -> Tails), ``alt * p0``
    (Tails -> Heads) and ``(1 - alt) * (1 - p0)`` (stay Tails), normalised per row (the
    authors' ``mc_combination``). ``alt = 0.5`` is Bernoulli(1 - p0).

    Example:
        >>> markov_p_tails(0, 0.5, 0.8), markov_p_tails(None, 0.25, 0.5)
        (0.8, 0.75)
    """
    if previous is None:
        return 1 - p0
    if previous == 0:
        stay, move = (1 - alt) * p0, alt * (1 - p0)
        return move / (stay + move)
    move, stay = alt * p0, (1 - alt) * (1 - p0)
    return stay / (stay + move)


def markov_log_likelihood(sequences: Sequence[Sequence[int]], p0: float, alt: float) -> float:
    """Total log-probability of sequences under the two-parameter Markov chain (from their transition counts)."""
    return _markov_log_likelihood(_markov_counts(sequences), p0, alt)


def _markov_counts(sequences: Sequence[Sequence[int]]) -> tuple[np.ndarray, np.ndarray]:
    """How many sequences start with Heads / Tails, and the (previous, next) transition counts."""
    first, moves = np.zeros(2), np.zeros((2, 2))
    for flips in sequences:
        x = _array(flips)
        if len(x):
            first[x[0]] += 1
            np.add.at(moves, (x[:-1], x[1:]), 1)
    return first, moves


def _markov_log_likelihood(counts: tuple[np.ndarray, np.ndarray], p0: float, alt: float) -> float:
    first, moves = counts
    total = 0.0
    for previous, counts in ((None, first), (0, moves[0]), (1, moves[1])):
        p = clip_probability(markov_p_tails(previous, p0, alt))
        total += counts[0] * np.log(1 - p) + counts[1] * np.log(p)
    return float(total)


def fit_markov(sequences: Sequence[Sequence[int]], prior: float = 5.0) -> tuple[float, float]:
    """MAP ``(p0, alt)`` of the Markov chain under Beta(prior, prior) priors on both (the authors' ``mc_fn``).

    Example:
        >>> p0, alt = fit_markov([[0, 1] * 20])
        >>> round(p0, 1), alt > 0.9
        (0.5, True)
    """

    counts = _markov_counts(sequences)

    def loss(theta: np.ndarray) -> float:
        p0, alt = theta
        log_prior = beta.logpdf(p0, prior, prior) + beta.logpdf(alt, prior, prior)
        return -(_markov_log_likelihood(counts, p0, alt) + log_prior)

    found = minimize(loss, np.array([0.5, 0.5]), method="L-BFGS-B", bounds=[(1e-3, 1 - 1e-3)] * 2)
    return float(found.x[0]), float(found.x[1])


def bernoulli_log_likelihood(sequences: Sequence[Sequence[int]], p: float) -> float:
    """Total log-probability of sequences under Bernoulli(p) (p = p(Tails))."""
    x = np.concatenate([_array(s) for s in sequences]) if sequences else np.zeros(0, dtype=np.int64)
    p = clip_probability(p)
    return float(np.sum(np.where(x == 1, np.log(p), np.log(1 - p))))


# ---- concept learning --------------------------------------------------------------------------
def rotations(concept: Sequence[int], depth: int) -> set[tuple[int, ...]]:
    """Every cyclic rotation of ``concept``, repeated and cut to ``depth`` flips (the authors' ``get_rotations``).

    Example:
        >>> sorted(rotations((0, 0, 1), 5))
        [(0, 0, 1, 0, 0), (0, 1, 0, 0, 1), (1, 0, 0, 1, 0)]
    """
    out = set()
    for i in range(len(concept)):
        turned = tuple(concept[i:]) + tuple(concept[:i])
        out.add(tuple(turned[k % len(turned)] for k in range(depth)))
    return out


def transition_point(lengths: Sequence[int], curve: Sequence[float], level: float = 0.5) -> int | None:
    """The first context length where the curve reaches ``level`` (``None`` if it never does).

    Example:
        >>> transition_point([1, 2, 3, 4], [0.1, 0.4, 0.6, 0.3])
        3
    """
    for n, c in zip(lengths, curve):
        if c >= level:
            return int(n)
    return None


def fit_sigmoid(lengths: Sequence[float], curve: Sequence[float], max_midpoint: float) -> tuple[float, float]:
    """Least-squares fit of ``1 / (1 + exp(-slope * (length - midpoint)))`` to a curve: ``(midpoint, slope)``.

    The midpoint is bounded to ``[0, max_midpoint]`` and the slope to ``[-10, 10]`` per flip (a curve
    that never rises puts the midpoint at the bound).

    Example:
        >>> x = np.arange(1, 41)
        >>> m, k = fit_sigmoid(x, 1 / (1 + np.exp(-0.8 * (x - 12.0))), 80)
        >>> round(m, 3), round(k, 3)
        (12.0, 0.8)
    """
    x, y = np.asarray(lengths, dtype=float), np.asarray(curve, dtype=float)
    if len(x) != len(y) or len(x) < 2 or not np.isfinite(y).all():
        raise InputError(f"a sigmoid fit needs two or more finite points, got {len(x)} lengths and {len(y)} values")

    def residual(theta: np.ndarray) -> np.ndarray:
        return 1 / (1 + np.exp(-theta[1] * (x - theta[0]))) - y

    start = np.array([min(max(float(x.mean()), 0.0), max_midpoint), 0.5])
    found = least_squares(residual, start, bounds=([0.0, -10.0], [max_midpoint, 10.0]), xtol=1e-12, ftol=1e-12)
    return float(found.x[0]), float(found.x[1])
