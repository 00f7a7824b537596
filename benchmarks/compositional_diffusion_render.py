"""Renderer throughput: concept images per second, batched vs one image at a time.

Both sides call fmbench's renderer (``fmbench.studies.compositional_diffusion.render``) on the same
classes and jitter draws, 1 thread: fmbench in batches of ``--batch`` images, the reference loop one
image per call (what a per-item ``Dataset.__getitem__`` does). The goal is on the batched rate::

    python benchmarks/compositional_diffusion_render.py [--images 65536] [--batch 4096] [--repeats 5]
"""

from __future__ import annotations

import argparse

import numpy as np
from _common import best_of, emit, note, ratio
from threadpoolctl import threadpool_limits

from fmbench.studies.compositional_diffusion.concepts import FOUR, THREE
from fmbench.studies.compositional_diffusion.render import render

GOAL = 50_000


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--images", type=int, default=65536)
    parser.add_argument("--batch", type=int, default=4096)
    parser.add_argument("--repeats", type=int, default=5)
    args = parser.parse_args()
    result = {}
    with threadpool_limits(limits=1):
        for space in (THREE, FOUR):
            ids = np.arange(args.images) % space.n_classes
            index = np.arange(args.images)

            def batched(ids=ids, index=index, space=space) -> None:
                for s in range(0, args.images, args.batch):
                    render(space, ids[s : s + args.batch], 7, index[s : s + args.batch])

            def one_by_one(ids=ids, space=space) -> None:
                for i in range(2048):
                    render(space, ids[i : i + 1], 7, np.array([i]))

            fast, _ = best_of(batched, args.repeats)
            slow, _ = best_of(one_by_one, max(1, args.repeats // 2))
            result[f"{space.n_concepts}_concepts"] = {
                "batched_images_per_s": round(args.images / fast),
                "one_by_one_images_per_s": round(2048 / slow),
            }
            note(f"{space.n_concepts} concepts: {result[f'{space.n_concepts}_concepts']}")
    worst = min(r["batched_images_per_s"] for r in result.values())
    emit(
        {
            "benchmark": "compositional_diffusion_render",
            "ratio": ratio(worst, min(r["one_by_one_images_per_s"] for r in result.values())),
            "goal": f">= {GOAL} images/s batched (1 thread)",
            "goal_met": worst >= GOAL,
            "images": args.images,
            "batch": args.batch,
            **result,
        }
    )


if __name__ == "__main__":
    main()
