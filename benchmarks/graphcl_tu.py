"""TU-format loading: fmbench's ``load_tu`` vs torch_geometric's own reader, same local files.

Writes one synthetic dataset in the TU format to a temporary folder (``--graphs`` graphs of 5 to
30 nodes, two random edges per node written in both directions as TU files list them, one
node-label column of 7 values, two classes), then times, fastest of ``--repeats`` runs, 1 torch
thread, the per-graph ``Data`` list each side hands a training loop:

* fmbench: ``load_tu(folder)`` (parses, checks every line and graph, symmetrises the edges);
* reference: ``torch_geometric.io.read_tu_data(folder, name)`` followed by cutting each graph out
  of the collated result with ``separate`` (what ``TUDataset.__getitem__`` does); the collated
  read alone is reported too (``reference_read_seconds``).

Both sides' graphs are checked to hold the same node counts, features, labels and edges::

    python benchmarks/graphcl_tu.py [--graphs 20000] [--repeats 3]
"""

from __future__ import annotations

import argparse
import tempfile
from pathlib import Path

import numpy as np
import torch
from _common import best_of, emit, note, ratio
from torch_geometric.data import Data
from torch_geometric.data.separate import separate
from torch_geometric.io import read_tu_data

from fmbench.studies.graphcl.tu import load_tu

GOAL = 1.0
NAME = "SYNTH"


def write_dataset(folder: Path, graphs: int, seed: int = 0) -> int:
    """Write the synthetic TU dataset ``NAME`` into ``folder``; return its node count.

    Example:
        >>> write_dataset(Path(tempfile.mkdtemp()), 3) > 0
        True
    """
    rng = np.random.default_rng(seed)
    sizes = rng.integers(5, 31, graphs)
    start = np.repeat(np.cumsum(sizes) - sizes, sizes * 2)
    src = start + rng.integers(0, np.repeat(sizes, sizes * 2)) + 1
    dst = start + rng.integers(0, np.repeat(sizes, sizes * 2)) + 1
    both = np.concatenate([np.stack([src, dst], 1), np.stack([dst, src], 1)])
    np.savetxt(folder / f"{NAME}_A.txt", both[np.lexsort((both[:, 1], both[:, 0]))], fmt="%d", delimiter=", ")
    np.savetxt(folder / f"{NAME}_graph_indicator.txt", np.repeat(np.arange(1, graphs + 1), sizes), fmt="%d")
    np.savetxt(folder / f"{NAME}_graph_labels.txt", rng.integers(0, 2, graphs) * 2 - 1, fmt="%d")
    np.savetxt(folder / f"{NAME}_node_labels.txt", rng.integers(0, 7, sizes.sum()), fmt="%d")
    return int(sizes.sum())


def reference_graphs(folder: Path) -> list[Data]:
    """torch_geometric's reader, then every graph cut out as ``TUDataset`` does."""
    data, slices, _ = read_tu_data(str(folder), NAME)
    return [separate(Data, data, i, slices, decrement=False) for i in range(len(slices["y"]) - 1)]


def same_graphs(ours: list[Data], theirs: list[Data]) -> bool:
    """Same node counts, features, labels and ``edge_index`` (the files list both directions of every edge)."""
    return len(ours) == len(theirs) and all(
        a.num_nodes == b.num_nodes
        and torch.equal(a.x, b.x)
        and torch.equal(a.y, b.y)
        and torch.equal(a.edge_index, b.edge_index)
        for a, b in zip(ours, theirs)
    )


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--graphs", type=int, default=20_000)
    p.add_argument("--repeats", type=int, default=3, help="runs per side; the fastest counts")
    args = p.parse_args()
    torch.set_num_threads(1)
    with tempfile.TemporaryDirectory(prefix="graphcl_tu_") as tmp:
        folder = Path(tmp)
        nodes = write_dataset(folder, args.graphs)
        ours_s, ours = best_of(lambda: load_tu(folder).graphs, args.repeats)
        theirs_s, theirs = best_of(lambda: reference_graphs(folder), args.repeats)
        read_s, _ = best_of(lambda: read_tu_data(str(folder), NAME), args.repeats)
    if not same_graphs(ours, theirs):
        raise SystemExit("load_tu and torch_geometric's reader disagree on the graphs: not the same work")
    note(f"fmbench:   {args.graphs} graphs ({nodes} nodes) in {ours_s:.3f} s")
    note(f"reference: {theirs_s:.3f} s (read_tu_data alone {read_s:.3f} s, then separate per graph)")
    result = {
        "benchmark": "graphcl_tu",
        "goal": GOAL,
        "graphs": args.graphs,
        "nodes": nodes,
        "repeats": args.repeats,
        "threads": 1,
        "fmbench_seconds": round(ours_s, 4),
        "reference": "torch_geometric.io.read_tu_data + separate",
        "reference_seconds": round(theirs_s, 4),
        "reference_read_seconds": round(read_s, 4),
        "ratio": ratio(1 / ours_s, 1 / theirs_s),
    }
    result["goal_met"] = result["ratio"] >= GOAL
    emit(result)


if __name__ == "__main__":
    main()
