"""Batched graph augmentations: seeded, symmetric, per graph, and what each one keeps."""

from __future__ import annotations

import pytest
import torch

pytest.importorskip("torch_geometric")

from torch_geometric.data import Batch  # noqa: E402

from fmbench.studies.graphcl.augment import (  # noqa: E402
    drop_edges,
    drop_nodes,
    drop_style_edges,
    jitter_features,
    mask_features,
    perturb_edges,
    subgraph,
)
from fmbench.studies.graphcl.generator import GraphConfig, synthetic_graph  # noqa: E402

AUGMENTATIONS = [drop_edges, drop_style_edges, drop_nodes, subgraph, mask_features, perturb_edges]


@pytest.fixture(scope="module")
def batch() -> Batch:
    graphs = [synthetic_graph(GraphConfig(multiplier=2), 0, c, i) for c in range(6) for i in range(8)]
    for g in graphs:
        g.x = torch.arange(g.num_nodes * 3, dtype=torch.float).reshape(-1, 3) + 1
    return Batch.from_data_list(graphs)


def _edges(g) -> set:
    return set(map(tuple, g.edge_index.t().tolist()))


def _symmetric(g) -> bool:
    e = _edges(g)
    return all((b, a) in e for a, b in e)


@pytest.mark.parametrize("augment", AUGMENTATIONS)
def test_seeded_and_well_formed(batch, augment):
    a = augment(batch, 0.3, torch.Generator().manual_seed(0))
    b = augment(batch, 0.3, torch.Generator().manual_seed(0))
    c = augment(batch, 0.3, torch.Generator().manual_seed(1))
    assert torch.equal(a.edge_index, b.edge_index) and torch.equal(a.x, b.x)
    assert not (torch.equal(a.edge_index, c.edge_index) and torch.equal(a.x, c.x))
    assert a.num_graphs == batch.num_graphs and _symmetric(a)
    assert a.edge_index.max() < a.num_nodes and a.x.shape[0] == a.num_nodes
    assert a.edge_label.shape[0] == a.edge_index.shape[1]
    same_graph = a.batch[a.edge_index[0]] == a.batch[a.edge_index[1]]
    assert bool(same_graph.all())  # no edge crosses graphs
    assert augment(batch, 0.0, torch.Generator().manual_seed(0)).edge_index.shape[1] == batch.edge_index.shape[1]


def test_drop_edges_rate(batch):
    out = drop_edges(batch, 0.5, torch.Generator().manual_seed(0))
    assert 0.4 < out.edge_index.shape[1] / batch.edge_index.shape[1] < 0.6


def test_drop_style_edges_keeps_all_content(batch):
    out = drop_style_edges(batch, 0.9, torch.Generator().manual_seed(0))
    assert int((out.edge_label == 1).sum()) == int((batch.edge_label == 1).sum())
    assert int((out.edge_label == -1).sum()) < 0.3 * int((batch.edge_label == -1).sum())
    no_labels = batch.clone()
    del no_labels.edge_label
    with pytest.raises(ValueError, match="edge_label"):
        drop_style_edges(no_labels, 0.2, torch.Generator())


def test_drop_nodes_keeps_a_node_per_graph_and_the_batch_vector(batch):
    out = drop_nodes(batch, 0.99, torch.Generator().manual_seed(0))
    counts = torch.bincount(out.batch, minlength=batch.num_graphs)
    assert (counts >= 1).all() and int(out.ptr[-1]) == out.num_nodes
    kept_rows = {tuple(r) for r in out.x.tolist()}
    assert kept_rows <= {tuple(r) for r in batch.x.tolist()}  # surviving nodes keep their features


def test_mask_features_zeroes_whole_columns_per_graph(batch):
    out = mask_features(batch, 0.5, torch.Generator().manual_seed(0))
    for g in range(batch.num_graphs):
        rows = out.x[out.batch == g]
        zero_cols = (rows == 0).all(dim=0)
        assert torch.equal(rows[:, ~zero_cols], batch.x[batch.batch == g][:, ~zero_cols])


def test_perturb_edges_keeps_the_edge_count(batch):
    out = perturb_edges(batch, 0.3, torch.Generator().manual_seed(0))
    assert out.edge_index.shape[1] == batch.edge_index.shape[1]
    assert bool((out.edge_index[0] != out.edge_index[1]).all())


@pytest.mark.parametrize("ratio", [-0.1, 1.0, 2])
def test_bad_ratio(batch, ratio):
    with pytest.raises(ValueError, match="ratio"):
        drop_edges(batch, ratio, torch.Generator())


@pytest.mark.parametrize("ratio", [0.2, 0.6])
def test_subgraph_keeps_a_connected_part_of_each_graph(batch, ratio):
    import math

    import networkx as nx

    out = subgraph(batch, ratio, torch.Generator().manual_seed(0))
    edges = out.edge_index.t().tolist()
    for i in range(batch.num_graphs):
        nodes = torch.nonzero(out.batch == i).flatten().tolist()
        assert len(nodes) == math.ceil((1 - ratio) * int((batch.batch == i).sum()))  # generated graphs are connected
        g = nx.Graph(edges).subgraph(nodes) if len(nodes) > 1 else nx.empty_graph(nodes)
        assert nx.is_connected(g)


def test_jitter_features_changes_intensity_per_graph_only():
    graphs = [synthetic_graph(GraphConfig(), 0, c, 0) for c in range(6)]
    for g in graphs:
        g.x = torch.cat([torch.full((g.num_nodes, 1), 0.5), torch.rand(g.num_nodes, 2)], 1)
    batch = Batch.from_data_list(graphs)
    out = jitter_features(batch, 0.3, torch.Generator().manual_seed(0))
    assert torch.equal(out.x[:, 1:], batch.x[:, 1:]) and torch.equal(out.edge_index, batch.edge_index)
    per_graph = [out.x[batch.batch == i, 0].unique() for i in range(6)]
    assert all(len(v) == 1 for v in per_graph)  # one draw per graph
    assert len({round(float(v), 6) for v in per_graph}) == 6 and bool(((out.x >= 0) & (out.x <= 1)).all())
    assert torch.equal(out.x, jitter_features(batch, 0.3, torch.Generator().manual_seed(0)).x)
    with pytest.raises(ValueError, match="jitter strength"):
        jitter_features(batch, 1.5, torch.Generator())
