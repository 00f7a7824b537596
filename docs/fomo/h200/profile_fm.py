"""Where a GoToRedBall PPO run on the default FM reward spends its time (cProfile; run on the lent H200).

One FM-reward run of the RL script's defaults (102,400 steps, seed 0), the LM on CUDA, one
torch thread; prints the cumulative time of fmbench's FoMo functions and of PPO's training::

    python docs/fomo/h200/profile_fm.py
"""

import cProfile
import pstats
import time

import torch

from fmbench.studies.fomo.rewards import build_reward
from fmbench.studies.fomo.rl import PPOConfig, train_ppo

torch.set_num_threads(1)
model = build_reward("learned+smollm2+pmi").to("cuda")
profile = cProfile.Profile()
start = time.perf_counter()
profile.enable()
train_ppo("fm", 0, PPOConfig(), model)
profile.disable()
print("fm", round(time.perf_counter() - start, 1), "s", flush=True)
pstats.Stats(profile).sort_stats("cumulative").print_stats("fmbench/studies|collect_rollouts|ppo.py", 30)
