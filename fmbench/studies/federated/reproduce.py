"""Reproduce arXiv:2205.11506's comparison at CPU scale: Orchestra vs federated SimCLR vs a random encoder.

For each task (default: Fashion-MNIST, 10 clients, alpha 0.1 and 1e5) and method, trains the
method on Flower's simulation engine from seed 0 with the given budget (a checkpoint already
in ``runs/federated/`` under the run's name is reused, so an interrupted job resumes), then
scores it and the random CNN with the task's evaluator on every seed. Writes:

* ``<out>/runs.jsonl``: one line per (task, encoder, budget, seed) with the metrics and the
  training history (a rerun skips the lines that are there);
* ``<out>/results.md``: mean ± sample std over seeds per budget, task and encoder.

With ``--ship`` the trained backbones also become the tasks' shipped baselines (the shipped
ones come from the default budget; ``docs/federated`` also holds ``--rounds 20
--samples-per-client 500``)::

    python -m fmbench.studies.federated.reproduce --out docs/federated --rounds 30 --samples-per-client 2000 --ship
    python -m fmbench.studies.federated.reproduce --out docs/federated --report-only
"""

from __future__ import annotations

import argparse
import shutil
from pathlib import Path
from typing import Any

import torch

from fmbench.checkpoints import load_checkpoint, read_metadata, save_checkpoint
from fmbench.models import from_module
from fmbench.registry import make_task
from fmbench.reporting import RunLog, markdown_table, mean_std_cell
from fmbench.runner import parse_seeds
from fmbench.studies.federated.flower import RunConfig, run_federated
from fmbench.studies.federated.task import HERE

TASKS = ("fmbench/FedFashionA0p1C10-v0", "fmbench/FedFashionA1e5C10-v0")
METHODS = ("orchestra", "simclr")
RUN_KEY = ("task", "encoder", "rounds", "samples_per_client", "seed")
METRICS = ("probe_accuracy", "probe_accuracy_10pct", "probe_accuracy_1pct", "client_accuracy_min")


def run_name(task_id: str, method: str, rounds: int, samples: int) -> str:
    """The file stem of a training run.

    Example:
        >>> run_name("fmbench/FedFashionA0p1C10-v0", "orchestra", 20, 500)
        'FedFashionA0p1C10-v0-orchestra-r20-s500'
    """
    return f"{task_id.split('/')[1]}-{method}-r{rounds}-s{samples}"


def trained_backbone(
    task_id: str, method: str, rounds: int, samples: int, runs: Path, cpus: int
) -> tuple[torch.nn.Module, Path]:
    """The backbone of a seed-0 run with this budget, trained now unless ``runs`` holds it (its header
    must say so: ``ValueError`` otherwise)."""
    path = runs / f"{run_name(task_id, method, rounds, samples)}.safetensors"
    if path.exists():
        meta = read_metadata(path)
        found = {k: meta.get(k) for k in ("task", "method", "seed", "rounds", "samples_per_client")}
        wanted = {"task": task_id, "method": method, "seed": 0, "rounds": rounds, "samples_per_client": samples}
        if found != wanted:
            raise ValueError(f"{path} holds another run ({found}); expected {wanted}: move it away")
    else:
        cfg = RunConfig(task=task_id, method=method, rounds=rounds, samples_per_client=samples)
        model, history = run_federated(cfg, cpus=cpus, log=lambda line: print(f"{path.stem}: {line}"))
        path.parent.mkdir(parents=True, exist_ok=True)
        save_checkpoint(
            model.backbone,
            path,
            {
                "task": task_id,
                "method": method,
                "seed": 0,
                "rounds": rounds,
                "samples_per_client": samples,
                "history": history,
            },
        )
    return load_checkpoint(path)[0], path


def run_log(out: Path) -> RunLog:
    """The ``runs.jsonl`` of ``out``: one line per (task, encoder, budget, seed)."""
    return RunLog(out / "runs.jsonl", RUN_KEY)


def evaluate_runs(
    out: Path, tasks: list[str], rounds: int, samples: int, seeds: list[int], runs: Path, cpus: int, ship: bool
) -> None:
    """Train what is missing and append every missing (task, encoder, seed) line to ``runs.jsonl``."""
    log = run_log(out)
    for task_id in tasks:
        task = make_task(task_id)
        encoders: dict[str, tuple[torch.nn.Module, dict[str, Any]]] = {
            "random": (task.load_baseline("random").model, {"rounds": 0, "samples_per_client": 0})
        }
        for method in METHODS:
            backbone, path = trained_backbone(task_id, method, rounds, samples, runs, cpus)
            meta = read_metadata(path)
            encoders[method] = (
                backbone,
                {"rounds": rounds, "samples_per_client": samples, "history": meta.get("history", [])},
            )
            if ship and method in task.spec.baselines:
                shutil.copyfile(path, HERE / task.spec.baselines[method]["file"])
        for name, (encoder, info) in encoders.items():
            for seed in seeds:
                if (task_id, name, info["rounds"], info["samples_per_client"], seed) in log:
                    continue
                metrics = task.evaluate(from_module(encoder, name, name, interface=task.spec.interface), seed)
                log.append({"task": task_id, "encoder": name, "seed": seed, **info, "metrics": metrics})
                print(f"{task_id} {name} seed {seed}: probe {metrics['probe_accuracy']:.4f}")
    write_table(out)


def write_table(out: Path) -> str:
    """``results.md`` from ``runs.jsonl``: mean ± sample std over seeds by budget, task and encoder; returns it."""
    groups: dict[tuple, list[dict]] = {}
    for r in run_log(out).records:
        groups.setdefault((r["rounds"], r["samples_per_client"], r["task"], r["encoder"]), []).append(r["metrics"])
    rows = [
        [
            "untrained" if rounds == 0 else f"{rounds} × {samples}",
            task_id.split("/")[1],
            encoder,
            len(metrics),
            *(mean_std_cell([x[m] for x in metrics]) for m in METRICS),
        ]
        for (rounds, samples, task_id, encoder), metrics in sorted(groups.items())
    ]
    text = markdown_table(["budget (rounds × images per client)", "task", "encoder", "seeds", *METRICS], rows) + "\n"
    (out / "results.md").write_text(text)
    return text


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--out", default="docs/federated")
    parser.add_argument("--tasks", default=",".join(TASKS))
    parser.add_argument("--rounds", type=int, default=30)
    parser.add_argument("--samples-per-client", type=int, default=2000)
    parser.add_argument("--seeds", default="0-2")
    parser.add_argument("--runs", default="runs/federated", help="folder of the trained checkpoints")
    parser.add_argument("--cpus", type=int, default=2)
    parser.add_argument("--ship", action="store_true", help="copy the backbones over the shipped baselines")
    parser.add_argument("--report-only", action="store_true", help="only rewrite results.md from runs.jsonl")
    args = parser.parse_args(argv)
    if args.report_only:
        write_table(Path(args.out))
    else:
        evaluate_runs(
            Path(args.out),
            args.tasks.split(","),
            args.rounds,
            args.samples_per_client,
            parse_seeds(args.seeds),
            Path(args.runs),
            args.cpus,
            args.ship,
        )
    print((Path(args.out) / "results.md").read_text())


if __name__ == "__main__":  # run the package's copy: Ray workers unpickle the client app by module name
    from fmbench.studies.federated.reproduce import main as package_main

    package_main()
