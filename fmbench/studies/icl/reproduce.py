"""Reproduce the study's curves for the reference models and the local LMs: ``python -m fmbench.studies.icl.reproduce``.

For each model (the references, and each shipped LM whose weights are installed) and one seed,
it scores the three tasks at their registered sizes and writes to ``--out`` (default
``docs/icl``):

* ``generation.png``: generated p(Tails) against the stated target (the diagonal is calibrated);
* ``judgment.png``: p(random | x) against |x| for repeated concepts and for Bernoulli(0.5) sequences;
* ``concepts.png``: p(continue concept | x) against |x|, averaged over the four concepts;
* ``results.md`` (a table of each task's metrics per model) and ``curves.json`` (every curve's numbers).

A model already in ``curves.json`` for the same seed is kept, not scored again (delete the file to redo all).

Example:
    >>> rows = reproduce(["bernoulli"], seed=0, out=None)  # doctest: +SKIP
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np

import fmbench
from fmbench.errors import FmbenchError
from fmbench.io import atomic_open
from fmbench.models import LoadedModel
from fmbench.studies.icl.references import LMS, REFERENCES, load_lm, load_reference
from fmbench.studies.icl.tasks import concept_metrics, generation_metrics, judgment_metrics

TASKS = {
    "generation": "fmbench/ICLRandomGeneration-v0",
    "judgment": "fmbench/ICLRandomnessJudgment-v0",
    "concepts": "fmbench/ICLConceptLearning-v0",
}
SHOWN = {
    "generation": ("calibration_error", "alternation_error", "longest_run", "levenshtein_ratio", "valid_fraction"),
    "judgment": ("randomness_gap", "judgment_auroc", "p_random_random", "p_random_concept", "answer_mass"),
    "concepts": ("transition_point", "sigmoid_midpoint", "sigmoid_slope", "p_continue_final", "flip_mass"),
}


def load(name: str) -> LoadedModel:
    """A reference model or a shipped LM by name."""
    return load_reference(name) if name in REFERENCES else load_lm(name)


def score(model: LoadedModel, seed: int) -> dict[str, Any]:
    """Every task's metrics and curves for one model and seed."""
    gen, jud, con = (fmbench.make_task(TASKS[k]) for k in ("generation", "judgment", "concepts"))
    out: dict[str, Any] = {}
    start = time.perf_counter()
    flips = gen.generate(model, gen.items(seed))
    targets = {g: int(g.split("=")[1]) / 100 for g in flips}
    out["generation"] = {
        "metrics": generation_metrics(flips, targets, gen.spec.params["flips"]),
        "target": [targets[g] for g in flips],
        "generated": [float(np.mean([f for s in seqs for f in s])) if any(seqs) else None for seqs in flips.values()],
        "seconds": time.perf_counter() - start,
    }
    start = time.perf_counter()
    items = jud.items(seed)
    p, mass = jud.judge(model, items)
    lengths = sorted({it.length for it in items})
    curve = {
        kind: [float(np.mean([v for v, it in zip(p, items) if it.group == kind and it.length == n])) for n in lengths]
        for kind in ("random", "concept")
    }
    out["judgment"] = {
        "metrics": judgment_metrics(items, p, mass),
        "lengths": lengths,
        **curve,
        "seconds": time.perf_counter() - start,
    }
    start = time.perf_counter()
    items = con.items(seed)
    cont, mass = con.curve(model, items)
    n = con.spec.params["max_length"]
    out["concepts"] = {
        "metrics": concept_metrics(items, cont, mass, n),
        "lengths": list(range(1, n + 1)),
        "p_continue": {
            c: cont[[i for i, it in enumerate(items) if it.group == c]].tolist() for c in con.concepts(seed)
        },
        "seconds": time.perf_counter() - start,
    }
    return out


def plot(results: dict[str, dict[str, Any]], out: Path) -> None:
    """The three figures."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(5, 4))
    ax.plot([0, 1], [0, 1], ls="--", color="grey", lw=1)
    for name, r in results.items():
        g = r["generation"]
        ax.plot(g["target"], [np.nan if v is None else v for v in g["generated"]], marker="o", label=name)
    ax.set(xlabel="stated p(Tails)", ylabel="generated p(Tails)", title="Generation: calibration")
    ax.legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(out / "generation.png", dpi=120)
    plt.close(fig)

    fig, axes = plt.subplots(1, 2, figsize=(9, 3.5), sharey=True)
    for name, r in results.items():
        j = r["judgment"]
        for ax, kind in zip(axes, ("concept", "random")):
            ax.plot(j["lengths"], j[kind], marker=".", label=name)
    for ax, kind in zip(axes, ("repeated concepts", "Bernoulli(0.5) sequences")):
        ax.set(xlabel="|x| (flips)", title=f"p(random | x): {kind}", ylim=(-0.03, 1.03))
    axes[0].set_ylabel("p(random | x)")
    axes[1].legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(out / "judgment.png", dpi=120)
    plt.close(fig)

    fig, ax = plt.subplots(figsize=(5, 4))
    for name, r in results.items():
        c = r["concepts"]
        ax.plot(c["lengths"], np.mean(list(c["p_continue"].values()), axis=0), label=name)
    ax.axhline(0.5, ls="--", color="grey", lw=1)
    ax.set(xlabel="|x| (flips)", ylabel="p(continue concept | x)", title="Concept learning (mean of 4 concepts)")
    ax.legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(out / "concepts.png", dpi=120)
    plt.close(fig)


def table(results: dict[str, dict[str, Any]], seed: int) -> str:
    """A Markdown table per task: the shown metrics of each model, and its run time."""
    lines = [
        f"# ICL study: reproduction (seed {seed})",
        "",
        "Written by `python -m fmbench.studies.icl.reproduce`.",
        "",
    ]
    for key, tid in TASKS.items():
        cols = SHOWN[key]
        lines += [f"## {tid}", "", "| model | " + " | ".join(cols) + " | seconds |", "|---" * (len(cols) + 2) + "|"]
        for name, r in results.items():
            m = r[key]["metrics"]
            lines.append(f"| {name} | " + " | ".join(f"{m[c]:.3f}" for c in cols) + f" | {r[key]['seconds']:.0f} |")
        lines.append("")
    return "\n".join(lines)


def reproduce(models: list[str], seed: int, out: Path | None) -> dict[str, dict[str, Any]]:
    """Score every model, then write the figures, the table and the curves to ``out`` (nothing when ``None``)."""
    done = json.loads((out / "curves.json").read_text()) if out is not None and (out / "curves.json").is_file() else {}
    results = {}
    for name in models:
        if done.get(name, {}).get("seed") == seed:
            print(f"{name}: kept from {out / 'curves.json'}", file=sys.stderr)
            results[name] = done[name]
            continue
        print(f"{name}: scoring the three tasks on seed {seed}", file=sys.stderr)
        results[name] = {"seed": seed, **score(load(name), seed)}
    if out is not None:
        out.mkdir(parents=True, exist_ok=True)
        plot(results, out)
        with atomic_open(out / "results.md") as f:
            f.write(table(results, seed))
        with atomic_open(out / "curves.json") as f:
            f.write(json.dumps(results, indent=1) + "\n")
    return results


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--models", default=",".join([*REFERENCES, *LMS]), help="comma-separated reference or LM names")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--out", default="docs/icl")
    args = p.parse_args(argv)
    models = [m for m in args.models.split(",") if m]
    unknown = [m for m in models if m not in REFERENCES and m not in LMS]
    if unknown:
        print(f"error: unknown model(s) {unknown}; known: {', '.join([*REFERENCES, *LMS])}", file=sys.stderr)
        return 2
    try:
        reproduce(models, args.seed, Path(args.out))
    except FmbenchError as e:
        print(f"error: {e}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
