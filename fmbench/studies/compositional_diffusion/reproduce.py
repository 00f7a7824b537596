"""Reproduce arXiv:2310.09336's learning dynamics at CPU scale from the shipped DDPM checkpoints.

Scores every shipped checkpoint of the DDPM trained on the main split (checkpoint-series mode,
:mod:`~fmbench.studies.compositional_diffusion.series`), then writes to ``--out``:

* ``series.json``: per class, the joint and per-concept accuracy at every step and the first
  steps reaching 50 / 80 / 99% (a rerun scores only the checkpoints it does not hold yet);
* ``results.md``: the emergence table beside the authors' first epoch reaching 80% (STUDIES.md,
  from their project page; 78 steps per epoch), the rank correlation of the two orders, and the
  fits of the multiplicative model;
* ``learning_curves.png`` (joint accuracy per class, coloured by concept distance) and
  ``concept_curves.png`` (per-concept curves of each held-out class, with the fitted model).

The multiplicative model: a concept is learned by step ``t`` with probability ``1 - (1 - p)^t``
(``t`` in hundreds of steps), so a class needing ``n`` concepts is right with probability
``P(n) = (1 - (1 - p)^t)^n``. Two fits per held-out class: ``p`` per concept on its per-concept
curve, whose product is compared with the measured joint curve; and one ``p`` with ``n = 3`` on
the joint curve itself. Run::

    python -m fmbench.studies.compositional_diffusion.reproduce --out docs/compositional_diffusion
    python -m fmbench.studies.compositional_diffusion.reproduce --out docs/compositional_diffusion --report-only

Example:
    >>> round(fit_p([1.0, 2.0, 4.0], [0.5, 0.75, 0.9375]), 3)
    0.5
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any

import numpy as np
import torch
from scipy.optimize import minimize_scalar

from fmbench.io import write_json_atomic
from fmbench.registry import make_task
from fmbench.reporting import markdown_table, pyplot, save_png
from fmbench.stats import spearman
from fmbench.studies.compositional_diffusion.series import evaluate_series, first_step
from fmbench.studies.compositional_diffusion.train import checkpoint_dir

TASK = "fmbench/ConceptGenH32Train1-v0"
AUTHORS_EPOCH_80 = {"000": 6, "100": 10, "010": 11, "001": 16, "110": 20, "011": 28, "101": 39, "111": 50}
"""The authors' first epoch at which each class reaches 80% (their project page's per-class curves)."""
AUTHORS_111_CONCEPT_EPOCH_80 = {"size": 10, "shape": 18, "colour": 50}
STEPS_PER_EPOCH = 78
UNIT = 100
"""Steps per unit of ``t`` in the multiplicative model."""


def _curve(p: float, t: np.ndarray, n: int = 1) -> np.ndarray:
    return (1 - (1 - p) ** t) ** n


def fit_p(t: list[float], accuracy: list[float], n: int = 1) -> float:
    """The ``p`` in (0, 1) minimising the squared error of ``(1 - (1 - p)^t)^n`` to ``accuracy``."""
    t_, a = np.asarray(t, dtype=float), np.asarray(accuracy, dtype=float)
    res = minimize_scalar(lambda p: float(((_curve(p, t_, n) - a) ** 2).sum()), bounds=(1e-6, 1 - 1e-6),
                          method="bounded", options={"xatol": 1e-8})  # fmt: skip
    return float(res.x)


def fits(series: dict[str, Any]) -> dict[str, dict[str, Any]]:
    """Per held-out class: per-concept ``p``, the product's and the common-``p`` model's RMSE to the joint curve."""
    t = np.asarray(series["steps"], dtype=float) / UNIT
    out = {}
    for name, c in series["classes"].items():
        if c["distance"] == 0:
            continue
        joint = np.asarray(c["accuracy"])
        ps = {k: fit_p(t, v) for k, v in c["concepts"].items()}
        product = np.prod([_curve(p, t) for p in ps.values()], axis=0)
        common = fit_p(t, joint, n=len(ps))
        out[name] = {
            "p": {k: round(v, 4) for k, v in ps.items()},
            "product_rmse": round(float(np.sqrt(((product - joint) ** 2).mean())), 4),
            "common_p": round(common, 4),
            "common_rmse": round(float(np.sqrt(((_curve(common, t, len(ps)) - joint) ** 2).mean())), 4),
        }
    return out


def report(series: dict[str, Any], out: Path) -> str:
    """Write ``results.md`` and the two figures from a series; return the markdown."""
    steps, classes = series["steps"], series["classes"]
    rows = []
    for name, c in sorted(classes.items(), key=lambda kv: (kv[1]["first_step"]["80"] or float("inf"), kv[0])):
        firsts = [c["first_step"][k] if c["first_step"][k] is not None else "never" for k in ("50", "80", "99")]
        authors = AUTHORS_EPOCH_80[name]
        rows.append([name, c["distance"], *firsts, f"{c['accuracy'][-1]:.2f}", authors, authors * STEPS_PER_EPOCH])
    ours = [classes[n]["first_step"]["80"] or 10 * steps[-1] for n in AUTHORS_EPOCH_80]
    rho = spearman(ours, list(AUTHORS_EPOCH_80.values()))
    fitted = fits(series)
    fit_rows = [
        [n, *(f["p"][k] for k in ("shape", "colour", "size")), f["product_rmse"], f["common_p"], f["common_rmse"]]
        for n, f in fitted.items()
    ]
    concept80 = {k: first_step(steps, v)["80"] for k, v in classes["111"]["concepts"].items()}
    header = ["class", "distance", "step 50%", "step 80%", "step 99%", f"acc. @ {steps[-1]}", "authors' epoch 80%"]
    fit_header = ["class", "p shape", "p colour", "p size", "RMSE product", "common p (n=3)", "RMSE common"]
    per_concept = ", ".join(
        f"{k} {v if v is not None else 'never'} (authors' epoch {AUTHORS_111_CONCEPT_EPOCH_80[k]})"
        for k, v in concept80.items()
    )
    md = "\n\n".join(
        [
            f"Checkpoints at steps {steps}; {series['items_per_class']} samples per class, seed {series['seed']}.",
            markdown_table([*header, "≈ authors' step 80%"], rows, align="lrrrrrrr"),
            f"Spearman correlation of the order of first reaching 80% with the authors' (never = last): {rho:.2f}.",
            f"Class 111, first step at which each concept reaches 80%: {per_concept}.",
            markdown_table(fit_header, fit_rows, align="lrrrrrr"),
        ]
    )
    (out / "results.md").write_text(md + "\n")
    plt = pyplot()
    fig, ax = plt.subplots(figsize=(6, 4))
    colours = {0: "tab:grey", 1: "tab:blue", 2: "tab:red"}
    for (name, c), marker in zip(classes.items(), "os^vD<>p"):
        label = f"{name} (d={c['distance']})"
        ax.plot(steps, c["accuracy"], marker=marker, ms=4, lw=1, color=colours[c["distance"]], label=label)
    ax.set(xlabel="training step", ylabel="accuracy (all concepts right)", ylim=(-0.02, 1.02),
           title="DDPM on the main split: per-class accuracy")  # fmt: skip
    ax.legend(fontsize=7, ncol=2)
    save_png(fig, out / "learning_curves.png")
    held = [n for n, c in classes.items() if c["distance"] > 0]
    fig, axes = plt.subplots(1, len(held), figsize=(3.2 * len(held), 3), sharey=True)
    t = np.linspace(0, steps[-1], 200)
    for ax, name in zip(axes, held):
        for concept, curve in classes[name]["concepts"].items():
            line = ax.plot(steps, curve, marker="o", ms=3, label=concept)[0]
            ax.plot(t, _curve(fitted[name]["p"][concept], t / UNIT), ls="--", lw=0.8, color=line.get_color())
        ax.plot(steps, classes[name]["accuracy"], color="black", lw=2, label="joint")
        ax.plot(t, _curve(fitted[name]["common_p"], t / UNIT, 3), color="black", ls=":", label="P(3) fit")
        ax.set(title=f"{name} (distance {classes[name]['distance']})", xlabel="step")
    axes[0].set_ylabel("accuracy")
    axes[0].legend(fontsize=7)
    save_png(fig, out / "concept_curves.png")
    return md


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--out", default="docs/compositional_diffusion")
    p.add_argument("--per-class", type=int, default=16, help="samples per class at each checkpoint")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--report-only", action="store_true", help="redraw from the existing series.json")
    args = p.parse_args(argv)
    torch.set_num_threads(1)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    if not args.report_only:
        task = make_task(TASK)
        path = out / "series.json"
        previous = json.loads(path.read_text()) if path.is_file() else None
        folder = checkpoint_dir(task.split)
        series = evaluate_series(task, folder, args.seed, limit=args.per_class * 8, previous=previous)
        write_json_atomic(path, series)
    print(report(json.loads((out / "series.json").read_text()), out))


if __name__ == "__main__":
    main()
