"""Reproduce arXiv:2312.03881's question at CPU scale: does the FM reward rank the desired policy first?

Evaluates every baseline reward model of the four reward-quality tasks (vision stage x
language model x normalisation, MiniLM similarity, random) on seeds 0-2 and writes, from
the result records:

* ``<out>/results.md``: ranking accuracy (primary) per task and reward model, and per
  incorrect-policy family;
* ``<out>/ranking_by_family.png``: the same per family, for the LM rewards.

Records go to ``runs/baselines/<task id>/<baseline>.json`` (the paths ``python -m
fmbench.baselines`` uses, so the leaderboard job then only submits them); a rerun resumes.
One process evaluates everything, so the LM's memo is shared across normalisations::

    python -m fmbench.studies.fomo.reproduce --out docs/fomo
    python -m fmbench.studies.fomo.reproduce --out docs/fomo --report-only
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np
import torch

from fmbench.models import load_model
from fmbench.registry import make_task
from fmbench.reporting import MeanStd, markdown_table, pyplot, save_png
from fmbench.runner import run_evaluation
from fmbench.studies.fomo.instructions import INCORRECT

TASKS = (
    "fmbench/FoMoRewardGoTo-v0",
    "fmbench/FoMoRewardPickup-v0",
    "fmbench/FoMoRewardOpen-v0",
    "fmbench/FoMoRewardPutNext-v0",
)
SEEDS = [0, 1, 2]


def record_path(runs: Path, task_id: str, baseline: str) -> Path:
    """Where a baseline's result record lives."""
    return runs / task_id / f"{baseline}.json"


def evaluate_all(runs: Path) -> None:
    """Evaluate every baseline of every task on ``SEEDS`` (resuming finished seeds)."""
    for tid in TASKS:
        task = make_task(tid)
        for name in task.spec.baselines:
            out = record_path(runs, tid, name)
            out.parent.mkdir(parents=True, exist_ok=True)
            run_evaluation(
                task,
                load_model(f"baseline:{name}", task),
                SEEDS,
                device="cpu",
                out=out,
                progress=False,
                log=lambda line, n=name, t=tid: print(f"{t} {n}: {line}", flush=True),
            )


def _cell(metrics: dict, name: str) -> str:
    """A record's aggregate of ``name`` (sample std over seeds) as ``mean ± std``, ``–`` when absent."""
    m = metrics.get(name)
    return "–" if m is None else MeanStd(m["mean"], m["std"], len(m["per_seed"])).format(2)


def report(runs: Path, out: Path) -> None:
    """Write ``results.md`` and ``ranking_by_family.png`` from the records under ``runs``."""
    plt = pyplot()
    records = {(tid, p.stem): json.loads(p.read_text()) for tid in TASKS for p in sorted((runs / tid).glob("*.json"))}
    baselines = list(make_task(TASKS[0]).spec.baselines)
    short = [t.removeprefix("fmbench/FoMoReward").removesuffix("-v0") for t in TASKS]
    lines = [
        "# FoMo rewards (arXiv:2312.03881) at CPU scale",
        "",
        f"Seeds {SEEDS} (30 layouts each); mean ± sample std over seeds. Written by "
        "`python -m fmbench.studies.fomo.reproduce`.",
        "",
        "## Ranking accuracy (desired above incorrect, averaged over families)",
        "",
        markdown_table(
            ["reward model", *short],
            [
                [b, *(_cell(records.get((t, b), {}).get("metrics", {}), "ranking_accuracy") for t in TASKS)]
                for b in baselines
            ],
        ),
        "",
        "## Ranking accuracy per incorrect-policy family",
        "",
    ]
    for tid, name in zip(TASKS, short):
        fams = [
            f
            for f in INCORRECT
            if any(f"ranking_accuracy|family={f}" in r["metrics"] for (t, _), r in records.items() if t == tid)
        ]
        rows = []
        for b in baselines:
            m = records.get((tid, b), {}).get("metrics", {})
            dropped = m.get("dropped_pairs", {}).get("per_seed")
            rows.append(
                [
                    b,
                    *(_cell(m, f"ranking_accuracy|family={f}") for f in fams),
                    _cell(m, "auroc"),
                    "–" if dropped is None else int(sum(dropped)),
                ]
            )
        lines += [f"### {name}", "", markdown_table(["reward model", *fams, "pooled AUROC", "dropped pairs"], rows), ""]
    out.mkdir(parents=True, exist_ok=True)
    (out / "results.md").write_text("\n".join(lines) + "\n")

    lm = [b for b in baselines if "smollm2" in b or "minilm" in b or b == "random"]
    fig, axes = plt.subplots(1, len(TASKS), figsize=(4.2 * len(TASKS), 4.2), sharey=True)
    for ax, tid, name in zip(axes, TASKS, short):
        fams = [
            f
            for f in INCORRECT
            if any(f"ranking_accuracy|family={f}" in records.get((tid, b), {}).get("metrics", {}) for b in lm)
        ]
        x = np.arange(len(fams))
        width = 0.8 / len(lm)
        for i, b in enumerate(lm):
            m = records.get((tid, b), {}).get("metrics", {})
            ax.bar(
                x + i * width,
                [m.get(f"ranking_accuracy|family={f}", {}).get("mean", np.nan) for f in fams],
                width,
                label=b,
                color=plt.cm.tab20(i),
            )
        ax.set_xticks(x + 0.4 - width / 2, fams, rotation=45, ha="right")
        ax.set_title(name)
        ax.axhline(0.5, color="grey", lw=0.8, ls="--")
    axes[0].set_ylabel("ranking accuracy (desired > incorrect)")
    fig.legend(*axes[0].get_legend_handles_labels(), loc="lower center", ncol=6, fontsize=7)
    fig.tight_layout(rect=(0, 0.12, 1, 1))
    save_png(fig, out / "ranking_by_family.png", dpi=110)


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--out", default="docs/fomo")
    p.add_argument("--runs", default="runs/baselines")
    p.add_argument("--report-only", action="store_true")
    p.add_argument("--threads", type=int, default=2)
    args = p.parse_args(argv)
    torch.set_num_threads(args.threads)
    if not args.report_only:
        evaluate_all(Path(args.runs))
    report(Path(args.runs), Path(args.out))


if __name__ == "__main__":
    main()
