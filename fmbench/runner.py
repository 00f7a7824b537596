"""The evaluation runner behind ``fmbench eval``: seeds, devices, resuming, result records.

Example:
    >>> import fmbench
    >>> from fmbench.models import load_model
    >>> task = fmbench.make_task("fmbench/ComposeDirect-v0")
    >>> record = run_evaluation(task, load_model("baseline:untrained", task), seeds=[0], limit=64, progress=False,
    ...                         log=lambda line: None)
    >>> sorted(record["per_seed"])
    ['0']
"""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch
from tqdm.auto import tqdm

from fmbench.errors import FmbenchError, ResultError
from fmbench.io import write_json_atomic
from fmbench.models import LoadedModel
from fmbench.results import add_seed, check_schema, finished_seeds, load_record, new_record
from fmbench.task import Task

MAX_SEEDS = 1000


def resolve_device(device: str) -> str:
    """``auto`` -> ``cuda`` when available, else ``cpu``; refuse ``cuda`` without a GPU."""
    if device == "auto":
        return "cuda" if torch.cuda.is_available() else "cpu"
    if device == "cuda" and not torch.cuda.is_available():
        raise FmbenchError("--device cuda was asked for but no CUDA device is available")
    if device not in ("cpu", "cuda") and not device.startswith("cuda:"):
        raise FmbenchError(f"unknown device {device!r}; use auto, cpu or cuda")
    return device


def parse_seeds(text: str) -> list[int]:
    """``"0,1,2"`` or ``"0-4"`` -> seeds; one-line error for anything else."""
    seeds: list[int] = []
    for part in text.split(","):
        part = part.strip()
        lo, dash, hi = part.partition("-")
        if not (part.isascii() and lo.isdigit() and (not dash or hi.isdigit() and int(hi) >= int(lo))):
            raise FmbenchError(f"bad seeds {text!r}: use non-negative integers like 0,1,2 or ranges like 0-4")
        if dash and int(hi) - int(lo) >= MAX_SEEDS:
            raise FmbenchError(f"bad seeds {text!r}: at most {MAX_SEEDS} seeds per run")
        seeds.extend(range(int(lo), int(hi) + 1) if dash else [int(lo)])
    if len(set(seeds)) != len(seeds) or not seeds:
        raise FmbenchError(f"bad seeds {text!r}: seeds must be distinct and at least one")
    return seeds


def _resume(out: Path, task: Task, model: LoadedModel, seeds: list[int]) -> dict[str, Any] | None:
    if not out.exists():
        return None
    record = load_record(out)
    try:
        check_schema(record, str(out))
    except ResultError as e:
        raise ResultError(f"{e}; refusing to overwrite {out}") from None
    if (record["task"]["id"], record["task"]["version"]) != (task.id, task.version):
        raise ResultError(
            f"{out} holds results of {record['task']['id']} v{record['task']['version']}, "
            f"not {task.id}; choose another --out"
        )
    if record["model"]["weights_sha256"] != model.weights_sha256 or record["model"]["spec"] != model.spec:
        raise ResultError(f"{out} holds results of another model ({record['model']['spec']}); choose another --out")
    record["seeds"] = list(dict.fromkeys(record["seeds"] + seeds))
    return record


def score_seed(
    task: Task,
    model: LoadedModel,
    seed: int,
    device: str,
    batch_size: int,
    limit: int | None = None,
    progress: bool = False,
) -> dict[str, float]:
    """The metrics of ``model`` (already on ``device``) on one seed; ``ResultError`` if a spec metric is missing."""
    with torch.inference_mode():
        metrics = task.evaluate(model, seed, device=device, batch_size=batch_size, limit=limit, progress=progress)
    missing = sorted(set(task.spec.metrics) - set(metrics))
    if missing:
        raise ResultError(f"{task.id} evaluator returned no {missing}")
    return metrics


def prepare_record(
    task: Task,
    model: LoadedModel,
    seeds: list[int],
    device: str,
    batch_size: int,
    out: Path | None = None,
    limit: int | None = None,
) -> dict[str, Any]:
    """The record to fill in: ``out``'s when it holds this task, model and limit (to resume), else a new one.

    ``ResultError`` when ``out`` holds another task, model or limit, or is not a valid record.

    Example:
        >>> import fmbench
        >>> from fmbench.models import load_model
        >>> task = fmbench.make_task("fmbench/ComposeDirect-v0")
        >>> prepare_record(task, load_model("baseline:untrained", task), [0, 1], "cpu", 256, limit=64)["limit"]
        64
    """
    if limit is not None and limit < task.min_limit:
        raise FmbenchError(f"--limit must be >= {task.min_limit} on {task.id}, got {limit}")
    record = (_resume(out, task, model, seeds) if out else None) or new_record(
        {"id": task.id, "version": task.version, "study": task.spec.study},
        model.describe(),
        seeds,
        task.spec.primary_metric,
        device,
        batch_size,
    )
    if record.get("limit") != limit:
        if record["per_seed"]:
            raise ResultError(
                f"{out} was evaluated with limit {record.get('limit')}, not {limit}; choose another --out"
            )
        record.pop("limit", None)
        if limit is not None:
            record["limit"] = limit
    return record


def store_seed(
    record: dict[str, Any], task: Task, seed: int, data_hash: str, metrics: dict[str, float], seconds: float
) -> None:
    """Add one finished seed's metrics to ``record`` (directions from ``task``'s spec)."""
    directions = {name: task.spec.metric(name).higher_is_better for name in metrics}
    add_seed(record, seed, data_hash, metrics, directions, seconds)


def run_evaluation(
    task: Task,
    model: LoadedModel,
    seeds: list[int],
    device: str = "auto",
    batch_size: int = 256,
    out: str | Path | None = None,
    limit: int | None = None,
    progress: bool = True,
    log: Callable[[str], None] = print,
) -> dict[str, Any]:
    """Check ``model`` against ``task``, then score it on each seed not already in ``out``.

    The record is rewritten atomically after every seed, so an interrupted run resumes
    where it stopped when rerun with the same ``out``. ``limit`` scores that many items per
    seed (see :meth:`~fmbench.task.Task.evaluate`; a smoke check, recorded in the result and
    refused by ``submit``).
    """
    if batch_size < 1:
        raise FmbenchError(f"--batch-size must be >= 1, got {batch_size}")
    device = resolve_device(device)
    model.to(device)
    task.check_model(model)
    out = Path(out) if out else None
    record = prepare_record(task, model, seeds, device, batch_size, out, limit)
    done = set(finished_seeds(record))
    todo = [s for s in seeds if s not in done]
    if done & set(seeds):
        log(f"resuming {out}: seeds {sorted(done & set(seeds))} already finished")
    for seed in tqdm(todo, desc=task.id, unit="seed", disable=not progress or len(todo) < 2):
        start = time.perf_counter()
        data_hash = task.data_hash(seed)
        metrics = score_seed(task, model, seed, device, batch_size, limit, progress)
        store_seed(record, task, seed, data_hash, metrics, time.perf_counter() - start)
        if out:
            write_json_atomic(out, record)
        log(f"seed {seed}: " + ", ".join(f"{k}={metrics[k]:.4f}" for k in task.spec.metrics))
    primary = record["metrics"][task.spec.primary_metric]
    log(
        f"{task.spec.primary_metric}: {primary['mean']:.4f} ± {primary['std']:.4f} "
        f"over {len(primary['per_seed'])} seeds"
    )
    return record
