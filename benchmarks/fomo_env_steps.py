"""Env step rate: a FoMo env with its reward at episode end vs raw minigrid rendering every frame.

Both sides play the same random actions on the same BabyAI-GoToLocal layouts for the same
number of steps, one CPU thread for torch:

* raw: ``gym.make("BabyAI-GoToLocal-v0", render_mode="rgb_array")``, ``render()`` every step
  (what a frame-reading reward needs at the least);
* fmbench: ``gym.make("fmbench/FoMoGoToLocal-v0")`` with its default reward (learned captioner
  on the recorded frames + SmolLM2, PMI, at episode end) — recording, captioning and scoring
  included. The language model is loaded and warmed up before timing.

It reports both step rates, fmbench's overhead (goal: at most 20%), the share of fmbench's
time spent scoring (and the overhead without it: recording scenes and frames), and the peak
resident memory of the process (the default pipeline)::

    python benchmarks/fomo_env_steps.py [--episodes 40]
"""

from __future__ import annotations

import argparse
import resource
import time

import gymnasium as gym
import minigrid  # noqa: F401  (registers the BabyAI levels)
import numpy as np
import torch
from _common import emit, note

import fmbench  # noqa: F401  (registers the envs)

GOAL = 0.20


def play(env, seeds: list[int], render: bool) -> tuple[int, float]:
    """Random actions (stream ``i`` for episode ``i``) from each reset seed; returns (steps, seconds)."""
    steps, start = 0, time.perf_counter()
    for ep, seed in enumerate(seeds):
        env.reset(seed=seed)
        rng = np.random.default_rng(ep)
        done = False
        while not done:
            _, _, terminated, truncated, _ = env.step(int(rng.integers(0, 6)))
            if render:
                env.render()
            steps += 1
            done = terminated or truncated
    return steps, time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--episodes", type=int, default=40)
    args = parser.parse_args()
    torch.set_num_threads(1)
    raw = gym.make("BabyAI-GoToLocal-v0", render_mode="rgb_array")
    fm = gym.make("fmbench/FoMoGoToLocal-v0")
    play(fm, [10_000], render=False)  # loads the captioner and the language model
    # the FoMo env draws each layout's minigrid seed from its own seed: give raw minigrid the same layouts
    level_seeds = [fm.reset(seed=ep)[1]["level_seed"] for ep in range(args.episodes)]
    model = fm.unwrapped.reward_model
    scoring = [0.0]
    score = model.score

    def timed(trajectories):
        start = time.perf_counter()
        out = score(trajectories)
        scoring[0] += time.perf_counter() - start
        return out

    model.score = timed
    raw_steps, raw_time = play(raw, level_seeds, render=True)
    fm_steps, fm_time = play(fm, list(range(args.episodes)), render=False)
    assert raw_steps == fm_steps, (raw_steps, fm_steps)
    raw_rate, fm_rate = raw_steps / raw_time, fm_steps / fm_time
    overhead = raw_rate / fm_rate - 1
    machinery = (fm_time - scoring[0]) / raw_time * raw_steps / fm_steps - 1  # recording, frames, no LM
    peak_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    note(
        f"raw {raw_rate:.0f} steps/s, fmbench {fm_rate:.0f} steps/s ({overhead:+.0%}); "
        f"scoring {scoring[0] / fm_time:.0%} of fmbench's time ({scoring[0] / args.episodes * 1000:.0f} ms per "
        f"episode); overhead without scoring {machinery:+.0%}; peak RSS {peak_mb:.0f} MB"
    )
    emit(
        {
            "benchmark": "fomo_env_steps",
            "ratio": round(fm_rate / raw_rate, 3),
            "goal": f"overhead <= {GOAL:.0%}",
            "goal_met": bool(overhead <= GOAL),
            "overhead": round(overhead, 3),
            "raw_steps_per_s": round(raw_rate, 1),
            "fmbench_steps_per_s": round(fm_rate, 1),
            "scoring_share": round(scoring[0] / fm_time, 3),
            "scoring_ms_per_episode": round(scoring[0] / args.episodes * 1000, 1),
            "overhead_without_scoring": round(machinery, 3),
            "steps": fm_steps,
            "episodes": args.episodes,
            "reward": model.name,
            "peak_rss_mb": round(peak_mb),
        }
    )


if __name__ == "__main__":
    main()
