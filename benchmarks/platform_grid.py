"""Wall time of ``fmbench grid`` on a local Ray instance vs the ideal: the same cells run serially / CPUs.

The grid: ``fmbench/ComposeDirect-v0`` x its two baselines x seeds 0-11 at ``--limit 256`` (24 cells of about
0.27 s each on an idle machine; at ``--limit 64``, 0.1 s cells, Ray's fixed cost of a few hundred ms is a
large share of a 1-s ideal and the ratio swings between runs).
Serial: every cell's :func:`fmbench.grid.run_cell` one after another in this process on
one torch thread, as each Ray task runs (imports and one warm-up cell off the clock; timed before and
after the grid, the faster kept, as the machine's load drifts). Ray: :func:`fmbench.grid.connect` starts
Ray on this machine (timed on its own), one warm-up task per CPU starts the workers and imports fmbench in
them (timed on its own), then :func:`fmbench.grid.run_grid` runs the 24 cells into a temporary folder,
1 CPU each. The metrics of every cell are checked equal to the serial ones.

``ratio`` = ideal / grid wall time (1 = perfect scaling); goal: grid wall time <= 1.3x the ideal, i.e.
ratio >= 0.77::

    python benchmarks/platform_grid.py [--seeds 12] [--limit 256]
"""

from __future__ import annotations

import argparse
import os
import tempfile
import time
from pathlib import Path

from _common import emit, note

TASK = "fmbench/ComposeDirect-v0"


def _warm(_: int) -> int:
    import fmbench.grid  # noqa: F401  (workers import torch and fmbench once)

    return os.getpid()


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--seeds", type=int, default=12, help="seeds per model (2 models: 2x this many cells)")
    p.add_argument("--limit", type=int, default=256, help="items per cell (default 256: ~0.27 s a cell, idle)")
    args = p.parse_args()

    import ray
    import torch

    from fmbench.grid import Grid, connect, disconnect, run_cell, run_grid

    torch.set_num_threads(1)
    grid = Grid.build([TASK], ["baselines"], seeds=list(range(args.seeds)), limit=args.limit)
    cells = grid.cells()
    run_cell(cells[0])  # warm-up, off the clock

    def run_serial() -> tuple[float, dict]:
        start = time.perf_counter()
        metrics = {(c.model, c.seed): run_cell(c)["metrics"] for c in cells}
        return time.perf_counter() - start, metrics

    serial_s, serial = run_serial()
    note(f"serial: {len(cells)} cells in {serial_s:.1f} s")

    ray_start_s = connect(None)
    cpus = int(ray.cluster_resources()["CPU"])
    start = time.perf_counter()
    pids = ray.get([ray.remote(_warm).options(num_cpus=1).remote(i) for i in range(cpus)])
    workers_s = time.perf_counter() - start
    note(f"Ray: started in {ray_start_s:.1f} s, {len(set(pids))} workers ready in {workers_s:.1f} s, {cpus} CPUs")
    with tempfile.TemporaryDirectory() as out:
        start = time.perf_counter()
        collector = run_grid(grid, Path(out), cpus_per_run=1, progress=False, log=note)
        grid_s = time.perf_counter() - start
    disconnect()
    serial_s = min(serial_s, run_serial()[0])
    same = all(
        o.record["per_seed"][str(seed)]["metrics"] == serial[(o.model, seed)]
        for o in collector.outcomes.values()
        for seed in o.record["seeds"]
    )
    ideal = serial_s / cpus
    note(f"grid: {grid_s:.1f} s; ideal {ideal:.1f} s; metrics equal to serial: {same}")
    emit(
        {
            "benchmark": "platform_grid",
            "cells": len(cells),
            "limit": args.limit,
            "cpus": cpus,
            "serial_s": round(serial_s, 2),
            "ideal_s": round(ideal, 2),
            "grid_s": round(grid_s, 2),
            "ray_start_s": round(ray_start_s, 2),
            "worker_start_s": round(workers_s, 2),
            "metrics_equal": same,
            "load_average": round(os.getloadavg()[0], 1),
            "ratio": round(ideal / grid_s, 3),
            "goal": ">= 0.77 (grid wall time <= 1.3x serial time / CPUs)",
            "goal_met": ideal / grid_s >= 1 / 1.3 and same,
        }
    )


if __name__ == "__main__":
    main()
