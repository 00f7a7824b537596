"""Reward throughput: fmbench's FM reward pipeline vs naive per-step scoring, same models and trajectories.

Both sides score the same BabyAI trajectories (every run of the first layouts of
``fmbench/FoMoRewardGoTo-v0`` and ``fmbench/FoMoRewardPickup-v0``, seed 0: desired and
incorrect policies) with oracle captions and SmolLM2-135M-Instruct, PMI-normalised, on 2 CPU
threads under ``torch.inference_mode()``:

* fmbench: :class:`FMReward` at episode end — one score per trajectory, batched, the prompt
  prefix's key/value cache and every tokenisation computed once, repeated caption texts
  memoised (a fresh scorer per timing, so nothing is cached in advance);
* naive: a reward at every step (the score of each prefix's caption), each a full forward
  pass of the whole prompt for the instruction and for PMI's no-context baseline, one at a time.

It checks that both sides give the same score to every whole trajectory (to 1e-3 nats), and
also times fmbench's dense mode (every prefix scored, memoised)::

    python benchmarks/fomo_reward_throughput.py [--layouts 12] [--naive-trajectories 24]
"""

from __future__ import annotations

import argparse
import time

import numpy as np
import torch
from _common import emit, note, ratio

import fmbench
from fmbench.studies.fomo.captions import prefix_captions
from fmbench.studies.fomo.lm import LMScorer
from fmbench.studies.fomo.rewards import FMReward
from fmbench.studies.fomo.trajectory import Trajectory
from fmbench.studies.fomo.vision import OracleVision

TASKS = ("fmbench/FoMoRewardGoTo-v0", "fmbench/FoMoRewardPickup-v0")
GOAL = 10.0


def trajectories(layouts: int) -> list[Trajectory]:
    """Every run of the first ``layouts`` layouts of each task (seed 0), scored against the true mission."""
    out = []
    for tid in TASKS:
        task = fmbench.make_task(tid)
        for lay in task.layouts(0)[:layouts]:
            out += task.trajectories(lay, needs_frames=False)
    return out


def naive(scorer: LMScorer, trajs: list[Trajectory]) -> np.ndarray:
    """Per-step PMI rewards from full uncached passes; returns each trajectory's last-prefix score."""
    last = []
    for t in trajs:
        for text in prefix_captions(t.scenes):
            score = scorer.logprob_uncached(text, t.instruction) - scorer.logprob_uncached(None, t.instruction)
        last.append(score)
    return np.array(last)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--layouts", type=int, default=12, help="layouts per task (fmbench side)")
    parser.add_argument("--naive-trajectories", type=int, default=24, help="trajectories the naive loop scores")
    args = parser.parse_args()
    torch.set_num_threads(2)
    trajs = trajectories(args.layouts)
    base = LMScorer.default()
    fresh = lambda: LMScorer(base.model, base.tokenizer, base.name)  # noqa: E731  (an empty memo each time)
    note(f"{len(trajs)} trajectories, {np.mean([len(t) - 1 for t in trajs]):.1f} steps on average")

    start = time.perf_counter()
    fm = FMReward(OracleVision(), fresh(), "pmi").score(trajs)
    fm_rate = len(trajs) / (time.perf_counter() - start)
    start = time.perf_counter()
    dense_reward = FMReward(OracleVision(), fresh(), "pmi")
    for t in trajs:
        dense_reward.score_prefixes(t)
    dense_rate = len(trajs) / (time.perf_counter() - start)

    index = list(range(0, len(trajs), max(1, len(trajs) // args.naive_trajectories)))[: args.naive_trajectories]
    subset = [trajs[i] for i in index]
    start = time.perf_counter()
    naive_last = naive(fresh(), subset)
    naive_rate = len(subset) / (time.perf_counter() - start)
    gap = float(np.abs(naive_last - fm[index]).max())
    if gap > 1e-3:
        raise SystemExit(f"fmbench and the naive loop disagree by {gap:.2e} nats")
    note(
        f"fmbench episode-end {fm_rate:.1f} traj/s, dense {dense_rate:.1f} traj/s; "
        f"naive per-step {naive_rate:.2f} traj/s"
    )
    r = ratio(fm_rate, naive_rate)
    emit(
        {
            "benchmark": "fomo_reward_throughput",
            "ratio": r,
            "goal": GOAL,
            "goal_met": bool(r and r >= GOAL),
            "fmbench_trajectories_per_s": round(fm_rate, 2),
            "fmbench_dense_trajectories_per_s": round(dense_rate, 2),
            "naive_trajectories_per_s": round(naive_rate, 3),
            "trajectories": len(trajs),
            "naive_trajectories": len(subset),
            "max_score_gap_nats": gap,
            "lm": base.name,
            "threads": 2,
        }
    )


if __name__ == "__main__":
    main()
