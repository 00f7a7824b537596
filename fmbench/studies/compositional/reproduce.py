"""Reproduce arXiv:2311.12997's headline at CPU scale: step-by-step composes, direct does not.

For each format, number ``k`` of random in-order training compositions and seed, the
registered task's parameters (``fmbench/ComposeStepByStep-v0`` or ``fmbench/ComposeDirect-v0``)
are kept except ``n_train_compositions = k``, ``world_seed = seed`` and the number of
training documents; the paper's small GPT is trained with ``train_model`` and scored by
``CompositionTask.evaluate``. Every finished run is one JSON line of ``<out>/runs.jsonl``
(a rerun skips those), then ``<out>/results.md`` and ``<out>/exact_match_vs_compositions.png``
summarise all runs in that file::

    python -m fmbench.studies.compositional.reproduce --out docs/compositional --workers 2
    python -m fmbench.studies.compositional.reproduce --out docs/compositional --report-only

Example:
    >>> run = Run("direct", k=10, seed=1)
    >>> run_task(run).world.config.n_train_compositions, run_task(run).world.world_seed
    (10, 1)
"""

from __future__ import annotations

import argparse
import dataclasses
import multiprocessing
import time
from collections.abc import Iterable
from concurrent.futures import ProcessPoolExecutor, as_completed
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from fmbench.models import from_module
from fmbench.registry import task_spec
from fmbench.reporting import MeanStd, RunLog, markdown_table, pyplot, save_png
from fmbench.studies.compositional.task import CompositionTask
from fmbench.studies.compositional.train import train_model

FORMATS = {"step": "fmbench/ComposeStepByStep-v0", "direct": "fmbench/ComposeDirect-v0"}
RUNS_FILE = "runs.jsonl"
RESULTS_FILE = "results.md"
PLOT_FILE = "exact_match_vs_compositions.png"
RUN_KEY = ("format", "k", "seed", "n_documents", "eval_seed")  # the fields of Run, as Run.key orders them


@dataclass(frozen=True)
class Run:
    """One training and evaluation run.

    Attributes:
        format: ``"step"`` (step-by-step) or ``"direct"``, a key of ``FORMATS``.
        k: random in-order training compositions.
        seed: world seed (functions and split), initialisation and data-order seed.
        n_documents: training documents (one epoch).
        eval_seed: seed of the test inputs.
    """

    format: str
    k: int
    seed: int
    n_documents: int = 100_000
    eval_seed: int = 0

    def __post_init__(self) -> None:
        if self.format not in FORMATS:
            raise ValueError(f"unknown format {self.format!r}; expected one of {sorted(FORMATS)}")

    @property
    def key(self) -> tuple[str, int, int, int, int]:
        """What identifies a finished run in ``runs.jsonl``."""
        return self.format, self.k, self.seed, self.n_documents, self.eval_seed


def run_task(run: Run) -> CompositionTask:
    """The registered task of ``run.format`` with k, world seed and document count replaced.

    Example:
        >>> run_task(Run("step", k=25, seed=0)).world.config.step_by_step
        True
    """
    base = task_spec(FORMATS[run.format])
    params = {
        **base.params,
        "n_train_compositions": run.k,
        "world_seed": run.seed,
        "n_train_documents": run.n_documents,
    }
    spec = dataclasses.replace(base, id=f"{base.id}[k={run.k},world_seed={run.seed}]", params=params)
    return CompositionTask(spec)


def execute(run: Run) -> dict[str, Any]:
    """Train and evaluate one run on the current process; return its ``runs.jsonl`` record.

    Example:
        >>> record = execute(Run("direct", k=10, seed=0, n_documents=64))
        >>> record["train"]["steps"], 0.0 <= record["metrics"]["exact_match"] <= 1.0
        (4, True)
    """
    task = run_task(run)
    world = task.world
    model, info = train_model(world, run.seed)
    start = time.perf_counter()
    with torch.inference_mode():
        metrics = task.evaluate(from_module(model, "reproduce", f"{run.format}-k{run.k}-s{run.seed}"), run.eval_seed)
    return {
        **dataclasses.asdict(run),
        "config": {**world.config.to_dict(), "world_seed": world.world_seed},
        "held_out_compositions": int((~world.eval_in_train).sum()),
        "train": info,
        "eval_seconds": round(time.perf_counter() - start, 1),
        "metrics": metrics,
    }


def run_log(out: Path) -> RunLog:
    """The ``runs.jsonl`` of ``out``, keyed by ``Run.key``.

    Example:
        >>> len(run_log(Path("/nonexistent")))
        0
    """
    return RunLog(out / RUNS_FILE, RUN_KEY)


def _init_worker() -> None:
    torch.set_num_threads(1)


def run_all(runs: Iterable[Run], out: Path, workers: int = 1) -> list[dict[str, Any]]:
    """Execute the runs not yet in ``out/runs.jsonl`` on ``workers`` processes; append each as it ends.

    Returns the records of this call's runs. Each worker uses one torch thread.

    Example:
        >>> import tempfile
        >>> out, runs = Path(tempfile.mkdtemp()), [Run("direct", k=10, seed=0, n_documents=64)]
        >>> len(run_all(runs, out))  # doctest: +ELLIPSIS
        1 runs to do (0 already in ...)
        [1/1 ...] direct k=10 seed=0: held-out exact match ...
        1
        >>> len(run_all(runs, out))  # the second call finds the run done  # doctest: +ELLIPSIS
        0 runs to do (1 already in ...)
        0
    """
    log = run_log(out)
    todo = sorted({r for r in runs if r.key not in log}, key=lambda r: (r.format != "step", -r.k, r.seed))
    print(f"{len(todo)} runs to do ({len(log)} already in {log.path})", flush=True)
    records: list[dict[str, Any]] = []
    if not todo:
        return records
    start = time.perf_counter()
    with ProcessPoolExecutor(min(workers, len(todo)), multiprocessing.get_context("spawn"), _init_worker) as pool:
        for future in as_completed([pool.submit(execute, run) for run in todo]):
            record = future.result()
            log.append(record)
            records.append(record)
            m = record["metrics"]
            print(
                f"[{len(records)}/{len(todo)} {time.perf_counter() - start:.0f} s] {record['format']} "
                f"k={record['k']} seed={record['seed']}: held-out exact match {m['exact_match']:.4f}, "
                f"seen {m['exact_match_seen']:.4f}, loss {record['train']['final_loss']:.4f}, "
                f"train {record['train']['train_seconds']} s, eval {record['eval_seconds']} s",
                flush=True,
            )
    return records


def summarize(records: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Mean ± sample std (``MeanStd``) over seeds per (format, k, documents) of held-out and in-train exact match
    and token accuracy.

    Example:
        >>> recs = [{"format": "step", "k": 10, "seed": s, "n_documents": 100, "train": {"train_seconds": 1.0},
        ...          "metrics": {"exact_match": e, "exact_match_seen": 1.0, "token_accuracy": e}}
        ...         for s, e in enumerate([0.5, 1.0])]
        >>> row = summarize(recs)[0]
        >>> row["n_seeds"], row["exact_match"].format(3)
        (2, '0.750 ± 0.354')
    """
    groups: dict[tuple[str, int, int], list[dict[str, Any]]] = {}
    for r in records:
        groups.setdefault((r["format"], r["k"], r["n_documents"]), []).append(r)
    rows = []
    for (fmt, k, docs), rs in sorted(groups.items(), key=lambda g: (list(FORMATS).index(g[0][0]), g[0][1:])):
        row: dict[str, Any] = {
            "format": fmt,
            "k": k,
            "n_documents": docs,
            "n_seeds": len(rs),
            "seeds": sorted(r["seed"] for r in rs),
        }
        for name in ("exact_match", "exact_match_seen", "token_accuracy"):
            row[name] = MeanStd.of(r["metrics"][name] for r in rs)
        row["train_seconds_mean"] = float(np.mean([r["train"]["train_seconds"] for r in rs]))
        rows.append(row)
    return rows


def results_markdown(records: list[dict[str, Any]]) -> str:
    """The ``results.md`` text: a summary table per (format, k) and one row per run.

    Example:
        >>> results_markdown([]).splitlines()[0]
        '# Compositional capabilities (arXiv:2311.12997): CPU-scale reproduction'
    """
    lines = ["# Compositional capabilities (arXiv:2311.12997): CPU-scale reproduction", ""]
    if not records:
        return "\n".join(lines + ["No finished runs.", ""])
    c = records[0]["config"]
    n_compositions = (c["n_functions"] + int(c["include_identity"])) ** c["depth"]
    eval_seeds = ", ".join(str(s) for s in sorted({r["eval_seed"] for r in records}))
    lines += [
        f"Registered task defaults: {c['depth']} positions, each the identity + {c['n_functions']} random "
        f"bijections of {c['n_tokens']} tokens ({n_compositions} in-order compositions), inputs of "
        f'{c["input_length"]} tokens, `split = "{c["split"]}"`; {c["samples_per_composition"]} test inputs '
        f"per composition (evaluation seed {eval_seeds}). Each seed draws its own functions and training "
        "compositions (`world_seed = seed`), initialisation and data order. Model: 2 layers, 1 head, "
        "d = 120; one epoch, batch 16, AdamW 3e-4 with warmup + cosine. Greedy decoding from the prompt.",
        "",
        "`step` = step-by-step format, `direct` = final output only; k = random in-order training "
        "compositions. Held-out = every composition not trained on; in-train = the k training "
        "compositions on fresh inputs. Mean ± sample std over seeds. Train seconds are wall time of one "
        "torch thread per run and vary with the machine's load.",
        "",
    ]
    summary = [
        [
            row["format"],
            row["k"],
            row["n_documents"],
            row["exact_match"].format(4),
            row["n_seeds"],
            row["exact_match_seen"].format(4),
            row["token_accuracy"].format(4),
            f"{row['train_seconds_mean']:.0f}",
        ]
        for row in summarize(records)
    ]
    lines.append(
        markdown_table(
            [
                "format",
                "k",
                "docs",
                "held-out exact match",
                "n seeds",
                "in-train exact match",
                "held-out token accuracy",
                "train s (mean)",
            ],
            summary,
            align="lrrrrrrr",
        )
    )
    order = {f: i for i, f in enumerate(FORMATS)}
    runs = []
    for r in sorted(records, key=lambda r: (order[r["format"]], r["k"], r["n_documents"], r["seed"])):
        m = r["metrics"]
        runs.append(
            [
                r["format"],
                r["k"],
                r["seed"],
                r["n_documents"],
                f"{m['exact_match']:.4f}",
                f"{m['exact_match_seen']:.4f}",
                f"{m['teacher_forced_accuracy']:.4f}",
                f"{r['train']['final_loss']:.4f}",
                f"{r['train']['train_seconds']:.0f}",
                f"{r['eval_seconds']:.0f}",
            ]
        )
    lines += [
        "",
        "## Runs",
        "",
        markdown_table(
            [
                "format",
                "k",
                "seed",
                "docs",
                "held-out exact match",
                "in-train exact match",
                "teacher-forced acc.",
                "final loss",
                "train s",
                "eval s",
            ],
            runs,
            align="lrrrrrrrrr",
        ),
    ]
    return "\n".join(lines + [""])


def plot(records: list[dict[str, Any]], path: Path) -> None:
    """Held-out exact match vs k (log x), one line per format, error bars = std over seeds.

    Example:
        >>> import tempfile
        >>> plot([], Path(tempfile.mkdtemp()) / "empty.png")
    """
    from matplotlib.ticker import NullFormatter, ScalarFormatter

    rows = summarize(records)
    fig, ax = pyplot().subplots(figsize=(5.5, 3.8))
    for fmt, marker in zip(FORMATS, "os"):
        mine = [r for r in rows if r["format"] == fmt]
        for docs in sorted({r["n_documents"] for r in mine}):
            sub = [r for r in mine if r["n_documents"] == docs]
            label = {"step": "step-by-step", "direct": "direct"}[fmt]
            if len({r["n_documents"] for r in rows}) > 1:
                label += f" ({docs} docs)"
            ax.errorbar(
                [r["k"] for r in sub],
                [r["exact_match"].mean for r in sub],
                yerr=[np.nan_to_num(r["exact_match"].std) for r in sub],
                marker=marker,
                capsize=3,
                label=label,
            )
    ax.set_xscale("log")
    ks = sorted({r["k"] for r in rows})
    if ks:
        ax.set_xticks(ks)
        ax.xaxis.set_major_formatter(ScalarFormatter())
        ax.xaxis.set_minor_formatter(NullFormatter())
        ax.legend()
    ax.set_ylim(-0.03, 1.03)
    ax.set_xlabel("training compositions k (log scale)")
    ax.set_ylabel("held-out exact match")
    ax.set_title("arXiv:2311.12997 at CPU scale")
    ax.grid(alpha=0.3)
    fig.tight_layout()
    save_png(fig, path, dpi=150)


def write_report(out: Path) -> None:
    """Write ``results.md`` and the plot from ``out/runs.jsonl``.

    Example:
        >>> import tempfile
        >>> write_report(Path(tempfile.mkdtemp()))  # doctest: +ELLIPSIS
        wrote .../results.md and .../exact_match_vs_compositions.png from 0 runs
    """
    records = run_log(out).records
    (out / RESULTS_FILE).write_text(results_markdown(records), encoding="utf-8")
    plot(records, out / PLOT_FILE)
    print(f"wrote {out / RESULTS_FILE} and {out / PLOT_FILE} from {len(records)} runs", flush=True)


def _ints(text: str) -> list[int]:
    return [int(v) for v in text.split(",") if v]


def main(argv: list[str] | None = None) -> None:
    """Command line: run what ``runs.jsonl`` lacks (unless ``--report-only``), then write the report."""
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--out", required=True, type=Path, help="folder of runs.jsonl, results.md and the plot")
    p.add_argument("--workers", type=int, default=1, help="parallel runs (one torch thread each)")
    p.add_argument("--compositions", type=_ints, default=[10, 25, 100], help="comma-separated k values")
    p.add_argument("--seeds", type=_ints, default=[0, 1, 2], help="comma-separated seeds")
    p.add_argument("--formats", default="step,direct", help=f"comma-separated, of {sorted(FORMATS)}")
    p.add_argument("--docs", type=int, default=100_000, help="training documents per run")
    p.add_argument("--eval-seed", type=int, default=0, help="seed of the test inputs")
    p.add_argument("--report-only", action="store_true", help="only rewrite the report from runs.jsonl")
    args = p.parse_args(argv)
    if not args.report_only:
        runs = [
            Run(fmt, k, seed, args.docs, args.eval_seed)
            for fmt in args.formats.split(",")
            for k in args.compositions
            for seed in args.seeds
        ]
        start = time.perf_counter()
        run_all(runs, args.out, args.workers)
        print(f"runs finished in {time.perf_counter() - start:.0f} s", flush=True)
    write_report(args.out)


if __name__ == "__main__":
    main()
