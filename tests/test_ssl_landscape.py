"""SSL landscape study: closed-form theory, its expected losses, stationary points, evaluator, bad inputs."""

import numpy as np
import pytest
import torch

import fmbench
from fmbench.errors import InputError, ModelError
from fmbench.models import from_module
from fmbench.random_access import stream_key
from fmbench.studies.ssl_landscape.evaluate import collapse_metrics, effective_rank, spectrum_error
from fmbench.studies.ssl_landscape.problems import Setting
from fmbench.studies.ssl_landscape.theory import (
    NoPredictionError,
    landscape,
    linear_optimum,
    normalised_optimum,
    stationary_points,
    two_layer_optimum,
    two_layer_thresholds,
)
from fmbench.studies.ssl_landscape.train import train


def expected_loss(land, w, gamma=0.0):
    g = w.T @ w
    return np.trace(land.q @ g) + land.quartic * np.trace(land.b @ g @ land.b @ g) + gamma * (w**2).sum()


def gradient(land, w, gamma):
    wb = w @ land.b
    return 2 * w @ land.q + 4 * land.quartic * (wb @ w.T) @ wb + 2 * gamma * w


# ---- known answers ------------------------------------------------------------------------------
def test_spectral_additive_noise_matches_the_hand_derivation():
    """STUDIES.md 7: mode i survives iff 2 a_i > gamma, with s_i^2 = (2 a_i - gamma) / (2 (a_i + s)^2)."""
    a, s, gamma = np.array([3.0, 1.0, 0.6, 0.2]), 0.7, 1.0
    p = linear_optimum(landscape("spectral", np.diag(a), np.diag(a + s)), gamma, width=4)
    expected = np.clip((2 * a - gamma) / (2 * (a + s) ** 2), 0, None)
    assert p.rank == int((2 * a > gamma).sum()) == 3
    np.testing.assert_allclose(np.sort(p.singular_values**2)[::-1], np.sort(expected)[::-1], atol=1e-12)


def test_rank_is_the_inertia_of_q_plus_gamma_whatever_b():
    """Sylvester: the rank is the number of negative eigenvalues of Q + gamma I, capped by the width."""
    rng = np.random.default_rng(0)
    for _ in range(5):
        m = rng.normal(size=(6, 6))
        a = m @ m.T / 6
        b = a + np.diag(rng.uniform(0.1, 2.0, 6))  # anisotropic augmentation
        land = landscape("spectral", a, b)
        for gamma in (0.1, 0.5, 1.5):
            n_neg = int((np.linalg.eigvalsh(land.q + gamma * np.eye(6)) < 0).sum())
            for width in (2, 6):
                assert linear_optimum(land, gamma, width).rank == min(width, n_neg)


def test_the_optimum_is_stationary_and_beats_random_weights():
    s = Setting(dim=6, width=3, n_classes=3, class_scale=1.5, augmentation="mask", strength=0.2, weight_decay=0.4)
    land, p = s.landscape(), s.predict()
    assert np.abs(gradient(land, p.weights, 0.4)).max() < 1e-10
    best = expected_loss(land, p.weights, 0.4)
    rng = np.random.default_rng(1)
    for _ in range(20):
        w = p.weights + 0.05 * rng.normal(size=p.weights.shape)
        assert expected_loss(land, w, 0.4) > best


def test_infonce_threshold_is_temperature_times_weight_decay():
    a = np.array([1.0, 0.5, 0.2])
    land = landscape("infonce", np.diag(a), np.diag(a + 0.3), temperature=0.5)
    assert linear_optimum(land, 0.9, 3).rank == 2  # a_i > tau gamma = 0.45
    assert linear_optimum(land, 1.1, 3).rank == 1  # a_i > 0.55


def test_noncontrastive_collapse_is_driven_by_augmentation():
    """Mode i survives iff 2 mu (a_i + s) - 2 s > gamma: stronger augmentation collapses weak modes."""
    a = np.array([1.0, 0.5, 0.25, 0.125])
    ranks = [
        linear_optimum(landscape("noncontrastive", np.diag(a), np.diag(a + s), mu=0.5), 0.05, 4).rank
        for s in (0.0, 0.1, 0.4, 1.0)
    ]
    expected = [int((2 * 0.5 * (a + s) - 2 * s > 0.05).sum()) for s in (0.0, 0.1, 0.4, 1.0)]
    assert ranks == expected == [4, 3, 2, 0]


def test_spectral_bias_takes_a_direction_when_the_width_is_full():
    a = np.array([2.0, 1.0, 0.8, 0.6])
    land = landscape("spectral", np.diag(a), np.diag(a + 0.5))
    assert linear_optimum(land, 0.2, width=6, bias=True).rank == 4  # room for the bias: no collapse
    p = linear_optimum(land, 0.2, width=4, bias=True)
    assert p.rank == 3 and np.linalg.norm(p.bias) == pytest.approx(1.0)  # heights < 1: the bias wins a slot
    assert linear_optimum(land, 0.2, width=4, bias=True, bias_decay=1.9).rank == 4  # a decayed bias loses it


@pytest.mark.slow
def test_two_layer_transition_is_first_order_and_depends_on_augmentation():
    q, b = -2.0, 1.5
    glob, spinodal = two_layer_thresholds(q, 1.0, b)
    land = landscape("spectral", np.eye(3), b * np.eye(3))
    assert two_layer_optimum(land, 0.98 * glob, 3, 3).rank == 3
    assert two_layer_optimum(land, 1.02 * glob, 3, 3).rank == 0
    jump = two_layer_optimum(land, 0.999 * glob, 3, 3).singular_values[0]
    assert jump > 0.3  # a finite jump at the transition, not a continuous onset
    stronger = landscape("spectral", np.eye(3), 2.5 * np.eye(3))  # more augmentation noise: collapses earlier
    assert two_layer_optimum(stronger, 0.98 * glob, 3, 3).rank == 0
    # gradient descent: the origin is stable (gamma > 0), and a mode between the spinodals is metastable
    s = Setting(dim=3, width=3, hidden=3, spectrum=(1.0, 1.0, 1.0), strength=0.5, weight_decay=0.5 * (glob + spinodal))
    assert np.abs(train(s, 0, init_scale=0.01, tol=1e-8).singular_values).max() < 1e-6
    assert two_layer_optimum(s.landscape(), s.weight_decay, 3, 3).rank == 0
    assert train(s, 0, init_scale=3.0, tol=1e-6, max_steps=20_000).singular_values.min() > 0.3


# ---- stationary points ---------------------------------------------------------------------------
@pytest.mark.parametrize("bias", [False, True])
def test_every_listed_stationary_point_is_stationary_and_of_its_kind(bias):
    a = np.array([2.0, 1.0, 0.45])
    land = landscape("spectral", np.diag(a), np.diag(a + 0.3))
    points = stationary_points(land, 0.8, width=2, bias=bias)
    assert sum(p.kind == "minimum" for p in points) == 1
    q = land.q if not bias else np.diag([*np.diag(land.q), -2.0])
    b = land.b if not bias else np.diag([*np.diag(land.b), 1.0])
    decay = np.array([0.8] * 3 + [0.0] * bias)
    aug = type(land)(land.loss, q, b, land.quartic, None)
    for p in points:
        w = p.weights if not bias else np.column_stack([p.weights, p.bias])
        grad = 2 * w @ (aug.q + np.diag(decay)) + 4 * aug.quartic * (w @ aug.b @ w.T) @ w @ aug.b
        assert np.abs(grad).max() < 1e-10
        hess = _hessian(aug, w, decay)
        low, high = np.linalg.eigvalsh(hess)[[0, -1]]
        kind = "minimum" if low > -1e-7 else ("maximum" if high < 1e-7 else "saddle")
        assert kind == p.kind, (p.rank, low, high)


def _hessian(land, w, decay, eps=1e-6):
    def grad(v):
        m = v.reshape(w.shape)
        return (2 * m @ (land.q + np.diag(decay)) + 4 * land.quartic * (m @ land.b @ m.T) @ m @ land.b).ravel()

    n = w.size
    cols = [(grad(w.ravel() + eps * e) - grad(w.ravel() - eps * e)) / (2 * eps) for e in np.eye(n)]
    h = np.array(cols)
    return (h + h.T) / 2


# ---- the expected losses against samples -------------------------------------------------------
def moment_terms(land, w):
    """The closed form's two terms: ``tr(Q G)`` and ``quartic tr(B G B G)``."""
    g = w.T @ w
    return np.trace(land.q @ g), land.quartic * np.trace(land.b @ g @ land.b @ g)


@pytest.mark.slow
@pytest.mark.parametrize("augmentation", ["additive", "mask"])
def test_closed_form_losses_match_monte_carlo(augmentation):
    """Each term of the spectral and non-contrastive expected losses against 60,000 sampled pairs (2%: the
    fourth-moment term's sampling error)."""
    s = Setting(dim=4, width=2, n_classes=2, class_scale=1.0, augmentation=augmentation, strength=0.3)
    x = s.sample(0, "pretrain", np.arange(60_000))[0]
    v1, v2 = s.augment(x, stream_key("v1")), s.augment(x, stream_key("v2"))
    w = np.random.default_rng(2).normal(size=(2, 4)) * 0.5
    z1, z2 = v1 @ w.T, v2 @ w.T
    z2_other = np.roll(z2, 1, axis=0)  # an independent sample's view
    p, b = s.view_moments()
    linear, quartic = moment_terms(landscape("spectral", p, b), w)
    assert linear == pytest.approx(-2 * (z1 * z2).sum(1).mean(), rel=0.02)
    assert quartic == pytest.approx(((z1 * z2_other).sum(1) ** 2).mean(), rel=0.02)
    zc = np.concatenate([z1, z2]) - np.concatenate([z1, z2]).mean(0)
    cov = zc.T @ zc / len(zc)
    nc = ((z1 - z2) ** 2).sum(1).mean() + 0.5 * ((cov - np.eye(2)) ** 2).sum()
    closed = sum(moment_terms(landscape("noncontrastive", p, b, mu=0.5), w)) + 0.5 * 2  # + mu |I|^2
    assert closed == pytest.approx(nc, rel=0.02)


@pytest.mark.slow
def test_infonce_with_many_negatives_matches_its_closed_form_on_gaussian_views():
    """``log E' exp(z1.z2'/tau)`` is ``z1^T M z1 / (2 tau^2)`` for Gaussian views (small logits: the sampled
    mean over 19,600 negatives is then accurate)."""
    s = Setting(dim=3, width=2, strength=0.4)
    x = s.sample(0, "pretrain", np.arange(20_000))[0]
    v1, v2 = s.augment(x, stream_key("a")), s.augment(x, stream_key("b"))
    w, tau = np.random.default_rng(3).normal(size=(2, 3)) * 0.25, 1.0
    z1, z2 = v1 @ w.T, v2 @ w.T
    logits = z1[:400] @ z2[400:].T / tau
    p, b = s.view_moments()
    linear, quartic = moment_terms(landscape("infonce", p, b, temperature=tau), w)
    assert linear == pytest.approx(-(z1 * z2).sum(1).mean() / tau, rel=0.02)
    assert quartic == pytest.approx(np.log(np.exp(logits).mean(1)).mean(), rel=0.05)


# ---- normalised representations -------------------------------------------------------------------
@pytest.mark.parametrize("normalise", ["batch", "global"])
def test_normalisation_stops_the_spectral_loss_from_collapsing_dimensionally(normalise):
    """x_j = eig(B^-1/2 P B^-1/2) lies in [0, 1] and the heights sum to the width, so theta <= 0 and every
    h_j = x_j - theta > 0: rank min(width, dim) whatever the data and augmentation, even where P is singular."""
    rng = np.random.default_rng(4)
    for shared in (5, 5, 3, 1):  # the positive pairs share a rank-`shared` signal; the width still fills
        m = rng.normal(size=(5, shared))
        a = m @ m.T / shared
        land = landscape("spectral", a, a + np.diag(rng.uniform(0.1, 3.0, 5)))
        for width in (1, 3, 5, 7):
            if shared < width < 5:  # the width cap falls inside the unshared directions' tied x_j = 0
                with pytest.raises(NoPredictionError, match="not unique"):
                    normalised_optimum(land, width, normalise)
            else:
                assert normalised_optimum(land, width, normalise).rank == min(width, 5)


@pytest.mark.parametrize("normalise", ["batch", "global"])
def test_the_normalised_minimiser_is_normalised_and_beats_random_normalised_weights(normalise):
    s = Setting(dim=5, width=4, loss="infonce", temperature=10.0, strength=0.4, normalise=normalise)
    land, p = s.landscape(), s.predict()
    w = p.weights
    m = w @ land.b @ w.T
    if normalise == "batch":
        np.testing.assert_allclose(np.diag(m), 1.0, atol=1e-12)
    assert np.trace(m) == pytest.approx(4.0)
    np.testing.assert_allclose(np.sort(np.linalg.eigvalsh(m))[::-1], p.covariance, atol=1e-12)
    assert 0 < p.rank < 4  # x = 10 a_i / (a_i + 0.4): the weakest of the top 4 falls below theta
    best = expected_loss(land, w)
    rng = np.random.default_rng(5)
    for _ in range(50):
        r = w + 0.3 * rng.normal(size=w.shape)
        scale = np.sqrt(np.diag(r @ land.b @ r.T)) if normalise == "batch" else np.sqrt(np.trace(r @ land.b @ r.T) / 4)
        r = r / (scale[:, None] if normalise == "batch" else scale)
        assert expected_loss(land, r) > best


# ---- gradient descent (a cheap subset; the grid is in test_ssl_landscape_training.py) ------------
@pytest.mark.slow
@pytest.mark.parametrize("kw", [dict(), dict(loss="noncontrastive", mu=0.5, strength=0.6, weight_decay=0.05)])
def test_gradient_descent_reaches_the_predicted_optimum(kw):
    s = Setting(dim=4, width=3, **{"weight_decay": 0.3, **kw})
    p, fit = s.predict(), train(s, seed=1, tol=1e-10)
    assert fit.converged
    np.testing.assert_allclose(fit.singular_values[: len(p.singular_values)], p.singular_values, atol=1e-6)


# ---- evaluator ------------------------------------------------------------------------------------
def test_collapse_metrics_tell_complete_dimensional_and_none():
    rng = np.random.default_rng(0)
    z = rng.normal(size=(500, 3))
    assert collapse_metrics(np.zeros((500, 3)), 3)["complete_collapse"] == 1.0
    assert collapse_metrics(z * [1, 1, 0], 3)["dimensional_collapse"] == 1.0
    full = collapse_metrics(z, 3)
    assert full["rank"] == 3 and full["complete_collapse"] == full["dimensional_collapse"] == 0.0
    assert effective_rank(np.array([1.0, 1.0, 0.0])) == pytest.approx(2.0)
    assert spectrum_error(np.array([1.0, 0.5]), np.array([1.0, 0.5, 0.0])) == 0.0


@pytest.mark.slow
def test_collapse_helps_a_few_label_probe_more_than_per_feature_standardising_would_hide():
    task = fmbench.make_task("fmbench/SSLNonContrastiveNoise-v0")
    opt = task.evaluate(task.load_baseline("optimum"), seed=0, limit=400)
    rnd = task.evaluate(task.load_baseline("random"), seed=0, limit=400)
    assert opt["dimensional_collapse"] == 1.0 and opt["probe_accuracy"] > rnd["probe_accuracy"]


# ---- bad input ----------------------------------------------------------------------------------------
@pytest.mark.parametrize(
    "kw,message",
    [
        (dict(spectrum=(1.0, 0.0, 1.0), dim=3), "spectrum must be positive"),
        (dict(spectrum=(1.0, -1.0, 1.0), dim=3), "spectrum must be positive"),
        (dict(weight_decay=-0.1), "weight_decay must be a finite number >= 0"),
        (dict(temperature=-1.0), "temperature must be a finite number >= 0"),
        (dict(temperature=0.0), "temperature must be > 0"),
        (dict(augmentation="mask", strength=1.0), "drop probability must be < 1"),
        (dict(imbalance=0.0), "imbalance must be in (0, 1]"),
        (dict(normalise="layer"), "unknown normalise 'layer'"),
    ],
)
def test_bad_settings_are_refused_in_one_line(kw, message):
    with pytest.raises(InputError, match=message.replace("(", r"\(").replace(")", r"\)").replace("[", r"\[")) as e:
        Setting(**kw)
    assert "\n" not in str(e.value)


@pytest.mark.parametrize(
    "kw,message",
    [
        (dict(normalise="sample"), "per-sample unit-norm"),
        (dict(normalise="batch", weight_decay=0.1), "with weight decay > 0 there is no minimiser"),
        (dict(normalise="global", bias=True), "only for a bias-free linear map"),
        (dict(normalise="batch", hidden=2, spectrum=(1.0,) * 6), "only for a bias-free linear map"),
        (dict(hidden=3), "two-layer encoder has a prediction only when"),
        (dict(hidden=3, bias=True, spectrum=(1.0,) * 4, dim=4), "two-layer encoder with a bias"),
        (dict(loss="infonce", n_classes=2, class_scale=1.0), "InfoNCE has a closed-form landscape only for Gaussian"),
        (dict(loss="infonce", augmentation="mask", strength=0.2), "only for Gaussian views"),
        (dict(spectrum=(1.0, 2.0, 1.0, 3.0), dim=4, width=2, augmentation="mask", strength=0.3), "not unique"),
    ],
)
def test_settings_without_a_prediction_say_so_in_one_line(kw, message):
    s = Setting(**{"dim": 6, "width": 3, **kw})
    with pytest.raises(NoPredictionError, match=message) as e:
        s.predict()
    assert "\n" not in str(e.value)


class _Bad(torch.nn.Module):
    def __init__(self, mode):
        super().__init__()
        self.mode, self.calls, self.w = mode, 0, torch.nn.Parameter(torch.ones(1))

    def forward(self, x):
        self.calls += 1
        if self.mode == "nan":
            return torch.full((len(x), 2), float("nan"))
        return torch.zeros(len(x), 2 + (self.calls > 1))


@pytest.mark.parametrize("mode,message", [("nan", "NaN or infinite"), ("width", "returned width 3 after 2")])
def test_a_broken_encoder_is_refused_in_one_line(mode, message):
    task = fmbench.make_task("fmbench/SSLSpectralNoise-v0")
    model = from_module(_Bad(mode), "python:bad", "bad", interface="vector-encoder")
    with pytest.raises(ModelError, match=message) as e:
        task.evaluate(model, seed=0, limit=100)
    assert "\n" not in str(e.value)


@pytest.mark.slow
def test_imbalance_collapses_the_rarest_class_mode_and_its_probe_accuracy():
    import dataclasses

    from fmbench.studies.ssl_landscape.reproduce import _probe

    base = Setting(dim=12, width=12, n_classes=4, class_scale=1.0, strength=0.5, decay=1.5, weight_decay=0.2)
    rare = dataclasses.replace(base, imbalance=0.02)
    assert rare.predict().rank == base.predict().rank - 1
    assert _probe(rare, 0, n_train=5)[1] < _probe(base, 0, n_train=5)[1] - 0.2
