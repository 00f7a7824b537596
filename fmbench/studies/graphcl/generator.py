"""Synthetic graphs with a class-defining content motif on a style background (arXiv:2208.02810).

Every graph of class ``c`` holds one or two copies of motif ``c`` (8 nodes, :data:`MOTIFS`, or
:data:`DEGREE_MATCHED_MOTIFS`, which share one degree profile), each joined by one edge to a
background graph — a uniformly random labelled tree, a Barabási–Albert graph (``m = 3``) or a
preferential-attachment graph with 1 or 2 edges per new node (:func:`mixed_attachment`) — of
``floor(copies * motif_size * multiplier) + eps``
nodes, ``eps`` uniform in ``{-2, ..., 1}``. The style:content ``multiplier`` sets how much of
the graph is irrelevant to the label. Every edge is labelled content (+1, inside a motif copy)
or style (-1, background and attaching edges); nodes are shuffled so position gives nothing
away. Node features are constant (``x = 1``): only structure carries the class.

Graph ``i`` of class ``c`` depends only on ``(seed, c, i)`` (numpy's ``SeedSequence``), so
any graph is generated on its own. Unlike the authors' generator, every random draw is
seeded, and a motif's size is its number of nodes. The motifs are fmbench's own, chosen so
that size and edge count are the same for every class (the authors' differ, a shortcut).

Example:
    >>> g = synthetic_graph(GraphConfig(multiplier=2), seed=0, label=3, index=0)
    >>> g.y.item(), g.x.shape[1], int((g.edge_label == 1).sum()) > 0
    (3, 1, True)
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import networkx as nx
import numpy as np
import torch
from torch_geometric.data import Data

MOTIFS: dict[str, list[tuple[int, int]]] = {
    "ladder": [(0, 1), (1, 2), (2, 3), (4, 5), (5, 6), (6, 7), (0, 4), (1, 5), (2, 6), (3, 7)],
    "star": [(0, i) for i in range(1, 8)] + [(1, 2), (3, 4), (5, 6)],
    "lollipop": [(0, 1), (0, 2), (0, 3), (1, 2), (1, 3), (2, 3), (3, 4), (4, 5), (5, 6), (6, 7)],
    "chorded-cycle": [(i, (i + 1) % 8) for i in range(8)] + [(0, 4), (2, 6)],
    "triangle-chain": [(0, 1), (1, 2), (2, 0), (2, 3), (3, 4), (4, 2), (4, 5), (5, 6), (6, 4), (6, 7)],
    "barbell": [(0, 1), (1, 2), (2, 0), (5, 6), (6, 7), (7, 5), (2, 3), (3, 4), (4, 5), (0, 7)],
}
"""The six content motifs, one per class (class ``c`` is the ``c``-th), as undirected edge lists.

All have 8 nodes and 10 edges, so neither a graph's size nor its mean degree gives the class
away (only structure does), and all are told apart by 1-WL colour refinement (so a GIN can).
Their degree profiles differ, though (the star's hub, the lollipop's degree-1 tail), which a
background without such degrees gives away: hence :data:`DEGREE_MATCHED_MOTIFS`.
"""
DEGREE_MATCHED_MOTIFS: dict[str, list[tuple[int, int]]] = {
    "ladder": MOTIFS["ladder"],
    "chorded-cycle": MOTIFS["chorded-cycle"],
    "barbell": MOTIFS["barbell"],
    "diamond-handle": [(4, 5), (4, 6), (5, 6), (4, 7), (6, 7), (5, 2), (2, 0), (0, 1), (1, 3), (3, 7)],
    "diamond-triangle": [(0, 5), (0, 7), (4, 5), (4, 7), (5, 7), (1, 3), (1, 6), (3, 6), (4, 2), (2, 6)],
    "triangle-square": [(0, 1), (0, 4), (1, 4), (2, 5), (2, 7), (3, 5), (3, 7), (4, 6), (5, 6), (6, 7)],
}
"""Six motifs with one degree profile (four nodes of degree 2, four of degree 3; 8 nodes, 10 edges),
so that no degree count tells the class, on any background; told apart by 2 rounds of 1-WL.
"""
MOTIF_SETS = {"varied": MOTIFS, "degree-matched": DEGREE_MATCHED_MOTIFS}
BACKGROUNDS = ("tree", "ba", "ba-mixed")


@dataclass(frozen=True)
class GraphConfig:
    """Generator parameters.

    Attributes:
        multiplier: style:content ratio (background nodes per motif node).
        background: ``"tree"`` (uniform random labelled tree), ``"ba"`` (Barabási–Albert, m=3) or
            ``"ba-mixed"`` (:func:`mixed_attachment`: preferential attachment, 1 or 2 edges per new node).
        motifs: ``"varied"`` (:data:`MOTIFS`) or ``"degree-matched"`` (:data:`DEGREE_MATCHED_MOTIFS`).
        graphs_per_class: graphs of each of the six classes.
        max_copies: motif copies per graph are uniform in ``[1, max_copies]``.
    """

    multiplier: float = 1.0
    background: str = "tree"
    graphs_per_class: int = 1000
    max_copies: int = 2
    motifs: str = "varied"

    def __post_init__(self) -> None:
        if not self.multiplier > 0:
            raise ValueError(f"multiplier must be > 0, got {self.multiplier}")
        if self.background not in BACKGROUNDS:
            raise ValueError(f"background must be one of {BACKGROUNDS}, got {self.background!r}")
        if self.motifs not in MOTIF_SETS:
            raise ValueError(f"motifs must be one of {tuple(MOTIF_SETS)}, got {self.motifs!r}")
        if self.graphs_per_class < 1 or self.max_copies < 1:
            raise ValueError("graphs_per_class and max_copies must be >= 1")


def motif_size(name: str, motifs: str = "varied") -> int:
    """Number of nodes of a motif of the set ``motifs``.

    Example:
        >>> motif_size("ladder")
        8
    """
    return 1 + max(max(e) for e in MOTIF_SETS[motifs][name])


def _prufer_tree(n: int, rng: np.random.Generator) -> tuple[list[int], list[int]]:
    """End points of a random labelled tree's edges, decoding a random Prüfer sequence in linear time.

    Edge ``i`` joins ``leaves[i]`` (the smallest leaf left at step ``i``) to ``parents[i]``, the
    sequence's ``i``-th entry (the last edge joins the last leaf to node ``n - 1``).
    """
    if n < 2:
        return [], []
    sequence = rng.integers(0, n, n - 2).tolist()
    degree = [1] * n
    for v in sequence:
        degree[v] += 1
    scan = leaf = degree.index(1)  # every leaf below `scan` is used up
    leaves = []
    for v in sequence:
        leaves.append(leaf)
        degree[v] -= 1
        if degree[v] == 1 and v < scan:
            leaf = v
        else:
            scan += 1
            while degree[scan] != 1:
                scan += 1
            leaf = scan
    leaves.append(leaf)
    return leaves, sequence + [n - 1]  # the largest node is never the smallest leaf, so it is left to last


def random_tree(n: int, rng: np.random.Generator) -> list[tuple[int, int]]:
    """Edges of a uniformly random labelled tree on ``n`` nodes (a random Prüfer sequence).

    Example:
        >>> len(random_tree(5, np.random.default_rng(0)))
        4
    """
    return list(zip(*_prufer_tree(n, rng)))


def _background(config: GraphConfig, n: int, rng: np.random.Generator) -> tuple[list[int], list[int]]:
    """The background's edges as lists of their two end points."""
    if config.background == "tree":
        return _prufer_tree(n, rng)
    if config.background == "ba-mixed":
        return mixed_attachment(n, rng)
    edges = list(nx.barabasi_albert_graph(n, min(3, n - 1), seed=int(rng.integers(2**31))).edges())
    return [int(a) for a, _ in edges], [int(b) for _, b in edges]


def mixed_attachment(n: int, rng: np.random.Generator) -> tuple[list[int], list[int]]:
    """End points of a preferential-attachment graph on ``n`` nodes: node ``i >= 2`` joins ``min(m_i, i)``
    distinct earlier nodes, ``m_i`` 1 or 2 with equal chance, each picked with probability proportional to
    its degree (nodes 0 and 1 start joined). Barabási–Albert's growth rule, but where every node of an
    ``m = 3`` graph has degree 3 or more, degrees here start at 1 and low-degree nodes neighbour each other,
    as motif nodes do; hubs remain (the degree distribution's tail is a power law).

    Example:
        >>> src, dst = mixed_attachment(6, np.random.default_rng(0))
        >>> len(src) >= 5, all(d < s for s, d in zip(src, dst))
        (True, True)
    """
    if n < 2:
        return [], []
    ends = [0, 1]  # every edge's two end points: picking from it is picking by degree
    src, dst = [1], [0]
    for i in range(2, n):
        m = min(int(rng.integers(1, 3)), i)
        targets: list[int] = []
        while len(targets) < m:
            t = ends[int(rng.integers(len(ends)))]
            if t not in targets:
                targets.append(t)
        src += [i] * m
        dst += targets
        ends += targets + [i] * m
    return src, dst


_MOTIF_TABLES = {
    key: ([tuple(map(list, zip(*e))) for e in motifs.values()], [motif_size(name, key) for name in motifs])
    for key, motifs in MOTIF_SETS.items()
}  # per set: (sources, targets) of each class's motif, and its number of nodes


def synthetic_graph(config: GraphConfig, seed: int, label: int, index: int) -> Data:
    """Graph ``index`` of class ``label`` for ``seed``.

    Returns a torch_geometric ``Data`` with ``x`` (N, 1) float ones, ``edge_index`` (2, E)
    holding both directions of every edge, ``edge_label`` (E,) +1 content / -1 style, and
    ``y`` (1,) the class (the number of motif copies is the content edges' count / 20).
    """
    if not 0 <= label < len(MOTIFS):
        raise ValueError(f"label must be in [0, {len(MOTIFS)}), got {label}")
    rng = np.random.default_rng([seed, label, index])
    ends, sizes = _MOTIF_TABLES[config.motifs]
    (motif_src, motif_dst), size = ends[label], sizes[label]
    u = rng.random(2 + 2 * config.max_copies).tolist()  # copies, eps, then each copy's two attach points
    copies = 1 + int(u[0] * config.max_copies)
    n_background = max(2, math.floor(copies * size * config.multiplier) - 2 + int(u[1] * 4))
    src, dst = _background(config, n_background, rng)
    labels = [-1] * len(src)
    for k in range(copies):  # the copy's motif edges, then one edge from the copy to the background
        offset = n_background + k * size
        src += [offset + a for a in motif_src] + [offset + int(u[2 + 2 * k] * size)]
        dst += [offset + b for b in motif_dst] + [int(u[3 + 2 * k] * n_background)]
        labels += [1] * len(motif_src) + [-1]
    n = n_background + copies * size
    order = rng.permutation(n)  # shuffle node ids: position must not give the motif away
    edges = np.array([src, dst, labels], dtype=np.int64)
    ends = order[edges[:2]]
    graph = Data()  # item assignment: cheaper than Data(**kwargs), which probes each key first
    graph["x"] = torch.ones(n, 1)
    graph["edge_index"] = torch.from_numpy(np.concatenate([ends, ends[::-1]], axis=1))
    graph["edge_label"] = torch.from_numpy(np.concatenate([edges[2], edges[2]]))
    graph["y"] = torch.full((1,), label)
    return graph
