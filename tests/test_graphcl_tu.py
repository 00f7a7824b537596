"""TU-format dataset loader: agreement with torch_geometric's reader, folder layouts, and every error path."""

from __future__ import annotations

from pathlib import Path

import networkx as nx
import numpy as np
import pytest
import torch

pytest.importorskip("torch_geometric")

from torch_geometric.io import read_tu_data  # noqa: E402

from fmbench.errors import DataError  # noqa: E402
from fmbench.studies.graphcl import tu  # noqa: E402
from fmbench.studies.graphcl.checks import GraphError  # noqa: E402
from fmbench.studies.graphcl.tu import load_tu  # noqa: E402

GRAPHS = [
    nx.cycle_graph(5),
    nx.star_graph(4),
    nx.complete_graph(4),
    nx.path_graph(3),
    nx.empty_graph(1),
    nx.petersen_graph(),
]
LABELS = [3, -1, 3, 7, -1, 7]  # classes 1, 0, 1, 2, 0, 2
OFFSETS = np.cumsum([0] + [g.number_of_nodes() for g in GRAPHS]).tolist()
N = OFFSETS[-1]


def write_tu(folder: Path, name: str = "TOY", node_labels: int = 0, attributes: int = 0) -> Path:
    """Write ``GRAPHS`` (labels ``LABELS``) as a TU dataset: both directions of each edge, then a self-loop on node 1, a
    duplicate of the first edge and the edge between the last two nodes (not in the Petersen graph) in
    one direction only; ``node_labels`` label columns (values 2..5) and ``attributes`` attribute columns."""
    rng = np.random.default_rng(0)
    folder.mkdir(parents=True, exist_ok=True)
    edges, indicator, offset = [], [], 1
    for g, graph in enumerate(GRAPHS):
        ids = {v: offset + i for i, v in enumerate(graph.nodes)}
        for a, b in graph.edges:
            edges += [(ids[a], ids[b]), (ids[b], ids[a])]
        indicator += [g + 1] * len(ids)
        offset += len(ids)
    edges += [(1, 1), edges[0], (offset - 1, offset - 2)]
    text = {
        "A": "".join(f"{a}, {b}\n" for a, b in edges),
        "graph_indicator": "".join(f"{g}\n" for g in indicator),
        "graph_labels": "".join(f"{y}\n" for y in LABELS),
    }
    n = len(indicator)
    if node_labels:
        codes = rng.integers(2, 6, (n, node_labels))
        text["node_labels"] = "".join(", ".join(map(str, row)) + "\n" for row in codes)
    if attributes:
        values = rng.normal(size=(n, attributes))
        text["node_attributes"] = "".join(", ".join(f"{v:.6f}" for v in row) + "\n" for row in values)
    for suffix, body in text.items():
        (folder / f"{name}_{suffix}.txt").write_text(body)
    return folder


def edge_set(edge_index: torch.Tensor) -> set[tuple[int, int]]:
    return set(map(tuple, edge_index.t().tolist()))


@pytest.mark.parametrize(
    "node_labels,attributes,source",
    [(0, 0, "constant"), (1, 0, "node_labels"), (2, 0, "node_labels"), (1, 3, "node_attributes")],
)
def test_matches_torch_geometric_reader(tmp_path, node_labels, attributes, source):
    folder = write_tu(tmp_path, node_labels=node_labels, attributes=attributes)
    data = load_tu(folder)
    ref, slices, sizes = read_tu_data(str(folder), "TOY")
    assert data.name == "TOY" and data.feature_source == source and data.label_values == [-1, 3, 7]
    assert len(data.graphs) == len(GRAPHS) == len(slices["y"]) - 1
    for g, graph in enumerate(data.graphs):
        nodes, edges = slice(OFFSETS[g], OFFSETS[g + 1]), slice(*slices["edge_index"][g : g + 2].tolist())
        assert graph.y.tolist() == [int(ref.y[g])] == [[1, 0, 1, 2, 0, 2][g]]
        assert graph.num_nodes == GRAPHS[g].number_of_nodes()
        ref_edges = edge_set(ref.edge_index[:, edges])
        assert edge_set(graph.edge_index) == ref_edges | {(b, a) for a, b in ref_edges}
        assert graph.edge_index.shape[1] == len(edge_set(graph.edge_index))  # no duplicates
        assert graph.x.dtype == torch.float32 and graph.edge_index.dtype == torch.int64
        if source == "constant":
            assert ref.x is None and torch.equal(graph.x, torch.ones(graph.num_nodes, 1))
        else:
            width = sizes["num_node_attributes"] if attributes else sizes["num_node_labels"]
            assert torch.equal(graph.x, ref.x[nodes, :width])
    assert edge_set(data.graphs[0].edge_index) == {(a, b) for a in range(5) for b in range(5) if (a - b) % 5 in (1, 4)}
    last = edge_set(data.graphs[-1].edge_index)
    assert len(last) == 2 * (GRAPHS[-1].number_of_edges() + 1) and {(8, 9), (9, 8)} <= last


def test_one_hot_width_is_the_same_for_every_graph(tmp_path):
    data = load_tu(write_tu(tmp_path, node_labels=1))
    assert {g.x.shape[1] for g in data.graphs} == {4}  # labels 2..5 -> 4 columns
    assert all(torch.equal(g.x.sum(1), torch.ones(g.num_nodes)) for g in data.graphs)


def test_folder_layouts_and_name_inference(tmp_path):
    write_tu(tmp_path / "TOY" / "raw")
    for root, name in [(tmp_path / "TOY" / "raw", None), (tmp_path, None), (tmp_path, "TOY"), (str(tmp_path), "TOY")]:
        assert len(load_tu(root, name).graphs) == len(GRAPHS)
    write_tu(tmp_path / "OTHER", name="OTHER")
    assert load_tu(tmp_path / "OTHER").name == "OTHER"
    assert load_tu(tmp_path, "OTHER").name == "OTHER"
    with pytest.raises(DataError, match="several TU datasets .*pass name="):
        load_tu(tmp_path)
    with pytest.raises(DataError, match="MISSING_A.txt not found"):
        load_tu(tmp_path, "MISSING")
    (tmp_path / "empty").mkdir()
    with pytest.raises(DataError, match="no \\*_A.txt"):
        load_tu(tmp_path / "empty")
    with pytest.raises(DataError, match="no such folder"):
        load_tu(tmp_path / "nowhere")


def _edit(folder: Path, suffix: str, transform) -> Path:
    path = folder / f"TOY_{suffix}.txt"
    path.write_text(transform(path.read_text().splitlines(keepends=True)))
    return path


def _error(folder: Path, error=DataError) -> str:
    with pytest.raises(error) as info:
        load_tu(folder)
    return str(info.value)


@pytest.mark.parametrize("suffix", ["graph_indicator", "graph_labels"])
def test_missing_required_file(tmp_path, suffix):
    (write_tu(tmp_path) / f"TOY_{suffix}.txt").unlink()
    assert _error(tmp_path) == f"TOY: missing required file {tmp_path / f'TOY_{suffix}.txt'}"


@pytest.mark.parametrize(
    "suffix,line,bad,expected",
    [
        ("A", 3, "1, x\n", "expected comma-separated integers, got '1, x'"),
        ("A", 2, "1, 2, 3\n", "expected 2 comma-separated integers, got '1, 2, 3'"),
        ("A", 1, "1\n", "expected 2 comma-separated integers, got '1'"),
        ("graph_labels", 2, "1.5\n", "expected comma-separated integers, got '1.5'"),
        ("graph_indicator", 4, "one\n", "expected comma-separated integers, got 'one'"),
        ("node_attributes", 5, "0.5, abc, 1\n", "expected comma-separated numbers, got '0.5, abc, 1'"),
    ],
)
def test_non_numeric_lines(tmp_path, suffix, line, bad, expected):
    write_tu(tmp_path, attributes=3)
    path = _edit(tmp_path, suffix, lambda lines: "".join(lines[: line - 1] + [bad] + lines[line:]))
    assert _error(tmp_path) == f"{path}, line {line}: {expected}"


def test_line_numbers_count_blank_lines(tmp_path):
    path = _edit(write_tu(tmp_path), "A", lambda lines: "".join(lines[:2] + ["\n", "\n"] + lines[2:3] + ["9, 99\n"]))
    assert _error(tmp_path).startswith(f"{path}, line 6: edge (9, 99) refers to a node outside 1..")


@pytest.mark.parametrize("edge", ["0, 1", "1, 0", f"1, {N + 1}"])
def test_edge_endpoint_outside_the_nodes(tmp_path, edge):
    path = _edit(write_tu(tmp_path), "A", lambda lines: "".join(lines + [f"{edge}\n"]))
    lines = len(path.read_text().splitlines())
    assert _error(tmp_path) == (
        f"{path}, line {lines}: edge ({edge}) refers to a node outside 1..{N} (TOY_graph_indicator.txt lists {N} nodes)"
    )


def test_edge_between_two_graphs(tmp_path):
    path = _edit(write_tu(tmp_path), "A", lambda lines: "".join(lines[:1] + ["2, 7\n"] + lines[1:]))
    assert _error(tmp_path) == f"{path}, line 2: edge (2, 7) joins graph 1 to graph 2"


@pytest.mark.parametrize(
    "transform,line,expected",
    [
        (lambda ids: [i + 1 for i in ids], 1, "graph ids must start at 1, got 2"),
        (lambda ids: [0] + ids[1:], 1, "graph ids must start at 1, got 0"),
        (
            lambda ids: ids[:7] + [1] + ids[8:],
            8,
            "graph id 1 after 2: each graph's nodes must be consecutive lines, graphs in increasing id order",
        ),
        (
            lambda ids: [i + (i >= 2) for i in ids],
            6,
            "graph id jumps from 1 to 3: graph 2 has no nodes (empty graphs are not allowed)",
        ),
        (
            lambda ids: [i + 2 * (i >= 4) for i in ids],
            15,
            "graph id jumps from 3 to 6: graphs 4 to 5 have no nodes (empty graphs are not allowed)",
        ),
    ],
)
def test_graph_indicator_must_run_through_the_graphs_in_order(tmp_path, transform, line, expected):
    path = _edit(
        write_tu(tmp_path),
        "graph_indicator",
        lambda lines: "".join(f"{i}\n" for i in transform([int(x) for x in lines])),
    )
    assert _error(tmp_path) == f"{path}, line {line}: {expected}"


def test_empty_graph_indicator(tmp_path):
    path = _edit(write_tu(tmp_path), "graph_indicator", lambda lines: "")
    assert _error(tmp_path) == f"{path}: no nodes (the file is empty)"


def test_graph_label_count(tmp_path):
    path = _edit(write_tu(tmp_path), "graph_labels", lambda lines: "".join(lines + ["1\n"]))
    assert _error(tmp_path) == f"{path}: 7 graph labels, but TOY_graph_indicator.txt has 6 graphs"


@pytest.mark.parametrize("suffix,kwargs", [("node_labels", {"node_labels": 1}), ("node_attributes", {"attributes": 2})])
def test_node_row_count(tmp_path, suffix, kwargs):
    path = _edit(write_tu(tmp_path, **kwargs), suffix, lambda lines: "".join(lines[:-1]))
    assert _error(tmp_path) == f"{path}: {N - 1} rows, but TOY_graph_indicator.txt lists {N} nodes"


def test_each_graph_is_checked(tmp_path):
    _edit(
        write_tu(tmp_path, attributes=2), "node_attributes", lambda lines: "".join(lines[:6] + ["nan, 1\n"] + lines[7:])
    )  # node 7 is in the second graph
    assert _error(tmp_path, GraphError) == "TOY graph 1: node features contain NaN or infinity"


def test_graphs_without_edges(tmp_path):
    for suffix, text in [("A", ""), ("graph_indicator", "1\n1\n2\n"), ("graph_labels", "0\n1\n")]:
        (tmp_path / f"TOY_{suffix}.txt").write_text(text)
    data = load_tu(tmp_path)
    assert [g.num_nodes for g in data.graphs] == [2, 1]
    assert all(g.edge_index.shape == (2, 0) and g.edge_index.dtype == torch.int64 for g in data.graphs)


def test_ten_thousand_graphs(tmp_path):
    rng = np.random.default_rng(0)
    sizes = rng.integers(5, 30, 10_000)
    indicator = np.repeat(np.arange(1, len(sizes) + 1), sizes)
    start = np.repeat(np.concatenate([[0], np.cumsum(sizes)[:-1]]), sizes * 2)
    src = start + rng.integers(0, np.repeat(sizes, sizes * 2)) + 1
    dst = start + rng.integers(0, np.repeat(sizes, sizes * 2)) + 1
    np.savetxt(tmp_path / "BIG_A.txt", np.stack([src, dst], 1), fmt="%d", delimiter=", ")
    np.savetxt(tmp_path / "BIG_graph_indicator.txt", indicator, fmt="%d")
    np.savetxt(tmp_path / "BIG_graph_labels.txt", rng.integers(0, 2, len(sizes)), fmt="%d")
    data = load_tu(tmp_path)
    assert len(data.graphs) == 10_000 and data.label_values == [0, 1]
    assert sum(g.num_nodes for g in data.graphs) == len(indicator)
    assert data.name == "BIG" and data.feature_source == "constant"


def test_a_node_label_far_from_the_others_is_refused_before_one_hot(tmp_path):
    path = _edit(write_tu(tmp_path, node_labels=1), "node_labels", lambda lines: "".join(lines[:-1] + ["100000000\n"]))
    assert _error(tmp_path) == (
        f"{path}: node labels in column 1 span 2..100000000 but only 5 values occur (one-hot features need one "
        "column per value in the span; at most max(64, 2 x distinct))"
    )


def test_a_sparse_label_span_within_the_bounds_loads(tmp_path):
    _edit(write_tu(tmp_path, node_labels=1), "node_labels", lambda lines: "".join(lines[:-1] + ["60\n"]))
    assert load_tu(tmp_path).graphs[0].x.shape[1] == 59  # labels 2..60


def test_one_hot_features_over_the_entry_limit_are_refused(tmp_path, monkeypatch):
    monkeypatch.setattr(tu, "MAX_ONE_HOT_ENTRIES", 3 * N)
    path = write_tu(tmp_path, node_labels=1) / "TOY_node_labels.txt"
    assert _error(tmp_path) == (
        f"{path}: one-hot node labels would take {N} nodes x 4 columns, over the limit of {3 * N} entries (0 MiB)"
    )
