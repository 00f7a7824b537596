"""The theory against gradient descent over a grid of settings: the rank exactly, singular values within 1e-5.

Gradient descent runs full-batch on the exact expected loss (closed-form expected gradients) to a
gradient norm of 1e-10. Settings with an eigenvalue of ``B^-1/2 (Q + gamma) B^-1/2`` within 2% of 0
(a mode at its threshold, where descent slows to a crawl) are left out of the grid, and said so.
"""

import itertools

import numpy as np
import pytest

from fmbench.studies.ssl_landscape.problems import Setting
from fmbench.studies.ssl_landscape.theory import _whitened
from fmbench.studies.ssl_landscape.train import train

SV_TOL = 1e-5


def _grid() -> list[Setting]:
    base = dict(dim=5, decay=1.0)
    out = []
    for loss, gamma, (strength, width) in itertools.product(
        ("spectral", "infonce", "noncontrastive"), (0.05, 0.3, 0.9), ((0.2, 2), (1.0, 5))
    ):
        extra = {"temperature": 0.5} if loss == "infonce" else {"mu": 0.6} if loss == "noncontrastive" else {}
        out.append(Setting(**base, width=width, loss=loss, weight_decay=gamma, strength=strength, **extra))
    for gamma, width in ((0.3, 3), (0.6, 5)):  # classes, imbalance, masking; a bias
        out.append(
            Setting(
                **base,
                width=width,
                n_classes=3,
                class_scale=1.5,
                imbalance=0.2,
                weight_decay=gamma,
                augmentation="mask",
                strength=0.3,
            )
        )
        out.append(Setting(**base, width=width + 1 - width % 2, bias=True, weight_decay=0.6, strength=0.5))
    return out


def _clear_of_thresholds(s: Setting) -> bool:
    c, _ = _whitened(s.landscape(), s.weight_decay, s.bias, s.bias_decay)
    lam = np.linalg.eigvalsh(c)
    return bool(np.abs(lam).min() > 0.02 * np.abs(lam).max())


GRID = [s for s in _grid() if _clear_of_thresholds(s)]


def test_the_grid_is_large_and_spans_every_regime():
    ranks = {s.predict().rank for s in GRID}
    assert len(GRID) >= 20 and {0, 1, 2, 5} <= ranks, (len(GRID), ranks)


@pytest.mark.slow
@pytest.mark.parametrize(
    "setting",
    GRID,
    ids=lambda s: (
        f"{s.loss}-g{s.weight_decay}-s{s.strength}-k{s.width}"
        f"{'-bias' if s.bias else ''}{'-mask' if s.augmentation == 'mask' else ''}"
    ),
)
def test_gradient_descent_lands_on_the_predicted_optimum(setting):
    p, fit = setting.predict(), train(setting, seed=0, tol=1e-10)
    assert fit.converged
    sv = fit.singular_values[: len(p.singular_values)]
    assert int((sv > 1e-4).sum()) == p.rank
    np.testing.assert_allclose(sv, p.singular_values, atol=SV_TOL)
    if p.bias is not None:
        np.testing.assert_allclose(np.linalg.norm(fit.bias), np.linalg.norm(p.bias), atol=SV_TOL)


# ---- normalised representations (theory.normalised_optimum) -----------------------------------------
def _normalised_grid() -> list[Setting]:
    out = []
    for loss, normalise, (strength, width) in itertools.product(
        ("spectral", "infonce", "noncontrastive"), ("batch", "global"), ((0.2, 2), (1.0, 4))
    ):
        extra = {"temperature": 10.0} if loss == "infonce" else {"mu": 0.1} if loss == "noncontrastive" else {}
        out.append(Setting(dim=4, width=width, loss=loss, normalise=normalise, strength=strength, **extra))
    for normalise in ("batch", "global"):  # classes, imbalance, masking
        out.append(
            Setting(
                dim=4,
                width=3,
                loss="noncontrastive",
                mu=0.15,
                normalise=normalise,
                n_classes=2,
                class_scale=1.5,
                imbalance=0.3,
                augmentation="mask",
                strength=0.3,
            )
        )
    return out


NORMALISED = _normalised_grid()


def test_the_normalised_grid_has_collapsed_and_full_ranks():
    assert {(s.predict().rank < s.width) for s in NORMALISED} == {True, False}


@pytest.mark.slow
def test_gradient_descent_on_normalised_representations_lands_on_the_predicted_optimum():
    """Riemannian gradient descent (heavy ball 0.95) on the normalised encoder, to a gradient norm of 1e-9."""
    for setting in NORMALISED:
        p, fit = setting.predict(), train(setting, seed=0, tol=1e-9, max_steps=50_000, momentum=0.95)
        assert fit.converged, setting
        sv = fit.singular_values[: len(p.singular_values)]
        assert int((sv > 1e-4).sum()) == p.rank, setting
        np.testing.assert_allclose(sv, p.singular_values, atol=SV_TOL, err_msg=str(setting))
