"""A 50 x 50 rank phase diagram from the closed-form theory vs gradient descent on each setting.

The theory times every cell of the grid (weight decay x augmentation strength, the non-contrastive
loss on a 12-d spectrum, width 12). Training every cell to convergence would take hours on a CPU, so
gradient descent (full batch, exact expected gradients, to a gradient norm of 1e-9) runs on a seeded
random subset of cells; its mean time per cell times the number of cells is the training side's
figure. The ranks must agree on every checked cell.

    python benchmarks/ssl_landscape_phase.py [--grid 50] [--checks 25]
"""

from __future__ import annotations

import argparse
import dataclasses
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import emit, note, ratio  # noqa: E402

from fmbench.studies.ssl_landscape.phase import theory_ranks, trained_rank  # noqa: E402
from fmbench.studies.ssl_landscape.problems import Setting  # noqa: E402

GOAL = 100.0


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--grid", type=int, default=50, help="cells per axis")
    p.add_argument("--checks", type=int, default=25, help="cells trained by gradient descent")
    args = p.parse_args(argv)
    base = Setting(dim=12, width=12, loss="noncontrastive", mu=0.5, decay=1.0)
    gammas, strengths = np.linspace(0.01, 1.0, args.grid), np.linspace(0.0, 2.0, args.grid)
    start = time.perf_counter()
    ranks = theory_ranks(base, gammas, strengths)
    theory_s = time.perf_counter() - start
    note(f"theory: {args.grid}x{args.grid} cells in {theory_s:.3f} s; ranks {sorted(set(ranks.ravel().tolist()))}")
    rng = np.random.default_rng(0)
    cells = [tuple(c) for c in rng.integers(0, args.grid, size=(args.checks, 2))]
    start = time.perf_counter()
    trained = {
        c: trained_rank(dataclasses.replace(base, weight_decay=gammas[c[0]], strength=strengths[c[1]])) for c in cells
    }
    per_cell = (time.perf_counter() - start) / len(cells)
    training_s = per_cell * args.grid**2
    disagree = [
        (float(gammas[i]), float(strengths[j]), int(ranks[i, j]), r)
        for (i, j), r in trained.items()
        if r != ranks[i, j]
    ]
    note(f"gradient descent: {per_cell:.3f} s per cell -> {training_s:.0f} s for the grid; disagreements {disagree}")
    speedup = ratio(1 / theory_s, 1 / training_s)
    emit(
        {
            "benchmark": "ssl_landscape_phase",
            "grid": f"{args.grid}x{args.grid}",
            "theory_s": round(theory_s, 4),
            "training_s_per_cell": round(per_cell, 4),
            "training_s_extrapolated": round(training_s, 1),
            "checked_cells": len(cells),
            "rank_agreement": f"{len(cells) - len(disagree)}/{len(cells)}",
            "ratio": speedup,
            "goal": f">= {GOAL:.0f}x faster, same ranks on the checked cells",
            "goal_met": bool(speedup is not None and speedup >= GOAL and not disagree),
        }
    )


if __name__ == "__main__":
    main()
