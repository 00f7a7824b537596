"""The learned captioners on the reward-quality tasks' own runs (level ComposedLocal), seeds 0-2.

The parsers' held-out report (captioner*.json) is on the BabyAI levels they were trained on; this
reads every run of the compositional and partial-view tasks as the task draws it (clean, 12 px,
colour jitter + noise) and counts, against the scenes the env recorded: cells whose object, colour
and state are read right, frames parsed to exactly the true scene, and runs whose caption
(`learned` vs `oracle` vision, events + final state) is the oracle's. Writes
captioner_on_tasks.json beside this file (about a minute)::

    python docs/fomo/captioner_on_tasks.py
"""

import json
from pathlib import Path

import torch

from fmbench.registry import make_task
from fmbench.studies.fomo.vision import LearnedVision, OracleVision

TASKS = ("Compositional", "PartialView", "PartialViewTile12", "PartialViewJitter")

torch.set_num_threads(1)
learned, oracle = LearnedVision(), OracleVision()
report = {}
for name in TASKS:
    task = make_task(f"fmbench/FoMoReward{name}-v0")
    report[name] = {}
    for seed in (0, 1, 2):
        cells = cells_right = frames = frames_right = runs = captions_right = 0
        for layout in task.layouts(seed):
            for trajectory in task.trajectories(layout, needs_frames=True):
                parsed = learned.scenes(trajectory)
                for p, s in zip(parsed, trajectory.scenes, strict=True):
                    cells += s.grid[..., 0].size
                    cells_right += int((p.grid == s.grid).all(-1).sum())
                    frames_right += p.same(s)
                frames += len(parsed)
                runs += 1
                captions_right += learned.text(trajectory) == oracle.text(trajectory)
        report[name][seed] = {
            "cells": cells_right / cells,
            "frames": frames_right / frames,
            "captions": captions_right / runs,
            "n_frames": frames,
            "n_runs": runs,
        }
        print(name, seed, report[name][seed], flush=True)
Path(__file__).with_suffix(".json").write_text(json.dumps(report, indent=1) + "\n")
