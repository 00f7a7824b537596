"""Reproduce the study's claims at CPU scale: writes ``docs/mode_connectivity/`` (results.json, PNGs, table).

1. **Connectivity**: models relying on different mechanisms (trained on the cued train split vs on
   the same images without the cue) are not linearly connected on the cued test set, while models
   relying on the same one (two seeds of each) are; each pair is evaluated linearly and after
   weight matching (the seeds differ in initialisation, so matching comes first, as the paper's LMCP).
2. **Cue fraction** (``--p-sweep``, no training): the shipped leaderboard rows of the registered tasks at
   p in {0.6, 0.7, 0.8, 0.9, 1.0} (one cue-reliant model and its four fine-tunes per p) as a table.
3. **Scratch** (the audit's reference): the same CNN trained on the clean fine-tuning split alone.
4. **Fine-tuning**: the four methods of :mod:`~fmbench.studies.mode_connectivity.finetune` from the
   shipped cue-reliant model of ``--task``, three training seeds each, scored by the task on seed 0's data.
5. **Training-seed spread** (``--parts seed_spread``): the whole pipeline of ``--task`` per training seed (its
   cue-reliant model trained with the seed, then each method's fine-tune of it with the seed), scored like 4 with
   the barrier to that seed's own cue-reliant model; ``--seed-spread`` prints the table.

Run (each part a few minutes to half an hour on one busy CPU core; parts can run as separate processes)::

    python -m fmbench.studies.mode_connectivity.reproduce --out docs/mode_connectivity
    python -m fmbench.studies.mode_connectivity.reproduce --parts fine_tuning:cbft
    python -m fmbench.studies.mode_connectivity.reproduce --task fmbench/MMCFashionBoxP60FT-v0 \
        --parts fine_tuning:cbft --out docs/mode_connectivity/p60
    python -m fmbench.studies.mode_connectivity.reproduce --p-sweep
    python -m fmbench.studies.mode_connectivity.reproduce --task fmbench/MMCFashionBoxP60FT-v0 --parts seed_spread
    python -m fmbench.studies.mode_connectivity.reproduce --seed-spread
"""

from __future__ import annotations

import argparse
import json
import time
from dataclasses import replace
from pathlib import Path

import numpy as np
import torch

from fmbench.io import atomic_open
from fmbench.leaderboard import default_dir, task_dir
from fmbench.loss_path import loss_path
from fmbench.models import from_module
from fmbench.registry import make_task
from fmbench.studies.mode_connectivity.finetune import METHODS, fine_tune, pretrain
from fmbench.studies.mode_connectivity.task import CUE_MODEL, MechanismTask

TASK = "fmbench/MMCFashionBoxFT-v0"
P_SWEEP = {
    0.6: "fmbench/MMCFashionBoxP60FT-v0",
    0.7: "fmbench/MMCFashionBoxP70FT-v0",
    0.8: "fmbench/MMCFashionBoxP80FT-v0",
    0.9: "fmbench/MMCFashionBoxP90FT-v0",
    1.0: TASK,
}
"""The registered box tasks by cue fraction p."""
ALPHAS = tuple(float(a) for a in np.linspace(0, 1, 11))
PATH_ITEMS = 2000
"""Class-balanced test items per set for the connectivity paths (BatchNorm: all 2,000 fine-tuning images)."""


def _with_p(task: MechanismTask, p: float) -> MechanismTask:
    """The same task on data cued at fraction ``p`` (``p = 0``: no cue at all)."""
    return MechanismTask(replace(task.spec, params={**task.spec.params, "p": p}))


def connectivity(task: MechanismTask, out: Path, log) -> dict:
    """Barriers between models of the same and of different mechanisms (linear and weight-matched)."""
    clean_task = _with_p(task, 0.0)
    models = {"cue-0": task.cue_model().model}
    models["cue-1"] = pretrain(task, seed=1)
    models["clean-0"] = pretrain(clean_task, seed=0)
    models["clean-1"] = pretrain(clean_task, seed=1)
    log(f"trained the connectivity models: {sorted(models)}")
    sets, _ = task.path_data(0, PATH_ITEMS)
    bn = task.bn_images(0)
    pairs = [("cue-0", "cue-1"), ("clean-0", "clean-1"), ("cue-0", "clean-0"), ("cue-1", "clean-1")]
    results = {}
    for a, b in pairs:
        for match in (False, True):
            r = loss_path(models[a], models[b], sets, bn, ALPHAS, match=match)
            key = f"{a} -> {b}{' (matched)' if match else ''}"
            results[key] = {
                "barrier": r.barrier,
                "accuracy_barrier": r.accuracy_barrier,
                "loss": r.loss,
                "accuracy": r.accuracy,
            }
            if (a, b) in (("cue-0", "cue-1"), ("cue-0", "clean-0")) and match:
                r.plot(out / f"path-{a}-{b}.png", title=f"{a} -> {b}, {PATH_ITEMS} test images per set")
            log(f"{key}: barrier on test_cue {r.barrier['test_cue']:.3f}, on test_clean {r.barrier['test_clean']:.3f}")
    results["clean-0 scores"] = task.evaluate(from_module(models["clean-0"], "clean-0", "clean-0", "bn-classifier"), 0)
    return results


def fine_tuning(task: MechanismTask, out: Path, method: str, seeds: list[int], log) -> dict:
    """``method``'s task scores (seed 0's data) for each training seed; the path of the first seed plotted."""
    results: dict = {method: []}
    sets, _ = task.path_data(0, PATH_ITEMS)
    bn = task.bn_images(0)
    for seed in seeds:
        start = time.perf_counter()
        model = fine_tune(task, method, seed=seed)
        scores = task.evaluate(from_module(model, method, method, "bn-classifier"), 0)
        results[method].append(scores)
        log(f"{method} seed {seed} ({time.perf_counter() - start:.0f} s): {json.dumps(scores)}")
        if seed == seeds[0]:
            r = loss_path(task.cue_model().model, model, sets, bn, ALPHAS)
            r.plot(out / f"path-cue-reliant-{method}.png", title=f"shipped cue-reliant -> {method} (seed {seed})")
            results["path_seed_" + str(seed)] = {"barrier": r.barrier, "loss": r.loss, "accuracy": r.accuracy}
    return results


def scratch(task: MechanismTask, seeds: list[int], log) -> dict:
    """The audit's reference: mmc-cnn trained from scratch on the clean fine-tuning split alone (20 epochs)."""
    out = []
    for seed in seeds:
        model = pretrain(task, seed=seed, epochs=20, split="finetune")
        out.append(task.evaluate(from_module(model, "scratch", "scratch", "bn-classifier"), 0))
        log(f"scratch seed {seed}: {json.dumps(out[-1])}")
    return {"scratch": out}


def seed_spread(task: MechanismTask, out: Path, seeds: list[int], log) -> dict:
    """The whole pipeline per training seed: the cue-reliant model trained with the seed, then each method's fine-tune
    of it with the seed, scored on seed 0's data with the barrier to that seed's own cue-reliant model.

    Seed 0 is the shipped checkpoints (the same script and seed). Written to ``out/seed_spread-NAME.json`` after every
    model and resumed from there, so a stopped run keeps what it finished.
    """
    path = out / f"seed_spread-{task.spec.name}.json"
    results: dict = json.loads(path.read_text()) if path.exists() else {"task": task.id, "seeds": {}}
    for seed in seeds:
        done = results["seeds"].setdefault(str(seed), {})
        if len(done) == 1 + len(METHODS):
            continue
        start = time.perf_counter()
        anchor = task.cue_model().model if seed == 0 else pretrain(task, seed=seed)
        for name in (CUE_MODEL, *METHODS):
            if name in done:
                continue
            if name == CUE_MODEL:
                model = anchor
            else:
                model = task.load_baseline(name).model if seed == 0 else fine_tune(task, name, seed, start=anchor)
            done[name] = task.scores(model, 0, anchor)
            with atomic_open(path, "w") as f:
                json.dump(results, f, indent=1)
            log(f"{task.spec.name} seed {seed} {name} ({time.perf_counter() - start:.0f} s): {json.dumps(done[name])}")
    return results


METRICS = ("accuracy_random_cue", "accuracy_clean", "accuracy_cue", "accuracy_random_image", "cue_reliance", "barrier")


def _row(name: str, runs: list[dict]) -> str:
    cells = []
    for m in METRICS:
        values = np.array([r[m] for r in runs])
        cells.append(f"{values.mean():.3f} ± {values.std(ddof=1):.3f}" if len(values) > 1 else f"{values[0]:.3f}")
    return f"| {name} | {len(runs)} | " + " | ".join(cells) + " |"


def tables(out: Path) -> str:
    """The results found in ``out`` as Markdown tables (what the study page shows)."""
    lines = []
    head = "| model | runs | " + " | ".join(METRICS) + " |\n|---|---|" + "---|" * len(METRICS)
    found = {p.stem: json.loads(p.read_text()) for p in sorted(out.glob("*.json"))}
    rows = [_row(m, found[f"fine_tuning-{m}"][m]) for m in METHODS if f"fine_tuning-{m}" in found]
    if "scratch" in found:
        rows.append(_row("scratch (clean fine-tuning set only)", found["scratch"]["scratch"]))
    if rows:
        lines += [
            "Fine-tuning the shipped cue-reliant model, mean ± std over training seeds (test data of seed 0):",
            "",
            head,
            *rows,
            "",
        ]
    if "connectivity" in found:
        c = found["connectivity"]
        lines += [
            "| pair | mechanisms | barrier test_cue (linear) | barrier test_cue (matched) | "
            "barrier test_clean (matched) |",
            "|---|---|---|---|---|",
        ]
        for a, b in (("cue-0", "cue-1"), ("clean-0", "clean-1"), ("cue-0", "clean-0"), ("cue-1", "clean-1")):
            same = "same" if a.split("-")[0] == b.split("-")[0] else "different"
            lin, mat = c[f"{a} -> {b}"]["barrier"], c[f"{a} -> {b} (matched)"]["barrier"]
            lines.append(
                f"| {a} → {b} | {same} | {lin['test_cue']:.3f} | {mat['test_cue']:.3f} | {mat['test_clean']:.3f} |"
            )
        lines.append("")
    return "\n".join(lines)


def p_sweep_table(leaderboards: Path | None = None) -> str:
    """The shipped baseline rows of the box tasks at each p (mean over evaluation seeds) as a Markdown table."""
    root = leaderboards or default_dir()
    names = ("cue-reliant", *METHODS)
    lines = [
        "| p | " + " | ".join(names) + " |",
        "|---|" + "---|" * len(names),
    ]
    for metric in ("accuracy_random_cue", "cue_reliance", "accuracy_clean", "barrier"):
        lines.append(f"| **{metric}** |" + " |" * len(names))
        for p, tid in P_SWEEP.items():
            cells = []
            for name in names:
                row = task_dir(root, tid) / f"baseline-{name}.json"
                cells.append(f"{json.loads(row.read_text())['metrics'][metric]['mean']:.3f}" if row.exists() else "–")
            lines.append(f"| {p} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


SPREAD_TASKS = {**{f"p = {p}": tid for p, tid in P_SWEEP.items()}, "dominoes": "fmbench/MMCFashionDominoesFT-v0"}
"""The tasks whose whole pipeline the ``seed_spread`` part repeats over training seeds, as the table labels them."""


def seed_spread_table(out: Path) -> str:
    """The ``seed_spread`` results in ``out`` as a Markdown table: mean ± std over training seeds (the number of seeds
    after the std where fewer than three finished)."""
    names = (CUE_MODEL, *METHODS)
    lines = ["| task | " + " | ".join(names) + " |", "|---|" + "---|" * len(names)]
    for metric in ("accuracy_random_cue", "cue_reliance", "accuracy_clean", "barrier"):
        lines.append(f"| **{metric}** |" + " |" * len(names))
        for label, tid in SPREAD_TASKS.items():
            path = out / f"seed_spread-{tid.split('/')[1].removesuffix('-v0')}.json"
            seeds = json.loads(path.read_text())["seeds"] if path.exists() else {}
            cells = []
            for name in names:
                values = np.array([s[name][metric] for s in seeds.values() if name in s])
                if len(values) == 0:
                    cells.append("–")
                else:
                    std = f" ± {values.std(ddof=1):.3f}" if len(values) > 1 else ""
                    cells.append(f"{values.mean():.3f}{std}" + (f" (n={len(values)})" if len(values) < 3 else ""))
            lines.append(f"| {label} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--task", default=TASK, help="the task whose shipped model and data the parts use")
    p.add_argument("--out", default="docs/mode_connectivity")
    p.add_argument("--seeds", default="0,1,2", help="training seeds of the fine-tuning methods")
    p.add_argument(
        "--parts",
        default="connectivity," + ",".join(f"fine_tuning:{m}" for m in METHODS),
        help="comma-separated; each writes OUT/<part>.json (fine_tuning:METHOD: fine_tuning-METHOD.json)",
    )
    p.add_argument("--tables", action="store_true", help="only print the Markdown tables of the results in --out")
    p.add_argument(
        "--p-sweep", action="store_true", help="only print the p-sweep table of the shipped leaderboard rows"
    )
    p.add_argument(
        "--seed-spread",
        action="store_true",
        help="only print the training-seed spread table of the seed_spread results in --out",
    )
    args = p.parse_args(argv)
    if args.tables:
        print(tables(Path(args.out)))
        return
    if args.p_sweep:
        print(p_sweep_table())
        return
    if args.seed_spread:
        print(seed_spread_table(Path(args.out)))
        return
    torch.set_num_threads(1)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    task = make_task(args.task)

    def log(line: str) -> None:
        print(f"[{time.strftime('%H:%M:%S')}] {line}", flush=True)

    for part in args.parts.split(","):
        if part == "connectivity":
            result = connectivity(task, out, log)
        elif part == "scratch":
            result = scratch(task, [int(s) for s in args.seeds.split(",")], log)
        elif part == "seed_spread":
            seed_spread(task, out, [int(s) for s in args.seeds.split(",")], log)
            continue
        elif part.startswith("fine_tuning:") and part.split(":")[1] in METHODS:
            result = fine_tuning(task, out, part.split(":")[1], [int(s) for s in args.seeds.split(",")], log)
        else:
            raise SystemExit(f"unknown part {part!r}")
        with atomic_open(out / f"{part.replace(':', '-')}.json", "w") as f:
            json.dump(result, f, indent=1)
        log(f"wrote {out / part.replace(':', '-')}.json")


if __name__ == "__main__":
    main()
