"""A seeded, vectorised 28x28 RGB renderer of the concept classes: a flat approximation of the paper's renders.

The authors rendered 3-D spheres and cones in Blender and resized them to 28 px (their repository
ships the PNGs, no renderer). Here a class is drawn flat: a circle or an upward triangle (the
silhouettes of sphere and cone), filled with the paper's RGB colour, its circumradius in the
paper's size ratio 2.7 : 1.6 (8.1 px and 4.8 px), on a background colour. The paper's third shape,
the cube (used by the authors' ``H23`` splits), is drawn as its silhouette, an axis-aligned square
with the same circumradius. Each image has seeded
jitter: position (up to 2 px each way), brightness (x 0.9-1.1) and a linear shading gradient of
up to 15% towards a random light direction; edges are anti-aliased. Image ``i`` depends only on
its stream key, ``i`` and its class, so any slice renders alone. The pixels are computed in
vectorised passes over chunks of ``CHUNK`` images (their temporaries stay in the CPU cache); the
background is added only to chunks holding a non-black one, with one product for a grey level.

Example:
    >>> import numpy as np
    >>> from fmbench.studies.compositional_diffusion.concepts import THREE
    >>> images = render(THREE, np.array([0, 7]), key=1, index=np.arange(2))
    >>> images.shape, images.dtype, float(images.min()) >= 0, float(images.max()) <= 1
    ((2, 3, 28, 28), dtype('float32'), True, True)
"""

from __future__ import annotations

import numpy as np

from fmbench.random_access import bits
from fmbench.studies.compositional_diffusion.concepts import BACKGROUNDS, COLOURS, SIZES, ConceptSpace

SIDE = 28
PX_PER_SIZE = 3.0
"""Pixels per unit of the paper's size: radii 8.1 (large) and 4.8 px (small)."""
SHIFT = 2.0
BRIGHTNESS = 0.1
SHADING = 0.15
CHUNK = 128
"""Images drawn per pass over the pixels: the chunk's temporaries stay in the CPU cache."""
_GRID = np.arange(SIDE, dtype=np.float32) + 0.5 - SIDE / 2
_TRIANGLE_NORMALS = np.array(
    [[np.cos(a), np.sin(a)] for a in (np.pi / 2, np.pi / 2 + 2 * np.pi / 3, np.pi / 2 + 4 * np.pi / 3)],
    dtype=np.float32,
)
"""Outward edge normals (x, y; y points down) of an upward equilateral triangle: bottom, upper left, upper right."""


def _uniform(key: int, index: np.ndarray, n: int) -> np.ndarray:
    """``(len(index), n)`` float32 uniforms in [0, 1) of the counter-based stream ``key``."""
    return ((bits(key, index, n) >> np.uint64(40)).astype(np.float32)) * np.float32(2.0**-24)


def render(space: ConceptSpace, class_ids: np.ndarray, key: int, index: np.ndarray) -> np.ndarray:
    """Float32 images ``(N, 3, 28, 28)`` in [0, 1] of ``class_ids``; image ``r``: jitter draw ``index[r]`` of ``key``.

    Raises ``InputError`` for class ids outside the concept space.
    """
    values = space.values(class_ids)
    index = np.asarray(index)
    if len(index) != len(values):
        raise ValueError(f"{len(values)} class ids but {len(index)} indices")
    n = len(values)
    u = _uniform(key, index, 5)
    centre = (u[:, :2] * 2 - 1) * SHIFT  # (N, 2): x, y
    brightness = 1 + (u[:, 2] * 2 - 1) * BRIGHTNESS
    angle = u[:, 3] * np.float32(2 * np.pi)
    radius = np.asarray(SIZES, dtype=np.float32)[values[:, 2]] * PX_PER_SIZE
    lx, ly = np.cos(angle) * SHADING, np.sin(angle) * SHADING
    per_image = {
        "shape": np.asarray(space.shapes)[values[:, 0]],  # index into SHAPES
        "radius": radius,
        "dx": _GRID[None, :] - centre[:, :1],  # (N, W)
        "dy": _GRID[None, :] - centre[:, 1:],  # (N, H)
        "brightness": brightness,
        "light_x": lx / radius,
        "light_y": ly / radius,
        "colour": np.asarray(COLOURS, dtype=np.float32)[values[:, 1]],  # (N, 3)
        # (N, 3); with 3 concepts every background is BACKGROUNDS[0], black
        "background": np.asarray(BACKGROUNDS, dtype=np.float32)[
            values[:, 3] if space.n_concepts > 3 else np.zeros_like(values[:, 0])
        ],
    }
    out = np.empty((n, 3, SIDE, SIDE), dtype=np.float32)
    for s in range(0, n, CHUNK):
        _draw(out[s : s + CHUNK], **{name: v[s : s + CHUNK] for name, v in per_image.items()})
    return out


def _draw(
    out: np.ndarray,
    shape: np.ndarray,
    radius: np.ndarray,
    dx: np.ndarray,
    dy: np.ndarray,
    brightness: np.ndarray,
    light_x: np.ndarray,
    light_y: np.ndarray,
    colour: np.ndarray,
    background: np.ndarray,
) -> None:
    """Draw a chunk of images into ``out`` ``(n, 3, 28, 28)`` from their per-image parameters (``render``'s)."""
    sdf = np.empty(out.shape[:1] + out.shape[2:], dtype=np.float32)
    if (shape == 0).any():  # circle
        c = np.flatnonzero(shape == 0)
        sdf[c] = np.sqrt(dy[c, :, None] ** 2 + dx[c, None, :] ** 2) - radius[c, None, None]
    if (shape == 1).any():  # upward triangle
        t = np.flatnonzero(shape == 1)
        # distance past each edge line (inradius = circumradius / 2); the maximum is <= 0 inside
        inner = (radius[t] / 2)[:, None, None]
        edges = [dy[t, :, None] * ny + dx[t, None, :] * nx - inner for nx, ny in _TRIANGLE_NORMALS]
        sdf[t] = np.maximum(np.maximum(edges[0], edges[1]), edges[2])
    if (shape == 2).any():  # square: half side = circumradius / sqrt(2)
        q = np.flatnonzero(shape == 2)
        half = (radius[q] * np.float32(np.sqrt(0.5)))[:, None, None]
        sdf[q] = np.maximum(np.abs(dy[q, :, None]), np.abs(dx[q, None, :])) - half
    alpha = np.subtract(0.5, sdf, out=sdf)
    np.clip(alpha, 0.0, 1.0, out=alpha)

    shade = (dy * light_y[:, None])[:, :, None] + (dx * light_x[:, None])[:, None, :]
    shade += 1
    shade *= brightness[:, None, None]
    shade *= alpha  # the object's coverage times its shading
    for ch in range(3):
        np.multiply(shade, colour[:, ch, None, None], out=out[:, ch])
    if background.any():  # + background * (1 - alpha); nothing to add on black
        alpha -= 1
        term, level = None, None
        for ch in range(3):
            if term is None or not np.array_equal(background[:, ch], level):  # grey: one product for all channels
                level = background[:, ch]
                term = alpha * level[:, None, None]
            out[:, ch] -= term
    np.clip(out, 0.0, 1.0, out=out)


def to_uint8(images: np.ndarray) -> np.ndarray:
    """Float images in [0, 1] as uint8 (rounded), as the data export and hashes store them."""
    return np.rint(images * 255).astype(np.uint8)
