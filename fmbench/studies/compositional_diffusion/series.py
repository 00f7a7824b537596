"""Checkpoint-series mode: score every checkpoint of a training run and say when each class is learned.

Given a folder of ``safetensors`` checkpoints of one generator at several training steps (the step
read from the header's ``step``, else from the last number in the file name), every checkpoint draws
the same evaluation items with the same seeds; the result holds, per class, the joint and
per-concept accuracy curves and the first step at which the joint accuracy reaches 50, 80 and 99%
(``None``: never), so the order of emergence is measured, not read off a plot.

Run::

    python -m fmbench.studies.compositional_diffusion.series --task fmbench/ConceptGenH32Train1-v0 \\
        --checkpoints fmbench/studies/compositional_diffusion/checkpoints/ddpm-H32-train1 --out series.json

Example:
    >>> first_step([10, 20, 30], [0.2, 0.85, 0.6])
    {'50': 20, '80': 20, '99': None}
"""

from __future__ import annotations

import argparse
import json
import re
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from fmbench.checkpoints import read_metadata
from fmbench.errors import InputError
from fmbench.io import write_json_atomic
from fmbench.models import load_safetensors
from fmbench.registry import make_task
from fmbench.studies.compositional_diffusion.concepts import distances
from fmbench.studies.compositional_diffusion.data import eval_classes
from fmbench.studies.compositional_diffusion.task import ConceptGenTask
from fmbench.task import stratified_subset

THRESHOLDS = (0.5, 0.8, 0.99)


def first_step(steps: list[int], accuracy: list[float]) -> dict[str, int | None]:
    """The first step at which ``accuracy`` reaches each of :data:`THRESHOLDS` (``None``: never)."""
    out = {}
    for threshold in THRESHOLDS:
        reached = [s for s, a in zip(steps, accuracy) if a >= threshold]
        out[f"{round(threshold * 100)}"] = reached[0] if reached else None
    return out


def checkpoint_steps(folder: str | Path) -> list[tuple[int, Path]]:
    """``(step, path)`` of each checkpoint in ``folder``, by step; ``InputError`` if none or a step is unknown."""
    folder = Path(folder)
    if not folder.is_dir():
        raise InputError(f"checkpoint folder not found: {folder}")
    found = []
    for path in sorted(folder.glob("*.safetensors")):
        step = read_metadata(path).get("step")
        if step is None:
            numbers = re.findall(r"\d+", path.stem)
            if not numbers:
                raise InputError(f"{path}: no 'step' in its header and no number in its name")
            step = int(numbers[-1])
        found.append((int(step), path))
    if not found:
        raise InputError(f"no .safetensors checkpoints in {folder}")
    steps = [s for s, _ in found]
    if len(set(steps)) != len(steps):
        raise InputError(f"{folder}: two checkpoints have the same step ({sorted(steps)})")
    return sorted(found)


def evaluate_series(
    task: ConceptGenTask,
    folder: str | Path,
    seed: int = 0,
    device: str = "cpu",
    limit: int | None = None,
    log: Callable[[str], None] = print,
    previous: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """Per-class and per-concept learning curves of the checkpoints in ``folder`` on ``task``'s evaluation items.

    ``previous``: an earlier series of the same task, seed and items per class (a run interrupted or
    made before more checkpoints were written); the steps it holds are taken from it, not scored again.
    """
    checkpoints = checkpoint_steps(folder)
    all_classes = eval_classes(task.split, task.per_class, seed, np.arange(task.split_size("eval")))
    items = stratified_subset(all_classes, limit)
    space, dist = task.space, distances(task.split)
    names = [space.class_name(c) for c in range(space.n_classes)]
    per_class = int(len(items) // space.n_classes)
    same = previous and (previous["task"], previous["seed"], previous["items_per_class"]) == (task.id, seed, per_class)
    done = {s: i for i, s in enumerate(previous["steps"])} if same else {}
    joint = {n: [] for n in names}
    concepts = {n: {c: [] for c in space.names} for n in names}
    for step, path in checkpoints:
        if step in done:
            for n in names:
                joint[n].append(previous["classes"][n]["accuracy"][done[step]])
                for concept in space.names:
                    concepts[n][concept].append(previous["classes"][n]["concepts"][concept][done[step]])
            continue
        model = load_safetensors(str(path)).to(device)
        task.check_model(model)
        classes, right = task.correct(model, seed, items, device)
        for c, n in enumerate(names):
            rows = right[classes == c]
            joint[n].append(float(rows.all(axis=1).mean()))
            for j, concept in enumerate(space.names):
                concepts[n][concept].append(float(rows[:, j].mean()))
        log(f"step {step}: " + " ".join(f"{n} {joint[n][-1]:.2f}" for n in names))
    steps = [s for s, _ in checkpoints]
    return {
        "task": task.id,
        "seed": seed,
        "items_per_class": per_class,
        "steps": steps,
        "classes": {
            n: {
                "distance": dist[n],
                "accuracy": joint[n],
                "concepts": concepts[n],
                "first_step": first_step(steps, joint[n]),
            }
            for n in names
        },
    }


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--task", required=True)
    p.add_argument("--checkpoints", required=True, help="folder of .safetensors checkpoints at several steps")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--device", default="cpu")
    p.add_argument("--out", help="write the series as JSON here (default: print it)")
    args = p.parse_args(argv)
    task = make_task(args.task)
    if not isinstance(task, ConceptGenTask):
        raise InputError(f"{args.task} is not a concept-generation task")
    series = evaluate_series(task, args.checkpoints, args.seed, args.device)
    if args.out:
        write_json_atomic(args.out, series)
    else:
        print(json.dumps(series, indent=1))


if __name__ == "__main__":
    main()
