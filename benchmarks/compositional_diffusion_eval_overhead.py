"""Evaluator overhead: the concept-probe evaluator's own time next to the generator's sampling time.

At batch ``--batch`` (256) the shipped DDPM baseline of ``fmbench/ConceptGenH32Train1-v0`` draws
a batch (DDIM, 50 steps), timed alone; then the evaluator's own work on those images is timed:
the interface's checks (shape, dtype, finiteness, range), the probes and the per-concept scoring.
The goal: that work is at most 10% of the sampling time. The evaluator's once-per-run costs are
timed too (loading the probes; ``check_model``'s seeded-repeat check, which generates two images
twice) and reported as the overhead of a whole evaluation of the task's ``eval`` split in batches
of ``--batch``. ``--device cuda`` measures on a GPU (1 CPU thread either way)::

    python benchmarks/compositional_diffusion_eval_overhead.py [--batch 256] [--device cpu] [--repeats 3]
"""

from __future__ import annotations

import argparse

import numpy as np
import torch
from _common import best_of, emit, note

import fmbench
from fmbench.interfaces import IMAGE_GENERATOR
from fmbench.studies.compositional_diffusion.concept_probes import load_probes
from fmbench.studies.compositional_diffusion.data import eval_classes
from fmbench.studies.compositional_diffusion.task import IMAGE_SHAPE, score_images

GOAL = 0.10


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--batch", type=int, default=256)
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    torch.set_num_threads(1)
    task = fmbench.make_task("fmbench/ConceptGenH32Train1-v0")
    model = task.load_baseline("ddpm").to(args.device)
    classes = eval_classes(task.split, task.per_class, 0, np.arange(args.batch))
    conditions = torch.from_numpy(classes).to(args.device)

    def sample() -> torch.Tensor:
        out = model.model.generate(conditions, 0)
        if args.device.startswith("cuda"):
            torch.cuda.synchronize()
        return out

    sampling, images = best_of(sample, args.repeats)

    def evaluator() -> np.ndarray:
        checked = IMAGE_GENERATOR.generate(
            type(model)(model=_Fixed(images), spec="x", name="x", interface="image-generator",
                        n_params=None, weights_sha256=None, dtype="none"),
            conditions, 0, IMAGE_SHAPE,
        )  # fmt: skip
        return score_images(task.space, classes, checked.float().cpu().numpy())

    own, _ = best_of(evaluator, args.repeats * 3)
    overhead = own / sampling

    def once_per_run() -> None:
        load_probes.cache_clear()
        load_probes(task.space)
        task.check_model(model)

    once, _ = best_of(once_per_run, 1)
    batches = -(-task.split_size("eval") // args.batch)
    whole_run = (once + batches * own) / (batches * sampling)
    note(f"sampling {sampling:.3f} s, evaluator {own:.4f} s per batch of {args.batch} on {args.device}")
    note(f"once per run {once:.3f} s; a whole evaluation ({batches} batches): {whole_run:.2%} overhead")
    emit(
        {
            "benchmark": "compositional_diffusion_eval_overhead",
            "ratio": round(sampling / own, 1),
            "goal": f"evaluator <= {GOAL:.0%} of the generator's sampling time at batch {args.batch}",
            "goal_met": max(overhead, whole_run) <= GOAL,
            "overhead": round(overhead, 4),
            "sampling_s": round(sampling, 3),
            "evaluator_s": round(own, 4),
            "once_per_run_s": round(once, 3),
            "whole_run_overhead": round(whole_run, 4),
            "device": args.device,
        }
    )


class _Fixed:
    """A generator returning images already drawn (so only the evaluator's work is timed)."""

    def __init__(self, images: torch.Tensor) -> None:
        self.images = images

    def generate(self, conditions: torch.Tensor, seed: int) -> torch.Tensor:
        return self.images


if __name__ == "__main__":
    main()
