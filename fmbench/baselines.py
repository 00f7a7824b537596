"""Maintainers' job: evaluate every shipped baseline and submit it as its task's first rows.

Run ``python -m fmbench.baselines [--tasks ID,...] [--seeds 0-4] [--grid [--address HOST:PORT]]``
(``make leaderboards`` runs it as a grid on a local Ray instance). Existing entries are kept;
intermediate results go to ``runs/baselines/`` so an interrupted run resumes.

Example:
    >>> from fmbench.leaderboard import entries
    >>> sorted(e["submission"]["name"] for e in entries("fmbench/ComposeDirect-v0"))[:2]
    ['baseline-trained', 'baseline-untrained']
"""

from __future__ import annotations

import argparse
import os
from pathlib import Path

from fmbench.errors import SubmissionError
from fmbench.leaderboard import default_dir, entries, entry_name, render, submit
from fmbench.models import load_model
from fmbench.registry import list_tasks, make_task
from fmbench.runner import parse_seeds, run_evaluation

BASELINE_SEEDS = "0-4"


def missing_baselines(task_ids: list[str], root: Path) -> dict[str, list[str]]:
    """Each task's baselines that are not on its leaderboard yet (tasks with nothing missing are left out).

    Tasks on data the user brings (CIFAR) are skipped with a line when its environment variable
    is not set; a copy that is set but damaged stops the job with its error.
    """
    todo = {}
    for tid in task_ids:
        task = make_task(tid)
        if task.user_data() and not os.environ.get(task.user_data()):
            print(f"{tid}: skipped: ${task.user_data()} is not set (the task reads the user's own copy of its data)")
            continue
        present = {e["submission"]["name"] for e in entries(tid, root)}
        missing = [name for name in task.spec.baselines if entry_name(name) not in present]
        if missing:
            todo[tid] = missing
    return todo


def submit_baselines(
    task_ids: list[str], seeds: list[int], runs: Path, root: Path, grid: bool = False, address: str | None = None
) -> None:
    """Evaluate and submit each task's baselines that are not on its leaderboard yet.

    Serially in this process, or with ``grid`` as one :mod:`fmbench.grid` on Ray (a local instance, or
    the cluster at ``address``): one Ray task per (task, baseline, seed), the same records. Records go to
    ``runs`` (:meth:`fmbench.grid.Grid.record_path`), so an interrupted job resumes either way; a baseline
    with a seed that failed is not submitted.
    """
    from fmbench.grid import Grid, connect, disconnect, run_grid

    todo = missing_baselines(task_ids, root)
    if grid and todo:
        jobs = Grid.combine([Grid.build([tid], [f"baseline:{n}" for n in names], seeds) for tid, names in todo.items()])
        connect(address)
        try:
            collector = run_grid(jobs, runs, progress=False)
        finally:
            disconnect()
        print(collector.table())
    elif todo:
        for tid, names in todo.items():
            task = make_task(tid)
            for name in names:
                out = Grid.record_path(runs, tid, f"baseline:{name}")
                out.parent.mkdir(parents=True, exist_ok=True)
                run_evaluation(
                    task,
                    load_model(f"baseline:{name}", task),
                    seeds,
                    out=out,
                    progress=False,
                    log=lambda line, t=tid, n=name: print(f"{t} {n}: {line}"),
                )
    for tid, names in todo.items():
        for name in names:
            try:
                print(
                    f"accepted {submit(Grid.record_path(runs, tid, f'baseline:{name}'), entry_name(name), root=root)}"
                )
            except SubmissionError as e:
                print(f"{tid} {name}: not submitted: {e}")
    render(root)


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--tasks", help="comma-separated task ids (default: all)")
    p.add_argument("--seeds", default=BASELINE_SEEDS)
    p.add_argument("--runs", default="runs/baselines", help="folder for intermediate results")
    p.add_argument("--leaderboards", help="leaderboards folder (default: the checkout's)")
    p.add_argument("--grid", action="store_true", help="run the evaluations as a grid on Ray (fmbench grid)")
    p.add_argument("--address", help="with --grid: an existing Ray cluster (default: start Ray on this machine)")
    args = p.parse_args(argv)
    if args.address and not args.grid:
        p.error("--address needs --grid")
    tasks = args.tasks.split(",") if args.tasks else list_tasks()
    root = Path(args.leaderboards) if args.leaderboards else default_dir()
    submit_baselines(tasks, parse_seeds(args.seeds), Path(args.runs), root, grid=args.grid, address=args.address)


if __name__ == "__main__":
    main()
