"""Full-batch gradient descent on the closed-form expected loss (exact expected gradients, no sampling).

The expected loss of a linear encoder ``z = W v (+ b)`` is ``tr(Q G) + quartic tr(B G B G) + gamma |W|^2``
with ``G = W^T W`` (:mod:`~fmbench.studies.ssl_landscape.theory`); its gradient is
``2 W (Q + gamma) + 4 quartic W B G B``. A two-layer encoder ``W = W2 W1`` takes the chain rule with
weight decay on both factors. The spectral loss's bias is a constant input feature (``Q = -2``,
``B = 1``); the other losses' optimal bias is 0, so their trained encoders have none. A normalised
representation (``batch``, ``global``) trains the normalised encoder ``W~`` by gradient descent on the
sphere: the gradient of the loss of ``W~``, less its component along the normalisation's scale, then the
scale reset (which leaves the loss unchanged).

Example:
    >>> import numpy as np
    >>> from fmbench.studies.ssl_landscape.problems import Setting
    >>> s = Setting(dim=3, width=3, spectrum=(2.0, 1.0, 0.2), strength=0.5, weight_decay=1.0)
    >>> fit = train(s, seed=0, momentum=0.9)  # heavy ball: 465 steps (plain descent: 1,537)
    >>> fit.converged, np.round(fit.singular_values ** 2, 3).tolist()
    (True, [0.24, 0.222, 0.0])
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from fmbench.random_access import normals, stream_key
from fmbench.studies.ssl_landscape.problems import Setting
from fmbench.studies.ssl_landscape.theory import Landscape


@dataclass(frozen=True)
class Fit:
    """A trained encoder: ``weights`` (end-to-end ``W``), ``bias``, the two-layer ``layers``, and how training went."""

    weights: np.ndarray
    bias: np.ndarray | None
    layers: tuple[np.ndarray, np.ndarray] | None
    steps: int
    converged: bool

    @property
    def singular_values(self) -> np.ndarray:
        """``W``'s singular values, descending."""
        return np.linalg.svd(self.weights, compute_uv=False)


def _augmented(land: Landscape, setting: Setting) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """``(Q~, B~, decay~)``: the spectral loss's bias appended as a constant input feature when the setting has one."""
    d = land.q.shape[0]
    decay = np.full(d, setting.weight_decay)
    if not (setting.bias and land.bias_q is not None):
        return land.q, land.b, decay
    q = np.zeros((d + 1, d + 1))
    b = np.zeros((d + 1, d + 1))
    q[:d, :d], q[d, d] = land.q, land.bias_q
    b[:d, :d], b[d, d] = land.b, 1.0
    return q, b, np.append(decay, setting.bias_decay)


def safe_step(q_norm: float, b_norm: float, quartic: float, w: np.ndarray) -> float:
    """A step size for ``tr(Q G) + quartic tr(B G B G)`` at ``W``: the loss's Hessian is bounded by
    ``2 |Q + gamma| + 12 quartic |B|^2 |G|``; the step stays below 1 / that bound at twice the current ``|G|``
    (recomputed at every step: large weights need small steps).

    Example:
        >>> safe_step(1.0, 1.0, 1.0, np.zeros((2, 2)))  # 0.5 / (2 + 24e-3)
        0.24703557312252963
    """
    return 0.5 / (2 * q_norm + 24 * quartic * b_norm**2 * max(float(np.linalg.norm(w, 2) ** 2), 1e-3))


def train(
    setting: Setting,
    seed: int,
    *,
    init_scale: float = 1.0,
    max_steps: int = 200_000,
    tol: float = 1e-10,
    momentum: float = 0.0,
) -> Fit:
    """Gradient descent (heavy-ball ``momentum``; 0: plain) from a seeded Gaussian start until the gradient's
    norm is below ``tol``.

    ``init_scale`` multiplies the initial weights (entries ``N(0, init_scale^2 / dim)``; a two-layer
    encoder starts at a balanced factorisation of such weights). A normalised representation trains
    ``W~`` (:func:`_train_normalised`); ``sample`` normalisation (``z / |z|``) has no closed-form expected
    loss and is refused.
    """
    if setting.normalise != "none":
        return _train_normalised(setting, seed, init_scale, max_steps, tol, momentum)
    land = setting.landscape()
    q, b, decay = _augmented(land, setting)
    d, k, h = q.shape[0], setting.width, setting.hidden
    key = stream_key("ssl_landscape.init", seed)
    scale = init_scale / np.sqrt(d)
    two_layer = h > 0
    w = normals(key, np.arange(k), d) * scale
    if two_layer:  # a balanced factorisation of w (W1 W1^T = W2^T W2), which gradient descent keeps balanced
        u, sv, vt = np.linalg.svd(w, full_matrices=False)
        m = min(len(sv), h)
        w1, w2 = np.zeros((h, d)), np.zeros((k, h))
        w1[:m], w2[:, :m] = np.sqrt(sv[:m])[:, None] * vt[:m], u[:, :m] * np.sqrt(sv[:m])

    qn = float(np.abs(np.linalg.eigvalsh(q + np.diag(0 * decay if two_layer else decay))).max())
    bn = float(np.linalg.eigvalsh(b).max())

    def step_size() -> float:
        lr = safe_step(qn, bn, land.quartic, w2 @ w1 if two_layer else w)
        if two_layer:  # the factors' Hessian carries |W1|^2 + |W2|^2 on top
            lr /= 1 + float(np.linalg.norm(w1, 2) ** 2 + np.linalg.norm(w2, 2) ** 2)
        return lr

    gamma = setting.weight_decay
    steps, converged = 0, False
    velocity = (np.zeros_like(w1), np.zeros_like(w2)) if two_layer else np.zeros_like(w)
    for steps in range(1, max_steps + 1):
        lr = step_size()
        ww = w2 @ w1 if two_layer else w
        wb = ww @ b
        grad = 2 * ww @ q + 4 * land.quartic * (wb @ ww.T) @ wb  # W B G B = (W B W^T)(W B): O(k d^2)
        if two_layer:
            g1 = w2.T @ grad + 2 * gamma * w1
            g2 = grad @ w1.T + 2 * gamma * w2
            norm = np.sqrt((g1**2).sum() + (g2**2).sum())
            velocity = (momentum * velocity[0] - lr * g1, momentum * velocity[1] - lr * g2)
            w1, w2 = w1 + velocity[0], w2 + velocity[1]
        else:
            grad = grad + 2 * ww * decay
            norm = np.sqrt((grad**2).sum())
            velocity = momentum * velocity - lr * grad
            w = w + velocity
        if not np.isfinite(norm):
            raise FloatingPointError(f"gradient descent diverged at step {steps} (step size {lr:.3g})")
        if norm < tol:
            converged = True
            break
    ww = w2 @ w1 if two_layer else w
    dim = setting.dim
    bias = ww[:, dim] if ww.shape[1] > dim else None
    return Fit(ww[:, :dim], bias, (w1, w2) if two_layer else None, steps, converged)


def _rescale(w: np.ndarray, b: np.ndarray, normalise: str) -> np.ndarray:
    """``W~``: each row of unit variance over views (``batch``) or ``tr(W B W^T) = width`` (``global``)."""
    if normalise == "batch":
        return w / np.sqrt(np.einsum("ij,jk,ik->i", w, b, w))[:, None]
    return w * np.sqrt(len(w) / np.trace(w @ b @ w.T))


def _train_normalised(
    setting: Setting, seed: int, init_scale: float, max_steps: int, tol: float, momentum: float
) -> Fit:
    """Riemannian gradient descent on ``W~`` for a ``batch`` or ``global`` normalised representation.

    With ``Gamma = 2 W~ Q + 4 (W~ B W~^T) W~ B`` the gradient in ``W~`` of the loss over its quartic
    coefficient, the gradient in ``W`` at ``W = W~`` is ``Gamma`` less ``(Gamma_i . w_i) B w_i`` per row
    (``batch``) or less ``tr(Gamma^T W~) W~ B / width`` (``global``); each step (heavy-ball ``momentum``)
    is followed by the rescaling, which does not change the loss. ``init_scale`` does not matter: the
    scale is reset.
    """
    setting.predict()  # the settings without a prediction (z/|z|, weight decay, a bias, two layers) are refused
    land = setting.landscape()
    q, b, k = land.q / land.quartic, land.b, setting.width  # the loss over its quartic coefficient: same minima
    w = normals(stream_key("ssl_landscape.init", seed), np.arange(k), setting.dim) * init_scale
    w = _rescale(w, b, setting.normalise)
    qn, bn = float(np.abs(np.linalg.eigvalsh(q)).max()), float(np.linalg.eigvalsh(b).max())
    steps, converged, velocity = 0, False, np.zeros_like(w)
    for steps in range(1, max_steps + 1):
        wb = w @ b
        grad = 2 * w @ q + 4 * (wb @ w.T) @ wb
        if setting.normalise == "batch":
            grad = grad - (grad * w).sum(axis=1, keepdims=True) * wb
        else:
            grad = grad - (grad * w).sum() * wb / k
        norm = float(np.sqrt((grad**2).sum()))
        if not np.isfinite(norm):
            raise FloatingPointError(f"gradient descent diverged at step {steps}")
        if norm < tol:
            converged = True
            break
        lr = safe_step(qn, bn, 1.0, w)
        velocity = momentum * velocity - lr * grad
        w = _rescale(w + velocity, b, setting.normalise)
    return Fit(w, None, None, steps, converged)
