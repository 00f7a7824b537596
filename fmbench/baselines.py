"""Maintainers' job: evaluate every shipped baseline and submit it as its task's first rows.

Run ``python -m fmbench.baselines [--tasks ID,...] [--seeds 0-4]`` (``make leaderboards``).
Existing entries are kept; intermediate results go to ``runs/baselines/`` so an
interrupted run resumes.

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


def submit_baselines(task_ids: list[str], seeds: list[int], runs: Path, root: Path) -> None:
    """Evaluate and submit each task's baselines that are not on its leaderboard yet.

    Tasks on data the user brings (CIFAR) are skipped with a line when its environment variable
    is not set; a copy that is set but damaged stops the job with its error.
    """
    for tid in task_ids:
        task = make_task(tid)
        if task.user_data() and not os.environ.get(task.user_data()):
            print(f"{tid}: skipped: ${task.user_data()} is not set (the task reads the user's own copy of its data)")
            continue
        present = {e["submission"]["name"] for e in entries(tid, root)}
        for name in task.spec.baselines:
            if entry_name(name) in present:
                continue
            out = runs / tid / f"{name}.json"
            out.parent.mkdir(parents=True, exist_ok=True)
            run_evaluation(
                task,
                load_model(f"baseline:{name}", task),
                seeds,
                out=out,
                progress=False,
                log=lambda line, t=tid, n=name: print(f"{t} {n}: {line}"),
            )
            try:
                print(f"accepted {submit(out, entry_name(name), root=root)}")
            except SubmissionError as e:
                print(f"{tid} {name}: not submitted: {e}")
    render(root)


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--tasks", help="comma-separated task ids (default: all)")
    p.add_argument("--seeds", default=BASELINE_SEEDS)
    p.add_argument("--runs", default="runs/baselines", help="folder for intermediate results")
    p.add_argument("--leaderboards", help="leaderboards folder (default: the checkout's)")
    args = p.parse_args(argv)
    tasks = args.tasks.split(",") if args.tasks else list_tasks()
    submit_baselines(
        tasks, parse_seeds(args.seeds), Path(args.runs), Path(args.leaderboards) if args.leaderboards else default_dir()
    )


if __name__ == "__main__":
    main()
