"""Appearance shift for the robustness track: frames recoloured and noised as a camera might.

Each run gets one colour balance (a gain and an offset per RGB channel, drawn from its own
seed: a camera's white balance and exposure), and every pixel of every frame independent
Gaussian noise (sensor noise). The learned captioners never see either in training.

Example:
    >>> frames = np.full((2, 8, 8, 3), 100, np.uint8)
    >>> shifted = shift_appearance(frames, jitter=0.2, noise=0.0, seed=0)
    >>> shifted.shape, shifted.dtype, bool((shifted[0] == shifted[1]).all())
    ((2, 8, 8, 3), dtype('uint8'), True)
"""

from __future__ import annotations

import numbers

import numpy as np

from fmbench.errors import InputError

APPEARANCE_SCHEMA = {
    "type": "object",
    "properties": {
        "jitter": {"type": "number", "minimum": 0, "maximum": 1},
        "noise": {"type": "number", "minimum": 0, "maximum": 1},
    },
    "required": ["jitter", "noise"],
    "additionalProperties": False,
}
"""A task's ``appearance`` parameter: the arguments of :func:`shift_appearance` but the seed."""


def shift_appearance(frames: np.ndarray, jitter: float, noise: float, seed: int | list[int]) -> np.ndarray:
    """``frames`` with one random colour balance and per-pixel noise.

    Args:
        frames: ``(T, H, W, 3)`` uint8.
        jitter: each channel ``c`` becomes ``g_c * x + 255 * b_c`` with ``g_c`` uniform in
            ``[1 - jitter, 1 + jitter]`` and ``b_c`` in ``[-jitter / 2, jitter / 2]``, the same
            for every frame.
        noise: standard deviation of the Gaussian noise added to every pixel, as a fraction of 255.
        seed: the run's seed (a ``numpy`` seed: an int or a list of ints).

    Raises:
        InputError: frames of another shape or dtype, or ``jitter`` / ``noise`` outside ``[0, 1]``.

    Returns:
        ``(T, H, W, 3)`` uint8, rounded and clipped to ``[0, 255]``.
    """
    if not isinstance(frames, np.ndarray) or frames.dtype != np.uint8 or frames.ndim != 4 or frames.shape[-1] != 3:
        raise InputError(f"frames must be (T, H, W, 3) uint8, got {getattr(frames, 'shape', type(frames))}")
    for name, value in (("jitter", jitter), ("noise", noise)):
        if not isinstance(value, numbers.Real) or not 0 <= value <= 1:  # the schema's range; refuses NaN too
            raise InputError(f"appearance {name} must be in [0, 1], got {value!r}")
    rng = np.random.default_rng(seed)
    gain = rng.uniform(1 - jitter, 1 + jitter, 3).astype(np.float32)
    bias = (rng.uniform(-jitter / 2, jitter / 2, 3) * 255).astype(np.float32)
    out = frames.astype(np.float32) * gain + bias
    if noise > 0:
        out += rng.standard_normal(out.shape, dtype=np.float32) * np.float32(noise * 255)
    return np.clip(np.rint(out), 0, 255).astype(np.uint8)
