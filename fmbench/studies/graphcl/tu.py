"""Graph-classification datasets in the TU format (the TUDortmund collection), read from local files.

A dataset ``NAME`` is a folder of comma-separated text files with one row per line:

- ``NAME_A.txt`` (required): ``row, col``, an edge between two 1-based node ids;
- ``NAME_graph_indicator.txt`` (required): line ``i`` is the 1-based graph id of node ``i``;
  each graph's nodes are consecutive lines, graphs in increasing id order;
- ``NAME_graph_labels.txt`` (required): line ``g`` is the integer class label of graph ``g``;
- ``NAME_node_attributes.txt``, ``NAME_node_labels.txt`` (optional): one row per node.

Edge labels and attributes are not read. Nothing is downloaded: get the files yourself (e.g.
from https://chrsmrrs.github.io/datasets/) and point :func:`load_tu` at their folder. Parsing is
numpy's C reader plus vectorised checks; a malformed file raises ``DataError`` naming the file
and line, which torch_geometric's own reader (``torch_geometric.io.read_tu_data``) does not. It is
kept rather than built on that reader because it is also faster: ``benchmarks/graphcl_tu.py``
measured 2.9x the graphs/s of ``read_tu_data`` plus cutting out each graph as ``TUDataset`` does
(7.2 s vs 20.7 s for 20,000 graphs, 350k nodes, one thread; ``read_tu_data`` alone took 11.4 s),
with identical graphs.

Example:
    >>> import tempfile
    >>> from pathlib import Path
    >>> folder = Path(tempfile.mkdtemp())
    >>> for suffix, text in [("A", "1, 2\\n2, 3\\n4, 5\\n"), ("graph_indicator", "1\\n1\\n1\\n2\\n2\\n"),
    ...                      ("graph_labels", "-1\\n1\\n")]:
    ...     _ = (folder / f"TOY_{suffix}.txt").write_text(text)
    >>> data = load_tu(folder)
    >>> data.name, len(data.graphs), data.label_values, data.feature_source
    ('TOY', 2, [-1, 1], 'constant')
    >>> data.graphs[1].edge_index.tolist(), data.graphs[1].y.tolist()
    ([[0, 1], [1, 0]], [1])
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from torch_geometric.data import Data

from fmbench.errors import DataError
from fmbench.studies.graphcl.checks import check_graph

MIN_LABEL_SPAN = 64
"""A node-label column may always span this many values; wider only if at least half of them occur."""
MAX_ONE_HOT_ENTRIES = 1 << 25
"""The most entries one-hot node features may have (nodes x columns): 128 MiB of float32."""


@dataclass(frozen=True)
class TUGraphs:
    """A loaded TU dataset.

    Attributes:
        name: the dataset's file prefix, e.g. ``"MUTAG"``.
        graphs: one ``Data`` per graph, in graph-id order, with ``x`` (N, F) float32,
            ``edge_index`` (2, E) int64 and ``y`` (1,) int64, the class in ``0 .. C-1``.
        label_values: ``label_values[c]`` is the label written in the file for class ``c``.
        feature_source: what ``x`` holds: ``"node_attributes"``, ``"node_labels"`` (one-hot)
            or ``"constant"`` (ones, width 1).
    """

    name: str
    graphs: list[Data]
    label_values: list[int]
    feature_source: str


def _find(root: Path, name: str | None) -> tuple[Path, str]:
    """The folder holding the dataset's files and the dataset's name."""
    if not root.is_dir():
        raise DataError(f"{root}: no such folder (expected a TU dataset's folder)")
    if name is not None:
        folders = [root, root / name / "raw", root / name]
        for folder in folders:
            if (folder / f"{name}_A.txt").is_file():
                return folder, name
        raise DataError(f"{name}_A.txt not found in {', '.join(map(str, folders))}")
    found = sorted(root.glob("*_A.txt")) or sorted(root.glob("*/raw/*_A.txt")) + sorted(root.glob("*/*_A.txt"))
    if len(found) == 1:
        return found[0].parent, found[0].name[: -len("_A.txt")]
    if found:
        raise DataError(
            f"{root}: several TU datasets ({', '.join(str(p.relative_to(root)) for p in found)}); "
            "pass name= (--name on the command line) to choose one"
        )
    raise DataError(f"{root}: no *_A.txt file in it, in */raw/ or in */ (not a TU dataset folder)")


def _line_of(path: Path, row: int) -> int:
    """The 1-based line number of data row ``row`` (blank lines hold no row)."""
    with path.open() as f:
        for number, line in enumerate(f, 1):
            if line.strip():
                if row == 0:
                    return number
                row -= 1
    raise AssertionError(f"{path} changed while being read")


def _bad_line(path: Path, integers: bool, columns: int | None, reason: str) -> DataError:
    """A ``DataError`` naming the first line of ``path`` that is not a row of numbers."""
    kind, parse = ("integers", int) if integers else ("numbers", float)
    with path.open() as f:
        for number, line in enumerate(f, 1):
            if not line.strip():
                continue
            fields = line.split(",")
            columns = len(fields) if columns is None else columns
            try:
                [parse(field) for field in fields]
            except ValueError:
                return DataError(f"{path}, line {number}: expected comma-separated {kind}, got {line.strip()!r}")
            if len(fields) != columns:
                return DataError(
                    f"{path}, line {number}: expected {columns} comma-separated {kind}, got {line.strip()!r}"
                )
    return DataError(f"{path}: {reason}")


def _read(path: Path, integers: bool, columns: int | None = None) -> np.ndarray:
    """The rows of a comma-separated numeric file as a 2-D int64 or float64 array."""
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", UserWarning)  # "input contained no data"
            table = np.loadtxt(path, delimiter=",", dtype=np.int64 if integers else np.float64, comments=None, ndmin=2)
    except UnicodeDecodeError:
        raise DataError(f"{path}: not a text file (it holds bytes that are not UTF-8)") from None
    except ValueError as e:
        raise _bad_line(path, integers, columns, str(e)) from None
    if columns is not None and table.shape[1] != columns:
        if len(table):
            raise _bad_line(path, integers, columns, f"expected {columns} values per line")
        return table.reshape(0, columns)  # an empty file
    return table


def _graph_ptr(indicator: np.ndarray, path: Path) -> np.ndarray:
    """Node offsets ``ptr`` (graph ``g`` holds nodes ``ptr[g]:ptr[g+1]``) from the graph indicator."""
    if len(indicator) == 0:
        raise DataError(f"{path}: no nodes (the file is empty)")
    if indicator[0] != 1:
        raise DataError(f"{path}, line {_line_of(path, 0)}: graph ids must start at 1, got {indicator[0]}")
    step = np.diff(indicator)
    bad = np.flatnonzero((step < 0) | (step > 1))
    if len(bad):
        row = int(bad[0]) + 1
        before, after = int(indicator[row - 1]), int(indicator[row])
        where = f"{path}, line {_line_of(path, row)}"
        if after < before:
            raise DataError(
                f"{where}: graph id {after} after {before}: each graph's nodes must be consecutive "
                "lines, graphs in increasing id order"
            )
        empty = f"graph {before + 1} has" if after == before + 2 else f"graphs {before + 1} to {after - 1} have"
        raise DataError(
            f"{where}: graph id jumps from {before} to {after}: {empty} no nodes (empty graphs are not allowed)"
        )
    return np.concatenate([[0], np.flatnonzero(step) + 1, [len(indicator)]])


def _edges(table: np.ndarray, graph: np.ndarray, path: Path, indicator_path: Path) -> np.ndarray:
    """Sorted unique (2, E) global 0-based edges in both directions, self-loops dropped."""
    n = len(graph)
    bad = np.flatnonzero((table < 1).any(axis=1) | (table > n).any(axis=1))
    if len(bad):
        a, b = table[bad[0]]
        raise DataError(
            f"{path}, line {_line_of(path, int(bad[0]))}: edge ({a}, {b}) refers to a node outside "
            f"1..{n} ({indicator_path.name} lists {n} nodes)"
        )
    src, dst = table[:, 0] - 1, table[:, 1] - 1
    bad = np.flatnonzero(graph[src] != graph[dst])
    if len(bad):
        a, b = table[bad[0]]
        raise DataError(
            f"{path}, line {_line_of(path, int(bad[0]))}: edge ({a}, {b}) joins graph "
            f"{graph[a - 1] + 1} to graph {graph[b - 1] + 1}"
        )
    keep = src != dst
    src, dst = src[keep], dst[keep]
    key = np.sort(np.concatenate([src * n + dst, dst * n + src]))
    first = np.ones(len(key), bool)  # np.unique's result, without its slow hashing
    first[1:] = key[1:] != key[:-1]
    key = key[first]
    return np.stack([key // n, key % n])


def _one_hot_width(path: Path, column: np.ndarray, index: int) -> int:
    """``max - min + 1`` of a label column, ``DataError`` if that is over ``max(64, 2 x distinct labels)``."""
    low, high = int(column.min()), int(column.max())
    distinct = len(np.unique(column))
    if high - low + 1 > max(MIN_LABEL_SPAN, 2 * distinct):
        raise DataError(
            f"{path}: node labels in column {index + 1} span {low}..{high} but only {distinct} values occur "
            f"(one-hot features need one column per value in the span; at most max({MIN_LABEL_SPAN}, 2 x distinct))"
        )
    return high - low + 1


def _features(folder: Path, name: str, n: int) -> tuple[np.ndarray, str]:
    """Node features (n, F) float32 and where they come from (see :class:`TUGraphs`)."""
    attributes, labels = folder / f"{name}_node_attributes.txt", folder / f"{name}_node_labels.txt"
    if attributes.is_file():
        path, source, table = attributes, "node_attributes", _read(attributes, integers=False)
    elif labels.is_file():
        path, source, table = labels, "node_labels", _read(labels, integers=True)
    else:
        return np.ones((n, 1), np.float32), "constant"
    if len(table) != n:
        raise DataError(f"{path}: {len(table)} rows, but {name}_graph_indicator.txt lists {n} nodes")
    if source == "node_attributes":
        return table.astype(np.float32), source
    widths = [_one_hot_width(path, table[:, c], c) for c in range(table.shape[1])]
    if n * sum(widths) > MAX_ONE_HOT_ENTRIES:
        raise DataError(
            f"{path}: one-hot node labels would take {n} nodes x {sum(widths)} columns, over the limit of "
            f"{MAX_ONE_HOT_ENTRIES} entries ({MAX_ONE_HOT_ENTRIES * 4 >> 20} MiB)"
        )
    codes = table - table.min(axis=0)
    offsets = np.concatenate([[0], np.cumsum(widths)])  # one one-hot block per label column
    one_hot = np.zeros((n, offsets[-1]), np.float32)
    one_hot[np.arange(n)[:, None], codes + offsets[:-1]] = 1
    return one_hot, source


def load_tu(root: str | Path, name: str | None = None) -> TUGraphs:
    """Read the TU dataset ``name`` from local files.

    ``root`` is the folder holding ``NAME_A.txt`` etc., or its parent with them in
    ``NAME/raw/`` (torch_geometric's layout) or ``NAME/``. Without ``name``, the dataset is the
    one ``*_A.txt`` in ``root`` (else in its ``*/raw/`` and ``*/`` subfolders; several is an error).

    Node features ``x`` are the node attributes when the dataset has them, else the one-hot node
    labels (``label - min label`` per label column, width ``max - min + 1`` for the whole dataset,
    as torch_geometric's ``TUDataset`` encodes them), else a constant 1. Before the one-hot array
    is allocated, each column's span must be at most ``max(64, 2 x its distinct labels)`` and the
    array at most :data:`MAX_ONE_HOT_ENTRIES`; graph labels become classes by their distinct
    values, so their range costs nothing. Edges are made undirected
    (both directions), deduplicated and sorted; self-loops are dropped, as torch_geometric's
    ``TUDataset`` does. Graph labels become classes ``0 .. C-1`` in increasing order of the
    written values.

    Raises ``DataError`` naming the file and line for a missing required file, a non-numeric
    line, an edge to a node that does not exist or between two graphs, a graph indicator that
    does not run through graphs 1..G in order, an empty graph, a label file whose row count
    does not match, or node labels over the bounds above; then ``check_graph`` (``GraphError``) checks each graph as
    ``f"{name} graph {i}"``, ``i`` its index in ``graphs``.

    Example:
        >>> data = load_tu("datasets/MUTAG")  # doctest: +SKIP
        >>> len(data.graphs), data.label_values, data.feature_source  # doctest: +SKIP
        (188, [-1, 1], 'node_labels')
    """
    folder, name = _find(Path(root), name)
    paths = {part: folder / f"{name}_{part}.txt" for part in ("A", "graph_indicator", "graph_labels")}
    for path in paths.values():
        if not path.is_file():
            raise DataError(f"{name}: missing required file {path}")
    indicator = _read(paths["graph_indicator"], integers=True, columns=1)[:, 0]
    ptr = _graph_ptr(indicator, paths["graph_indicator"])
    n, num_graphs = len(indicator), len(ptr) - 1
    labels = _read(paths["graph_labels"], integers=True, columns=1)[:, 0]
    if len(labels) != num_graphs:
        raise DataError(
            f"{paths['graph_labels']}: {len(labels)} graph labels, but "
            f"{paths['graph_indicator'].name} has {num_graphs} graphs"
        )
    label_values, classes = np.unique(labels, return_inverse=True)
    x, source = _features(folder, name, n)
    edges = _edges(_read(paths["A"], integers=True, columns=2), indicator - 1, paths["A"], paths["graph_indicator"])
    edge_ptr = np.searchsorted(edges[0], ptr)
    graphs = []
    for g in range(num_graphs):
        lo, hi = edge_ptr[g], edge_ptr[g + 1]
        graph = Data(
            x=torch.from_numpy(x[ptr[g] : ptr[g + 1]].copy()),
            edge_index=torch.from_numpy(edges[:, lo:hi] - ptr[g]),
            y=torch.tensor([int(classes[g])]),
        )
        check_graph(graph, f"{name} graph {g}")
        graphs.append(graph)
    return TUGraphs(name, graphs, label_values.tolist(), source)
