"""Synthetic content-motif graphs (arXiv:2208.02810): seeding, sizes, labels, structure."""

from __future__ import annotations

import hashlib

import networkx as nx
import numpy as np
import pytest
import torch

pytest.importorskip("torch_geometric")

from fmbench.studies.graphcl.generator import (  # noqa: E402
    DEGREE_MATCHED_MOTIFS,
    MOTIF_SETS,
    MOTIFS,
    GraphConfig,
    mixed_attachment,
    motif_size,
    random_tree,
    synthetic_graph,
)

CONFIGS = [
    ("tree", "varied"),
    ("tree", "degree-matched"),
    ("ba", "varied"),
    ("ba-mixed", "degree-matched"),
]  # registered


def _digest(g) -> str:
    h = hashlib.sha256()
    for t in (g.x, g.edge_index, g.edge_label, g.y):
        h.update(t.numpy().tobytes())
    return h.hexdigest()


@pytest.mark.parametrize("background,motifs", CONFIGS)
def test_graphs_are_random_access_and_seeded(background, motifs):
    cfg = GraphConfig(multiplier=2, background=background, motifs=motifs)
    a = synthetic_graph(cfg, seed=0, label=2, index=5)
    assert _digest(a) == _digest(synthetic_graph(cfg, seed=0, label=2, index=5))
    assert _digest(a) != _digest(synthetic_graph(cfg, seed=1, label=2, index=5))
    assert _digest(a) != _digest(synthetic_graph(cfg, seed=0, label=2, index=6))


@pytest.mark.parametrize("multiplier", [1, 2, 4, 8])
@pytest.mark.parametrize("background,motifs", CONFIGS)
def test_sizes_labels_and_connectivity(multiplier, background, motifs):
    cfg = GraphConfig(multiplier=multiplier, background=background, motifs=motifs)
    for label, (name, edges) in enumerate(MOTIF_SETS[motifs].items()):
        for index in range(3):
            g = synthetic_graph(cfg, 0, label, index)
            size = motif_size(name, motifs)
            content = int((g.edge_label == 1).sum()) // 2
            copies = content // len(edges)
            assert copies in (1, 2) and content == copies * len(edges)
            n_background = g.num_nodes - copies * size
            assert int(np.floor(copies * size * multiplier)) - 2 <= n_background <= int(copies * size * multiplier) + 1
            assert int(g.y) == label
            assert g.x.shape == (g.num_nodes, 1) and g.edge_index.max() < g.num_nodes
            graph = nx.Graph(g.edge_index.t().tolist())
            assert graph.number_of_nodes() == g.num_nodes and nx.is_connected(graph)
            # the content edges are exactly the motif copies
            motif = nx.Graph(g.edge_index[:, g.edge_label == 1].t().tolist())
            parts = [motif.subgraph(c) for c in nx.connected_components(motif)]
            assert len(parts) == copies
            assert all(nx.is_isomorphic(p, nx.Graph(edges)) for p in parts)


def test_random_tree_is_a_spanning_tree():
    rng = np.random.default_rng(0)
    for n in (2, 3, 10, 57):
        tree = nx.Graph(random_tree(n, rng))
        assert tree.number_of_nodes() == n and nx.is_tree(tree)


def test_mixed_attachment_is_connected_with_degrees_from_one_and_hubs():
    rng = np.random.default_rng(0)
    for n in (2, 3, 10, 120):
        graph = nx.Graph(list(zip(*mixed_attachment(n, rng))))
        assert graph.number_of_nodes() == n and nx.is_connected(graph)
    degrees = [d for _, d in graph.degree()]
    assert min(degrees) == 1 and degrees.count(2) > 10 and max(degrees) >= 10  # unlike BA m=3 (degree >= 3)


def test_degree_matched_motifs_share_one_degree_profile_and_differ_after_two_wl_rounds():
    import warnings

    graphs = [nx.Graph(edges) for edges in DEGREE_MATCHED_MOTIFS.values()]
    assert {tuple(sorted(d for _, d in g.degree())) for g in graphs} == {(2, 2, 2, 2, 3, 3, 3, 3)}
    assert all(nx.is_connected(g) for g in graphs)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # networkx notes its hashes changed in 3.5
        assert len({nx.weisfeiler_lehman_graph_hash(g, iterations=2) for g in graphs}) == len(graphs)


def test_bad_parameters_are_refused():
    with pytest.raises(ValueError, match="multiplier"):
        GraphConfig(multiplier=0)
    with pytest.raises(ValueError, match="background"):
        GraphConfig(background="grid")
    with pytest.raises(ValueError, match="motifs"):
        GraphConfig(motifs="other")
    with pytest.raises(ValueError, match="label"):
        synthetic_graph(GraphConfig(), 0, label=6, index=0)
    assert torch.is_tensor(synthetic_graph(GraphConfig(), 0, 0, 0).edge_label)


def test_motifs_share_size_and_edge_count_but_differ_under_1wl():
    import warnings

    graphs = [nx.Graph(edges) for edges in MOTIFS.values()]
    assert {(g.number_of_nodes(), g.number_of_edges()) for g in graphs} == {(8, 10)}
    assert all(nx.is_connected(g) for g in graphs)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # networkx notes its hashes changed in 3.5
        hashes = {nx.weisfeiler_lehman_graph_hash(g, iterations=4) for g in graphs}
    assert len(hashes) == len(MOTIFS)
