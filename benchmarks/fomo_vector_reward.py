"""Batched FM rewards in a vector env vs each FoMo env scoring its own episodes.

Both sides run ``--envs`` FoMo envs on BabyAI-GoToLocal with the default reward
(``learned+smollm2+pmi`` at episode end: learned captioner on the frames, drawn at the RL
script's 8 px per cell, SmolLM2, PMI) for the same vector steps of the same random actions from
the same seeds, one torch thread:

* per-env (reference): ``gymnasium.vector.SyncVectorEnv`` of ``fmbench/FoMoGoToLocal-v0``, each
  sub-env scoring an episode when it ends (one LM call per episode);
* batched (fmbench): :class:`fmbench.studies.fomo.vector.FoMoVectorEnv` on the same sub-envs,
  one LM call per vector step for every episode that ended at it.

Each side has its own reward model over the same loaded SmolLM2 weights (on ``--device``), with
empty memos, so neither reuses the other's scores; the model is warmed up first. Two times per
side: the whole vector steps (env dynamics and frame drawing included, the same work on both
sides) and the reward path alone (seconds inside the reward model's ``score`` calls: captioning
and the LM). The goal (at least 3x) is on the reward path, where batching acts; the whole-step
ratio is reported beside it. Also how many episodes each batched call scored on average, and the
largest reward difference (goal: at most 1e-5)::

    python benchmarks/fomo_vector_reward.py [--envs 8] [--steps 640] [--mode episode] [--device cuda]
"""

from __future__ import annotations

import argparse
import time

import gymnasium as gym
import numpy as np
import torch
from _common import emit, note
from gymnasium.vector import SyncVectorEnv

import fmbench  # noqa: F401  (registers the envs)
from fmbench.studies.fomo.lm import LMScorer
from fmbench.studies.fomo.rewards import FMReward, shared_scorer
from fmbench.studies.fomo.rl import FRAME_TILE, CountedReward
from fmbench.studies.fomo.vector import FoMoVectorEnv
from fmbench.studies.fomo.vision import LearnedVision

ENV = "fmbench/FoMoGoToLocal-v0"
GOAL = 3.0


def fresh_reward(template: LMScorer, device: str) -> CountedReward:
    """The default reward over ``template``'s loaded model, with its own empty caches, timed."""
    scorer = LMScorer(template.model, template.tokenizer, template.name, batch_size=32, device=device)
    return CountedReward(FMReward(LearnedVision(), scorer, "pmi"))


def play(envs, actions: np.ndarray) -> tuple[float, np.ndarray, int]:
    """Seconds, rewards (steps x envs) and episodes ended, for ``actions`` from reset seed 0."""
    start = time.perf_counter()
    envs.reset(seed=0)
    rewards, ended = [], 0
    for a in actions:
        _, r, terminated, truncated, _ = envs.step(a)
        rewards.append(r)
        ended += int((terminated | truncated).sum())
    return time.perf_counter() - start, np.array(rewards), ended


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--envs", type=int, default=8)
    parser.add_argument("--steps", type=int, default=640, help="vector steps")
    parser.add_argument("--mode", choices=["episode", "dense"], default="episode")
    parser.add_argument("--device", default="cpu", help="where the language model runs: cpu or cuda")
    args = parser.parse_args()
    if args.device.startswith("cuda") and not torch.cuda.is_available():
        parser.error(f"--device {args.device}: CUDA is not available here")
    torch.set_num_threads(1)
    template = shared_scorer("smollm2", device=args.device)
    actions = np.random.default_rng(0).integers(0, 6, (args.steps, args.envs))

    def fns(model):
        return [lambda: gym.make(ENV, reward_model=model, reward_mode=args.mode, tile_size=FRAME_TILE)] * args.envs

    play(FoMoVectorEnv(fns(fresh_reward(template, args.device))), actions[:70])  # loads the captioner, warms up
    ref_model, bat_model = fresh_reward(template, args.device), fresh_reward(template, args.device)
    per_env = SyncVectorEnv(fns(ref_model))
    batched = FoMoVectorEnv(fns(bat_model))
    t_ref, r_ref, episodes = play(per_env, actions)
    t_bat, r_bat, episodes_b = play(batched, actions)
    assert episodes == episodes_b, (episodes, episodes_b)
    diff = float(np.abs(r_ref - r_bat).max())
    calls = batched.batch.calls
    speedup, step_speedup = ref_model.seconds / bat_model.seconds, t_ref / t_bat
    note(
        f"{args.envs} envs, {args.steps} vector steps, {episodes} episodes ({args.mode} rewards, LM on "
        f"{args.device}): reward path per-env {ref_model.seconds:.2f} s ({ref_model.batches} calls), batched "
        f"{bat_model.seconds:.2f} s ({bat_model.batches} calls, {bat_model.calls / max(bat_model.batches, 1):.1f} "
        f"trajectories each): {speedup:.2f}x; whole steps {t_ref:.1f} s vs {t_bat:.1f} s ({step_speedup:.2f}x); "
        f"max reward difference {diff:.1e}"
    )
    emit(
        {
            "benchmark": "fomo_vector_reward",
            "ratio": round(speedup, 2),
            "goal": f"batched reward path >= {GOAL}x per-env at 8 envs, rewards equal to 1e-5",
            "goal_met": bool(speedup >= GOAL and diff <= 1e-5),
            "envs": args.envs,
            "vector_steps": args.steps,
            "episodes": episodes,
            "mode": args.mode,
            "device": args.device,
            "reward_per_env_s": round(ref_model.seconds, 3),
            "reward_batched_s": round(bat_model.seconds, 3),
            "whole_steps_ratio": round(step_speedup, 2),
            "per_env_s": round(t_ref, 2),
            "batched_s": round(t_bat, 2),
            "batched_calls": calls,
            "max_reward_difference": diff,
            "reward": "learned+smollm2+pmi",
        }
    )


if __name__ == "__main__":
    main()
