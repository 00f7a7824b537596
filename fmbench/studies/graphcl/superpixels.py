"""Superpixel graphs of grayscale images: a SLIC-like clustering vectorised over a batch.

:func:`segment` splits every image into superpixels: centres start as the cells of a regular
grid (about ``n_segments`` of them), then a few k-means iterations move them in (intensity,
position) space. A pixel only compares the centres of the 3x3 grid cells around its own (the
counterpart of SLIC's 2S x 2S search window), at distance
``ΔI² + (compactness / S)² (Δrow² + Δcol²)``, ``S`` the grid step and ``I`` the intensity in
[0, 1]. As in SLIC, each superpixel is then cut down to its largest 4-connected piece (stray
pixels join the touching superpixel closest in intensity), empty ones are dropped and the
rest numbered in grid order. :func:`superpixel_graphs` turns each segmentation into a region
adjacency graph. Everything is numpy over chunks of images: no randomness and no per-pixel
Python loops, so the same input always gives the same graphs.

Example:
    >>> images = np.zeros((2, 28, 28), np.uint8)
    >>> images[:, :, 13:] = 255  # black left, white right
    >>> graphs = superpixel_graphs(images, np.array([3, 5]))
    >>> g = graphs[0]
    >>> len(graphs), g.num_nodes, sorted(set(g.x[:, 0].tolist())), graphs[1].y.tolist()
    (2, 56, [0.0, 1.0], [5])
"""

from __future__ import annotations

from collections.abc import Iterator

import numpy as np
import torch
from torch_geometric.data import Data

N_SEGMENTS = 64
"""Default number of grid cells the centres start from (8x8 on 28x28 images)."""
COMPACTNESS = 0.3
"""Default weight of position against intensity: moving one grid step costs as much as this intensity change."""
ITERATIONS = 5
"""Default number of k-means assignment steps."""
CHUNK_PIXELS = 2**18
"""Pixels processed at once (334 images of 28x28): bounds the working memory to about 40 MB."""


def _check_images(images: np.ndarray) -> np.ndarray:
    """``images`` as an array if it is (N, H, W) uint8 or float in [0, 1], else ``ValueError``."""
    images = np.asarray(images)
    if images.ndim != 3 or min(images.shape[1:], default=0) < 2:
        raise ValueError(f"images must be an (N, H, W) array with H, W >= 2, got shape {images.shape}")
    if images.dtype == np.uint8:
        return images
    if not np.issubdtype(images.dtype, np.floating):
        raise ValueError(f"images must be uint8 or float in [0, 1], got dtype {images.dtype}")
    if images.size and not (np.isfinite(images).all() and images.min() >= 0 and images.max() <= 1):
        raise ValueError("float images must hold finite values in [0, 1]")
    return images


def _check_params(n_segments: int, compactness: float, iterations: int) -> None:
    """``ValueError`` unless the clustering parameters make sense."""
    if n_segments < 1 or iterations < 0 or not compactness > 0:
        raise ValueError(
            f"need n_segments >= 1, compactness > 0 and iterations >= 0, got {n_segments}, "
            f"{compactness} and {iterations}"
        )


def _intensity(images: np.ndarray) -> np.ndarray:
    """Float32 intensities in [0, 1] of checked images."""
    if images.dtype == np.uint8:
        return images.astype(np.float32) / np.float32(255)
    return images.astype(np.float32)


def _grid(height: int, width: int, n_segments: int) -> tuple[int, int]:
    """Rows and columns of the initial grid of about ``n_segments`` cells."""
    rows = min(height, max(1, round((n_segments * height / width) ** 0.5)))
    return rows, min(width, max(1, round(n_segments / rows)))


def _segment(x: np.ndarray, n_segments: int, compactness: float, iterations: int) -> tuple[np.ndarray, int]:
    """Grid-ordered segment ids (H*W, B) of float images ``x`` (B, H, W) and the grid size; some ids may be unused.

    Pixels run along the first axis and images along the second, so that gathering the
    centres of a pixel's candidates copies whole rows.
    """
    b, h, w = x.shape
    gy, gx = _grid(h, w, n_segments)
    k = gy * gx
    rows, cols = np.divmod(np.arange(h * w), w)
    cell_r, cell_c = rows * gy // h, cols * gx // w
    candidates = np.stack(
        [
            np.clip(cell_r + dr, 0, gy - 1) * gx + np.clip(cell_c + dc, 0, gx - 1)
            for dr in (-1, 0, 1)
            for dc in (-1, 0, 1)
        ]
    )  # (9, H*W)
    pixel = np.empty((3, h * w, b), np.float32)  # intensity, row, col
    pixel[0], pixel[1], pixel[2] = x.reshape(b, h * w).T, rows[:, None], cols[:, None]
    weight = np.float32((compactness / (h * w / k) ** 0.5) ** 2)
    image = np.arange(b)
    ids = np.repeat((cell_r * gx + cell_c)[:, None], b, axis=1)  # iteration 0: the grid itself
    centres = np.zeros((3, k * b), np.float32)
    for _ in range(iterations):
        flat = (ids * b + image).ravel()
        count = np.bincount(flat, minlength=k * b)
        sums = np.stack([np.bincount(flat, v.ravel(), k * b) for v in pixel])
        centres = np.where(count > 0, sums / np.maximum(count, 1), centres).astype(np.float32)
        c_i, c_r, c_c = centres.reshape(3, k, b)
        # ΔI² + weight (Δr² + Δc²) less the pixel's own terms: linear in the pixel's features
        g0 = c_i * c_i + weight * (c_r * c_r + c_c * c_c)
        g1, g2, g3 = -2 * c_i, -2 * weight * c_r, -2 * weight * c_c
        best = np.full(ids.shape, np.inf, np.float32)
        choice = np.zeros(ids.shape, np.int8)  # which of the 9 candidates is closest
        for j, cand in enumerate(candidates):
            d = g0[cand] + pixel[0] * g1[cand] + pixel[1] * g2[cand] + pixel[2] * g3[cand]
            choice += (d < best) * (np.int8(j) - choice)  # the first of equals wins
            np.minimum(d, best, out=best)
        ids = np.take_along_axis(candidates.T, choice.astype(np.intp), axis=1)
    return ids, k


def _neighbours(shape: tuple[int, int, int]) -> np.ndarray:
    """Flat index (4, B*H*W) of each pixel's left, right, upper and lower neighbour (itself at the border)."""
    flat = np.arange(np.prod(shape)).reshape(shape)
    out = np.stack([flat] * 4)
    out[0, :, :, 1:], out[1, :, :, :-1] = flat[:, :, :-1], flat[:, :, 1:]
    out[2, :, 1:], out[3, :, :-1] = flat[:, :-1], flat[:, 1:]
    return out.reshape(4, -1)


def _connect(ids: np.ndarray, x: np.ndarray, k: int) -> np.ndarray:
    """Ids ``< k`` (B, H, W) with every segment cut down to its largest 4-connected piece.

    The other pieces' pixels join a touching segment, the one of the neighbour closest in
    intensity (then left, right, up, down), in rounds until none is left: each pixel joins
    a kept piece it touches, so every segment ends up connected.
    """
    seg, x = ids.flatten(), x.ravel()
    flat = np.arange(seg.size)
    neighbours = _neighbours(ids.shape)
    links = np.where(seg[neighbours] == seg, neighbours, flat)  # same-segment neighbours only
    piece = flat  # each pixel's piece, named by its first pixel: min-label propagation, pointer jumping
    while True:
        smaller = np.minimum(piece, piece[links].min(axis=0))
        smaller = smaller[smaller]
        if np.array_equal(smaller, piece):
            break
        piece = smaller
    first = np.flatnonzero(piece == flat)
    size = np.bincount(piece, minlength=seg.size)[first]
    key = seg[first] + first // ids[0].size * k  # segment ids made unique across images
    order = np.lexsort((first, -size, key))  # per segment: the largest piece, then the first
    main = np.zeros(seg.size, bool)
    main[first[order][np.diff(key[order], prepend=-1) != 0]] = True
    orphans = np.flatnonzero(~main[piece])
    kept = main[piece]
    while orphans.size:
        around = neighbours[:, orphans]
        gap = np.where(kept[around], np.abs(x[around] - x[orphans]), np.inf)
        pick = gap.argmin(axis=0)
        join = np.isfinite(gap.min(axis=0))
        seg[orphans[join]] = seg[np.take_along_axis(around, pick[None], axis=0)[0, join]]
        kept[orphans[join]] = True
        orphans = orphans[~join]
    return seg.reshape(ids.shape)


def _superpixels(x: np.ndarray, n_segments: int, compactness: float, iterations: int) -> tuple[np.ndarray, np.ndarray]:
    """Connected segment ids (B, H, W) numbered ``0 .. n-1`` in grid order, and the numbers ``n`` (B,)."""
    ids, k = _segment(x, n_segments, compactness, iterations)
    ids = _connect(ids.T.reshape(x.shape), x, k).reshape(len(x), -1)
    used = np.zeros((len(x), k), bool)
    used[np.arange(len(x))[:, None], ids] = True
    number = np.cumsum(used, axis=1) - 1
    return np.take_along_axis(number, ids, axis=1).reshape(x.shape), used.sum(axis=1)


def _chunks(
    images: np.ndarray, n_segments: int, compactness: float, iterations: int
) -> Iterator[tuple[slice, np.ndarray, np.ndarray, np.ndarray]]:
    """Per chunk of checked images: its slice, intensities, segment ids (B, H, W) and segment counts (B,)."""
    _, h, w = images.shape
    k = int(np.prod(_grid(h, w, n_segments)))
    size = max(1, min(CHUNK_PIXELS // (h * w), 2**24 // k**2))  # 2**24: cells of _graphs' adjacency table
    for start in range(0, len(images), size):
        part = slice(start, start + size)
        x = _intensity(images[part])
        yield (part, x, *_superpixels(x, n_segments, compactness, iterations))


def segment(
    images: np.ndarray, *, n_segments: int = N_SEGMENTS, compactness: float = COMPACTNESS, iterations: int = ITERATIONS
) -> np.ndarray:
    """The superpixel of every pixel: (N, H, W) int64 ids ``0 .. n-1`` per image, in grid order.

    Every superpixel is 4-connected and every id up to an image's largest is used.

    Args:
        images: (N, H, W), uint8 or float in [0, 1].
        n_segments: about how many grid cells the centres start from (no image gets more superpixels than cells).
        compactness: weight of position against intensity (larger: more regular superpixels).
        iterations: k-means assignment steps (0 keeps the grid).

    Example:
        >>> ids = segment(np.zeros((1, 28, 28), np.uint8), n_segments=49)
        >>> ids.shape, int(ids.max()) + 1, ids[0, [0, 27], [0, 27]].tolist()
        ((1, 28, 28), 49, [0, 48])
    """
    images = _check_images(images)
    _check_params(n_segments, compactness, iterations)
    out = np.zeros(images.shape, np.int64)
    for part, _, ids, _ in _chunks(images, n_segments, compactness, iterations):
        out[part] = ids
    return out


def _graphs(x: np.ndarray, ids: np.ndarray, n: np.ndarray, labels: np.ndarray) -> list[Data]:
    """Region adjacency graphs of images ``x`` (B, H, W) with segment ids ``ids`` (B, H, W), ``n`` (B,) segments."""
    b, h, w = x.shape
    node_bounds = np.concatenate([[0], np.cumsum(n)])  # image i has nodes node_bounds[i]:node_bounds[i + 1]
    node = (ids + node_bounds[:-1, None, None]).ravel()
    count = np.bincount(node)
    rows, cols = np.divmod(np.arange(h * w), w)
    pixel = (x.ravel(), np.broadcast_to(rows, (b, h * w)).ravel(), np.broadcast_to(cols, (b, h * w)).ravel())
    mean_i, mean_r, mean_c = (np.bincount(node, v) / count for v in pixel)
    features = np.stack([mean_i, mean_r / (h - 1), mean_c / (w - 1)], axis=1).astype(np.float32)
    pos = np.stack([mean_r, mean_c], axis=1).astype(np.float32)
    # two segments touch if two 4-neighbour pixels carry their ids; nonzero lists the pairs sorted
    adjacent = np.zeros((b, int(n.max()), int(n.max())), bool)
    for u, v in ((ids[:, :, :-1], ids[:, :, 1:]), (ids[:, :-1], ids[:, 1:])):
        border = u != v
        image, u, v = np.nonzero(border)[0], u[border], v[border]
        adjacent[image, u, v] = adjacent[image, v, u] = True
    image, src, dst = np.nonzero(adjacent)
    edge_bounds = np.concatenate([[0], np.cumsum(np.bincount(image, minlength=b))])
    graphs = []
    for i in range(b):
        nodes, edges = slice(*node_bounds[i : i + 2]), slice(*edge_bounds[i : i + 2])
        graphs.append(
            Data(
                x=torch.from_numpy(features[nodes]),
                pos=torch.from_numpy(pos[nodes]),
                edge_index=torch.from_numpy(np.stack([src[edges], dst[edges]])),
                y=torch.tensor([int(labels[i])]),
            )
        )
    return graphs


def superpixel_graphs(
    images: np.ndarray,
    labels: np.ndarray,
    *,
    n_segments: int = N_SEGMENTS,
    compactness: float = COMPACTNESS,
    iterations: int = ITERATIONS,
) -> list[Data]:
    """One region adjacency graph of the :func:`segment` superpixels per image.

    Each ``Data`` has ``x`` (n, 3) float32: mean intensity in [0, 1], centroid row / (H - 1) and
    centroid column / (W - 1); ``pos`` (n, 2) float32, the centroid (row, col) in pixels;
    ``edge_index`` (2, E) int64, both directions of every pair of segments that touch (4-neighbour
    pixels), no self-loops, sorted by source then target; ``y`` (1,) the image's label.

    Example:
        >>> images = np.zeros((1, 28, 28), np.uint8)
        >>> g = superpixel_graphs(images, np.array([7]), n_segments=49)[0]
        >>> g.num_nodes, g.edge_index.shape[1], g.y.tolist()
        (49, 168, [7])
    """
    images = _check_images(images)
    labels = np.asarray(labels)
    if labels.shape != (len(images),) or not np.issubdtype(labels.dtype, np.integer):
        raise ValueError(
            f"labels must be {len(images)} integers, one per image, got shape {labels.shape} dtype {labels.dtype}"
        )
    _check_params(n_segments, compactness, iterations)
    graphs = []
    for part, x, ids, n in _chunks(images, n_segments, compactness, iterations):
        graphs += _graphs(x, ids, n, labels[part])
    return graphs
