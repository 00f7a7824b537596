"""Closed-form landscapes of linear self-supervised learning (derivations: ``docs/ssl_landscape/theory.md``).

Every loss fmbench predicts has, in expectation over the data and the augmentations, the form

    L(W) = tr(Q G) + quartic * tr(B G B G) + weight decay,    G = W^T W,

where ``B = E[v v^T]`` is one augmented view's second moment and ``Q`` holds the positive pairs'
cross moment ``P = E[v1 v2^T]`` (:func:`landscape`). For a linear encoder ``z = W v`` the global
minima, every stationary point and its kind follow in closed form from the eigenvalues of
``B^-1/2 (Q + gamma I) B^-1/2`` (:func:`linear_optimum`, :func:`stationary_points`); for a two-layer
linear encoder ``z = W2 W1 v`` with weight decay on both layers they follow when ``B`` is a multiple
of the identity (:func:`two_layer_optimum`); for a normalised representation (each feature standardised
over the views, or all features scaled by one number) they follow from a projection onto a scaled
simplex (:func:`normalised_optimum`). A setting outside these raises
:class:`NoPredictionError`: fmbench never extrapolates.

Example:
    >>> import numpy as np
    >>> a = np.array([2.0, 1.0, 0.2])
    >>> land = landscape("spectral", np.diag(a), np.diag(a + 0.5))
    >>> p = linear_optimum(land, weight_decay=1.0, width=3)
    >>> p.rank  # a mode survives iff 2 a_i > gamma
    2
    >>> np.round(p.singular_values ** 2, 4).tolist()  # (2 a_i - gamma) / (2 (a_i + s)^2)
    [0.24, 0.2222, 0.0]
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass

import numpy as np

from fmbench.errors import InputError

LOSSES = ("spectral", "infonce", "noncontrastive")
"""The losses with a closed-form landscape: spectral contrastive, InfoNCE (Gaussian views, many negatives),
and a non-contrastive alignment + covariance-to-identity loss."""

TIE = 1e-9
"""Relative gap below which two eigenvalues count as tied (the minimiser is then not unique)."""

NORMALISATIONS = ("none", "batch", "global", "sample")
"""How the representation is normalised: ``batch`` divides each feature by its standard deviation over the views
(batch normalisation without an affine map, population statistics), ``global`` divides every feature by one
number so that ``E|z|^2 = width``, ``sample`` divides each ``z`` by its norm (no closed form: refused)."""

MAX_STATIONARY = 4096
"""The most stationary points :func:`stationary_points` lists."""


class NoPredictionError(InputError):
    """A setting for which fmbench derives no prediction (said, never extrapolated)."""


@dataclass(frozen=True)
class Landscape:
    """The expected loss ``tr(Q G) + quartic tr(B G B G)`` (weight decay added by the solvers).

    ``bias_q`` is the entry of ``Q`` for a bias, seen as a constant input feature of second moment 1
    (``None``: the loss is blind to the bias beyond its weight decay, so the optimal bias is 0).
    """

    loss: str
    q: np.ndarray
    b: np.ndarray
    quartic: float
    bias_q: float | None


@dataclass(frozen=True)
class Prediction:
    """A global minimiser of the landscape and what it implies.

    ``rank``: the rank of the representation's covariance; ``singular_values``: the end-to-end map
    ``W``'s, descending (``min(width, dim)`` of them, zeros for collapsed modes); ``covariance``: the
    eigenvalues of ``E[z z^T]`` over augmented views (bias removed), descending, ``width`` of them;
    ``weights``: one minimiser ``W`` (``(width, dim)``; any ``O W`` with ``O`` orthogonal is another);
    ``bias``: its bias (``None`` without one); ``layers``: the two factors ``(W1, W2)`` of a two-layer
    minimiser, balanced (``W1 W1^T = W2^T W2``), else ``None``.
    """

    rank: int
    singular_values: np.ndarray
    covariance: np.ndarray
    weights: np.ndarray
    bias: np.ndarray | None = None
    layers: tuple[np.ndarray, np.ndarray] | None = None


@dataclass(frozen=True)
class StationaryPoint:
    """A stationary point of a linear encoder's landscape: its weights, bias, rank and kind."""

    weights: np.ndarray
    bias: np.ndarray | None
    rank: int
    kind: str  # "minimum" (always global), "saddle" or "maximum"


def check_nonnegative(value: float, name: str) -> float:
    """``value`` as a float, or ``InputError`` unless it is finite and >= 0.

    Example:
        >>> check_nonnegative(0.5, "weight_decay")
        0.5
    """
    v = float(value)
    if not np.isfinite(v) or v < 0:
        raise InputError(f"{name} must be a finite number >= 0, got {value!r}")
    return v


def landscape(
    loss: str,
    positive: np.ndarray,
    single: np.ndarray,
    *,
    temperature: float = 1.0,
    mu: float = 1.0,
    gaussian: bool = True,
) -> Landscape:
    """The expected loss of ``loss`` for views with cross moment ``positive`` (P) and second moment ``single`` (B).

    * ``spectral``: ``-2 E[z1.z2] + E[(z1.z2')^2]`` (``z2'`` an independent sample): ``Q = -2P``, quartic 1.
    * ``infonce``: ``-E[z1.z2]/tau + E log E' exp(z1.z2'/tau)``, InfoNCE with infinitely many negatives
      (its ``log N`` dropped): exact only for Gaussian views, ``Q = -P/tau``, quartic ``1/(2 tau^2)``.
    * ``noncontrastive``: ``E|z1 - z2|^2 + mu |Cov(z) - I|_F^2``: ``Q = 2(B - P) - 2 mu B``, quartic ``mu``.

    Example:
        >>> landscape("infonce", np.eye(2), 2 * np.eye(2), temperature=0.5).quartic
        2.0
    """
    if loss not in LOSSES:
        raise InputError(f"unknown loss {loss!r}; known: {', '.join(LOSSES)}")
    p, b = np.asarray(positive, dtype=np.float64), np.asarray(single, dtype=np.float64)
    if b.ndim != 2 or b.shape[0] != b.shape[1] or p.shape != b.shape:
        raise InputError(f"the view moments must be two (d, d) matrices, got {p.shape} and {b.shape}")
    if not (np.isfinite(p).all() and np.isfinite(b).all()):
        raise InputError("the view moments must be finite")
    if np.linalg.eigvalsh((b + b.T) / 2)[0] <= 0:
        raise InputError("a view's second moment must be positive definite (every direction varies)")
    tau, mu = check_nonnegative(temperature, "temperature"), check_nonnegative(mu, "mu")
    if tau == 0 or mu == 0:
        raise InputError(f"temperature and mu must be > 0, got {temperature} and {mu}")
    p, b = (p + p.T) / 2, (b + b.T) / 2
    if loss == "spectral":
        return Landscape(loss, -2 * p, b, 1.0, -2.0)
    if loss == "infonce":
        if not gaussian:
            raise NoPredictionError(
                "InfoNCE has a closed-form landscape only for Gaussian views (no class means, no masking)"
            )
        return Landscape(loss, -p / tau, b, 1 / (2 * tau**2), None)
    return Landscape(loss, 2 * (b - p) - 2 * mu * b, b, mu, None)


def _inverse_sqrt(b: np.ndarray) -> np.ndarray:
    lam, v = np.linalg.eigh(b)
    return (v / np.sqrt(lam)) @ v.T


def _isotropic(b: np.ndarray) -> bool:
    lam = np.linalg.eigvalsh(b)
    return bool(lam[-1] - lam[0] <= TIE * lam[-1])


def _whitened(land: Landscape, weight_decay: float, bias: bool, bias_decay: float) -> tuple[np.ndarray, np.ndarray]:
    """``C = B~^-1/2 (Q~ + gamma) B~^-1/2`` and ``B~^-1/2``, the bias appended as a constant feature if it matters."""
    d = land.q.shape[0]
    root = _inverse_sqrt(land.b)
    c = root @ (land.q + weight_decay * np.eye(d)) @ root
    if bias and land.bias_q is not None:
        c = np.block([[c, np.zeros((d, 1))], [np.zeros((1, d)), np.array([[land.bias_q + bias_decay]])]])
        root = np.block([[root, np.zeros((d, 1))], [np.zeros((1, d)), np.ones((1, 1))]])
    return (c + c.T) / 2, root


def _tied(x: float, y: float, scale: float) -> bool:
    return abs(x - y) <= TIE * max(scale, 1e-300)


def _weights(modes: np.ndarray, heights: np.ndarray, root: np.ndarray, width: int, dim: int) -> tuple:
    """``W = Y B~^-1/2`` with rows ``sqrt(h_j) v_j``, padded to ``width`` rows; split into weights and bias."""
    y = np.zeros((width, root.shape[0]))
    y[: len(heights)] = np.sqrt(heights)[:, None] * modes.T
    w = y @ root
    return w[:, :dim], (w[:, dim] if root.shape[0] > dim else None)


def _refuse_bias_tie(c: np.ndarray, d: int, scale: float) -> None:
    """Refuse a bias whose eigenvalue ties one of the data's (the bias and that mode are then interchangeable)."""
    data = np.linalg.eigvalsh(c[:d, :d])
    if any(_tied(x, c[d, d], scale) for x in data):
        raise NoPredictionError("the minimiser is not unique: the bias's eigenvalue ties a data mode's")


def check_width(width: int, name: str = "width") -> int:
    """``width`` as an int, or ``InputError`` unless it is a positive integer."""
    if isinstance(width, bool) or not isinstance(width, (int, np.integer)) or width < 1:
        raise InputError(f"{name} must be a positive integer, got {width!r}")
    return int(width)


def linear_optimum(
    land: Landscape, weight_decay: float, width: int, *, bias: bool = False, bias_decay: float = 0.0
) -> Prediction:
    """The global minimum of ``L(W) + gamma |W|^2 (+ bias_decay |b|^2)`` for ``z = W v (+ b)``, ``width`` rows.

    With ``C = B^-1/2 (Q + gamma I) B^-1/2`` and its eigenpairs ``(c_j, u_j)``, the minimum keeps the
    ``width`` most negative ``c_j``: ``W = sum_j sqrt(-c_j / (2 quartic)) e_j u_j^T B^-1/2``. Its rank is the
    number of negative eigenvalues of ``Q + gamma I`` (Sylvester's law of inertia), capped by ``width``.

    Example:
        >>> land = landscape("noncontrastive", np.diag([1.0, 0.3]), np.diag([1.5, 0.8]), mu=0.5)
        >>> linear_optimum(land, 0.0, 2).rank  # 2 mu b + 2 (p - b) > gamma: 0.5 > 0 and -0.2 < 0
        1
    """
    gamma, width = check_nonnegative(weight_decay, "weight_decay"), check_width(width)
    bias_decay = check_nonnegative(bias_decay, "bias_decay")
    d = land.q.shape[0]
    c, root = _whitened(land, gamma, bias, bias_decay)
    lam, vec = np.linalg.eigh(c)
    scale = float(np.abs(lam).max())
    if c.shape[0] > d:
        _refuse_bias_tie(c, d, scale)
    negative = np.flatnonzero(lam < 0)
    keep = negative[:width]
    if len(negative) > width and _tied(lam[width - 1], lam[width], scale):
        affected = c.shape[0] > d or not _isotropic(land.b)
        if affected:
            raise NoPredictionError(
                f"the minimiser is not unique: eigenvalues {width} and {width + 1} of B^-1/2 (Q + gamma) B^-1/2 tie "
                "at the width cap"
            )
    heights = -lam[keep] / (2 * land.quartic)
    w, b = _weights(vec[:, keep], heights, root, width, d)
    data_modes = [j for j in keep if c.shape[0] == d or abs(vec[d, j]) < 0.5]
    cov = np.zeros(width)
    cov[: len(data_modes)] = np.sort(-lam[data_modes] / (2 * land.quartic))[::-1]
    sv = np.linalg.svd(w, compute_uv=False)[: min(width, d)]
    return Prediction(len(data_modes), sv, cov, w, b if bias else None)


def stationary_points(
    land: Landscape, weight_decay: float, width: int, *, bias: bool = False, bias_decay: float = 0.0
) -> list[StationaryPoint]:
    """Every stationary point of a linear encoder's landscape (one per set of modes, up to ``W -> O W``), with its kind.

    The stationary points are ``W_S`` for each set ``S`` of at most ``width`` negative eigenvalues of ``C``
    (:func:`linear_optimum`). ``W_S`` is a minimum (a global one) iff ``S`` holds the ``min(width, n_neg)``
    most negative; the origin is a maximum iff every eigenvalue is negative; all others are saddles.
    Refused (:class:`NoPredictionError`) when eigenvalues tie or one is 0 (the landscape is degenerate).

    Example:
        >>> land = landscape("spectral", np.diag([2.0, 1.0]), np.diag([2.5, 1.5]))
        >>> [(p.rank, p.kind) for p in stationary_points(land, 1.0, 1)]
        [(0, 'maximum'), (1, 'minimum'), (1, 'saddle')]
    """
    gamma, width = check_nonnegative(weight_decay, "weight_decay"), check_width(width)
    d = land.q.shape[0]
    c, root = _whitened(land, gamma, bias, check_nonnegative(bias_decay, "bias_decay"))
    lam, vec = np.linalg.eigh(c)
    scale = float(np.abs(lam).max())
    if np.any(np.abs(lam) <= TIE * scale) or np.any(np.diff(lam) <= TIE * scale):
        raise NoPredictionError("stationary points are listed only for distinct, non-zero eigenvalues of C")
    negative = np.flatnonzero(lam < 0)
    best = set(negative[:width].tolist())
    subsets = [s for r in range(min(width, len(negative)) + 1) for s in itertools.combinations(negative, r)]
    if len(subsets) > MAX_STATIONARY:
        raise InputError(f"{len(subsets)} stationary points; at most {MAX_STATIONARY} are listed")
    points = []
    for s in subsets:
        keep = np.array(s, dtype=np.int64)
        w, b = _weights(vec[:, keep], -lam[keep] / (2 * land.quartic), root, width, d)
        if set(s) == best:
            kind = "minimum"
        elif not s and len(negative) == len(lam):
            kind = "maximum"
        else:
            kind = "saddle"
        rank = sum(1 for j in s if c.shape[0] == d or abs(vec[d, j]) < 0.5)
        points.append(StationaryPoint(w, b if bias else None, rank, kind))
    return points


def two_layer_thresholds(q: float, quartic: float, b: float) -> tuple[float, float]:
    """For one mode (``q < 0``) of a two-layer encoder: the weight decay below which it is in the global minimum,
    and the one below which it is at least a local minimum (the first-order transition's two spinodals).

    Example:
        >>> [round(t, 4) for t in two_layer_thresholds(-2.0, 1.0, 1.0)]  # (2/3)^1.5 and sqrt(2) times it
        [0.5443, 0.7698]
    """
    mag = max(-q, 0.0)
    global_ = mag**1.5 / (3 * np.sqrt(3 * quartic) * b)
    return float(global_), float(np.sqrt(2) * global_)


def _mode_value(q: float, quartic: float, b: float, gamma: float) -> tuple[float, float]:
    """The best singular value ``s >= 0`` of ``f(s) = q s^2 + quartic b^2 s^4 + 2 gamma s`` and ``f(s)``."""
    if gamma == 0:
        s = np.sqrt(max(-q, 0.0) / (2 * quartic * b**2))
    else:
        roots = np.roots([2 * quartic * b**2, 0.0, q, gamma])
        real = roots[np.abs(roots.imag) <= 1e-9 * np.abs(roots).max()].real
        s = float(real.max()) if (real > 0).any() else 0.0
    f = q * s**2 + quartic * b**2 * s**4 + 2 * gamma * s
    return (float(s), float(f)) if f < 0 else (0.0, 0.0)


def two_layer_optimum(land: Landscape, weight_decay: float, width: int, hidden: int) -> Prediction:
    """The global minimum of ``L(W2 W1) + gamma (|W1|^2 + |W2|^2)``, hidden width ``hidden``, when ``B = b I``.

    Weight decay on the factors is ``2 gamma |W|_*`` at a balanced factorisation, so each eigenmode
    ``q_j`` of ``Q`` holds a singular value ``s`` minimising ``q_j s^2 + quartic b^2 s^4 + 2 gamma s``: a
    first-order transition (:func:`two_layer_thresholds`). The origin is a local minimum for every
    ``gamma > 0``. Refused when ``B`` is not a multiple of the identity (no proof that the minimiser is
    aligned with ``Q`` then).

    Example:
        >>> land = landscape("spectral", np.diag([2.0, 1.0]), 3.0 * np.eye(2))
        >>> two_layer_optimum(land, 0.2, width=2, hidden=2).rank  # thresholds 4^1.5/(9 sqrt 3)=0.51 and 0.18
        1
    """
    gamma, width, hidden = (
        check_nonnegative(weight_decay, "weight_decay"),
        check_width(width),
        check_width(hidden, "hidden"),
    )
    if not _isotropic(land.b):
        raise NoPredictionError("a two-layer encoder has a prediction only when a view's second moment is b * identity")
    d = land.q.shape[0]
    b = float(np.linalg.eigvalsh(land.b).mean())
    lam, vec = np.linalg.eigh((land.q + land.q.T) / 2)
    values = [_mode_value(float(q), land.quartic, b, gamma) for q in lam]
    alive = [j for j, (s, _) in enumerate(values) if s > 0][: min(width, hidden)]
    s = np.array([values[j][0] for j in alive])
    w1 = np.zeros((hidden, d))
    w2 = np.zeros((width, hidden))
    w1[: len(alive)] = np.sqrt(s)[:, None] * vec[:, alive].T
    w2[np.arange(len(alive)), np.arange(len(alive))] = np.sqrt(s)
    w = w2 @ w1
    sv = np.zeros(min(width, d))
    sv[: len(s)] = np.sort(s)[::-1]
    cov = np.zeros(width)
    cov[: len(s)] = b * np.sort(s)[::-1] ** 2
    return Prediction(len(alive), sv, cov, w, None, (w1, w2))


def _simplex_heights(x: np.ndarray, total: float) -> tuple[np.ndarray, float]:
    """The projection of ``x`` (descending) onto ``{h >= 0, sum h = total}``: ``max(x - theta, 0)`` and ``theta``."""
    cums = np.cumsum(x)
    j = np.arange(1, len(x) + 1)
    rho = int(np.flatnonzero(x - (cums - total) / j > 0)[-1]) + 1
    theta = float((cums[rho - 1] - total) / rho)
    return np.maximum(x - theta, 0.0), theta


def _unit_diagonal_rotation(h: np.ndarray) -> np.ndarray:
    """An orthogonal ``O`` with ``diag(O diag(h) O^T) = 1`` when ``h >= 0`` sums to ``len(h)`` (Schur-Horn, by
    Givens rotations: each one sets one diagonal entry to 1 between an entry below 1 and one above)."""
    k = len(h)
    g, o = np.diag(h.astype(np.float64)), np.eye(k)
    for _ in range(k - 1):
        dg = np.diag(g)
        lo, hi = int(np.argmin(dg)), int(np.argmax(dg))
        if dg[hi] - 1 <= 1e-12:
            break
        a, b, c = g[lo, lo], g[lo, hi], g[hi, hi]
        t = (b + np.sqrt(b * b - (a - 1) * (c - 1))) / (c - 1)  # (c - 1) t^2 - 2 b t + (a - 1) = 0
        cos, sin = 1 / np.sqrt(1 + t * t), t / np.sqrt(1 + t * t)
        r = np.eye(k)
        r[lo, lo], r[lo, hi], r[hi, lo], r[hi, hi] = cos, -sin, sin, cos
        g, o = r @ g @ r.T, r @ o
    return o


def normalised_optimum(land: Landscape, width: int, normalise: str, *, weight_decay: float = 0.0) -> Prediction:
    """The global minimum for a linear encoder whose representation is normalised (``batch`` or ``global``).

    The normalised encoder ``W~`` (each row of unit variance over views, or ``tr(W~ B W~^T) = width``) enters the
    loss only through ``H = B^1/2 W~^T W~ B^1/2``, which ranges over PSD matrices of rank <= ``width`` and trace
    ``width`` (for ``batch`` by the Schur-Horn theorem). The loss is ``quartic |H - X|^2 + const`` with
    ``X = -B^-1/2 Q B^-1/2 / (2 quartic)``, so ``H`` keeps ``X``'s eigenvectors and its ``width`` largest eigenvalues
    projected onto the simplex of sum ``width``: ``h_j = max(x_j - theta, 0)``. ``weights`` is one minimiser
    ``W~``, ``singular_values`` its singular values (unique), ``covariance`` the normalised representation's
    covariance eigenvalues ``h_j``. Weight decay is refused: the normalised loss ignores ``W``'s scale, so with
    ``gamma > 0`` it has no minimiser (``W -> 0``).

    Example:
        >>> a = np.array([1.0, 0.5, 0.05])
        >>> land = landscape("infonce", np.diag(a), np.diag(a + 0.5), temperature=4.0)
        >>> p = normalised_optimum(land, 3, "batch")  # x = tau a / (a + s) = [2.67, 2, 0.36]: theta = 0.83
        >>> p.rank, np.round(p.covariance, 3).tolist()
        (2, [1.833, 1.167, 0.0])
    """
    width = check_width(width)
    if normalise not in NORMALISATIONS or normalise == "none":
        raise InputError(f"normalise must be one of {', '.join(NORMALISATIONS[1:])}, got {normalise!r}")
    if normalise == "sample":
        raise NoPredictionError("no closed-form prediction for per-sample unit-norm representations z/|z|")
    if check_nonnegative(weight_decay, "weight_decay") > 0:
        raise NoPredictionError("a normalised loss ignores W's scale: with weight decay > 0 there is no minimiser")
    d = land.q.shape[0]
    root = _inverse_sqrt(land.b)
    x = -root @ land.q @ root / (2 * land.quartic)
    lam, vec = np.linalg.eigh((x + x.T) / 2)
    lam, vec = lam[::-1], vec[:, ::-1]
    top = min(width, d)
    heights, _ = _simplex_heights(lam[:top], float(width))
    rank = int((heights > 0).sum())
    scale = float(np.abs(lam).max())
    if top < d and rank == top and _tied(lam[top - 1], lam[top], scale):
        raise NoPredictionError(
            f"the minimiser is not unique: eigenvalues {top} and {top + 1} of -B^-1/2 Q B^-1/2 tie at the width cap"
        )
    h = np.zeros(width)
    h[:top] = heights
    y = np.zeros((width, d))
    y[:top] = np.sqrt(heights)[:, None] * vec[:, :top].T
    if normalise == "batch":
        y = _unit_diagonal_rotation(h) @ y
    w = y @ root
    sv = np.linalg.svd(w, compute_uv=False)[: min(width, d)]
    return Prediction(rank, sv, np.sort(h)[::-1], w)
