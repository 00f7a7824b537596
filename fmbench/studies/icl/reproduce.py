"""Reproduce the study's curves for the reference models and the local LMs: ``python -m fmbench.studies.icl.reproduce``.

Each model (the references, and each shipped LM, :data:`~fmbench.studies.icl.references.LMS`) is
evaluated on the three tasks at their registered sizes with the ordinary runner, one result
record per model and task at ``--runs``/<task id>/<model>.json (default ``runs/baselines``, the
layout ``python -m fmbench.baselines`` writes, so its records serve here; a finished record is
reused and an interrupted run resumes). The curves are
the records' per-seed breakdowns of seed ``--seed``; written to ``--out`` (default ``docs/icl``):

* ``generation.png``: generated p(Tails) against the stated target (the diagonal is calibrated);
* ``judgment.png``: p(random | x) against |x| for repeated concepts and for Bernoulli(0.5) sequences;
* ``concepts.png``: p(continue concept | x) against |x|, averaged over the task's concepts;
* ``results.md``: each task's main metrics per model, with the seconds each evaluation took.

Example:
    >>> curve({"tails_bias|p_tails=5": 0.1, "tails_bias|p_tails=50": 0.0}, "tails_bias", "p_tails")
    ([5.0, 50.0], [0.1, 0.0])
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

import fmbench
from fmbench.errors import FmbenchError
from fmbench.io import atomic_open
from fmbench.models import LoadedModel
from fmbench.runner import run_evaluation
from fmbench.studies.icl.references import LMS, REFERENCES, load_lm, load_reference

TASKS = {
    "generation": "fmbench/ICLRandomGeneration-v0",
    "judgment": "fmbench/ICLRandomnessJudgment-v0",
    "concepts": "fmbench/ICLConceptLearning-v0",
}
SHOWN = {
    "generation": ("calibration_error", "tails_bias", "alternation_error", "longest_run", "valid_fraction"),
    "judgment": ("randomness_gap", "judgment_auroc", "p_random_random", "p_random_concept", "answer_mass"),
    "concepts": ("transition_point", "sigmoid_midpoint", "sigmoid_slope", "p_continue_final", "flip_mass"),
}


def load(name: str) -> LoadedModel:
    """A reference model or a shipped LM by name, named as its baseline (so the records can be submitted)."""
    return (
        load_reference(name, spec=f"baseline:{name}") if name in REFERENCES else load_lm(name, spec=f"baseline:{name}")
    )


def curve(metrics: dict[str, float], base: str, key: str) -> tuple[list[float], list[float]]:
    """The breakdown ``<base>|<key>=<x>`` of one seed's metrics as sorted ``(xs, values)``."""
    points = sorted((float(k.split("=", 1)[1]), v) for k, v in metrics.items() if k.startswith(f"{base}|{key}="))
    return [x for x, _ in points], [v for _, v in points]


def evaluate(name: str, seeds: list[int], runs: Path) -> dict[str, dict[str, Any]]:
    """Each task's result record for one model (read from ``runs`` when finished, else evaluated there)."""
    records: dict[str, dict[str, Any]] = {}
    model = None
    for key, tid in TASKS.items():
        out = runs / tid / f"{name}.json"
        if out.is_file():
            record = json.loads(out.read_text(encoding="utf-8"))
            if all(str(s) in record.get("per_seed", {}) for s in seeds):
                records[key] = record
                continue
        model = model or load(name)
        out.parent.mkdir(parents=True, exist_ok=True)
        log = lambda line, t=tid: print(f"{name} {t}: {line}", file=sys.stderr)  # noqa: E731
        records[key] = run_evaluation(
            fmbench.make_task(tid), model, seeds, device="cpu", out=out, progress=False, log=log
        )
    return records


def plot(per_seed: dict[str, dict[str, dict[str, float]]], out: Path) -> None:
    """The three figures from each model's per-seed metrics (``per_seed[model][task]``)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(5, 4))
    ax.plot([0, 100], [0, 1], ls="--", color="grey", lw=1)
    for name, m in per_seed.items():
        xs, bias = curve(m["generation"], "tails_bias", "p_tails")
        ax.plot(xs, [x / 100 + b for x, b in zip(xs, bias)], marker="o", label=name)
    ax.set(xlabel="stated p(Tails) (%)", ylabel="generated p(Tails)", title="Generation: calibration")
    ax.legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(out / "generation.png", dpi=120)
    plt.close(fig)

    fig, axes = plt.subplots(1, 2, figsize=(9, 3.5), sharey=True)
    for name, m in per_seed.items():
        for ax, base in zip(axes, ("p_random_concept", "p_random_random")):
            ax.plot(*curve(m["judgment"], base, "length"), marker=".", label=name)
    for ax, kind in zip(axes, ("repeated concepts", "Bernoulli(0.5) sequences")):
        ax.set(xlabel="|x| (flips)", xscale="log", title=f"p(random | x): {kind}", ylim=(-0.03, 1.03))
    axes[0].set_ylabel("p(random | x)")
    axes[1].legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(out / "judgment.png", dpi=120)
    plt.close(fig)

    fig, ax = plt.subplots(figsize=(5, 4))
    for name, m in per_seed.items():
        ax.plot(*curve(m["concepts"], "p_continue_mean", "length"), label=name)
    ax.axhline(0.5, ls="--", color="grey", lw=1)
    ax.set(xlabel="|x| (flips)", ylabel="p(continue concept | x)", title="Concept learning (mean over concepts)")
    ax.legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(out / "concepts.png", dpi=120)
    plt.close(fig)


def table(records: dict[str, dict[str, dict[str, Any]]], seed: int) -> str:
    """A Markdown table per task: the shown metrics of each model on ``seed``, and the seconds it took."""
    lines = [
        f"# ICL study: reproduction (seed {seed})",
        "",
        "Written by `python -m fmbench.studies.icl.reproduce`.",
        "",
    ]
    for key, tid in TASKS.items():
        cols = SHOWN[key]
        lines += [f"## {tid}", "", "| model | " + " | ".join(cols) + " | seconds |", "|---" * (len(cols) + 2) + "|"]
        for name, recs in records.items():
            s = recs[key]["per_seed"][str(seed)]
            values = " | ".join(f"{s['metrics'][c]:.3f}" for c in cols)
            lines.append(f"| {name} | {values} | {s['seconds']:.0f} |")
        lines.append("")
    return "\n".join(lines)


def reproduce(models: list[str], seed: int, runs: Path, out: Path) -> dict[str, dict[str, dict[str, Any]]]:
    """Evaluate (or reuse) every model's records, then write the figures and the table to ``out``."""
    records = {name: evaluate(name, [seed], runs) for name in models}
    out.mkdir(parents=True, exist_ok=True)
    plot({n: {k: r["per_seed"][str(seed)]["metrics"] for k, r in recs.items()} for n, recs in records.items()}, out)
    with atomic_open(out / "results.md") as f:
        f.write(table(records, seed))
    return records


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--models", default=",".join([*REFERENCES, *LMS]), help="comma-separated reference or LM names")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--runs", default="runs/baselines", help="folder of the result records (reused when finished)")
    p.add_argument("--out", default="docs/icl")
    args = p.parse_args(argv)
    models = [m for m in args.models.split(",") if m]
    unknown = [m for m in models if m not in REFERENCES and m not in LMS]
    if unknown:
        print(f"error: unknown model(s) {unknown}; known: {', '.join([*REFERENCES, *LMS])}", file=sys.stderr)
        return 2
    try:
        reproduce(models, args.seed, Path(args.runs), Path(args.out))
    except FmbenchError as e:
        print(f"error: {e}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
