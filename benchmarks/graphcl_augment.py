"""Augmentation throughput: one vectorised pass over a mini-batch vs the same augmentation graph by graph.

Both sides apply fmbench's augmentations (``fmbench.studies.graphcl.augment``) at ratio 0.2 to
the same 256 synthetic graphs (multiplier 4, tree background), 1 torch thread: fmbench on the
``Batch`` at once, the reference loop on each ``Data`` alone followed by
``Batch.from_data_list`` (what a per-graph torch_geometric transform in a ``DataLoader`` does)::

    python benchmarks/graphcl_augment.py [--graphs 256] [--repeats 5]
"""

from __future__ import annotations

import argparse

import torch
from _common import best_of, emit, note, ratio
from torch_geometric.data import Batch

from fmbench.studies.graphcl.augment import (
    drop_edges,
    drop_nodes,
    drop_style_edges,
    jitter_features,
    mask_features,
    perturb_edges,
    subgraph,
)
from fmbench.studies.graphcl.generator import GraphConfig, synthetic_graph

GOAL = 5.0
AUGMENTATIONS = {
    f.__name__: f
    for f in (drop_edges, drop_style_edges, drop_nodes, subgraph, mask_features, perturb_edges, jitter_features)
}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--graphs", type=int, default=256)
    parser.add_argument("--repeats", type=int, default=5)
    args = parser.parse_args()
    torch.set_num_threads(1)
    graphs = [synthetic_graph(GraphConfig(multiplier=4), 0, i % 6, i // 6) for i in range(args.graphs)]
    batch = Batch.from_data_list(graphs)
    rates = {}
    for name, augment in AUGMENTATIONS.items():
        batched, _ = best_of(
            lambda augment=augment: augment(batch, 0.2, torch.Generator().manual_seed(0)), args.repeats
        )
        one_by_one, _ = best_of(
            lambda augment=augment: Batch.from_data_list(
                [augment(g, 0.2, torch.Generator().manual_seed(i)) for i, g in enumerate(graphs)]
            ),
            args.repeats,
        )
        rates[name] = {
            "batched_graphs_per_s": round(args.graphs / batched),
            "per_graph_graphs_per_s": round(args.graphs / one_by_one),
            "ratio": ratio(1 / batched, 1 / one_by_one),
        }
        note(
            f"{name}: batched {args.graphs / batched:,.0f} graphs/s, one by one {args.graphs / one_by_one:,.0f} "
            f"graphs/s ({rates[name]['ratio']}x)"
        )
    worst = min(r["ratio"] for r in rates.values())
    emit(
        {
            "benchmark": "graphcl_augment",
            "ratio": worst,
            "goal": GOAL,
            "goal_met": worst >= GOAL,
            "graphs": args.graphs,
            "per_augmentation": rates,
            "threads": 1,
        }
    )


if __name__ == "__main__":
    main()
