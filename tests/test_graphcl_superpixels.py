"""Superpixel graphs: determinism, segment coverage and connectivity, graph structure, input errors."""

from __future__ import annotations

import doctest

import numpy as np
import pytest
import torch

pytest.importorskip("torch_geometric")

from fmbench.errors import DataError  # noqa: E402
from fmbench.fashion_mnist import load_fashion_mnist  # noqa: E402
from fmbench.studies.graphcl import superpixels  # noqa: E402
from fmbench.studies.graphcl.superpixels import segment, superpixel_graphs  # noqa: E402


@pytest.fixture(scope="module")
def fashion():
    """The first 300 Fashion-MNIST test images and labels (skips without the Debian package)."""
    try:
        images, labels = load_fashion_mnist("test")
    except DataError as e:
        pytest.skip(str(e))
    return images[:300], labels[:300]


@pytest.fixture(scope="module")
def fashion_graphs(fashion):
    return superpixel_graphs(*fashion)


def _halves(column: int = 13) -> np.ndarray:
    """Two 28x28 images, black left of ``column`` and white from it on."""
    images = np.zeros((2, 28, 28), np.uint8)
    images[:, :, column:] = 255
    return images


def _connected(mask: np.ndarray) -> bool:
    """Whether the True pixels of ``mask`` form one 4-connected piece (a plain flood fill)."""
    todo = [tuple(np.argwhere(mask)[0])]
    seen = set(todo)
    while todo:
        r, c = todo.pop()
        for nb in ((r - 1, c), (r + 1, c), (r, c - 1), (r, c + 1)):
            if 0 <= nb[0] < mask.shape[0] and 0 <= nb[1] < mask.shape[1] and mask[nb] and nb not in seen:
                seen.add(nb)
                todo.append(nb)
    return len(seen) == mask.sum()


def _reference_edges(ids: np.ndarray) -> list[tuple[int, int]]:
    """Sorted directed region adjacency of one segmentation, from every 4-neighbour pair of pixels."""
    pairs = set()
    for a, b in ((ids[:, :-1], ids[:, 1:]), (ids[:-1], ids[1:])):
        for u, v in zip(a.ravel().tolist(), b.ravel().tolist()):
            if u != v:
                pairs |= {(u, v), (v, u)}
    return sorted(pairs)


def test_deterministic_and_independent_of_batching(fashion, fashion_graphs, monkeypatch):
    images, labels = fashion
    again = superpixel_graphs(images, labels)
    monkeypatch.setattr(superpixels, "CHUNK_PIXELS", 7 * 28 * 28)  # chunks of 7 images
    alone = superpixel_graphs(images[100:120], labels[100:120])
    for a, b in zip(fashion_graphs, again):
        assert all(torch.equal(a[key], b[key]) for key in ("x", "pos", "edge_index", "y"))
    for a, b in zip(fashion_graphs[100:120], alone):
        assert all(torch.equal(a[key], b[key]) for key in ("x", "pos", "edge_index", "y"))
    np.testing.assert_array_equal(segment(images[:50]), segment(images[:50]))


def test_node_counts_and_features(fashion_graphs, fashion):
    sizes = np.array([g.num_nodes for g in fashion_graphs])
    assert 40 <= sizes.min() and sizes.max() <= 75, (sizes.min(), sizes.max())
    for g, label in zip(fashion_graphs, fashion[1]):
        assert g.x.dtype == g.pos.dtype == torch.float32 and g.x.shape == (g.num_nodes, 3)
        assert g.pos.shape == (g.num_nodes, 2) and g.y.tolist() == [int(label)]
        assert 0 <= g.x.min() and g.x.max() <= 1
        torch.testing.assert_close(g.x[:, 1:] * 27, g.pos)
    sizes_49 = [g.num_nodes for g in superpixel_graphs(*fashion, n_segments=49)]
    assert 40 <= min(sizes_49) and max(sizes_49) <= 49


def test_edges_are_symmetric_sorted_and_in_range(fashion_graphs):
    for g in fashion_graphs:
        src, dst = g.edge_index
        assert g.edge_index.dtype == torch.int64 and g.edge_index.shape[1] > 0
        assert 0 <= g.edge_index.min() and g.edge_index.max() < g.num_nodes and not (src == dst).any()
        pairs = list(zip(src.tolist(), dst.tolist()))
        assert pairs == sorted(set(pairs))  # sorted, no duplicates
        assert set(pairs) == {(b, a) for a, b in pairs}


def test_graphs_match_their_segmentation(fashion, fashion_graphs):
    images = fashion[0][:5]
    for ids, image, g in zip(segment(images), images, fashion_graphs):
        n = ids.max() + 1
        assert g.num_nodes == n
        mean = np.bincount(ids.ravel(), image.ravel() / 255) / np.bincount(ids.ravel())
        np.testing.assert_allclose(g.x[:, 0].numpy(), mean, atol=1e-6)
        assert list(zip(*g.edge_index.tolist())) == _reference_edges(ids)


def test_every_pixel_in_one_connected_segment(fashion):
    for ids in segment(fashion[0][:20]):
        assert ids.shape == (28, 28) and ids.dtype == np.int64
        assert np.unique(ids).tolist() == list(range(ids.max() + 1))  # ids 0..n-1, all used
        assert all(_connected(ids == k) for k in range(ids.max() + 1))


def test_two_flat_halves_give_dark_and_bright_segments():
    for column in (13, 14, 17):
        g = superpixel_graphs(_halves(column), np.array([0, 1]), n_segments=49)[0]
        intensity = g.x[:, 0]
        assert ((intensity < 0.02) | (intensity > 0.98)).all()
        src, dst = g.edge_index
        assert ((intensity[src] < 0.5) & (intensity[dst] > 0.5)).any()
        ids = segment(_halves(column)[:1], n_segments=49)[0]
        dark = np.unique(ids[:, :column])
        assert not np.isin(dark, ids[:, column:]).any()  # no segment crosses the edge


def test_float_input_equals_uint8_input():
    images = _halves()
    a = superpixel_graphs(images, np.array([0, 1]))
    b = superpixel_graphs(images / 255.0, np.array([0, 1]))
    assert all(torch.equal(x.edge_index, y.edge_index) and torch.allclose(x.x, y.x) for x, y in zip(a, b))


def test_flat_image_is_the_grid_and_odd_sizes_work():
    g = superpixel_graphs(np.zeros((1, 28, 28)), np.array([0]), n_segments=49)[0]
    assert g.num_nodes == 49 and g.edge_index.shape[1] == 2 * 2 * 7 * 6
    rng = np.random.default_rng(0)
    images = rng.random((3, 30, 45)).astype(np.float32)
    ids = segment(images, n_segments=20)
    assert ids.shape == (3, 30, 45) and all(_connected(i == k) for i in ids for k in range(i.max() + 1))
    assert superpixel_graphs(np.zeros((0, 28, 28), np.uint8), np.zeros(0, np.int64)) == []


@pytest.mark.parametrize(
    "images, labels, kwargs, match",
    [
        (np.zeros((28, 28), np.uint8), [0], {}, r"images must be an \(N, H, W\) array"),
        (np.zeros((1, 28, 28), np.int32), [0], {}, "must be uint8 or float in \\[0, 1\\], got dtype int32"),
        (np.full((1, 28, 28), 1.5), [0], {}, "finite values in \\[0, 1\\]"),
        (np.full((1, 28, 28), np.nan), [0], {}, "finite values in \\[0, 1\\]"),
        (np.zeros((2, 28, 28), np.uint8), [0], {}, "labels must be 2 integers"),
        (np.zeros((1, 28, 28), np.uint8), [0.5], {}, "labels must be 1 integers"),
        (np.zeros((1, 28, 28), np.uint8), [0], {"n_segments": 0}, "need n_segments >= 1"),
        (np.zeros((1, 28, 28), np.uint8), [0], {"compactness": 0}, "compactness > 0"),
    ],
)
def test_bad_input_raises(images, labels, kwargs, match):
    with pytest.raises(ValueError, match=match):
        superpixel_graphs(images, np.array(labels), **kwargs)


def test_docstring_examples():
    assert doctest.testmod(superpixels).failed == 0
