"""Evaluation grids: tasks x models x seeds on a Ray cluster, one Ray task per cell (``fmbench grid``).

A cell is one (task, model, seed). The driver checks every task and model first (an unknown id or a
model that does not fit its task stops the grid before anything runs), then submits the cells that
are not finished yet as Ray tasks with the requested resources. Each finished cell is added to its
(task, model) record at ``<out>/<task id>/<model>.json`` -- the record ``fmbench eval --out`` writes,
so ``fmbench validate`` and ``submit`` take it -- rewritten atomically as the cell completes. An
interrupted grid rerun with the same ``out`` skips the finished cells. A cell that raises is
reported with its error and left unfinished; the others go on. ``<out>/grid.json`` lists every
cell of the last run with its status.

A cell evaluates exactly as ``fmbench eval`` does (same evaluator, seed, device, batch size and
limit), on a freshly loaded model, so its metrics are those of a serial ``fmbench eval``.

Example:
    >>> grid = Grid.build(["fmbench/ComposeDirect-v0"], ["baseline:untrained"], seeds="0-1", limit=64)
    >>> [(c.task, c.model, c.seed) for c in grid.cells()]  # doctest: +NORMALIZE_WHITESPACE
    [('fmbench/ComposeDirect-v0', 'baseline:untrained', 0), ('fmbench/ComposeDirect-v0', 'baseline:untrained', 1)]
"""

from __future__ import annotations

import re
import socket
import time
import tomllib
import warnings
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from fmbench.errors import FmbenchError, InputError, first_line
from fmbench.io import write_json_atomic

BASELINES = "baselines"
"""The model name that stands for every baseline a task ships (``baseline:<name>`` for each)."""
CONNECT_TIMEOUT_S = 10.0
"""How long ``--address`` may take to answer before the grid gives up (seconds)."""
GRID_KEYS = {
    "tasks",
    "models",
    "seeds",
    "limit",
    "device",
    "batch_size",
    "cpus_per_run",
    "gpus_per_run",
    "out",
    "address",
    "trust_code",
}
"""The keys a grid file may hold (each as the option of the same name)."""


@dataclass(frozen=True)
class Cell:
    """One (task, model, seed) of a grid, with the evaluation settings every cell shares."""

    task: str
    model: str
    seed: int
    device: str = "cpu"
    batch_size: int = 256
    limit: int | None = None
    trust_code: bool = False


@dataclass
class Grid:
    """The (task, model) pairs of a grid, their seeds and shared settings.

    Build it with :meth:`build`, which checks everything a cell needs before any cell runs.
    """

    pairs: list[tuple[str, str]]
    seeds: dict[str, list[int]]
    device: str = "cpu"
    batch_size: int = 256
    limit: int | None = None
    trust_code: bool = False
    models: dict[tuple[str, str], dict[str, Any]] = field(default_factory=dict)

    @classmethod
    def build(
        cls,
        tasks: list[str],
        models: list[str],
        seeds: str | list[int] | None = None,
        limit: int | None = None,
        device: str = "cpu",
        batch_size: int = 256,
        trust_code: bool = False,
    ) -> Grid:
        """Check the tasks, models and seeds (one-line ``FmbenchError`` naming the first problem) and load each
        model once, to record what it is; ``models`` may hold ``baselines``: every baseline of each task."""
        from fmbench.models import load_model
        from fmbench.registry import make_task, task_spec
        from fmbench.runner import parse_seeds

        if not tasks or not models:
            raise InputError("a grid needs at least one task and one model")
        if batch_size < 1:
            raise InputError(f"batch size must be >= 1, got {batch_size}")
        for tid in tasks:
            task_spec(tid)  # unknown ids fail with a suggestion, before any model is loaded
        if isinstance(seeds, str):
            seeds = parse_seeds(seeds)
        elif seeds is not None and (not seeds or any(not isinstance(s, int) or s < 0 for s in seeds)):
            raise InputError(f"bad seeds {seeds!r}: a list of non-negative integers")
        grid = cls([], {}, device, batch_size, limit, trust_code)
        for tid in dict.fromkeys(tasks):
            task = make_task(tid)
            if limit is not None and limit < task.min_limit:
                raise InputError(f"limit must be >= {task.min_limit} on {tid}, got {limit}")
            grid.seeds[tid] = list(seeds) if seeds is not None else list(range(task.spec.min_seeds))
            specs = [f"baseline:{b}" for b in task.spec.baselines] if BASELINES in models else []
            for spec in dict.fromkeys(specs + [m for m in models if m != BASELINES]):
                loaded = load_model(spec, task, trust_code=trust_code)
                task.check_model(loaded)
                grid.pairs.append((tid, spec))
                grid.models[(tid, spec)] = loaded.describe()
        names = {}
        for tid, spec in grid.pairs:
            path = grid.record_path(Path("."), tid, spec)
            if path in names:
                raise InputError(f"models {names[path]!r} and {spec!r} would share the record file {path.name}")
            names[path] = spec
        return grid

    @classmethod
    def combine(cls, grids: list[Grid]) -> Grid:
        """One grid holding every (task, model) pair of ``grids`` (built alike: same device, batch size, limit).

        Example:
            >>> a = Grid.build(["fmbench/ComposeDirect-v0"], ["baseline:untrained"], seeds="0", limit=64)
            >>> b = Grid.build(["fmbench/ComposeStepByStep-v0"], ["baseline:trained"], seeds="0-1", limit=64)
            >>> len(Grid.combine([a, b]).cells())
            3
        """
        if not grids:
            raise InputError("nothing to combine: no grids")
        first = grids[0]
        if any(
            (g.device, g.batch_size, g.limit, g.trust_code)
            != (first.device, first.batch_size, first.limit, first.trust_code)
            for g in grids
        ):
            raise InputError("grids with different settings (device, batch size, limit, trust) cannot be combined")
        pairs = [p for g in grids for p in g.pairs]
        if len(set(pairs)) < len(pairs):
            raise InputError("a (task, model) pair appears in two of the grids")
        return cls(
            pairs,
            {t: s for g in grids for t, s in g.seeds.items()},
            first.device,
            first.batch_size,
            first.limit,
            first.trust_code,
            {k: v for g in grids for k, v in g.models.items()},
        )

    def cells(self) -> list[Cell]:
        """Every cell, task by task, model by model, seed by seed."""
        return [
            Cell(tid, spec, seed, self.device, self.batch_size, self.limit, self.trust_code)
            for tid, spec in self.pairs
            for seed in self.seeds[tid]
        ]

    @staticmethod
    def record_path(out: Path, task_id: str, model: str) -> Path:
        """Where a (task, model) record lives: ``<out>/<task id>/<model spec, made a file name>.json``.

        Example:
            >>> Grid.record_path(Path("runs"), "fmbench/ComposeDirect-v0", "baseline:trained").as_posix()
            'runs/fmbench/ComposeDirect-v0/baseline-trained.json'
        """
        name = re.sub(r"[^A-Za-z0-9._-]+", "_", model.replace(":", "-", 1)).strip("._") or "model"
        return out / task_id / f"{name[:120]}.json"


def run_cell(cell: Cell) -> dict[str, Any]:
    """Evaluate one cell as ``fmbench eval`` would: ``{"metrics", "data_hash", "seconds"}``.

    This is what each Ray task runs; it raises what the evaluation raises.
    """
    from fmbench.models import load_model
    from fmbench.registry import make_task
    from fmbench.runner import score_seed

    task = make_task(cell.task)
    model = load_model(cell.model, task, trust_code=cell.trust_code)
    model.to(cell.device)
    task.check_model(model)
    start = time.perf_counter()
    data_hash = task.data_hash(cell.seed)
    metrics = score_seed(task, model, cell.seed, cell.device, cell.batch_size, cell.limit)
    return {"metrics": metrics, "data_hash": data_hash, "seconds": time.perf_counter() - start}


@dataclass
class Outcome:
    """What became of a (task, model) pair: its record and the seeds that failed, with their errors."""

    task: str
    model: str
    record: dict[str, Any]
    path: Path
    errors: dict[int, str] = field(default_factory=dict)


class Collector:
    """Holds each (task, model) record and writes it atomically whenever one of its cells completes."""

    def __init__(self, grid: Grid, out: Path) -> None:
        from fmbench.registry import make_task
        from fmbench.results import finished_seeds
        from fmbench.runner import prepare_record

        self.out = out
        self.outcomes: dict[tuple[str, str], Outcome] = {}
        self.todo: list[Cell] = []
        for tid, spec in grid.pairs:
            task = make_task(tid)
            path = grid.record_path(out, tid, spec)
            record = prepare_record(
                task,
                _Described(grid.models[(tid, spec)]),
                grid.seeds[tid],
                grid.device,
                grid.batch_size,
                path,
                grid.limit,
            )
            self.outcomes[(tid, spec)] = Outcome(tid, spec, record, path)
            done = set(finished_seeds(record))
            self.todo += [c for c in grid.cells() if (c.task, c.model) == (tid, spec) and c.seed not in done]
        self.skipped = len(grid.cells()) - len(self.todo)

    def finished(self, cell: Cell, result: dict[str, Any]) -> None:
        """Store a cell's result in its record and rewrite the record file atomically."""
        from fmbench.registry import make_task
        from fmbench.runner import store_seed

        outcome = self.outcomes[(cell.task, cell.model)]
        store_seed(
            outcome.record, make_task(cell.task), cell.seed, result["data_hash"], result["metrics"], result["seconds"]
        )
        write_json_atomic(outcome.path, outcome.record)

    def failed(self, cell: Cell, error: str) -> None:
        """Remember a cell's error (its record is left as it was: the seed stays unfinished)."""
        self.outcomes[(cell.task, cell.model)].errors[cell.seed] = error

    def write_summary(self) -> Path:
        """``<out>/grid.json``: every cell of this grid with its status (``finished`` or ``failed``, the error)."""
        cells = []
        for o in self.outcomes.values():
            for seed in o.record["seeds"]:
                done = str(seed) in o.record["per_seed"]
                status = {"status": "finished"} if done else {"status": "failed", "error": o.errors.get(seed, "")}
                if not done and seed not in o.errors:
                    status = {"status": "not run"}
                cells.append({"task": o.task, "model": o.model, "seed": seed, "record": str(o.path), **status})
        path = self.out / "grid.json"
        write_json_atomic(path, {"cells": cells})
        return path

    def table(self) -> str:
        """One line per (task, model): finished seeds, the primary metric's mean ± std, failed seeds."""
        head = ["task", "model", "seeds", "primary (mean ± std)", "failed"]
        body = []
        for o in self.outcomes.values():
            r = o.record
            m = r["metrics"].get(r["primary_metric"])
            score = f"{r['primary_metric']} {m['mean']:.4f} ± {m['std']:.4f}" if m else "—"
            failed = ", ".join(str(s) for s in sorted(o.errors)) or "—"
            body.append([o.task, o.model, f"{len(r['per_seed'])}/{len(r['seeds'])}", score, failed])
        widths = [max(len(x) for x in col) for col in zip(head, *body)]
        return "\n".join("  ".join(x.ljust(w) for x, w in zip(row, widths)).rstrip() for row in [head, *body])


class _Described:
    """A model's description standing in for the loaded model where only the record's fields are needed."""

    def __init__(self, info: dict[str, Any]) -> None:
        self.info, self.spec, self.weights_sha256 = info, info["spec"], info["weights_sha256"]

    def describe(self) -> dict[str, Any]:
        return dict(self.info)


def check_reachable(address: str, timeout: float = CONNECT_TIMEOUT_S) -> None:
    """Refuse (one line) a ``host:port`` or ``ray://host:port`` address that does not accept a connection within
    ``timeout`` seconds; ``auto`` is left to Ray.

    Example:
        >>> check_reachable("127.0.0.1:1", timeout=1)
        Traceback (most recent call last):
        ...
        fmbench.errors.FmbenchError: cannot reach the Ray cluster at 127.0.0.1:1 within 1 s: Connection refused
    """
    if address == "auto":
        return
    host, _, port = address.removeprefix("ray://").rpartition(":")
    if not host or not port.isdigit():
        raise InputError(f"bad Ray address {address!r}: use host:port, ray://host:port or auto")
    try:
        socket.create_connection((host.strip("[]"), int(port)), timeout=timeout).close()
    except OSError as e:
        why = "timed out" if isinstance(e, TimeoutError) else (e.strerror or str(e))
        raise FmbenchError(f"cannot reach the Ray cluster at {address} within {timeout:g} s: {why}") from None


def connect(address: str | None, timeout: float = CONNECT_TIMEOUT_S) -> float:
    """Start Ray on this machine (``address`` ``None``) or join the cluster at ``address``; return the seconds
    it took."""
    import ray

    start = time.perf_counter()
    if address:
        check_reachable(address, timeout)
    try:
        with warnings.catch_warnings():  # a tip about a future default for CUDA_VISIBLE_DEVICES, not the user's concern
            warnings.filterwarnings("ignore", message=".*accelerator visible devices", category=FutureWarning)
            ray.init(address=address, include_dashboard=False, log_to_driver=False, configure_logging=False)
    except ConnectionError as e:
        raise FmbenchError(f"cannot join the Ray cluster at {address}: {first_line(e)}") from None
    return time.perf_counter() - start


def disconnect() -> None:
    """Leave the cluster (a local Ray instance that :func:`connect` started stops)."""
    import ray

    ray.shutdown()


def run_grid(
    grid: Grid,
    out: Path,
    cpus_per_run: float = 1,
    gpus_per_run: float = 0,
    progress: bool = True,
    log: Callable[[str], None] = print,
) -> Collector:
    """Run every unfinished cell of ``grid`` as a Ray task (Ray must be initialised: :func:`connect`).

    Each result is written as it arrives; a cell that raises is recorded as failed and the rest go on.
    """
    import ray
    from tqdm.auto import tqdm

    if cpus_per_run <= 0 or gpus_per_run < 0:
        raise InputError(f"--cpus-per-run must be > 0 and --gpus-per-run >= 0, got {cpus_per_run}, {gpus_per_run}")
    collector = Collector(grid, out)
    if collector.skipped:
        log(f"resuming {out}: {collector.skipped} cell(s) already finished")
    remote = ray.remote(_ray_cell).options(num_cpus=cpus_per_run, num_gpus=gpus_per_run, max_retries=0)
    pending = {remote.remote(cell, max(1, int(cpus_per_run))): cell for cell in collector.todo}
    with tqdm(total=len(pending), desc="grid", unit="cell", disable=not progress) as bar:
        while pending:
            ready, _ = ray.wait(list(pending), num_returns=1)
            cell = pending.pop(ready[0])
            try:
                collector.finished(cell, ray.get(ready[0]))
            except (ray.exceptions.RayError, FmbenchError) as e:  # raised in the cell, or its metrics refused
                cause = getattr(e, "cause", None) or e
                error = f"{type(cause).__name__}: {first_line(cause)}"
                collector.failed(cell, error)
                log(f"cell failed: {cell.task} {cell.model} seed {cell.seed}: {error}")
            bar.update()
    collector.write_summary()
    return collector


def _ray_cell(cell: Cell, threads: int) -> dict[str, Any]:
    import torch

    torch.set_num_threads(threads)
    return run_cell(cell)


def read_grid_file(path: str | Path) -> dict[str, Any]:
    """A grid file's settings (TOML; keys as the options: ``tasks``, ``models``, ``seeds``, ``limit``, ...).

    Example:
        >>> import tempfile, os
        >>> f = os.path.join(tempfile.mkdtemp(), "grid.toml")
        >>> _ = open(f, "w").write('tasks = ["fmbench/ComposeDirect-v0"]\\nmodels = ["baselines"]\\nseeds = "0-2"\\n')
        >>> read_grid_file(f)["models"]
        ['baselines']
    """
    try:
        with open(path, "rb") as f:
            doc = tomllib.load(f)
    except tomllib.TOMLDecodeError as e:
        raise InputError(f"{path} is not valid TOML: {first_line(e)}") from None
    unknown = sorted(set(doc) - GRID_KEYS)
    if unknown:
        raise InputError(f"{path}: unknown keys {unknown}; a grid file may hold {sorted(GRID_KEYS)}")
    for key in ("tasks", "models"):
        if key in doc and not (isinstance(doc[key], list) and all(isinstance(x, str) for x in doc[key])):
            raise InputError(f"{path}: {key} must be a list of strings")
    if isinstance(doc.get("seeds"), list):
        doc["seeds"] = ",".join(str(s) for s in doc["seeds"])
    return doc
