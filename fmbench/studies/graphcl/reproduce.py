"""Reproduce arXiv:2208.02810's finding at CPU scale: probe accuracy vs style, by augmentation.

For every graph probing task and seed, trains a GIN GraphCL-style on the seed's pretrain
split with the generic and with the task-relevant augmentation, then scores each with the
full protocol on the seed's train/test splits; the untrained encoder is each evaluation's
untrained twin (re-initialised with the seed). Writes:

* ``<out>/runs.jsonl``: one line per (task, augment, seed) with the metrics (a rerun skips
  what is there);
* ``<out>/results.md``: mean ± sample std over seeds per task and encoder;
* ``<out>/probe_vs_multiplier.png``: probe accuracy vs multiplier, one panel per background.

With ``--ship`` the seed-0 encoders are also written as the shipped baseline checkpoints::

    python -m fmbench.studies.graphcl.reproduce --out docs/graphcl --seeds 0,1,2 --jobs 2 --ship
    python -m fmbench.studies.graphcl.reproduce --out docs/graphcl --report-only
"""

from __future__ import annotations

import argparse
import time
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path
from typing import Any

import numpy as np
import torch

from fmbench.checkpoints import save_checkpoint
from fmbench.models import from_module
from fmbench.registry import list_tasks, make_task
from fmbench.reporting import MeanStd, RunLog, markdown_table, mean_std_cell, pyplot, save_png
from fmbench.runner import parse_seeds
from fmbench.studies.graphcl.task import GraphProbeTask, checkpoint_path
from fmbench.studies.graphcl.train import train_graphcl

AUGMENTS = ("generic", "relevant")
RUN_KEY = ("task", "augment", "seed")
PANELS = (  # (background, motif set): title (one panel each)
    (("tree", "varied"), "random tree (v0, superseded)"),
    (("tree", "degree-matched"), "random tree, degree-matched (v1)"),
    (("ba", "varied"), "Barabási–Albert m=3 (v0, superseded)"),
    (("ba-mixed", "degree-matched"), "pref. attachment 1-2, degree-matched (v1)"),
)
ENCODERS = {"untrained": "untrained GIN", "generic": "GraphCL, generic aug.", "relevant": "GraphCL, task-relevant aug."}


def graph_tasks() -> list[str]:
    """Every registered graph probing task id."""
    return [t for t in list_tasks() if make_task(t).spec.interface == "graph-encoder"]


def run_one(task_id: str, augment: str, seed: int, epochs: int, ship: bool) -> dict[str, Any]:
    """Train and evaluate one encoder; return its line for ``runs.jsonl``."""
    torch.set_num_threads(1)
    task = make_task(task_id)
    if not isinstance(task, GraphProbeTask):
        raise ValueError(f"{task_id} is not a graph probing task")
    start = time.perf_counter()
    model, losses = train_graphcl(task, augment, seed, epochs, log=lambda _: None)
    trained = time.perf_counter() - start
    if ship and seed == 0:
        save_checkpoint(
            model,
            checkpoint_path(task, augment),
            {"task": task_id, "augment": augment, "seed": seed, "epochs": epochs, "final_loss": losses[-1]},
        )
    with torch.inference_mode():
        metrics = task.evaluate(from_module(model, "reproduce", augment, interface="graph-encoder"), seed)
    return {
        "task": task_id,
        "augment": augment,
        "seed": seed,
        "epochs": epochs,
        "losses": losses,
        "train_s": round(trained, 1),
        "metrics": metrics,
    }


def _panel(params: dict[str, Any]) -> tuple[str, str]:
    """The plot panel of a task: its background and motif set (superpixel tasks have neither)."""
    return params.get("background", ""), params.get("motifs", "varied")


def report(rows: list[dict[str, Any]], out: Path) -> None:
    """Write ``results.md`` and ``probe_vs_multiplier.png`` from the run lines."""
    plt = pyplot()

    def values(tid: str, encoder: str, metric: str) -> list[float]:
        if encoder == "untrained":  # each evaluation's twin; one per seed (from the generic runs)
            return [r["metrics"][metric + "_untrained"] for r in rows if r["task"] == tid and r["augment"] == "generic"]
        return [r["metrics"][metric] for r in rows if r["task"] == tid and r["augment"] == encoder]

    tasks = sorted(
        {r["task"] for r in rows},
        key=lambda t: (
            not _panel(make_task(t).spec.params)[0],
            _panel(make_task(t).spec.params),
            make_task(t).spec.params.get("multiplier", 0),
        ),
    )
    seeds = sorted({r["seed"] for r in rows})
    table = []
    for tid in tasks:
        for enc, label in ENCODERS.items():
            inv = (
                ["–", "–"]
                if enc == "untrained"
                else [mean_std_cell(values(tid, enc, f"invariance_{k}")) for k in ("relevant", "generic")]
            )
            table.append(
                [
                    tid.removeprefix("fmbench/"),
                    label,
                    *(mean_std_cell(values(tid, enc, m)) for m in ("probe_accuracy", "svm_accuracy", "separability")),
                    *inv,
                ]
            )
    header = [
        "task",
        "encoder",
        "probe accuracy",
        "SVM accuracy",
        "separability",
        "invariance (relevant)",
        "invariance (generic)",
    ]
    title = f"# Graph CL reproduction: probe accuracy by encoder (seeds {seeds}, mean ± sample std)"
    (out / "results.md").write_text(f"{title}\n\n{markdown_table(header, table)}\n")
    fig, axes = plt.subplots(1, len(PANELS), figsize=(4.5 * len(PANELS), 4), sharey=True)
    for ax, (panel, title) in zip(axes, PANELS):
        ts = [t for t in tasks if _panel(make_task(t).spec.params) == panel]
        mult = [make_task(t).spec.params["multiplier"] for t in ts]
        for enc, label in ENCODERS.items():
            v = [values(t, enc, "probe_accuracy") for t in ts]
            if all(v):
                ax.errorbar(
                    mult,
                    [np.mean(x) for x in v],
                    yerr=[np.nan_to_num(MeanStd.of(x).std) for x in v],
                    marker="o",
                    capsize=3,
                    label=label,
                )
        ax.set(
            xscale="log",
            xticks=mult,
            xticklabels=[str(m) for m in mult],
            xlabel="style:content multiplier",
            title=title,
            ylim=(0, 1.02),
        )
        ax.minorticks_off()
        ax.axhline(1 / 6, color="grey", lw=0.8, ls=":")
    axes[0].set_ylabel("linear probe accuracy (test)")
    axes[0].legend(loc="lower left")
    fig.tight_layout()
    save_png(fig, out / "probe_vs_multiplier.png", dpi=120)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--out", default="docs/graphcl")
    parser.add_argument("--seeds", default="0,1,2")
    parser.add_argument("--epochs", type=int, default=30)
    parser.add_argument("--tasks", help="comma-separated task ids (default: every graph probing task)")
    parser.add_argument("--jobs", type=int, default=2)
    parser.add_argument("--ship", action="store_true", help="write the seed-0 encoders as the shipped baselines")
    parser.add_argument("--report-only", action="store_true", help="only rewrite the report from runs.jsonl")
    args = parser.parse_args(argv)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    log = RunLog(out / "runs.jsonl", RUN_KEY)
    if not args.report_only:
        todo = [
            (t, a, s)
            for t in (args.tasks.split(",") if args.tasks else graph_tasks())
            for s in parse_seeds(args.seeds)
            for a in AUGMENTS
            if (t, a, s) not in log
        ]
        with ProcessPoolExecutor(args.jobs) as pool:
            futures = [pool.submit(run_one, t, a, s, args.epochs, args.ship) for t, a, s in todo]
            for fut in futures:
                row = fut.result()
                log.append(row)
                m = row["metrics"]
                print(
                    f"{row['task']} {row['augment']} seed {row['seed']}: probe {m['probe_accuracy']:.3f} "
                    f"(untrained {m['probe_accuracy_untrained']:.3f}), trained in {row['train_s']} s",
                    flush=True,
                )
    report(log.records, out)
    print(f"wrote {out / 'results.md'} and {out / 'probe_vs_multiplier.png'}")


if __name__ == "__main__":
    main()
