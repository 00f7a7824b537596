"""GPU check: every registered task's primary baseline on CUDA and on the CPU, and each evaluator's overhead.

For every task (or ``--tasks``), its primary baseline -- the baseline entry of its leaderboard with the most
parameters (the learned model; the better-ranked one on a tie), else its first listed baseline -- is
evaluated on seed 0 at ``--limit`` items (default 256) with :func:`fmbench.runner.run_evaluation`, once on
``cuda`` and once on ``cpu``. Results are equal when every metric agrees within ``|cpu - cuda| <= ABS + REL *
|cpu|`` (``--abs-tol`` 0.01, about two items of 256 flipping between devices, ``--rel-tol`` 0.001): float32
kernels differ between devices, and a discrete metric moves by whole items.

Throughput: while the evaluator runs, a forward pre-hook on the model's top-level ``torch.nn.Module`` records
the inputs of every call; afterwards the same calls are replayed as a bare loop (``inference_mode``,
synchronised) on the same device. ``overhead`` = evaluator seconds / bare-loop seconds (goal <= 2 on CUDA).
The evaluator's seconds include generating the seed's data; calls an evaluator makes to submodules directly
are not replayed (the overhead is then overstated). Models that are not torch modules (policies, reward
models built of other parts) have no bare loop: ``overhead`` is null.

Without CUDA the script says so and reports ``"cuda": false``: the GPU figures are not measured; with
``--cpu`` it still evaluates every task on the CPU (the CPU side and the evaluator's overhead on the CPU,
a long run on a small machine), else it evaluates nothing. Tasks on data the user brings are skipped when their
variable is unset. The whole run should fit in 8 minutes on one GPU; ``--tasks`` and ``--limit`` shrink it::

    python benchmarks/gpu_check.py [--tasks ID,...] [--limit 256] [--cpu]
"""

from __future__ import annotations

import argparse
import os
import time
import traceback
from typing import Any

import torch
from _common import emit, note

from fmbench.errors import first_line
from fmbench.leaderboard import ranked_rows
from fmbench.models import load_model
from fmbench.registry import list_tasks, make_task
from fmbench.runner import run_evaluation


def primary_baseline(task_id: str) -> str:
    """The baseline entry with the most parameters (better rank on a tie), else the first listed baseline."""
    task = make_task(task_id)
    rows = [r for r in ranked_rows(task_id) if r["baseline"] and r["model"].startswith("baseline:")]
    if rows:
        return max(rows, key=lambda r: (r["n_params"] or 0, -r["rank"]))["model"]
    return f"baseline:{next(iter(task.spec.baselines))}"


def _sync(device: str) -> None:
    if device.startswith("cuda"):
        torch.cuda.synchronize()


def evaluate(task_id: str, spec: str, device: str, limit: int) -> dict[str, Any]:
    """Metrics, evaluator seconds and bare-loop seconds of ``spec`` on ``task_id`` seed 0 on ``device``."""
    task = make_task(task_id)
    model = load_model(spec, task)
    module = model.model if isinstance(model.model, torch.nn.Module) else None
    calls: list[tuple[tuple, dict]] = []
    hook = (
        module.register_forward_pre_hook(lambda m, args, kwargs: calls.append((args, kwargs)), with_kwargs=True)
        if module is not None
        else None
    )
    _sync(device)
    start = time.perf_counter()
    record = run_evaluation(task, model, [0], device=device, limit=limit, progress=False, log=lambda line: None)
    _sync(device)
    eval_s = time.perf_counter() - start
    if hook is not None:
        hook.remove()
    bare_s = None
    if calls:
        with torch.inference_mode():
            _sync(device)
            start = time.perf_counter()
            for args, kwargs in calls:
                module(*args, **kwargs)
            _sync(device)
            bare_s = time.perf_counter() - start
    metrics = record["per_seed"]["0"]["metrics"]
    return {"metrics": metrics, "eval_s": round(eval_s, 3), "bare_s": bare_s and round(bare_s, 3), "calls": len(calls)}


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--tasks", help="comma-separated task ids (default: every registered task)")
    p.add_argument("--limit", type=int, default=256, help="items per evaluation (default 256)")
    p.add_argument("--abs-tol", type=float, default=0.01)
    p.add_argument("--rel-tol", type=float, default=0.001)
    p.add_argument("--cpu", action="store_true", help="without CUDA: still run the CPU side of every task")
    args = p.parse_args()
    torch.set_num_threads(max(1, min(8, os.cpu_count() or 1)))
    cuda = torch.cuda.is_available()
    note(f"CUDA: {torch.cuda.get_device_name(0) if cuda else 'none -- CPU only, the GPU figures are not measured'}")
    results, start = [], time.perf_counter()
    chosen = args.tasks.split(",") if args.tasks else list_tasks()
    for tid in chosen if cuda or args.cpu else []:
        task = make_task(tid)
        if task.user_data() and not os.environ.get(task.user_data()):
            results.append({"task": tid, "skipped": f"${task.user_data()} is not set"})
            note(f"{tid}: skipped (${task.user_data()} is not set)")
            continue
        spec = primary_baseline(tid)
        row: dict[str, Any] = {"task": tid, "baseline": spec}
        try:
            limit = max(args.limit, task.min_limit)
            row["cpu"] = evaluate(tid, spec, "cpu", limit)
            if cuda:
                row["cuda"] = evaluate(tid, spec, "cuda", limit)
                diffs = {k: abs(v - row["cuda"]["metrics"][k]) for k, v in row["cpu"]["metrics"].items()}
                row["max_abs_diff"] = max(diffs.values(), default=0.0)
                row["equal"] = all(
                    d <= args.abs_tol + args.rel_tol * abs(row["cpu"]["metrics"][k]) for k, d in diffs.items()
                )
            side = row["cuda"] if cuda else row["cpu"]
            row["overhead"] = round(side["eval_s"] / side["bare_s"], 2) if side["bare_s"] else None
        except Exception as e:  # one task's failure is reported, the others go on
            row["error"] = f"{type(e).__name__}: {first_line(e)}"
            note(traceback.format_exc(limit=3))
        note(
            f"{tid} {spec}: "
            + (row.get("error") or f"overhead {row['overhead']}" + (f", equal {row['equal']}" if cuda else ""))
        )
        results.append(row)
    checked = [r for r in results if "cpu" in r and "error" not in r]
    overheads = [r["overhead"] for r in checked if r["overhead"] is not None]
    emit(
        {
            "benchmark": "gpu_check",
            "cuda": cuda,
            "device": torch.cuda.get_device_name(0) if cuda else None,
            "note": None
            if cuda
            else "no CUDA on this machine: GPU figures not measured; "
            + ("evaluated on the CPU only" if args.cpu else "nothing evaluated (--cpu runs the CPU side)"),
            "tasks": len(results),
            "errors": sum("error" in r for r in results),
            "skipped": sum("skipped" in r for r in results),
            "all_equal": all(r["equal"] for r in checked) if cuda else None,
            "worst_overhead": max(overheads, default=None),
            "seconds": round(time.perf_counter() - start, 1),
            "ratio": (round(2 / max(overheads), 2) if overheads else None) if cuda else None,
            "goal": "CUDA == CPU within the tolerance on every task; evaluator <= 2x a bare forward loop on CUDA",
            "goal_met": (all(r["equal"] for r in checked) and max(overheads, default=0) <= 2) if cuda else None,
            "tolerance": {"abs": args.abs_tol, "rel": args.rel_tol},
            "limit": args.limit,
            "results": results,
        }
    )


if __name__ == "__main__":
    main()
