"""What does the default FM reward pay GoToLocal failures for? Their captions, grouped by what they name.

On GoToLocal a success ends the episode the moment the agent faces the mission's object, so a
failure's caption never says it went to that object; but it may name objects that share the
mission's colour or type ("went to the red key" for "go to the red ball"). This script runs a
policy (a ``learners.py target --save`` zip, or ``random``) on held-out episodes (reset seeds
30,000..; actions sampled under ``torch.manual_seed`` of the same number), takes the FM reward
each episode ends with (``--reward``, the default ``learned+smollm2+pmi``) and the learned
captioner's text it was computed from, and groups the failures by whether that text names the
mission's colour and/or its object type (and the mission's object itself, colour and type
together), by whether the agent ends carrying an object, and by how many objects it went to (and
picked up). ``--level`` runs another level's FoMo env (default GoToLocal; e.g. PickupDist, where a
failure may have picked up a wrong object)::

    python docs/fomo/gotolocal_learners/failures.py random runs/pmi_0.zip --episodes 200 \
        --other learned-final+smollm2+posterior

One JSON line per policy: success rate, the groups (share of failures, mean reward), the mean
reward of successes and failures, the reward's AUROC (how often a success is paid more than a
failure), and the successes by how many objects their caption names (count, mean reward); with
``--other NAME`` also another FM reward's, on the same episodes.
"""

import argparse
import json
import re

import numpy as np
import torch
from learners import LEVEL
from stable_baselines3 import PPO

import fmbench.studies.fomo.rl as rl
from fmbench.stats import auroc
from fmbench.studies.fomo.rewards import build_reward

OBJECT_WORD = re.compile(r"\b(?:ball|box|key|door)s?\b")  # one per object a caption names
SEED0 = 30_000  # reset seeds apart from the RL script's evaluation (10,000..) and training


def episode(env, act, k: int, other=None) -> dict:
    """One held-out episode: success, its FM reward (and ``other``'s), and what the caption the reward read names."""
    obs, info = env.reset(seed=SEED0 + k)
    torch.manual_seed(SEED0 + k)  # its actions, whatever ran before (loading a model draws from torch's generator)
    done, steps = False, 0
    while not done:
        obs, reward, terminated, truncated, info = env.step(act(obs))
        done, steps = terminated or truncated, steps + 1
    fomo = env.unwrapped
    trajectory = fomo.trajectory()
    text = fomo.reward_model.vision.text(trajectory)
    desc = fomo.level.unwrapped.instrs.desc
    words = set(re.findall(r"[a-z]+", text.lower()))
    target = rf"\b{desc.color} {desc.type}\b" if desc.color else rf"\b{desc.type}\b"
    scores = {"other": float(other.score([trajectory])[0])} if other is not None else {}
    return {
        **scores,
        "success": bool(info["success"]),
        "reward": float(reward),
        "steps": steps,
        "went_to": text.count("went to"),
        "picked_up": text.count("picked up"),
        "objects_named": len(OBJECT_WORD.findall(text)),
        "names_type": desc.type in words,
        "names_colour": desc.color is not None and desc.color in words,
        "names_target": desc.type is not None and re.search(target, text) is not None,
        "ends_carrying": fomo.level.unwrapped.carrying is not None,
    }


def summary(runs: list[dict]) -> dict:
    """Success rate; the reward of successes and failures, its AUROC; failures and successes grouped by caption."""
    fails = [r for r in runs if not r["success"]]
    groups = {
        "colour and type": lambda r: r["names_colour"] and r["names_type"],
        "type only": lambda r: r["names_type"] and not r["names_colour"],
        "colour only": lambda r: r["names_colour"] and not r["names_type"],
        "neither": lambda r: not (r["names_colour"] or r["names_type"]),
        "names the mission's object": lambda r: r["names_target"],  # "the red key" itself, not its words apart
        "ends carrying an object": lambda r: r["ends_carrying"],
    }
    keys = ["reward", *(["other"] if "other" in runs[0] else [])]
    out = {"episodes": len(runs), "success": mean([r["success"] for r in runs])}
    for key in keys:
        wins, losses = [r[key] for r in runs if r["success"]], [r[key] for r in fails]
        out[f"{key}_success"], out[f"{key}_failure"] = mean(wins), mean(losses)
        out[f"{key}_auroc"] = auroc(wins, losses) if wins and losses else None
    out["failure_went_to"] = mean([r["went_to"] for r in fails])
    out["failure_picked_up"] = mean([r["picked_up"] for r in fails])
    for name, test in groups.items():
        group = [r for r in fails if test(r)]
        out[name] = {"share": len(group) / max(len(fails), 1), **{key: mean([r[key] for r in group]) for key in keys}}
    went = sorted({r["went_to"] for r in fails})
    out["failure_reward_by_went_to"] = {str(n): mean([r["reward"] for r in fails if r["went_to"] == n]) for n in went}
    by_named = out["success_by_objects_named"] = {}
    successes = [r for r in runs if r["success"]]
    for n in sorted({r["objects_named"] for r in successes}):
        group = [r for r in successes if r["objects_named"] == n]
        by_named[str(n)] = {"episodes": len(group), **{key: mean([r[key] for r in group]) for key in keys}}
    return out


def mean(values: list) -> float | None:
    """The mean, or ``None`` of nothing."""
    return float(np.mean(values)) if values else None


def actor(policy: str, n_actions: int):
    """Observation -> action: uniform from ``default_rng(0)`` for ``random``, else the saved PPO, sampled."""
    if policy == "random":
        rng = np.random.default_rng(0)
        return lambda obs: int(rng.integers(n_actions))
    ppo = PPO.load(policy, device="cpu")
    return lambda obs: int(ppo.predict(obs, deterministic=False)[0])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("policies", nargs="+", help="'random' or a saved target-learner zip")
    parser.add_argument("--episodes", type=int, default=200)
    parser.add_argument("--reward", default="learned+smollm2+pmi")
    parser.add_argument("--other", help="another FM reward to score the same episodes with (grouped as above)")
    parser.add_argument("--level", default=LEVEL, help=f"a level with a FoMo env (default {LEVEL})")
    args = parser.parse_args()
    torch.set_num_threads(1)
    model = build_reward(args.reward)
    other = build_reward(args.other) if args.other else None
    env = rl.make_env(args.reward, model, args.level, target_cells=True)
    for policy in args.policies:
        act = actor(policy, env.action_space.n)
        runs = [episode(env, act, k, other) for k in range(args.episodes)]
        names = {"reward": args.reward, **({"other": args.other} if other is not None else {})}
        print(json.dumps({"policy": policy, "level": args.level, **names, **summary(runs)}), flush=True)


if __name__ == "__main__":
    main()
