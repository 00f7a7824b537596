"""Splits of a labelled data set among federated clients: Orchestra's balanced Dirichlet split and baselines.

A :class:`Partition` gives every sample its client, or -1 for a sample left out. The partitioners
are pure numpy, vectorised over samples, and deterministic for (labels, parameters, seed): each
draws from ``np.random.default_rng([stream_key(<its name>), seed])``, never numpy's global
generator. Guarantees (``N`` samples, ``K`` clients, ``n_c`` samples of class ``c``):

- :func:`balanced_dirichlet` (arXiv:2205.11506): every sample assigned; client sizes
  ``floor(N / K)`` or ``ceil(N / K)``; client ``k`` holds ``floor`` or ``ceil`` of
  ``N * D[k, c]`` samples of class ``c``, where ``D`` is the per-class Dirichlet(alpha) matrix
  balanced to row sums ``1 / K`` and column sums ``n_c / N`` (to 1e-9 relative; an error is
  raised when the balancing does not converge). A test set can be split by the same ``D``.
- :func:`dirichlet`: every sample assigned; client ``k`` holds ``floor`` or ``ceil`` of
  ``n_c * q_c[k]`` samples of class ``c``, ``q_c ~ Dirichlet(alpha)``; every client holds at
  least ``min_size`` samples (redrawn up to :data:`MAX_DRAWS` times, else an error).
- :func:`iid`: every sample assigned uniformly at random; sizes ``floor(N / K)`` or ``ceil(N / K)``.
- :func:`pathological`: every client holds exactly ``classes_per_client`` distinct classes, in
  shards of near-equal size; every sample assigned when ``n_classes <= K * classes_per_client``.

Within a class, which samples go to which client is a seeded uniform permutation (not data-set
order).

Example:
    >>> labels = np.repeat(np.arange(10), 100)
    >>> part = balanced_dirichlet(labels, n_clients=10, alpha=0.1, seed=0)
    >>> part.sizes.tolist() == [100] * 10, part.unassigned
    (True, 0)
"""

from __future__ import annotations

import inspect
import math
from collections.abc import Callable
from dataclasses import dataclass
from functools import cached_property

import numpy as np

from fmbench.errors import FmbenchError
from fmbench.random_access import check_seed, stream_key

MAX_DRAWS = 1000
"""Dirichlet draws :func:`dirichlet` tries before giving up on ``min_size``."""
MIN_ALPHA = 1e-300
"""Smallest Dirichlet concentration accepted (below it the draws' logarithms overflow)."""
BALANCE_TOLERANCE = 1e-9
"""Largest relative error of a balanced matrix's row and column sums."""
_NEWTON_STEPS = 100  # per annealing stage; stages took at most ~25 steps in the cases tried
_FIRST_SPREAD = 20.0  # annealing starts where the log-shares of a client span at most this
_SLIVER = 1e-9  # rounding treats fractional parts below this as zero (float noise, or shares ~ 0)


class PartitionError(FmbenchError, ValueError):
    """Bad partition parameters, or a partition that cannot meet its guarantee."""


@dataclass(frozen=True, eq=False)
class Partition:
    """Which client each sample belongs to.

    Attributes:
        client_of: int64 (N,), read-only: sample ``i``'s client in ``0 .. n_clients - 1``, or -1 when left out.
        n_clients: number of clients (some may hold no sample).

    Example:
        >>> part = Partition(np.array([1, 0, -1, 1]), n_clients=2)
        >>> part.indices(1).tolist(), part.sizes.tolist(), part.unassigned
        ([0, 3], [1, 2], 1)
    """

    client_of: np.ndarray
    n_clients: int

    def __post_init__(self) -> None:
        client_of = np.asarray(self.client_of)
        if client_of.ndim != 1 or client_of.dtype.kind not in "iu":
            raise PartitionError(f"client_of must be a 1-D integer array, got {client_of.dtype} {client_of.shape}")
        _check_count(self.n_clients, "n_clients")
        if client_of.size and not -1 <= client_of.min() <= client_of.max() < self.n_clients:
            raise PartitionError(
                f"client_of must lie in [-1, {self.n_clients}), got [{client_of.min()}, {client_of.max()}]"
            )
        client_of = np.array(client_of, dtype=np.int64)
        client_of.flags.writeable = False
        object.__setattr__(self, "client_of", client_of)

    def __eq__(self, other: object) -> bool:
        return (
            isinstance(other, Partition)
            and self.n_clients == other.n_clients
            and np.array_equal(self.client_of, other.client_of)
        )

    @cached_property
    def _counts(self) -> np.ndarray:
        """Samples left out, then each client's size."""
        return np.bincount(self.client_of + 1, minlength=self.n_clients + 1)

    @cached_property
    def _grouped(self) -> tuple[np.ndarray, np.ndarray]:
        """Sample indices grouped by client (-1 first), ascending within a group, and the groups' offsets."""
        order = np.argsort(self.client_of, kind="stable")
        order.flags.writeable = False
        return order, np.concatenate(([0], np.cumsum(self._counts)))

    @property
    def sizes(self) -> np.ndarray:
        """Samples per client, int64 (n_clients,).

        Example:
            >>> Partition(np.array([0, 0, 2]), 3).sizes.tolist()
            [2, 0, 1]
        """
        return self._counts[1:].copy()

    @property
    def unassigned(self) -> int:
        """Samples left out (client -1).

        Example:
            >>> Partition(np.array([0, -1]), 1).unassigned
            1
        """
        return int(self._counts[0])

    def indices(self, client: int) -> np.ndarray:
        """The sorted indices of ``client``'s samples (a read-only view).

        Example:
            >>> Partition(np.array([1, 0, 1]), 2).indices(1).tolist()
            [0, 2]
        """
        if not isinstance(client, (int, np.integer)) or not 0 <= client < self.n_clients:
            raise PartitionError(f"client must be an integer in [0, {self.n_clients}), got {client!r}")
        order, offsets = self._grouped
        return order[offsets[client + 1] : offsets[client + 2]]

    def class_counts(self, labels: np.ndarray) -> np.ndarray:
        """Samples of each class per client, int64 (n_clients, labels.max() + 1); left-out samples are not counted.

        Example:
            >>> Partition(np.array([0, 0, 1, -1]), 2).class_counts(np.array([0, 1, 1, 1])).tolist()
            [[1, 1], [0, 1]]
        """
        labels = _check_labels(labels)
        if len(labels) != len(self.client_of):
            raise PartitionError(f"labels has {len(labels)} entries, the partition {len(self.client_of)}")
        n_classes = int(labels.max()) + 1
        kept = self.client_of >= 0
        flat = self.client_of[kept] * n_classes + labels[kept]
        return np.bincount(flat, minlength=self.n_clients * n_classes).reshape(self.n_clients, n_classes)


# ---- validation -------------------------------------------------------------------------------


def _check_count(value: object, name: str, minimum: int = 1) -> int:
    """``value`` as an int, or ``PartitionError`` unless it is an integer >= ``minimum`` (bools refused)."""
    if not isinstance(value, (int, np.integer)) or isinstance(value, bool) or value < minimum:
        raise PartitionError(f"{name} must be an integer >= {minimum}, got {value!r}")
    return int(value)


def _check_labels(labels: object, name: str = "labels") -> np.ndarray:
    """``labels`` as a 1-D non-negative int64 array (not copied when it already is one)."""
    array = np.asarray(labels)
    if array.ndim != 1 or array.dtype.kind not in "iu":
        raise PartitionError(f"{name} must be a 1-D array of non-negative integers, got {array.dtype} {array.shape}")
    if array.size == 0:
        raise PartitionError(f"{name} is empty")
    if array.min() < 0:
        raise PartitionError(f"{name} must be non-negative, got {array.min()}")
    return array.astype(np.int64, copy=False)


def _check_clients(n_clients: object, n_samples: int) -> int:
    """``n_clients`` as an int in ``[1, n_samples]``."""
    n_clients = _check_count(n_clients, "n_clients")
    if n_clients > n_samples:
        raise PartitionError(f"more clients ({n_clients}) than samples ({n_samples})")
    return n_clients


def _check_alpha(alpha: object) -> float:
    """``alpha`` as a finite float >= ``MIN_ALPHA``."""
    if (
        isinstance(alpha, bool)
        or not isinstance(alpha, (int, float, np.integer, np.floating))
        or not (math.isfinite(alpha) and alpha >= MIN_ALPHA)
    ):
        raise PartitionError(f"alpha must be a finite number >= {MIN_ALPHA:g}, got {alpha!r}")
    return float(alpha)


def _rng(name: str, seed: int) -> np.random.Generator:
    """The generator of partitioner ``name`` for ``seed``."""
    return np.random.default_rng([stream_key("fmbench.federated.partition", name), check_seed(seed)])


# ---- shared steps -----------------------------------------------------------------------------


def _log_gamma(rng: np.random.Generator, alpha: float, shape: tuple[int, int]) -> np.ndarray:
    """Logs of Gamma(alpha, 1) draws, finite even for tiny alpha: ``G(a) = G(a + 1) * U ** (1 / a)``."""
    return np.log(rng.standard_gamma(alpha + 1.0, shape)) + np.log1p(-rng.random(shape)) / alpha


def _softmax_rows(x: np.ndarray) -> np.ndarray:
    """Row-wise softmax."""
    e = np.exp(x - x.max(1, keepdims=True))
    return e / e.sum(1, keepdims=True)


def _logsumexp_rows(x: np.ndarray) -> np.ndarray:
    """Row-wise log-sum-exp."""
    top = x.max(1)
    return top + np.log(np.exp(x - top[:, None]).sum(1))


def _largest_remainder(target: np.ndarray) -> np.ndarray:
    """Integer counts, each ``floor`` or ``ceil`` of ``target``'s entry, with ``target``'s (integral) column sums.

    A column's floors are topped up by one at its largest fractional parts.
    """
    floors = np.floor(target)
    fractions = target - floors
    short = np.rint(target.sum(0) - floors.sum(0))
    rank = np.argsort(np.argsort(-fractions, axis=0, kind="stable"), axis=0, kind="stable")
    return floors.astype(np.int64) + (rank < short)


def _class_order(labels: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Sample indices grouped by class (ascending), in uniformly random order within a class."""
    perm = rng.permutation(len(labels))
    keys = labels[perm].astype(np.min_scalar_type(int(labels.max())))  # 8/16-bit keys: numpy's radix sort
    return perm[np.argsort(keys, kind="stable")]


def _assign(labels: np.ndarray, counts: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """``client_of`` giving client ``k`` ``counts[k, c]`` random samples of class ``c``; the rest of a class gets -1.

    ``counts`` is (n_clients, labels.max() + 1) with column sums at most the class sizes.
    """
    n_clients, n_classes = counts.shape
    left = np.bincount(labels, minlength=n_classes) - counts.sum(0)
    blocks = np.vstack([counts, left]).T.ravel()  # per class: each client's block, then the left-out one
    owners = np.tile(np.append(np.arange(n_clients), -1), n_classes)
    client_of = np.empty(len(labels), dtype=np.int64)
    client_of[_class_order(labels, rng)] = np.repeat(owners, blocks)
    return client_of


# ---- balanced Dirichlet ----------------------------------------------------------------------


def _dual_change(x: np.ndarray, soft: np.ndarray, a: np.ndarray, b: np.ndarray, step: np.ndarray) -> float:
    """``phi(g + step) - phi(g)`` for ``phi(g) = a . logsumexp_rows(x + g) - b . g``, ``soft`` the softmax of ``x``.

    Small steps use ``log1p``/``expm1`` so the change stays accurate where ``phi`` itself is large.
    """
    if np.abs(step).max() > 1.0:
        inner = _logsumexp_rows(x + step) - _logsumexp_rows(x)
    else:
        inner = np.log1p((soft * np.expm1(step)).sum(1))
    return float(a @ inner - b @ step)


def _solve_spd(h: np.ndarray, r: np.ndarray) -> np.ndarray:
    """``x`` with ``h @ x = r`` for symmetric positive definite ``h``: Gaussian elimination without pivoting
    (stable for such ``h``), in numpy loops rather than LAPACK (see :func:`_newton`)."""
    a = np.column_stack([h, r])
    m = len(r)
    for i in range(m - 1):
        a[i + 1 :, i + 1 :] -= np.multiply.outer(a[i + 1 :, i] / a[i, i], a[i, i + 1 :])
    x = np.empty(m)
    for i in range(m - 1, -1, -1):
        x[i] = (a[i, m] - a[i, i + 1 : m].dot(x[i + 1 :])) / a[i, i]
    return x


def _newton(x: np.ndarray, a: np.ndarray, b: np.ndarray, g: np.ndarray, tol: float) -> tuple[np.ndarray, bool]:
    """Potentials ``g`` making ``D = a[:, None] * softmax_rows(x + g)`` have column sums ``b``, and whether
    the largest relative column-sum error fell below ``tol``.

    Damped Newton (Armijo backtracking) on the convex dual ``phi`` (see :func:`_dual_change`), whose
    gradient is the column-sum error. The Hessian is singular along ``g + const`` (a constant
    all-ones term removes that) and nearly so where rows are all but one-hot (a tiny ridge).
    Products and the solve are ``einsum``/ufunc loops, not BLAS or LAPACK: OpenBLAS threads on
    these small shapes slow the loop a hundredfold when the CPUs are busy.
    """
    ridge = 1e-9 * (b.mean() + b)
    for _ in range(_NEWTON_STEPS):
        soft = _softmax_rows(x + g)
        sums = np.einsum("k,kc->c", a, soft)
        gradient = sums - b
        if np.abs(gradient / b).max() < tol:
            return g, True
        hessian = np.diag(sums + ridge) - np.einsum("k,ki,kj->ij", a, soft, soft) + 1.0 / len(b)
        step = _solve_spd(hessian, -gradient)
        t, slope = 1.0, float(gradient @ step)
        while _dual_change(x + g, soft, a, b, t * step) > 1e-4 * t * slope:
            t /= 2
            if t < 1e-12:
                return g, False
        g = g + t * step
    return g, bool(np.abs(np.einsum("k,kc->c", a, _softmax_rows(x + g)) / b - 1).max() < tol)


def _balance(log_a: np.ndarray, row_sums: np.ndarray, col_sums: np.ndarray, alpha: float) -> np.ndarray:
    """``diag(u) exp(log_a) diag(v)`` with the given row and column sums (exact on the longer side).

    This is Sinkhorn's matrix scaling, solved by Newton's method on the dual over the shorter
    side's potentials, annealed: the log-entries are first scaled down until they span at most
    ``_FIRST_SPREAD`` and then doubled stage by stage up to their true values, each stage starting
    from the last one's solution (tiny alphas give log-entries spanning thousands, where plain
    Sinkhorn iterations crawl). Raises ``PartitionError`` naming alpha as soon as a stage does not
    converge (at alpha ~1e-9 and below, float64 may not resolve a client split between classes
    whose log-shares differ by ~1/alpha).
    """
    if log_a.shape[0] < log_a.shape[1]:
        return _balance(log_a.T, col_sums, row_sums, alpha).T
    x = log_a - log_a.max(1, keepdims=True)
    scales = [1.0]
    while scales[-1] * -x.min() > _FIRST_SPREAD:
        scales.append(scales[-1] / 2)
    g = np.zeros(x.shape[1])
    for scale in reversed(scales):
        g, converged = _newton(scale * x, row_sums, col_sums, 2 * g, BALANCE_TOLERANCE if scale == 1.0 else 1e-6)
        if not converged:
            raise PartitionError(
                f"balanced_dirichlet: could not balance the client x class matrix at alpha={alpha} "
                f"to {BALANCE_TOLERANCE:g} relative error; try a larger alpha"
            )
    return row_sums[:, None] * _softmax_rows(x + g)


def _move_one(
    counts: np.ndarray, floors: np.ndarray, ceilings: np.ndarray, sources: np.ndarray, sinks: np.ndarray
) -> None:
    """Move one unit from a ``sources`` row to a ``sinks`` row along a shortest path, in place.

    Each hop moves one unit of some class from one row to the next, from an entry at its ceiling to
    one at its floor, so column sums stay and every entry stays within ``[floors, ceilings]``.
    """
    give, take = counts > floors, counts < ceilings
    via_row = np.full(len(counts), -1)
    via_col = np.full(len(counts), -1)
    seen, frontier = sources.copy(), sources.copy()
    while frontier.any():
        giver = np.argmax(give & frontier[:, None], axis=0)  # a frontier row that can give each column
        reached = take & give[frontier].any(0) & ~seen[:, None]
        new = reached.any(1)
        col = np.argmax(reached, axis=1)[new]
        via_row[new], via_col[new] = giver[col], col
        hits = np.flatnonzero(new & sinks)
        if hits.size:
            row = hits[0]
            while via_row[row] >= 0:
                counts[via_row[row], via_col[row]] -= 1
                counts[row, via_col[row]] += 1
                row = via_row[row]
            return
        seen |= new
        frontier = new
    raise RuntimeError("no rounding path: the target's row sums do not match the requested ones")


def _round_matrix(target: np.ndarray, row_sums: np.ndarray) -> np.ndarray:
    """Controlled rounding: integers with ``target``'s (integral) column sums, each entry the floor or ceil of
    its target (the floor where the fractional part is below ``_SLIVER``), and row ``k`` summing to the
    floor or ceil of ``row_sums[k]`` (``target``'s row sums).

    Column by column, the entries rounded up are those whose rows lag furthest behind their
    cumulative targets (usually every row ends within bounds); then unit moves along augmenting
    paths (:func:`_move_one`) bring any row that does not within bounds: such a path always exists
    (a cut argument over the rows a path can reach) and each move fixes one unit of excess.
    """
    floors = np.floor(target)
    fractions = target - floors
    ceilings = floors.astype(np.int64) + (fractions >= _SLIVER)
    counts = floors.astype(np.int64)
    short = np.rint(target.sum(0) - floors.sum(0)).astype(np.int64)
    lag = np.zeros(len(target))  # each row's cumulative target minus its count so far
    for c in range(target.shape[1]):
        score = np.where(ceilings[:, c] > counts[:, c], fractions[:, c] + lag, -np.inf)
        counts[np.argsort(-score, kind="stable")[: short[c]], c] += 1
        lag += target[:, c] - counts[:, c]
    high, low = np.ceil(row_sums - 1e-6), np.floor(row_sums + 1e-6)
    rows = counts.sum(1)
    while (rows > high).any():
        _move_one(counts, floors, ceilings, rows > high, rows < high)
        rows = counts.sum(1)
    while (rows < low).any():
        _move_one(counts, floors, ceilings, rows > low, rows < low)
        rows = counts.sum(1)
    return counts


def balanced_dirichlet(
    labels: np.ndarray, n_clients: int, alpha: float, seed: int, test_labels: np.ndarray | None = None
) -> Partition | tuple[Partition, Partition]:
    """Orchestra's balanced non-IID split (arXiv:2205.11506): per-class Dirichlet shares, balanced clients.

    Every class draws shares over clients from Dirichlet(alpha); the (clients x classes) matrix is
    then balanced (Sinkhorn's scaling, solved to 1e-9 relative error) to row sums ``1 / K`` and
    column sums the class frequencies ``n_c / N``, giving ``D``. Counts are ``N * D`` rounded so
    that, exactly: every sample is assigned, client sizes are ``floor(N / K)`` or ``ceil(N / K)``,
    and each (client, class) count is the floor or ceil of ``N * D[k, c]``. Small alpha gives each
    client few classes; alpha -> inf gives IID clients. Unlike the authors' ``sampler.py``, the
    balancing converges (its 100 fixed Sinkhorn sweeps leave Fashion-MNIST's 100 clients with
    520 to 879 samples at alpha 1e-3), no (client, class) remainder is dropped (it drops up to 1%
    of the samples), samples are drawn at random within a class rather than in data-set order, and
    the seed is honoured.

    Args:
        labels: (N,) non-negative integer class labels.
        n_clients: K, at most N.
        alpha: Dirichlet concentration, >= :data:`MIN_ALPHA`. The balancing converged in every case
            tried from 1e-7 to 1e300 (up to 1000 clients and 100 classes); far smaller alphas can
            exceed float64's resolution and raise.
        seed: non-negative integer.
        test_labels: if given, the test set is split by the same ``D``, scaled to the test class
            counts ``m_c`` (``D[k, c] * m_c / p_c``, ``p_c = n_c / N``), rounded in the same way:
            every test sample assigned, each client's test size the floor or ceil of
            ``sum_c D[k, c] * m_c / p_c`` (``M / K`` when test and train class frequencies agree).

    Returns:
        The train :class:`Partition`, or ``(train, test)`` with ``test_labels``.

    Raises:
        PartitionError: bad arguments, a test class absent from training, or no convergence.

    Example:
        >>> train, test = balanced_dirichlet(np.repeat(np.arange(4), 50), 4, 0.5, 0,
        ...                                  test_labels=np.repeat(np.arange(4), 10))
        >>> train.sizes.tolist(), test.sizes.tolist()
        ([50, 50, 50, 50], [10, 10, 10, 10])
    """
    labels = _check_labels(labels)
    n_clients = _check_clients(n_clients, len(labels))
    alpha = _check_alpha(alpha)
    rng = _rng("balanced-dirichlet", seed)
    n = np.bincount(labels)
    present = np.flatnonzero(n)
    log_a = _log_gamma(rng, alpha, (n_clients, len(present)))  # Dirichlet columns, unnormalised: scaling absorbs it
    shares = _balance(log_a, np.full(n_clients, 1.0 / n_clients), n[present] / len(labels), alpha)
    shares /= shares.sum(0)  # each column: the class's split over clients, exactly normalised

    def split(split_labels: np.ndarray, class_sizes: np.ndarray, row_sums: np.ndarray) -> Partition:
        counts = np.zeros((n_clients, len(n)), dtype=np.int64)
        counts[:, present] = _round_matrix(shares * class_sizes, row_sums)
        return Partition(_assign(split_labels, counts, rng), n_clients)

    train = split(labels, n[present], np.full(n_clients, len(labels) / n_clients))
    if test_labels is None:
        return train
    test_labels = _check_labels(test_labels, "test_labels")
    m = np.bincount(test_labels)
    strangers = np.flatnonzero(m * (np.bincount(labels, minlength=len(m))[: len(m)] == 0))
    if strangers.size:
        raise PartitionError(f"test_labels hold classes with no training sample: {strangers.tolist()}")
    m = np.bincount(test_labels, minlength=len(n))[present]
    return train, split(test_labels, m, (shares * m).sum(1))


# ---- baselines --------------------------------------------------------------------------------


def dirichlet(labels: np.ndarray, n_clients: int, alpha: float, seed: int, min_size: int = 0) -> Partition:
    """The common non-IID split: each class divided among clients by its own Dirichlet(alpha) draw.

    Class ``c``'s ``n_c`` samples go to the clients in proportions ``q ~ Dirichlet(alpha * 1_K)``,
    the counts ``n_c * q`` rounded by largest remainders, so every sample is assigned. Client sizes
    vary (widely at small alpha); if one falls below ``min_size``, all classes are drawn again
    (seeded), at most :data:`MAX_DRAWS` times.

    Args:
        labels: (N,) non-negative integer class labels.
        n_clients: K, at most N.
        alpha: Dirichlet concentration, >= :data:`MIN_ALPHA`.
        seed: non-negative integer.
        min_size: least samples per client, ``K * min_size <= N``.

    Raises:
        PartitionError: bad arguments, or no draw out of :data:`MAX_DRAWS` gave every client ``min_size``
            samples (the message gives the best smallest client reached).

    Example:
        >>> part = dirichlet(np.repeat(np.arange(10), 100), 10, 0.5, seed=0, min_size=20)
        >>> int(part.sizes.min()) >= 20, part.unassigned
        (True, 0)
    """
    labels = _check_labels(labels)
    n_clients = _check_clients(n_clients, len(labels))
    alpha = _check_alpha(alpha)
    min_size = _check_count(min_size, "min_size", minimum=0)
    if n_clients * min_size > len(labels):
        raise PartitionError(
            f"min_size={min_size} is unreachable: {n_clients} clients x {min_size} > {len(labels)} samples"
        )
    rng = _rng("dirichlet", seed)
    n = np.bincount(labels)
    best = -1
    for _ in range(MAX_DRAWS):
        log_q = _log_gamma(rng, alpha, (n_clients, len(n)))
        shares = np.exp(log_q - _logsumexp_rows(log_q.T))  # each column normalised: one draw per class
        counts = _largest_remainder(shares * n)
        smallest = int(counts.sum(1).min())
        if smallest >= min_size:
            return Partition(_assign(labels, counts, rng), n_clients)
        best = max(best, smallest)
    raise PartitionError(
        f"dirichlet: no client split with min_size={min_size} at alpha={alpha} in {MAX_DRAWS} "
        f"draws (best smallest client: {best} samples); lower min_size or raise alpha"
    )


def iid(labels: np.ndarray, n_clients: int, seed: int) -> Partition:
    """A uniformly random split: every sample assigned, sizes ``ceil(N / K)`` for the first ``N mod K`` clients,
    ``floor(N / K)`` for the rest.

    Args:
        labels: (N,) non-negative integer class labels (only their number matters).
        n_clients: K, at most N.
        seed: non-negative integer.

    Example:
        >>> iid(np.zeros(10, dtype=int), 3, seed=0).sizes.tolist()
        [4, 3, 3]
    """
    labels = _check_labels(labels)
    n_clients = _check_clients(n_clients, len(labels))
    client_of = np.empty(len(labels), dtype=np.int64)
    client_of[_rng("iid", seed).permutation(len(labels))] = np.arange(len(labels)) % n_clients
    return Partition(client_of, n_clients)


def _slots_per_class(sizes: np.ndarray, slots: int, cap: np.ndarray) -> np.ndarray:
    """Clients per class: ``slots`` in all, proportional to ``sizes`` (largest remainders), each in
    ``[1, cap]`` (``[0, cap]`` when there are more classes than slots)."""
    quota = slots * sizes / sizes.sum()
    floor = 1 if len(sizes) <= slots else 0
    m = np.clip(np.floor(quota), floor, cap).astype(np.int64)
    while m.sum() < slots:
        m[np.argmax(np.where(m < cap, quota - m, -np.inf))] += 1
    while m.sum() > slots:
        m[np.argmin(np.where(m > floor, quota - m, np.inf))] -= 1
    return m


def pathological(labels: np.ndarray, n_clients: int, classes_per_client: int, seed: int) -> Partition:
    """The shard split: every client holds samples of exactly ``classes_per_client`` distinct classes.

    With ``k = classes_per_client``, the ``K * k`` (client, class) slots are shared among classes in
    proportion to their sizes (largest remainders; class ``c`` gets ``m_c`` clients,
    ``1 <= m_c <= min(K, n_c)``). The slots, listed class after class in a random class order, are
    dealt round-robin to the clients (in a random order): a class's ``m_c <= K`` slots are
    consecutive, so no client gets a class twice, and each gets exactly ``k``. Class ``c`` is cut
    into ``m_c`` shards of ``floor`` or ``ceil`` of ``n_c / m_c`` samples, so clients hold about
    ``N / K`` when class sizes are alike (exactly when every ``K * k * n_c / N`` is an integer
    dividing ``n_c``). Every sample is assigned when ``n_classes <= K * k``; otherwise the classes
    given no slot are left out (-1).

    Args:
        labels: (N,) non-negative integer class labels.
        n_clients: K, at most N.
        classes_per_client: k, in ``[1, n_classes]`` (classes with at least one sample).
        seed: non-negative integer.

    Raises:
        PartitionError: bad arguments, or classes too small for ``K * k`` non-empty shards.

    Example:
        >>> labels = np.repeat(np.arange(10), 60)
        >>> part = pathological(labels, 10, 2, seed=0)
        >>> (part.class_counts(labels) > 0).sum(1).tolist(), part.sizes.tolist()
        ([2, 2, 2, 2, 2, 2, 2, 2, 2, 2], [60, 60, 60, 60, 60, 60, 60, 60, 60, 60])
    """
    labels = _check_labels(labels)
    n_clients = _check_clients(n_clients, len(labels))
    n = np.bincount(labels)
    present = np.flatnonzero(n)
    k = _check_count(classes_per_client, "classes_per_client")
    if k > len(present):
        raise PartitionError(f"classes_per_client must be in [1, {len(present)}] (the classes present), got {k}")
    slots = n_clients * k
    cap = np.minimum(n[present], n_clients)  # a class goes to at most K clients, each with >= 1 sample
    if cap.sum() < slots:
        raise PartitionError(
            f"pathological: {n_clients} clients x {k} classes need {slots} non-empty shards, "
            f"but the classes can fill only {cap.sum()}"
        )
    rng = _rng("pathological", seed)
    m = _slots_per_class(n[present], slots, cap)
    order = rng.permutation(len(present))
    per_class = m[order]
    slot_class = np.repeat(present[order], per_class)
    slot_client = rng.permutation(n_clients)[np.arange(slots) % n_clients]
    slot_m = np.repeat(per_class, per_class)  # m_c of the slot's class
    rank = np.arange(slots) - np.repeat(np.cumsum(per_class) - per_class, per_class)  # place within its class
    shards = n[slot_class] // slot_m + (rank < n[slot_class] % slot_m)
    counts = np.zeros((n_clients, len(n)), dtype=np.int64)
    counts[slot_client, slot_class] = shards
    return Partition(_assign(labels, counts, rng), n_clients)


# ---- registry ---------------------------------------------------------------------------------

PartitionFn = Callable[..., Partition | tuple[Partition, Partition]]
PARTITIONERS: dict[str, PartitionFn] = {
    "balanced-dirichlet": balanced_dirichlet,
    "dirichlet": dirichlet,
    "iid": iid,
    "pathological": pathological,
}
"""The partitioners by name; each takes ``(labels, n_clients, ..., seed, ...)``."""


def partitioner(name: str, params: dict[str, object]) -> PartitionFn:
    """The partitioner called ``name``, after checking that ``params`` are exactly its extra parameters.

    Example:
        >>> partitioner("iid", {}).__name__
        'iid'
    """
    if name not in PARTITIONERS:
        raise PartitionError(f"unknown partitioner {name!r}; known: {', '.join(PARTITIONERS)}")
    fn = PARTITIONERS[name]
    extra = {p: v for p, v in inspect.signature(fn).parameters.items() if p not in ("labels", "n_clients", "seed")}
    unknown = sorted(set(params) - set(extra))
    if unknown:
        raise PartitionError(
            f"{name}: unknown parameter(s) {', '.join(unknown)}; it takes {', '.join(extra) or 'none'}"
        )
    missing = [p for p, v in extra.items() if v.default is inspect.Parameter.empty and p not in params]
    if missing:
        raise PartitionError(f"{name}: missing parameter(s) {', '.join(missing)}")
    return fn


def make_partition(
    name: str, labels: np.ndarray, n_clients: int, seed: int, **params: object
) -> Partition | tuple[Partition, Partition]:
    """Run the partitioner called ``name`` (see :data:`PARTITIONERS`) with its extra ``params``.

    Example:
        >>> make_partition("dirichlet", np.repeat(np.arange(5), 20), 4, seed=1, alpha=1.0).n_clients
        4
    """
    return partitioner(name, params)(labels, n_clients, seed=seed, **params)
