"""The theory against gradient descent over a grid of settings: the rank exactly, singular values within 1e-5;
normalised representations likewise; minibatch SGD on sampled views against the infinite-batch closed form.

Gradient descent runs full-batch on the exact expected loss (closed-form expected gradients), with
heavy-ball momentum 0.9 (7x faster than plain descent on this grid, same fixed points; plain descent is
checked in tests/test_ssl_landscape.py and the study page's phase diagrams), to a gradient norm of 1e-10.
Settings with an eigenvalue of ``B^-1/2 (Q + gamma) B^-1/2`` within 2% of 0 (a mode at its threshold,
where descent slows to a crawl) are left out of the grid, and said so.
"""

import itertools

import numpy as np
import pytest
from scipy.special import logsumexp

from fmbench.errors import InputError
from fmbench.studies.ssl_landscape.evaluate import spectrum_error
from fmbench.studies.ssl_landscape.minibatch import batch_gradient, train_minibatch
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
    p, fit = setting.predict(), train(setting, seed=0, tol=1e-10, momentum=0.9)
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


# ---- minibatch SGD on sampled views (minibatch.train_minibatch) ----------------------------------------
def _batch_loss(s, w, v1, v2):
    n, (z1, z2) = len(v1), (v1 @ w.T, v2 @ w.T)
    if s.loss == "spectral":
        k = z1 @ z2.T
        return -2 * np.trace(k) / n + ((k**2).sum() - (np.diag(k) ** 2).sum()) / (n * (n - 1))
    if s.loss == "infonce":
        k = z1 @ z2.T / s.temperature
        return np.mean(-np.diag(k) + logsumexp(k, axis=1)) - np.log(n)
    z = np.concatenate([z1, z2])
    zc = z - z.mean(0)
    return ((z1 - z2) ** 2).sum(1).mean() + s.mu * ((zc.T @ zc / len(z) - np.eye(len(w))) ** 2).sum()


@pytest.mark.parametrize("loss", ["spectral", "infonce", "noncontrastive"])
def test_batch_gradients_match_finite_differences(loss):
    s = Setting(dim=4, width=3, loss=loss, weight_decay=0.3, mu=0.7, temperature=0.6)
    rng = np.random.default_rng(0)
    w, v1, v2 = rng.normal(size=(3, 4)), rng.normal(size=(6, 4)), rng.normal(size=(6, 4))
    numeric = np.zeros_like(w)
    for i, j in itertools.product(range(3), range(4)):
        step = np.zeros_like(w)
        step[i, j] = 1e-6
        plus = _batch_loss(s, w + step, v1, v2) + 0.3 * ((w + step) ** 2).sum()
        minus = _batch_loss(s, w - step, v1, v2) + 0.3 * ((w - step) ** 2).sum()
        numeric[i, j] = (plus - minus) / 2e-6
    np.testing.assert_allclose(batch_gradient(s, w, v1, v2), numeric, atol=1e-6)


@pytest.mark.slow
def test_minibatch_infonce_approaches_the_closed_form_as_the_batch_grows():
    """4 samples (3 negatives) land far from the infinite-negative optimum; 64 land close (400 steps each)."""
    s = Setting(dim=4, width=4, loss="infonce", temperature=0.5, weight_decay=0.6, strength=0.5)
    p, b = s.predict(), s.landscape().b

    def error(batch):
        w = train_minibatch(s, 0, batch=batch, steps=400).weights
        return spectrum_error(np.clip(np.linalg.eigvalsh(w @ b @ w.T), 0, None), p.covariance)

    small, large = error(4), error(64)
    assert large < 0.1 < 0.25 < small, (small, large)


@pytest.mark.parametrize(
    "kw,batch,message",
    [
        (dict(), 1, "at least 2 samples"),
        (dict(normalise="batch"), 8, "unnormalised encoders only"),
        (dict(bias=True), 8, "bias-free"),
    ],
)
def test_minibatch_training_refuses_what_it_does_not_cover(kw, batch, message):
    with pytest.raises(InputError, match=message):
        train_minibatch(Setting(dim=3, width=2, **kw), 0, batch=batch, steps=10)
