"""The problem generator: a linear-SSL setting, its data (seeded, random-access) and its closed-form moments.

Data: ``x = mu_y - m + sqrt(a) * xi`` with ``xi`` standard normal, ``a`` the within-class spectrum
(``spectrum``, else ``a_i = i^-decay`` for ``i = 1..dim``), class ``y`` of ``n_classes`` with means
``class_scale * e_c`` on the *last* ``n_classes`` coordinates (where the spectrum is smallest) and
priors ``pi_c`` proportional to ``imbalance^(c / (n_classes - 1))`` (``imbalance``: the rarest
class's prior over the commonest's); ``m = sum_c pi_c mu_c`` centres the data. Augmentation:
``additive`` (``v = x + e``, ``e ~ N(0, strength I)``) or ``mask`` (each coordinate of ``x`` zeroed
with probability ``strength``, no rescaling). Normalisation of the representation (``normalise``):
``none``, ``batch`` (each feature standardised over the views), ``global`` (one scale for all features)
or ``sample`` (``z / |z|``, no prediction). The pretraining distribution is imbalanced; the probe's
``train`` and ``test`` splits are class-balanced (labels cycle through the classes).

Example:
    >>> s = Setting(dim=4, width=2, strength=0.5, weight_decay=1.0)
    >>> np.round(np.diag(s.data_moment()), 3).tolist()
    [1.0, 0.5, 0.333, 0.25]
    >>> s.predict().rank  # 2 a_i > gamma = 1 holds for a_1 = 1 only (2 x 0.5 is not > 1)
    1
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

import numpy as np
from scipy.special import ndtr

from fmbench.errors import InputError
from fmbench.random_access import check_seed, normals, stream_key
from fmbench.studies.ssl_landscape.theory import (
    LOSSES,
    NORMALISATIONS,
    Landscape,
    NoPredictionError,
    Prediction,
    check_nonnegative,
    check_width,
    landscape,
    linear_optimum,
    normalised_optimum,
    two_layer_optimum,
)

AUGMENTATIONS = ("additive", "mask")


@dataclass(frozen=True)
class Setting:
    """One linear-SSL problem: data, augmentation, loss, regularisation and encoder shape (see the module doc)."""

    dim: int = 16
    width: int = 8
    hidden: int = 0
    spectrum: tuple[float, ...] | None = None
    decay: float = 1.0
    n_classes: int = 1
    class_scale: float = 0.0
    imbalance: float = 1.0
    augmentation: str = "additive"
    strength: float = 0.5
    loss: str = "spectral"
    weight_decay: float = 0.0
    temperature: float = 1.0
    mu: float = 1.0
    bias: bool = False
    bias_decay: float = 0.0
    normalise: str = "none"

    def __post_init__(self) -> None:
        check_width(self.dim, "dim")
        check_width(self.width, "width")
        if isinstance(self.hidden, bool) or not isinstance(self.hidden, int) or self.hidden < 0:
            raise InputError(f"hidden must be an integer >= 0 (0: a linear encoder), got {self.hidden!r}")
        if self.spectrum is not None:
            a = np.asarray(self.spectrum, dtype=np.float64)
            if a.shape != (self.dim,):
                raise InputError(f"spectrum must have dim={self.dim} values, got {a.size}")
            if not np.isfinite(a).all() or (a <= 0).any():
                raise InputError(f"spectrum must be positive and finite, got {list(self.spectrum)}")
        check_nonnegative(self.decay, "decay")
        check_width(self.n_classes, "n_classes")
        if self.n_classes > self.dim:
            raise InputError(f"n_classes ({self.n_classes}) must be <= dim ({self.dim})")
        check_nonnegative(self.class_scale, "class_scale")
        if not 0 < self.imbalance <= 1:
            raise InputError(f"imbalance must be in (0, 1] (rarest over commonest prior), got {self.imbalance!r}")
        if self.augmentation not in AUGMENTATIONS:
            raise InputError(f"unknown augmentation {self.augmentation!r}; known: {', '.join(AUGMENTATIONS)}")
        check_nonnegative(self.strength, "strength")
        if self.augmentation == "mask" and self.strength >= 1:
            raise InputError(f"a mask's drop probability must be < 1, got {self.strength}")
        if self.loss not in LOSSES:
            raise InputError(f"unknown loss {self.loss!r}; known: {', '.join(LOSSES)}")
        check_nonnegative(self.weight_decay, "weight_decay")
        check_nonnegative(self.bias_decay, "bias_decay")
        if self.normalise not in NORMALISATIONS:
            raise InputError(f"unknown normalise {self.normalise!r}; known: {', '.join(NORMALISATIONS)}")
        for name in ("temperature", "mu"):
            if check_nonnegative(getattr(self, name), name) == 0:
                raise InputError(f"{name} must be > 0, got {getattr(self, name)}")

    @classmethod
    def from_params(cls, params: dict[str, Any]) -> Setting:
        """A setting from a task's ``params`` (unknown keys are the task schema's business)."""
        known = {k: v for k, v in params.items() if k in cls.__dataclass_fields__}
        if "spectrum" in known:
            known["spectrum"] = tuple(float(v) for v in known["spectrum"])
        return cls(**known)

    def describe(self) -> dict[str, Any]:
        """The setting's fields as plain data."""
        return asdict(self)

    # ---- moments ----------------------------------------------------------------------------
    def within_class(self) -> np.ndarray:
        """The within-class spectrum ``a`` (``dim`` values)."""
        if self.spectrum is not None:
            return np.asarray(self.spectrum, dtype=np.float64)
        return np.arange(1, self.dim + 1, dtype=np.float64) ** -self.decay

    def priors(self) -> np.ndarray:
        """The pretraining distribution's class priors (sum 1; the first class the commonest)."""
        k = self.n_classes
        w = self.imbalance ** (np.arange(k) / max(k - 1, 1))
        return w / w.sum()

    def means(self) -> np.ndarray:
        """``(n_classes, dim)`` class means, centred under the priors."""
        mu = np.zeros((self.n_classes, self.dim))
        mu[np.arange(self.n_classes), self.dim - self.n_classes + np.arange(self.n_classes)] = self.class_scale
        return mu - self.priors() @ mu

    def data_moment(self) -> np.ndarray:
        """``A = E[x x^T]`` of the (zero-mean) pretraining data."""
        mu, pi = self.means(), self.priors()
        return np.diag(self.within_class()) + (mu.T * pi) @ mu

    def view_moments(self) -> tuple[np.ndarray, np.ndarray]:
        """``(P, B)``: the cross moment ``E[v1 v2^T]`` of two views of one ``x`` and a view's second moment."""
        a, s = self.data_moment(), self.strength
        if self.augmentation == "additive":
            return a, a + s * np.eye(self.dim)
        keep = 1 - s
        return keep**2 * a, keep**2 * a + s * keep * np.diag(np.diag(a))

    @property
    def gaussian(self) -> bool:
        """Whether the views are jointly Gaussian (one class, or no class signal, and additive noise)."""
        return (self.n_classes == 1 or self.class_scale == 0) and self.augmentation == "additive"

    def landscape(self) -> Landscape:
        """The expected loss (:func:`~fmbench.studies.ssl_landscape.theory.landscape`) of this setting."""
        p, b = self.view_moments()
        return landscape(self.loss, p, b, temperature=self.temperature, mu=self.mu, gaussian=self.gaussian)

    def predict(self) -> Prediction:
        """The closed-form global minimum, or :class:`NoPredictionError` saying why there is none."""
        if self.normalise != "none":
            if self.hidden or self.bias:
                raise NoPredictionError("a normalised representation has a prediction only for a bias-free linear map")
            return normalised_optimum(self.landscape(), self.width, self.normalise, weight_decay=self.weight_decay)
        if self.hidden:
            if self.bias:
                raise NoPredictionError("no closed-form prediction for a two-layer encoder with a bias")
            return two_layer_optimum(self.landscape(), self.weight_decay, self.width, self.hidden)
        return linear_optimum(
            self.landscape(), self.weight_decay, self.width, bias=self.bias, bias_decay=self.bias_decay
        )

    # ---- samples ----------------------------------------------------------------------------
    def labels(self, seed: int, split: str, index: np.ndarray) -> np.ndarray:
        """Class labels of items ``index``: drawn from the priors for ``pretrain``, cycling for ``train``/``test``."""
        index = np.asarray(index, dtype=np.int64)
        if split != "pretrain":
            return index % self.n_classes
        u = ndtr(normals(stream_key("ssl_landscape.label", check_seed(seed), split), index, 1)[:, 0])  # uniform
        return np.minimum(np.searchsorted(np.cumsum(self.priors()), u, side="right"), self.n_classes - 1)

    def sample(self, seed: int, split: str, index: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """``(x, y)`` of items ``index`` of ``split`` for ``seed``: ``(n, dim)`` float64 and ``(n,)`` int64.

        Item ``i`` depends only on the setting, the seed, the split and ``i``.
        """
        index = np.asarray(index, dtype=np.int64)
        y = self.labels(seed, split, index)
        xi = normals(stream_key("ssl_landscape.x", check_seed(seed), split), index, self.dim)
        return self.means()[y] + np.sqrt(self.within_class()) * xi, y

    def augment(self, x: np.ndarray, key: int) -> np.ndarray:
        """One augmented view of each row of ``x`` (row ``r`` drawn from ``key`` and ``r``)."""
        noise = normals(key, np.arange(len(x)), self.dim)
        if self.augmentation == "additive":
            return x + np.sqrt(self.strength) * noise
        return x * (ndtr(noise) >= self.strength)  # each coordinate kept with probability 1 - strength


__all__ = ["AUGMENTATIONS", "NoPredictionError", "Setting"]
