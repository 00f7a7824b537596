"""Synthetic graphs with a class-defining content motif on a style background (arXiv:2208.02810).

Every graph of class ``c`` holds one or two copies of motif ``c`` (6-8 nodes, :data:`MOTIFS`),
each joined by one edge to a background graph — a uniformly random labelled tree or a
Barabási–Albert graph (``m = 3``) — of ``floor(copies * motif_size * multiplier) + eps``
nodes, ``eps`` uniform in ``{-2, ..., 1}``. The style:content ``multiplier`` sets how much of
the graph is irrelevant to the label. Every edge is labelled content (+1, inside a motif copy)
or style (-1, background and attaching edges); nodes are shuffled so position gives nothing
away. Node features are constant (``x = 1``): only structure carries the class.

Graph ``i`` of class ``c`` depends only on ``(seed, c, i)`` (numpy's ``SeedSequence``), so
any graph is generated on its own. Unlike the authors' generator, every random draw is
seeded, and a motif's size is its number of nodes.

Example:
    >>> g = synthetic_graph(GraphConfig(multiplier=2), seed=0, label=3, index=0)
    >>> g.y.item(), g.x.shape[1], int((g.edge_label == 1).sum()) > 0
    (3, 1, True)
"""

from __future__ import annotations

import heapq
from dataclasses import dataclass

import networkx as nx
import numpy as np
import torch
from torch_geometric.data import Data

MOTIFS: dict[str, list[tuple[int, int]]] = {
    "cycle6": [(i, (i + 1) % 6) for i in range(6)],
    "wheel7": [(0, i) for i in range(1, 7)] + [(i, i % 6 + 1) for i in range(1, 7)],
    "ladder8": [(i, i + 1) for i in (0, 1, 2, 4, 5, 6)] + [(i, i + 4) for i in range(4)],
    "prism6": [(0, 1), (1, 2), (2, 0), (3, 4), (4, 5), (5, 3), (0, 3), (1, 4), (2, 5)],
    "house-pair6": [(0, 1), (1, 2), (2, 3), (3, 0), (0, 4), (1, 4), (2, 5), (3, 5)],
    "clique6": [(i, j) for i in range(6) for j in range(i + 1, 6)],
}
"""The six content motifs, one per class (class ``c`` is the ``c``-th), as undirected edge lists."""
BACKGROUNDS = ("tree", "ba")


@dataclass(frozen=True)
class GraphConfig:
    """Generator parameters.

    Attributes:
        multiplier: style:content ratio (background nodes per motif node).
        background: ``"tree"`` (uniform random labelled tree) or ``"ba"`` (Barabási–Albert, m=3).
        graphs_per_class: graphs of each of the six classes.
        max_copies: motif copies per graph are uniform in ``[1, max_copies]``.
    """

    multiplier: float = 1.0
    background: str = "tree"
    graphs_per_class: int = 1000
    max_copies: int = 2

    def __post_init__(self) -> None:
        if not self.multiplier > 0:
            raise ValueError(f"multiplier must be > 0, got {self.multiplier}")
        if self.background not in BACKGROUNDS:
            raise ValueError(f"background must be one of {BACKGROUNDS}, got {self.background!r}")
        if self.graphs_per_class < 1 or self.max_copies < 1:
            raise ValueError("graphs_per_class and max_copies must be >= 1")


def motif_size(name: str) -> int:
    """Number of nodes of a motif.

    Example:
        >>> motif_size("ladder8")
        8
    """
    return 1 + max(max(e) for e in MOTIFS[name])


def random_tree(n: int, rng: np.random.Generator) -> list[tuple[int, int]]:
    """Edges of a uniformly random labelled tree on ``n`` nodes (a random Prüfer sequence).

    Example:
        >>> len(random_tree(5, np.random.default_rng(0)))
        4
    """
    if n < 2:
        return []
    sequence = rng.integers(0, n, n - 2).tolist()
    degree = [1] * n
    for v in sequence:
        degree[v] += 1
    leaves = [v for v in range(n) if degree[v] == 1]
    heapq.heapify(leaves)
    edges = []
    for v in sequence:
        leaf = heapq.heappop(leaves)
        edges.append((leaf, v))
        degree[v] -= 1
        if degree[v] == 1:
            heapq.heappush(leaves, v)
    edges.append((heapq.heappop(leaves), heapq.heappop(leaves)))
    return edges


def _background(config: GraphConfig, n: int, rng: np.random.Generator) -> list[tuple[int, int]]:
    if config.background == "tree":
        return random_tree(n, rng)
    graph = nx.barabasi_albert_graph(n, min(3, n - 1), seed=int(rng.integers(2**31)))
    return [(int(a), int(b)) for a, b in graph.edges()]


def synthetic_graph(config: GraphConfig, seed: int, label: int, index: int) -> Data:
    """Graph ``index`` of class ``label`` for ``seed``.

    Returns a torch_geometric ``Data`` with ``x`` (N, 1) float ones, ``edge_index`` (2, E)
    holding both directions of every edge, ``edge_label`` (E,) +1 content / -1 style, ``y``
    (1,) the class, and ``copies`` (1,) the number of motif copies.
    """
    if not 0 <= label < len(MOTIFS):
        raise ValueError(f"label must be in [0, {len(MOTIFS)}), got {label}")
    rng = np.random.default_rng([seed, label, index])
    name = list(MOTIFS)[label]
    size = motif_size(name)
    copies = int(rng.integers(1, config.max_copies + 1))
    n_background = max(2, int(np.floor(copies * size * config.multiplier)) + int(rng.integers(-2, 2)))
    edges = [(a, b, -1) for a, b in _background(config, n_background, rng)]
    for k in range(copies):
        offset = n_background + k * size
        edges += [(offset + a, offset + b, 1) for a, b in MOTIFS[name]]
        edges.append((offset + int(rng.integers(size)), int(rng.integers(n_background)), -1))
    n = n_background + copies * size
    order = rng.permutation(n)  # shuffle node ids: position must not give the motif away
    e = np.array(edges, dtype=np.int64)
    src, dst = order[e[:, 0]], order[e[:, 1]]
    edge_index = torch.from_numpy(np.stack([np.concatenate([src, dst]), np.concatenate([dst, src])]))
    edge_label = torch.from_numpy(np.concatenate([e[:, 2], e[:, 2]]))
    return Data(x=torch.ones(n, 1), edge_index=edge_index, edge_label=edge_label,
                y=torch.tensor([label]), copies=torch.tensor([copies]), num_nodes=n)
