"""Reproduce the study's claims at CPU scale: writes ``docs/mode_connectivity/`` (results.json, PNGs, table).

1. **Connectivity**: models relying on different mechanisms (trained on the cued train split vs on
   the same images without the cue) are not linearly connected on the cued test set, while models
   relying on the same one (two seeds of each) are; each pair is evaluated linearly and after
   weight matching (the seeds differ in initialisation, so matching comes first, as the paper's LMCP).
2. **Cue fraction**: cue reliance of models trained at p in {0.6, 0.7, 0.8, 0.9, 1.0}.
3. **Fine-tuning**: the four methods of :mod:`~fmbench.studies.mode_connectivity.finetune` from the
   shipped cue-reliant model, three training seeds each, scored by the task on seed 0's data.

Run (about an hour on one busy CPU core)::

    python -m fmbench.studies.mode_connectivity.reproduce --out docs/mode_connectivity
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
from fmbench.loss_path import loss_path
from fmbench.models import from_module
from fmbench.registry import make_task
from fmbench.studies.mode_connectivity.finetune import METHODS, fine_tune, pretrain
from fmbench.studies.mode_connectivity.task import MechanismTask

TASK = "fmbench/MMCFashionBoxFT-v0"
ALPHAS = tuple(float(a) for a in np.linspace(0, 1, 11))
PATH_ITEMS = 2000
"""Class-balanced test items per set for the connectivity paths (BatchNorm: all 2,000 fine-tuning images)."""


def _with_p(task: MechanismTask, p: float) -> MechanismTask:
    """The same task on data cued at fraction ``p`` (``p = 0``: no cue at all)."""
    twin = MechanismTask(replace(task.spec, params={**task.spec.params, "p": p}))
    return twin


def connectivity(task: MechanismTask, out: Path, log) -> dict:
    """Barriers between models of the same and of different mechanisms (linear and weight-matched)."""
    clean_task = _with_p(task, 0.0)
    models = {"cue-0": task.cue_model().model}
    models["cue-1"] = pretrain(task, seed=1)
    models["clean-0"] = pretrain(clean_task, seed=0)
    models["clean-1"] = pretrain(clean_task, seed=1)
    log(f"trained the connectivity models: {sorted(models)}")
    sets, bn = task.path_data(0, PATH_ITEMS)
    bn = task.bn_images(0)
    pairs = [("cue-0", "cue-1"), ("clean-0", "clean-1"), ("cue-0", "clean-0"), ("cue-1", "clean-1")]
    results = {}
    for a, b in pairs:
        for match in (False, True):
            r = loss_path(models[a], models[b], sets, bn, ALPHAS, match=match)
            key = f"{a} -> {b}{' (matched)' if match else ''}"
            results[key] = {"barrier": r.barrier, "accuracy_barrier": r.accuracy_barrier, "loss": r.loss,
                            "accuracy": r.accuracy}
            if (a, b) in (("cue-0", "cue-1"), ("cue-0", "clean-0")) and match:
                r.plot(out / f"path-{a}-{b}.png", title=f"{a} -> {b}, {PATH_ITEMS} test images per set")
            log(f"{key}: barrier on test_cue {r.barrier['test_cue']:.3f}, on test_clean {r.barrier['test_clean']:.3f}")
    for name in ("clean-0",):
        results[f"{name} scores"] = task.evaluate(from_module(models[name], name, name, "bn-classifier"), 0)
    return results


def cue_fraction(task: MechanismTask, log) -> dict:
    """Test scores of models trained at each cue fraction p (seed 0)."""
    out = {}
    for p in (0.6, 0.7, 0.8, 0.9, 1.0):
        twin = _with_p(task, p)
        model = pretrain(twin, seed=0)
        scores = task.evaluate(from_module(model, f"p{p}", f"p{p}", "bn-classifier"), 0)
        out[str(p)] = scores
        log(f"p = {p}: {json.dumps({k: round(v, 3) for k, v in scores.items()})}")
    return out


def fine_tuning(task: MechanismTask, out: Path, seeds: list[int], log) -> dict:
    """Each method's task scores (seed 0's data) for each training seed; paths of seed 0 plotted."""
    results: dict = {}
    sets, bn = task.path_data(0, PATH_ITEMS)
    for method in METHODS:
        results[method] = []
        for seed in seeds:
            start = time.perf_counter()
            model = fine_tune(task, method, seed=seed)
            scores = task.evaluate(from_module(model, method, method, "bn-classifier"), 0)
            results[method].append(scores)
            log(f"{method} seed {seed} ({time.perf_counter() - start:.0f} s): "
                f"{json.dumps({k: round(v, 3) for k, v in scores.items()})}")
            if seed == seeds[0] and method in ("naive-ft", "cbft"):
                r = loss_path(task.cue_model().model, model, sets, bn, ALPHAS)
                r.plot(out / f"path-cue-reliant-{method}.png", title=f"shipped cue-reliant -> {method} (seed {seed})")
    return results


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--out", default="docs/mode_connectivity")
    p.add_argument("--seeds", default="0,1,2", help="training seeds of the fine-tuning methods")
    p.add_argument("--parts", default="connectivity,cue_fraction,fine_tuning")
    args = p.parse_args(argv)
    torch.set_num_threads(1)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    task = make_task(TASK)
    results_file = out / "results.json"
    results = json.loads(results_file.read_text()) if results_file.exists() else {}

    def log(line: str) -> None:
        print(f"[{time.strftime('%H:%M:%S')}] {line}", flush=True)

    for part in args.parts.split(","):
        if part == "connectivity":
            results[part] = connectivity(task, out, log)
        elif part == "cue_fraction":
            results[part] = cue_fraction(task, log)
        elif part == "fine_tuning":
            results[part] = fine_tuning(task, out, [int(s) for s in args.seeds.split(",")], log)
        else:
            raise SystemExit(f"unknown part {part!r}")
        with atomic_open(results_file, "w") as f:
            json.dump(results, f, indent=1)
    log(f"wrote {results_file}")


if __name__ == "__main__":
    main()
