"""Shortcut audit: how well do statistics that should carry no class information classify the graphs?

For labelled graphs split into train and test (a task's ``train``/``test`` splits, or any list of
torch_geometric ``Data`` with an integer ``y``), each statistic below is computed per graph and
two simple classifiers — a logistic regression on standardised features and a random forest of
50 trees, both with fixed seeds and one thread — are fitted on train and scored on test:

* ``size``: number of nodes and of (undirected) edges;
* ``degree``: how many nodes have degree 0, 1, ..., 15 and 16 or more;
* ``triangles``: triangles, and nodes in at least one triangle;
* ``cycle_rank``: edges - nodes + connected components (independent cycles);
* ``wl1``, ``wl2``: histograms of Weisfeiler-Lehman colours after 1 and 2 refinement rounds,
  starting from the node features where they are integer-valued (one-hot labels, constants)
  and from one colour otherwise (the 1,000 colours most frequent on train);
* ``background``: nodes, edges and degree histogram of the subgraph of edges labelled style
  (``edge_label < 0``, the synthetic tasks' convention) — where the graphs carry ``edge_label``.

A statistic that is the same for every training graph, or ``background`` without edge
labels, is marked not applicable. All graphs are refined together as one block-diagonal graph,
so 1,200 graphs take a few seconds. A statistic scoring well above chance is a shortcut: a model
can classify without looking at the content the task is about.

Example:
    >>> import torch
    >>> from torch_geometric.data import Data
    >>> def path(n, label):  # class 1 graphs are longer: size is a shortcut
    ...     edges = torch.tensor([list(range(n - 1)), list(range(1, n))])
    ...     return Data(x=torch.ones(n, 1), edge_index=torch.cat([edges, edges.flip(0)], 1), y=torch.tensor([label]))
    >>> graphs = [path(4 + i % 3 + 5 * (i % 2), i % 2) for i in range(40)]
    >>> audit = audit_graphs(graphs[:20], graphs[20:], statistics=("size", "triangles"))
    >>> audit.chance, audit.accuracy("size"), audit.row("triangles").note
    (0.5, 1.0, 'not applicable: the same for every training graph')
"""

from __future__ import annotations

import argparse
import json
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np
import scipy.sparse as sp
from scipy.sparse.csgraph import connected_components
from torch_geometric.data import Data

from fmbench.errors import DataError
from fmbench.studies.graphcl.protocol import stratified_split
from fmbench.studies.graphcl.tu import load_tu

STATISTICS = ("size", "degree", "triangles", "cycle_rank", "wl1", "wl2", "background")
MAX_DEGREE = 16  # degree histogram bins 0..15 and 16+
MAX_COLOURS = 1000
FOREST_TREES = 50
SHIPPED = Path(__file__).parent / "audits.json"


class AuditError(DataError, ValueError):
    """Graphs that cannot be audited: no labels, one class, an empty split."""


@dataclass(frozen=True)
class AuditRow:
    """Test accuracy of each classifier on one statistic (``None`` with a ``note`` when not applicable)."""

    statistic: str
    logistic: float | None
    forest: float | None
    note: str = ""

    @property
    def best(self) -> float | None:
        """The higher of the two accuracies (``None`` if not applicable)."""
        return None if self.logistic is None or self.forest is None else max(self.logistic, self.forest)


@dataclass(frozen=True)
class Audit:
    """The audit of one train/test split: ``chance`` is the test accuracy of predicting train's commonest class."""

    n_train: int
    n_test: int
    n_classes: int
    chance: float
    rows: tuple[AuditRow, ...]

    def row(self, statistic: str) -> AuditRow:
        """The row of ``statistic``."""
        for r in self.rows:
            if r.statistic == statistic:
                return r
        raise KeyError(f"the audit has no statistic {statistic!r}; it has {[r.statistic for r in self.rows]}")

    def accuracy(self, statistic: str) -> float | None:
        """The best classifier's test accuracy on ``statistic`` (``None`` if not applicable)."""
        return self.row(statistic).best

    def to_dict(self) -> dict[str, Any]:
        """Plain data (what ``fmbench audit --json`` prints and ``describe`` shows)."""
        out = asdict(self)
        out["rows"] = {r.pop("statistic"): r for r in out["rows"]}
        return out

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Audit:
        """The inverse of :meth:`to_dict`."""
        rows = tuple(AuditRow(statistic=name, **row) for name, row in data["rows"].items())
        return cls(**{**data, "rows": rows})

    def table(self) -> str:
        """The audit as aligned text, one line per statistic."""
        head = ["statistic", "logistic", "forest", "best - chance"]
        body = []
        for r in self.rows:
            if r.best is None:
                body.append([r.statistic, "–", "–", r.note])
            else:
                body.append([r.statistic, f"{r.logistic:.3f}", f"{r.forest:.3f}", f"{r.best - self.chance:+.3f}"])
        widths = [max(len(x) for x in col) for col in zip(head, *body)]
        lines = ["  ".join(x.ljust(w) for x, w in zip(row, widths)).rstrip() for row in [head, *body]]
        title = f"{self.n_train} train / {self.n_test} test graphs, {self.n_classes} classes, chance {self.chance:.3f}"
        return "\n".join([title, *lines])


# ---- statistics over a block-diagonal union of the graphs --------------------------------------
@dataclass
class _Union:
    """Every graph as one block-diagonal graph: node ``v`` belongs to graph ``owner[v]``."""

    n_graphs: int
    owner: np.ndarray  # (N,) graph of each node
    adjacency: sp.csr_matrix  # (N, N) symmetric, 0/1, no self-loops
    colours: np.ndarray  # (N,) initial WL colours
    style: sp.csr_matrix | None  # the style-edge subgraph, where every graph has edge labels

    @property
    def degree(self) -> np.ndarray:
        return np.asarray(self.adjacency.sum(axis=1)).ravel().astype(np.int64)


def _initial_colours(graphs: Sequence[Data]) -> np.ndarray:
    """Node features as colours when every graph's are integer-valued, else one colour for all nodes."""
    xs = [g.x.numpy() if getattr(g, "x", None) is not None else None for g in graphs]
    if any(x is None or x.ndim != 2 for x in xs) or len({x.shape[1] for x in xs}) > 1:
        return np.zeros(sum(g.num_nodes for g in graphs), dtype=np.int64)
    x = np.concatenate(xs)
    if not np.all(np.isfinite(x)) or not np.all(x == np.round(x)):
        return np.zeros(len(x), dtype=np.int64)
    return np.unique(x, axis=0, return_inverse=True)[1].ravel().astype(np.int64)


def _union(graphs: Sequence[Data]) -> _Union:
    sizes = np.array([g.num_nodes for g in graphs], dtype=np.int64)
    offsets = np.concatenate([[0], np.cumsum(sizes)])
    ends = [g.edge_index.numpy() + offsets[i] for i, g in enumerate(graphs)]
    edges = np.concatenate(ends, axis=1) if ends else np.zeros((2, 0), dtype=np.int64)
    n = int(offsets[-1])

    def symmetric(e: np.ndarray) -> sp.csr_matrix:
        e = e[:, e[0] != e[1]]  # self-loops are not edges here
        a = sp.coo_matrix((np.ones(e.shape[1]), (e[0], e[1])), shape=(n, n)).tocsr()
        a = ((a + a.T) > 0).astype(np.float64)
        return a.tocsr()

    style = None
    labels = [getattr(g, "edge_label", None) for g in graphs]
    if all(lab is not None and lab.numel() == g.edge_index.shape[1] for lab, g in zip(labels, graphs)):
        is_style = np.concatenate([lab.numpy() < 0 for lab in labels]) if labels else np.zeros(0, bool)
        style = symmetric(edges[:, is_style])
    owner = np.repeat(np.arange(len(graphs)), sizes)
    return _Union(len(graphs), owner, symmetric(edges), _initial_colours(graphs), style)


def _per_graph(u: _Union, values: np.ndarray) -> np.ndarray:
    """Sum of a per-node value over each graph."""
    return np.bincount(u.owner, weights=values, minlength=u.n_graphs)


def _histogram(u: _Union, bins: np.ndarray, n_bins: int) -> np.ndarray:
    """``(graphs, n_bins)`` counts of each graph's nodes in each bin."""
    flat = np.bincount(u.owner * n_bins + bins, minlength=u.n_graphs * n_bins)
    return flat.reshape(u.n_graphs, n_bins).astype(np.float64)


def _degree_histogram(u: _Union, adjacency: sp.csr_matrix) -> np.ndarray:
    degree = np.asarray(adjacency.sum(axis=1)).ravel().astype(np.int64)
    return _histogram(u, np.minimum(degree, MAX_DEGREE), MAX_DEGREE + 1)


def _wl_colours(u: _Union, rounds: int) -> np.ndarray:
    """Colours after ``rounds`` of 1-WL refinement: a colour and the multiset of its neighbours' colours,
    hashed with random 64-bit weights (sums commute, so the multiset's order does not matter)."""
    colours = u.colours
    rng = np.random.default_rng(0)
    for _ in range(rounds):
        weights = rng.integers(1, 2**62, size=(2, int(colours.max()) + 1), dtype=np.int64).astype(np.uint64)
        neighbours = u.adjacency.astype(np.uint64) @ weights[1][colours]  # wraps modulo 2**64
        signature = np.stack([colours.astype(np.uint64), neighbours.astype(np.uint64)], axis=1)
        colours = np.unique(signature, axis=0, return_inverse=True)[1].ravel().astype(np.int64)
    return colours


def _colour_histogram(u: _Union, colours: np.ndarray, train: np.ndarray) -> np.ndarray:
    """Counts of the colours most frequent among the training graphs' nodes (at most :data:`MAX_COLOURS`)."""
    counts = np.bincount(colours[train[u.owner]], minlength=int(colours.max()) + 1)
    kept = np.argsort(-counts, kind="stable")[: min(MAX_COLOURS, int((counts > 0).sum()))]
    column = np.full(len(counts), -1)
    column[kept] = np.arange(len(kept))
    keep = column[colours] >= 0
    flat = np.bincount(u.owner[keep] * len(kept) + column[colours][keep], minlength=u.n_graphs * len(kept))
    return flat.reshape(u.n_graphs, len(kept)).astype(np.float64)


def _features(u: _Union, statistic: str, train: np.ndarray) -> np.ndarray | str:
    """``(graphs, F)`` features of a statistic, or why it is not applicable."""
    a = u.adjacency
    if statistic == "size":
        return np.stack([np.bincount(u.owner, minlength=u.n_graphs), _per_graph(u, u.degree) / 2], axis=1)
    if statistic == "degree":
        return _degree_histogram(u, a)
    if statistic == "triangles":
        per_node = np.asarray((a @ a).multiply(a).sum(axis=1)).ravel() / 2
        return np.stack([_per_graph(u, per_node) / 3, _per_graph(u, (per_node > 0).astype(float))], axis=1)
    if statistic == "cycle_rank":
        _, component = connected_components(a, directed=False)
        first = np.unique(component, return_index=True)[1]  # one node of each component
        components = np.bincount(u.owner[first], minlength=u.n_graphs)
        nodes = np.bincount(u.owner, minlength=u.n_graphs)
        return (_per_graph(u, u.degree) / 2 - nodes + components)[:, None]
    if statistic in ("wl1", "wl2"):
        return _colour_histogram(u, _wl_colours(u, int(statistic[-1])), train)
    if statistic == "background":
        if u.style is None:
            return "not applicable: the graphs have no edge labels (edge_label)"
        degree = np.asarray(u.style.sum(axis=1)).ravel()
        sizes = np.stack([_per_graph(u, (degree > 0).astype(float)), _per_graph(u, degree) / 2], axis=1)
        return np.concatenate([sizes, _degree_histogram(u, u.style)], axis=1)
    raise ValueError(f"unknown statistic {statistic!r}; known: {', '.join(STATISTICS)}")


# ---- classifiers -------------------------------------------------------------------------------
def _accuracies(x_train: np.ndarray, y_train: np.ndarray, x_test: np.ndarray, y_test: np.ndarray) -> list[float]:
    """Test accuracy of the logistic regression and of the random forest."""
    from sklearn.ensemble import RandomForestClassifier
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    logistic = make_pipeline(StandardScaler(), LogisticRegression(max_iter=1000))
    forest = RandomForestClassifier(n_estimators=FOREST_TREES, random_state=0, n_jobs=1)
    return [float((m.fit(x_train, y_train).predict(x_test) == y_test).mean()) for m in (logistic, forest)]


def _labels(graphs: Sequence[Data], split: str) -> np.ndarray:
    if not graphs:
        raise AuditError(f"the {split} split has no graphs")
    labels = []
    for i, g in enumerate(graphs):
        y = getattr(g, "y", None)
        if y is None or y.numel() != 1:
            raise AuditError(f"graph {i} of {split} has no single class label (y); an audit needs labelled graphs")
        labels.append(int(y))
    return np.array(labels)


def audit_graphs(train: Sequence[Data], test: Sequence[Data], statistics: Sequence[str] = STATISTICS) -> Audit:
    """Audit labelled graphs: each statistic's classifiers are fitted on ``train`` and scored on ``test``.

    Raises ``AuditError`` if a graph has no label or ``train`` holds fewer than two classes.
    """
    y_train, y_test = _labels(train, "train"), _labels(test, "test")
    classes = np.unique(y_train)
    if len(classes) < 2:
        raise AuditError(f"the train graphs hold one class ({classes[0]}); an audit needs at least two")
    unknown = [s for s in statistics if s not in STATISTICS]
    if unknown:
        raise ValueError(f"unknown statistic {unknown[0]!r}; known: {', '.join(STATISTICS)}")
    union = _union([*train, *test])
    is_train = np.arange(len(train) + len(test)) < len(train)
    commonest = classes[np.argmax([np.sum(y_train == c) for c in classes])]
    rows = []
    for statistic in statistics:
        x = _features(union, statistic, is_train)
        if isinstance(x, np.ndarray) and np.ptp(x[is_train], axis=0).max(initial=0) == 0:
            x = "not applicable: the same for every training graph"
        if isinstance(x, str):
            rows.append(AuditRow(statistic, None, None, x))
            continue
        logistic, forest = _accuracies(x[is_train], y_train, x[~is_train], y_test)
        rows.append(AuditRow(statistic, logistic, forest))
    return Audit(
        len(train),
        len(test),
        len(np.unique(np.concatenate([y_train, y_test]))),
        float(np.mean(y_test == commonest)),
        tuple(rows),
    )


def audit_task(task: Any, seed: int = 0, statistics: Sequence[str] = STATISTICS) -> Audit:
    """Audit a graph task's ``train``/``test`` splits of ``seed``.

    Example:
        >>> import fmbench
        >>> audit = audit_task(fmbench.make_task("fmbench/GraphMotifsTreeX1-v1"), statistics=("size",))
        >>> audit.n_train, audit.chance
        (600, 0.16666666666666666)
    """
    return audit_graphs(task.graphs("train", seed), task.graphs("test", seed), statistics)


def audit_tu(root: str | Path, name: str | None = None, seed: int = 0, test_fraction: float = 0.5) -> tuple[str, Audit]:
    """Audit a TU-format dataset on disk (:func:`~fmbench.studies.graphcl.tu.load_tu`: ``root`` is its folder,
    or a folder holding ``NAME/raw/`` as torch_geometric's ``TUDataset`` lays it out) on a seeded split,
    ``test_fraction`` of every class in test (:func:`~fmbench.studies.graphcl.protocol.stratified_split`).
    Returns the dataset's name and the audit. Nothing is downloaded; a missing folder raises ``DataError``.

    Example:
        >>> audit_tu("/no/such/folder")
        Traceback (most recent call last):
        ...
        fmbench.errors.DataError: /no/such/folder: no such folder (expected a TU dataset's folder)
    """
    data = load_tu(root, name)
    return data.name, audit_graphs(*stratified_split(data.graphs, test_fraction, seed))


# ---- the audits shipped for describe and the study page -----------------------------------------
def shipped_audits(path: Path = SHIPPED) -> dict[str, Any]:
    """``{task id: {"seed", "data_hash", "audit"}}`` as ``python -m fmbench.studies.graphcl.audit`` writes them
    (``data_hash``: the task's pinned seed-0 hash when audited; empty if there is no file)."""
    return json.loads(path.read_text()) if path.is_file() else {}


def shipped_audit(task: Any) -> dict[str, Any] | str:
    """The shipped audit of ``task`` (seed 0) as plain data, or why there is none."""
    entry = shipped_audits().get(task.id)
    if entry is None:
        return f"not computed: run `fmbench audit {task.id}`"
    if entry["data_hash"] != task.spec.data_hashes.get("0"):
        return f"stale (computed on other data): run `fmbench audit {task.id}`"
    return entry["audit"]


def write_audits(task_ids: Sequence[str], path: Path = SHIPPED, log: Callable[[str], None] = print) -> None:
    """Audit every task of ``task_ids`` on seed 0 and write them to ``path`` (kept: other tasks' entries)."""
    from fmbench.registry import make_task

    audits = shipped_audits(path)
    for tid in task_ids:
        task = make_task(tid)
        start = time.perf_counter()
        audit = audit_task(task, 0)
        audits[tid] = {"seed": 0, "data_hash": task.spec.data_hashes.get("0"), "audit": audit.to_dict()}
        log(f"{tid} ({time.perf_counter() - start:.1f} s)\n{audit.table()}")
    path.write_text(json.dumps(dict(sorted(audits.items())), indent=1) + "\n")


def audits_markdown(audits: dict[str, Any]) -> str:
    """One Markdown row per task: chance, then each statistic's best accuracy (``n/a``: not applicable).

    Example:
        >>> row = AuditRow("size", 0.25, 0.5)
        >>> print(audits_markdown({"t": {"audit": Audit(4, 4, 2, 0.5, (row,)).to_dict()}}).splitlines()[-1])
        | t | 0.50 | 0.50 | n/a | n/a | n/a | n/a | n/a | n/a |
    """
    from fmbench.reporting import markdown_table

    header = ["task", "chance", *STATISTICS]
    rows = []
    for tid, entry in audits.items():
        audit = Audit.from_dict(entry["audit"])
        names = [r.statistic for r in audit.rows]
        cells = [audit.accuracy(s) if s in names else None for s in STATISTICS]
        shown = [f"{c:.2f}" if c is not None else "n/a" for c in cells]
        rows.append([tid.removeprefix("fmbench/"), f"{audit.chance:.2f}", *shown])
    return markdown_table(header, rows)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description="Write the shipped shortcut audits (seed 0) of graph tasks.")
    parser.add_argument("--tasks", help="comma-separated task ids (default: every graph task)")
    parser.add_argument("--markdown", action="store_true", help="only print the shipped audits as a Markdown table")
    args = parser.parse_args(argv)
    if args.markdown:
        print(audits_markdown(shipped_audits()))
        return
    from fmbench.studies.graphcl.reproduce import graph_tasks

    write_audits(args.tasks.split(",") if args.tasks else graph_tasks())


if __name__ == "__main__":
    main()
