"""What the posterior FM reward pays a GoToLocal success, by how the agent got there.

Four policies on the FoMo env (reset seeds 1000-1059 each): the BabyAI bot, the bot with a
uniform random action instead of its own with probability 0.25 or 0.5, and uniform random
actions. The reward is ``oracle+smollm2+posterior`` (the learned captioner reads 8 px frames
without error, so oracle captions give the same texts without drawing them). For every
success: steps, the "went to" events in its caption (objects the agent came to face) and the
reward; summary lines go to stdout, every episode to ``success_pay.json`` beside this file::

    python docs/fomo/gotolocal_posterior/success_pay.py
"""

import json
from pathlib import Path

import numpy as np
import torch
from minigrid.utils.baby_ai_bot import BabyAIBot

from fmbench.studies.fomo.env import FoMoEnv
from fmbench.studies.fomo.rewards import build_reward
from fmbench.studies.fomo.vision import OracleVision

EPSILON = {"bot": 0.0, "bot+0.25 random": 0.25, "bot+0.5 random": 0.5, "random": 1.0}


def bot_action(bot: BabyAIBot | None) -> int | None:
    """The bot's next action, or ``None`` when there is no bot or it gives up on this state."""
    try:
        return None if bot is None else int(bot.replan())
    except (AssertionError, IndexError, TypeError, ValueError):
        return None


def main() -> None:
    torch.set_num_threads(1)
    env = FoMoEnv("GoToLocal", reward_model=build_reward("oracle+smollm2+posterior"))
    rows = []
    for policy, eps in EPSILON.items():
        rng = np.random.default_rng(7)
        for seed in range(1000, 1060):
            _, info = env.reset(seed=seed)
            bot = BabyAIBot(env.level) if eps < 1 else None
            done, steps = False, 0
            while not done:
                action, planned = int(rng.integers(0, 6)), bot_action(bot)
                if planned is not None and rng.random() >= eps:
                    action = planned
                _, reward, terminated, truncated, info = env.step(action)
                steps, done = steps + 1, terminated or truncated
            text = OracleVision().text(env.trajectory())
            rows.append(
                {
                    "policy": policy,
                    "seed": seed,
                    "mission": info["mission"],
                    "success": info["success"],
                    "steps": steps,
                    "went_to": text.count("went to"),
                    "reward": reward,
                    "caption": text,
                }
            )
    Path(__file__).with_name("success_pay.json").write_text(json.dumps(rows, indent=0))
    for policy in EPSILON:
        won = [r for r in rows if r["policy"] == policy and r["success"]]
        lost = [r["reward"] for r in rows if r["policy"] == policy and not r["success"]]
        print(
            f"{policy:16s} {len(won):2d} successes: reward {np.mean([r['reward'] for r in won]):.3f}, "
            f"steps {np.mean([r['steps'] for r in won]):4.1f}, "
            f"'went to' events {np.mean([r['went_to'] for r in won]):.2f}; "
            f"{len(lost)} failures: reward {np.mean(lost) if lost else float('nan'):.3f}"
        )
    won = [r for r in rows if r["success"]]
    for k in sorted({r["went_to"] for r in won}):
        paid = [r["reward"] for r in won if r["went_to"] == k]
        mean, median = np.mean(paid), np.median(paid)
        print(f"successes with {k} 'went to' events: {len(paid):3d}, reward mean {mean:.3f}, median {median:.3f}")


if __name__ == "__main__":
    main()
