"""How much the "first step reaching 50 / 80 / 99%" moves with the samples per class and the evaluation seed.

Every shipped checkpoint of the main split's DDPM is scored on all ``per_class`` (64) evaluation
items of each class for each evaluation seed, and each item's correctness is kept. Then, for
``k`` samples per class (16, 32, 64), ``draws`` random subsets of ``k`` of a class's items (without
replacement, seeded) give the distribution of each class's first step reaching each threshold;
``k = 64`` is the full set, one value per seed. The seeds differ in the evaluation items' order,
hence in the batches and the generator's noise. Run (about 15,000 DDIM samples on one thread)::

    python -m fmbench.studies.compositional_diffusion.sensitivity --seeds 0 1 2 \\
        --cache sensitivity.npz --out docs/compositional_diffusion/sensitivity.json

Example:
    >>> rows = np.array([[1, 1, 0, 0], [1, 1, 1, 0]], bool)  # 2 steps x 4 items of one class
    >>> subsample_first_steps([100, 200], rows, k=2, draws=200, key=0)["80"]["never"] > 0
    True
"""

from __future__ import annotations

import argparse
from collections import Counter
from pathlib import Path
from typing import Any

import numpy as np
import torch

from fmbench.io import write_json_atomic
from fmbench.models import load_safetensors
from fmbench.random_access import bits, stream_key
from fmbench.registry import make_task
from fmbench.stats import spearman
from fmbench.studies.compositional_diffusion.concepts import THREE
from fmbench.studies.compositional_diffusion.reproduce import AUTHORS_EPOCH_80
from fmbench.studies.compositional_diffusion.series import THRESHOLDS, checkpoint_steps, first_step
from fmbench.studies.compositional_diffusion.train import checkpoint_dir

TASK = "fmbench/ConceptGenH32Train1-v0"


def item_correctness(seeds: list[int], cache: Path, device: str = "cpu") -> dict[str, np.ndarray]:
    """``steps``, and per seed ``classes_<s>`` ``(N,)`` and ``joint_<s>`` ``(steps, N)``: each item's image right.

    Scores every shipped checkpoint on every evaluation item; ``cache`` (npz) keeps what is done,
    so an interrupted run goes on where it stopped.
    """
    task = make_task(TASK)
    found = dict(np.load(cache)) if cache.exists() else {}
    checkpoints = checkpoint_steps(checkpoint_dir(task.split))
    items = np.arange(task.split_size("eval"))
    for seed in seeds:
        for step, path in checkpoints:
            name = f"joint_{seed}_{step}"
            if name in found:
                continue
            model = load_safetensors(str(path)).to(device)
            classes, right = task.correct(model, seed, items, device)
            found[f"classes_{seed}"], found[name] = classes, right.all(axis=1)
            np.savez(cache, **found)
            print(f"seed {seed} step {step}: {found[name].mean():.3f}", flush=True)
    steps = [s for s, _ in checkpoints]
    out: dict[str, np.ndarray] = {"steps": np.array(steps)}
    for seed in seeds:
        out[f"classes_{seed}"] = found[f"classes_{seed}"]
        out[f"joint_{seed}"] = np.stack([found[f"joint_{seed}_{s}"] for s in steps])
    return out


def subsample_first_steps(steps: list[int], rows: np.ndarray, k: int, draws: int, key: int) -> dict[str, Counter]:
    """Per threshold, a count of the first step (``"never"``) over ``draws`` subsets of ``k`` of a class's items.

    ``rows``: ``(steps, items)`` booleans of one class; ``k`` equal to the items gives one draw.
    """
    n = rows.shape[1]
    draws = 1 if k >= n else draws
    order = np.argsort(bits(key, np.arange(draws), n), axis=1)[:, :k]  # a uniform random k-subset per draw
    out = {f"{round(t * 100)}": Counter() for t in THRESHOLDS}
    for pick in order:
        for threshold, step in first_step(steps, rows[:, pick].mean(axis=1).tolist()).items():
            out[threshold]["never" if step is None else step] += 1
    return out


def summarise(data: dict[str, np.ndarray], seeds: list[int], ks: list[int], draws: int) -> dict[str, Any]:
    """Per class, threshold, ``k`` and seed: the distribution of the first step (fractions of the draws)."""
    steps = data["steps"].tolist()
    classes: dict[str, Any] = {}
    for c in range(8):
        name = THREE.class_name(c)
        per: dict[str, Any] = {f"{round(t * 100)}": {} for t in THRESHOLDS}
        for k in ks:
            for seed in seeds:
                rows = data[f"joint_{seed}"][:, data[f"classes_{seed}"] == c]
                key = stream_key("compositional_diffusion.sensitivity", seed, c, k)
                for threshold, counts in subsample_first_steps(steps, rows, k, draws, key).items():
                    total = sum(counts.values())
                    per[threshold].setdefault(str(k), {})[str(seed)] = {
                        str(s): round(v / total, 3) for s, v in sorted(counts.items(), key=lambda x: str(x[0]))
                    }
        classes[name] = per
    return {"task": TASK, "steps": steps, "seeds": seeds, "samples_per_class": ks, "draws": draws, "classes": classes}


def _likely(dist: dict[str, float], floor: float = 0.05) -> str:
    """The steps of a distribution with probability >= ``floor``, most likely first (``"400 (70%), 300 (25%)"``)."""
    kept = sorted(((p, s) for s, p in dist.items() if p >= floor), key=lambda x: -x[0])
    return ", ".join(f"{s} ({p:.0%})" for p, s in kept)


def report(summary: dict[str, Any], threshold: str = "80") -> str:
    """A Markdown table: per class, the first step reaching ``threshold`` with all items per seed, and
    the likely first steps with fewer samples per class (pooled over seeds and draws); then how
    often a smaller sample gives another first step than the full one of the same seed.

    Example:
        >>> dist = {"16": {"0": {"200": 0.5, "300": 0.5}}, "64": {"0": {"300": 1.0}}}
        >>> s = {"seeds": [0], "samples_per_class": [16, 64], "classes": {"000": {"80": dist}}}
        >>> print(report(s).splitlines()[2])
        | 000 | 300 | 200 (50%), 300 (50%) |
    """
    seeds, ks = [str(x) for x in summary["seeds"]], [str(k) for k in summary["samples_per_class"]]
    full, fewer = ks[-1], ks[:-1]
    head = [f"first {threshold}%, {full}/class, seeds {'/'.join(seeds)}"] + [f"{k}/class (all seeds)" for k in fewer]
    lines = ["| class | " + " | ".join(head) + " |", "|---" * (len(head) + 1) + "|"]
    differs = {k: [] for k in fewer}
    for name, per in summary["classes"].items():
        dist = per[threshold]
        at_full = {seed: next(iter(dist[full][seed])) for seed in seeds}
        cells = ["/".join(at_full[seed] for seed in seeds)]
        for k in fewer:
            pooled: dict[str, float] = {}
            for seed in seeds:
                for step, prob in dist[k][seed].items():
                    pooled[step] = pooled.get(step, 0.0) + prob / len(seeds)
                differs[k].append(1 - dist[k][seed].get(at_full[seed], 0.0))
            cells.append(_likely(pooled))
        lines.append(f"| {name} | " + " | ".join(cells) + " |")
    split = sum(len(set(next(iter(per[threshold][full][s])) for s in seeds)) > 1 for per in summary["classes"].values())
    lines.append("")
    lines.append(
        f"Classes whose first {threshold}% step differs between seeds at {full}/class: {split} of "
        f"{len(summary['classes'])}. Chance that fewer samples give another first step than all {full} of the "
        "same seed (mean over classes and seeds): "
        + ", ".join(f"{k}/class {np.mean(differs[k]):.0%}" for k in fewer)
        + "."
    )
    return "\n".join(lines)


def rank_correlations(summary: dict[str, Any]) -> dict[str, float]:
    """Per seed, with all items per class: Spearman of the first step reaching 80% with the authors' epochs.

    As in :mod:`~fmbench.studies.compositional_diffusion.reproduce`: a class never reaching 80% ranks last.
    """
    full, out = str(summary["samples_per_class"][-1]), {}
    for seed in map(str, summary["seeds"]):
        firsts = [next(iter(summary["classes"][n]["80"][full][seed])) for n in AUTHORS_EPOCH_80]
        ours = [10 * summary["steps"][-1] if f == "never" else int(f) for f in firsts]
        out[seed] = round(spearman(ours, list(AUTHORS_EPOCH_80.values())), 2)
    return out


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    p.add_argument("--k", type=int, nargs="+", default=[16, 32, 64], help="samples per class")
    p.add_argument("--draws", type=int, default=200)
    p.add_argument("--cache", type=Path, required=True, help="npz of per-item correctness (resumed)")
    p.add_argument("--out", type=Path, required=True)
    p.add_argument("--device", default="cpu")
    args = p.parse_args(argv)
    torch.set_num_threads(1)
    data = item_correctness(args.seeds, args.cache, args.device)
    summary = summarise(data, args.seeds, args.k, args.draws)
    summary["spearman_80_vs_authors"] = rank_correlations(summary)
    write_json_atomic(args.out, summary)
    for threshold in summary["classes"]["000"]:
        print(report(summary, threshold), end="\n\n")
    print(
        "Spearman of the first-80% order with the authors' (never = last), per seed:",
        summary["spearman_80_vs_authors"],
    )


if __name__ == "__main__":
    main()
