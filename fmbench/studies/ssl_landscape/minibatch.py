"""Minibatch SGD on sampled views: how far finite batches land from the infinite-batch closed form.

Each step draws ``batch`` fresh inputs from the setting's ``pretrain`` stream (step ``t`` takes items
``t batch`` to ``(t + 1) batch - 1``) and two augmented views of each, and takes a gradient step on the
batch loss (weight decay ``2 gamma W`` added):

* ``spectral``: ``-2 mean_i z1_i.z2_i + mean_{i != j} (z1_i.z2_j)^2``, an *unbiased* estimate of the
  expected loss, so only SGD noise separates it from the closed form;
* ``infonce``: ``mean_i [-s_ii + log sum_j exp s_ij] - log batch``, ``s_ij = z1_i.z2_j / tau``: the usual
  InfoNCE with the other ``batch - 1`` samples' views as negatives (the positive in the denominator),
  which tends to the infinite-negative loss of the theory as the batch grows; at a finite batch it is a
  *different*, biased objective;
* ``noncontrastive``: ``mean_i |z1_i - z2_i|^2 + mu |C - I|^2`` with ``C`` the covariance of the batch's
  ``2 batch`` embeddings (centred): biased at a finite batch too.

The step size is the full-batch trainer's safe step (:func:`~fmbench.studies.ssl_landscape.train.safe_step`)
times ``lr_scale``, held for the first half of the steps and decayed linearly to 0 over the second half,
so that SGD noise anneals away. Linear, bias-free, unnormalised encoders only.

Example:
    >>> from fmbench.studies.ssl_landscape.problems import Setting
    >>> s = Setting(dim=3, width=3, spectrum=(2.0, 1.0, 0.2), strength=0.5, weight_decay=1.0)
    >>> fit = train_minibatch(s, seed=0, batch=32, steps=200)
    >>> np.round(fit.singular_values ** 2, 2).tolist()  # the closed form: [0.24, 0.222, 0.0]
    [0.24, 0.23, 0.0]
"""

from __future__ import annotations

import numpy as np

from fmbench.errors import InputError
from fmbench.random_access import check_seed, normals, stream_key
from fmbench.studies.ssl_landscape.problems import Setting
from fmbench.studies.ssl_landscape.theory import check_width
from fmbench.studies.ssl_landscape.train import Fit, safe_step

CHUNK = 8192
"""Samples drawn at once (whole batches): item ``i`` of the ``pretrain`` stream feeds step ``i // batch``."""


def batch_gradient(setting: Setting, w: np.ndarray, v1: np.ndarray, v2: np.ndarray) -> np.ndarray:
    """The gradient in ``W`` of ``setting``'s batch loss on views ``v1``, ``v2`` ``(batch, dim)``, weight decay
    included.

    Example:
        >>> s = Setting(dim=2, width=1, loss="noncontrastive", mu=0.5)
        >>> batch_gradient(s, np.zeros((1, 2)), np.eye(2), np.eye(2)).tolist()  # 0 is stationary
        [[0.0, 0.0]]
    """
    n = len(v1)
    z1, z2 = v1 @ w.T, v2 @ w.T
    if setting.loss == "spectral":  # O(batch k^2): sum_j (z1_i.z2_j) z2_j = z1_i (Z2^T Z2), less the j = i term
        pos, c = (z1 * z2).sum(axis=1, keepdims=True), 2 / (n * (n - 1))
        d1 = -2 * z2 / n + c * (z1 @ (z2.T @ z2) - pos * z2)
        d2 = -2 * z1 / n + c * (z2 @ (z1.T @ z1) - pos * z1)
    elif setting.loss == "infonce":
        s = z1 @ z2.T / setting.temperature
        p = np.exp(s - s.max(axis=1, keepdims=True))
        ds = (p / p.sum(axis=1, keepdims=True) - np.eye(n)) / (n * setting.temperature)
        d1, d2 = ds @ z2, ds.T @ z1
    else:
        z = np.concatenate([z1, z2])
        zc = z - z.mean(axis=0)
        dz = 4 * setting.mu * zc @ (zc.T @ zc / len(z) - np.eye(w.shape[0])) / len(z)
        d1, d2 = dz[:n] + 2 * (z1 - z2) / n, dz[n:] - 2 * (z1 - z2) / n
    return d1.T @ v1 + d2.T @ v2 + 2 * setting.weight_decay * w


def train_minibatch(setting: Setting, seed: int, *, batch: int, steps: int, lr_scale: float = 1.0) -> Fit:
    """Minibatch SGD from the full-batch trainer's seeded start (see the module doc); ``Fit.converged`` is False
    (no gradient-norm criterion applies to a stochastic gradient).

    Raises:
        InputError: a batch below 2, no steps, or a setting outside linear, bias-free, unnormalised encoders.
    """
    seed, batch, steps = check_seed(seed), check_width(batch, "batch"), check_width(steps, "steps")
    if batch < 2:
        raise InputError(f"a batch needs at least 2 samples (one positive, one negative), got {batch}")
    if setting.hidden or setting.bias or setting.normalise != "none":
        raise InputError("minibatch training covers linear, bias-free, unnormalised encoders only")
    land = setting.landscape()
    qn = float(np.abs(np.linalg.eigvalsh(land.q + setting.weight_decay * np.eye(setting.dim))).max())
    bn = float(np.linalg.eigvalsh(land.b).max())
    w = normals(stream_key("ssl_landscape.init", seed), np.arange(setting.width), setting.dim) / np.sqrt(setting.dim)
    chunk = max(1, CHUNK // batch)  # steps whose samples are drawn at once
    for step in range(steps):
        if step % chunk == 0:
            x = setting.sample(seed, "pretrain", step * batch + np.arange(chunk * batch))[0]
            views = [setting.augment(x, stream_key("ssl_landscape.minibatch", seed, step, v)) for v in (1, 2)]
        rows = slice((step % chunk) * batch, (step % chunk + 1) * batch)
        decay = min(1.0, 2 * (steps - step) / steps)
        grad = batch_gradient(setting, w, views[0][rows], views[1][rows])
        w = w - lr_scale * decay * safe_step(qn, bn, land.quartic, w) * grad
        if not np.isfinite(w).all():
            raise FloatingPointError(f"minibatch SGD diverged at step {step} (batch {batch})")
    return Fit(w, None, None, steps, False)


__all__ = ["batch_gradient", "train_minibatch"]
