"""The linear encoders the baselines are made of (``vector-encoder`` modules, :mod:`fmbench.interfaces`).

Example:
    >>> import numpy as np
    >>> enc = linear_encoder(np.eye(2, 3), bias=np.ones(2))
    >>> enc(torch.ones(1, 3)).tolist()
    [[2.0, 2.0]]
"""

from __future__ import annotations

import numpy as np
import torch


def linear_encoder(weights: np.ndarray, bias: np.ndarray | None = None) -> torch.nn.Linear:
    """A ``torch.nn.Linear`` (float32) holding ``weights`` ``(k, dim)`` and ``bias`` (zeros if ``None``)."""
    k, d = weights.shape
    layer = torch.nn.Linear(d, k)
    with torch.no_grad():
        layer.weight.copy_(torch.from_numpy(np.asarray(weights, dtype=np.float32)))
        layer.bias.copy_(torch.from_numpy(np.zeros(k, np.float32) if bias is None else np.asarray(bias, np.float32)))
    return layer.eval()


def two_layer_encoder(w1: np.ndarray, w2: np.ndarray) -> torch.nn.Sequential:
    """``z = W2 W1 x`` as two bias-free ``torch.nn.Linear`` layers (float32)."""
    first, second = (
        torch.nn.Linear(w1.shape[1], w1.shape[0], bias=False),
        torch.nn.Linear(w2.shape[1], w2.shape[0], bias=False),
    )
    with torch.no_grad():
        first.weight.copy_(torch.from_numpy(np.asarray(w1, np.float32)))
        second.weight.copy_(torch.from_numpy(np.asarray(w2, np.float32)))
    return torch.nn.Sequential(first, second).eval()
