"""PPO trained on a foundation-model reward alone (arXiv:2312.03881) on BabyAI GoToRedBall.

Three conditions on ``fmbench/FoMoGoToRedBall-v0`` (one room, the red ball, no distractors),
each over the same seeds:

* ``fm``: Stable-Baselines3 PPO whose only reward is the FM reward (default: the envs'
  default pipeline ``learned+smollm2+pmi``: fmbench's learned captioner on the rendered
  frames -> SmolLM2 ``log p(instruction | caption)`` minus ``log p(instruction)``), given at
  the episode's last step; the episodes ending at the same vector step are scored in one
  batched call (:class:`fmbench.studies.fomo.vector.FoMoVecEnv`);
* ``true``: the same PPO on the level's sparse reward (``1 - 0.9 * steps / max_steps`` on success);
* ``random``: a uniform random policy.

Every condition is scored by ground-truth success (``info["success"]``, the level's verifier)
on the same held-out episodes (reset seeds ``EVAL_SEED0 ..``, disjoint from the training
envs' reset seeds ``seed .. seed + n_envs - 1``), with the stochastic policy (actions sampled
under a fixed torch seed, so evaluation never disturbs training's random streams). PPO is
evaluated before training and every ``eval_every`` env steps. The policy sees the egocentric view and
direction only (the mission is constant on this level), through an MLP. The FM reward model
is loaded once and shared by all FM runs; its LM scores are memoised by caption, so repeated
captions cost nothing. ``<out>/rl.json`` holds the curves, final success rates, the steps at
which each run first reached 90% success, wall-clock times and FM reward calls;
``<out>/rl_curve.png`` plots success vs env steps (mean ± sample std over seeds); ``--report-only``
recomputes the summary and redraws the plot from the runs recorded in ``rl.json``::

    python -m fmbench.studies.fomo.rl --steps 102400 --seeds 0 1 2 --out docs/fomo
    python -m fmbench.studies.fomo.rl --out docs/fomo --report-only

Example:
    >>> random_success(seed=0, episodes=10)
    0.2
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import gymnasium as gym
import numpy as np
import torch
from gymnasium.wrappers import FilterObservation
from stable_baselines3 import PPO
from stable_baselines3.common.callbacks import BaseCallback
from stable_baselines3.common.vec_env import DummyVecEnv

import fmbench  # noqa: F401  (registers the envs)
from fmbench.reporting import MeanStd, pyplot, save_png
from fmbench.studies.fomo.rewards import RewardModel, build_reward
from fmbench.studies.fomo.vector import FoMoVecEnv

ENV_ID = "fmbench/FoMoGoToRedBall-v0"
FM_REWARD = "learned+smollm2+pmi"
POLICY_KEYS = ("view", "direction")
EVAL_SEED0 = 10_000
REACH = 0.9  # the success rate whose first crossing the summary reports
REACH_KEY = f"steps_to_{REACH}"
JSON_FILE = "rl.json"
PLOT_FILE = "rl_curve.png"

Policy = Callable[[dict], int]


@dataclass(frozen=True)
class PPOConfig:
    """PPO and evaluation settings (defaults sized for a 2-core CPU).

    Attributes:
        steps: env steps of training per run (100 rollouts of 1024 by default).
        n_envs: parallel envs (``DummyVecEnv``); a rollout is ``n_envs * n_steps`` steps.
        n_steps: steps per env per rollout.
        batch_size: minibatch size.
        n_epochs: passes over each rollout.
        learning_rate: Adam step size.
        ent_coef: entropy bonus.
        gamma: discount.
        gae_lambda: GAE parameter.
        net_arch: hidden layer widths of the policy and value MLPs.
        eval_every: env steps between evaluations (a multiple of ``n_envs``).
        eval_episodes: held-out episodes per evaluation (reset seeds ``EVAL_SEED0 ..``).
    """

    steps: int = 102_400
    n_envs: int = 8
    n_steps: int = 128
    batch_size: int = 256
    n_epochs: int = 4
    learning_rate: float = 3e-4
    ent_coef: float = 0.01
    gamma: float = 0.99
    gae_lambda: float = 0.95
    net_arch: tuple[int, ...] = (64, 64)
    eval_every: int = 5120
    eval_episodes: int = 50


class CountedReward:
    """A reward model that counts the trajectories it scores, its calls and the seconds it spends.

    Args:
        model: the reward model to delegate to.
    """

    def __init__(self, model: RewardModel) -> None:
        self.model, self.name, self.needs_frames = model, model.name, model.needs_frames
        self.calls, self.batches, self.seconds = 0, 0, 0.0

    def score(self, trajectories: Sequence) -> np.ndarray:
        start = time.perf_counter()
        scores = self.model.score(trajectories)
        self.seconds += time.perf_counter() - start
        self.calls += len(trajectories)
        self.batches += 1
        return scores


def make_env(reward: str = "true", reward_model: RewardModel | None = None) -> gym.Env:
    """The level with the mission dropped from the observation.

    Args:
        reward: ``"true"`` or a reward name for :class:`fmbench.studies.fomo.env.FoMoEnv`.
        reward_model: a reward model object to use instead of building ``reward``.
    """
    return FilterObservation(gym.make(ENV_ID, reward=reward, reward_model=reward_model), list(POLICY_KEYS))


def success_rate(policy: Policy, episodes: int, env: gym.Env | None = None) -> float:
    """Ground-truth success rate of ``policy`` on the held-out reset seeds ``EVAL_SEED0 ..``.

    Args:
        policy: maps an observation to an action.
        episodes: how many held-out episodes.
        env: the env to run (default: a fresh true-reward :func:`make_env`).
    """
    env = env or make_env()
    successes = 0
    for k in range(episodes):
        obs, info = env.reset(seed=EVAL_SEED0 + k)
        done = False
        while not done:
            obs, _, terminated, truncated, info = env.step(policy(obs))
            done = terminated or truncated
        successes += bool(info["success"])
    return successes / episodes


def random_success(seed: int, episodes: int) -> float:
    """Success rate of a uniform random policy (actions drawn from ``default_rng(seed)``)."""
    env = make_env()
    rng = np.random.default_rng(seed)
    return success_rate(lambda obs: int(rng.integers(env.action_space.n)), episodes, env)


def ppo_success(model: PPO, episodes: int, seed: int = 0) -> float:
    """Success rate of the stochastic PPO policy, sampling under ``torch.manual_seed(seed)``.

    The global torch generator is restored afterwards, so evaluating does not change training.
    """
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        return success_rate(lambda obs: int(model.predict(obs, deterministic=False)[0]), episodes)


def steps_to_reach(steps: Sequence[int], success: Sequence[float], level: float = REACH) -> int | None:
    """The first evaluated step whose success rate is at least ``level`` (``None`` if never).

    Example:
        >>> steps_to_reach([0, 10, 20], [0.2, 0.95, 0.9])
        10
    """
    return next((step for step, rate in zip(steps, success) if rate >= level), None)


class EvalCallback(BaseCallback):
    """Evaluates ground-truth success at step 0 and every ``every`` env steps.

    Args:
        every: env steps between evaluations.
        episodes: held-out episodes per evaluation.
        seed: the torch seed of the evaluation's action sampling.
    """

    def __init__(self, every: int, episodes: int, seed: int) -> None:
        super().__init__()
        self.every, self.episodes, self.seed = every, episodes, seed
        self.steps: list[int] = []
        self.success: list[float] = []

    def evaluate(self) -> None:
        """Append the current step and its success rate."""
        self.steps.append(int(self.num_timesteps))
        self.success.append(ppo_success(self.model, self.episodes, self.seed))

    def _on_training_start(self) -> None:
        self.evaluate()

    def _on_step(self) -> bool:
        if self.num_timesteps % self.every == 0:
            self.evaluate()
        return True


def train_ppo(reward: str, seed: int, cfg: PPOConfig, reward_model: RewardModel | None = None) -> dict[str, Any]:
    """Train PPO on one reward and seed; return its success curve and costs.

    Args:
        reward: ``"true"`` or the FM reward's name.
        seed: PPO, torch and training-env seed.
        cfg: PPO and evaluation settings.
        reward_model: the FM reward model (built from ``reward`` when ``None``); shared to load it once.

    Returns:
        ``reward``, ``seed``, ``eval_steps``, ``success`` (one rate per evaluation),
        ``final_success``, ``steps_to_0.9`` (:func:`steps_to_reach`), ``wall_s`` and, for an FM
        reward, ``fm_reward_calls`` (episodes scored) and ``fm_reward_s`` (seconds spent scoring).
    """
    if cfg.eval_every % cfg.n_envs:
        raise ValueError(f"eval_every ({cfg.eval_every}) must be a multiple of n_envs ({cfg.n_envs})")
    start = time.perf_counter()
    counted = None
    if reward != "true":
        counted = CountedReward(reward_model or build_reward(reward))
    fns = [lambda: make_env(reward, counted)] * cfg.n_envs
    envs = DummyVecEnv(fns) if counted is None else FoMoVecEnv(fns)
    model = PPO(
        "MultiInputPolicy",
        envs,
        n_steps=cfg.n_steps,
        batch_size=cfg.batch_size,
        n_epochs=cfg.n_epochs,
        learning_rate=cfg.learning_rate,
        ent_coef=cfg.ent_coef,
        gamma=cfg.gamma,
        gae_lambda=cfg.gae_lambda,
        policy_kwargs={"net_arch": list(cfg.net_arch)},
        seed=seed,
        device="cpu",
        verbose=0,
    )
    callback = EvalCallback(cfg.eval_every, cfg.eval_episodes, seed)
    model.learn(cfg.steps, callback=callback)
    if callback.steps[-1] != model.num_timesteps:
        callback.evaluate()
    record = {
        "reward": reward,
        "seed": seed,
        "eval_steps": callback.steps,
        "success": callback.success,
        "final_success": callback.success[-1],
        REACH_KEY: steps_to_reach(callback.steps, callback.success),
        "wall_s": round(time.perf_counter() - start, 1),
    }
    if counted is not None:
        record |= {
            "fm_reward_calls": counted.calls,
            "fm_reward_batches": counted.batches,
            "fm_reward_s": round(counted.seconds, 1),
        }
    return record


def summary(values: Sequence[float]) -> dict[str, Any]:
    """Mean, sample standard deviation (``None`` for one value) and count.

    Example:
        >>> summary([1.0, 0.5, 0.0]), summary([0.25])
        ({'mean': 0.5, 'std': 0.5, 'n': 3}, {'mean': 0.25, 'std': None, 'n': 1})
    """
    s = MeanStd.of(values)
    return {"mean": s.mean, "std": None if s.n == 1 else s.std, "n": s.n}


def summarize(results: dict[str, Any]) -> dict[str, Any]:
    """The ``summary`` of ``rl.json`` from its ``runs`` and ``random`` lists: final success per condition
    (:func:`summary`) and, for PPO, each run's ``steps_to_0.9``."""
    final = {
        c: {
            **summary([r["final_success"] for r in results["runs"] if r["condition"] == c]),
            REACH_KEY: [r[REACH_KEY] for r in results["runs"] if r["condition"] == c],
        }
        for c in ("fm", "true")
    }
    return {**final, "random": summary([r["success"] for r in results["random"]])}


def plot(results: dict[str, Any], path: Path) -> None:
    """Success rate vs env steps: mean ± sample std band over seeds per PPO reward, random as a flat line."""
    fig, ax = pyplot().subplots(figsize=(6.4, 4.0))
    for condition, label in (("fm", f"PPO, FM reward ({results['fm_reward']})"), ("true", "PPO, true reward")):
        runs = [r for r in results["runs"] if r["condition"] == condition]
        steps = np.array(runs[0]["eval_steps"])
        curves = [MeanStd.of(column) for column in zip(*(r["success"] for r in runs))]
        mean, std = np.array([c.mean for c in curves]), np.nan_to_num([c.std for c in curves])
        (line,) = ax.plot(steps, mean, label=label)
        ax.fill_between(steps, mean - std, mean + std, color=line.get_color(), alpha=0.2)
    rand = results["summary"]["random"]
    line = ax.axhline(rand["mean"], color="grey", linestyle="--", label="uniform random policy")
    ax.axhspan(rand["mean"] - (rand["std"] or 0), rand["mean"] + (rand["std"] or 0), color=line.get_color(), alpha=0.15)
    ax.set(
        xlabel="env steps",
        ylabel="ground-truth success rate",
        ylim=(0, 1.02),
        title=f"{ENV_ID}: {len(results['seeds'])} seeds, {results['eval']['episodes']} held-out episodes",
    )
    ax.legend(loc="center right")
    fig.tight_layout()
    save_png(fig, path, dpi=120)


def write_report(results: dict[str, Any], out: Path) -> None:
    """Write ``rl.json`` (with its summary recomputed from the runs) and ``rl_curve.png`` under ``out``."""
    results["summary"] = summarize(results)
    out.mkdir(parents=True, exist_ok=True)
    (out / JSON_FILE).write_text(json.dumps(results, indent=1) + "\n")
    plot(results, out / PLOT_FILE)


def run(seeds: Sequence[int], cfg: PPOConfig, fm_reward: str, out: Path) -> dict[str, Any]:
    """Every condition over ``seeds``; writes ``rl.json`` and ``rl_curve.png`` under ``out``."""
    torch.set_num_threads(1)
    start, load_before = time.perf_counter(), os.getloadavg()
    model = build_reward(fm_reward)
    runs, random_runs = [], []
    for seed in seeds:
        t = time.perf_counter()
        random_runs.append(
            {
                "seed": seed,
                "success": random_success(seed, cfg.eval_episodes),
                "wall_s": round(time.perf_counter() - t, 1),
            }
        )
        for condition, reward in (("true", "true"), ("fm", fm_reward)):
            runs.append({"condition": condition, **train_ppo(reward, seed, cfg, model)})
            print(
                f"seed {seed} {condition:4s}: final success {runs[-1]['final_success']:.2f} "
                f"(curve {' '.join(f'{s:.2f}' for s in runs[-1]['success'])}), {runs[-1]['wall_s']} s",
                flush=True,
            )
        print(f"seed {seed} random: success {random_runs[-1]['success']:.2f}", flush=True)
    wall = {c: sum(r["wall_s"] for r in runs if r["condition"] == c) for c in ("fm", "true")}
    results = {
        "env": ENV_ID,
        "fm_reward": fm_reward,
        "seeds": list(seeds),
        "ppo": dataclasses.asdict(cfg),
        "eval": {
            "episodes": cfg.eval_episodes,
            "reset_seeds": [EVAL_SEED0, EVAL_SEED0 + cfg.eval_episodes - 1],
            "policy": "stochastic (sampled actions, torch seed = run seed)",
            "metric": "info['success']",
        },
        "summary": {},  # filled in by write_report
        "wall_s": {
            **{c: round(w, 1) for c, w in wall.items()},
            "random": round(sum(r["wall_s"] for r in random_runs), 1),
            "total": round(time.perf_counter() - start, 1),
            "fm_over_true": round(wall["fm"] / wall["true"], 2),
        },
        "load_average_1_5_15_min": {
            "start": [round(x, 1) for x in load_before],
            "end": [round(x, 1) for x in os.getloadavg()],
        },
        "runs": runs,
        "random": random_runs,
    }
    write_report(results, out)
    return results


def main(argv: Sequence[str] | None = None) -> None:
    """Command line: ``python -m fmbench.studies.fomo.rl [--steps N] [--seeds ...] [--reward R] [--out DIR]``."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=PPOConfig.steps, help="env steps of training per run")
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--reward", default=FM_REWARD, help="the FM reward's name (see build_reward)")
    parser.add_argument("--eval-every", type=int, default=PPOConfig.eval_every, help="env steps between evaluations")
    parser.add_argument("--out", type=Path, default=Path("docs/fomo"))
    parser.add_argument(
        "--report-only",
        action="store_true",
        help="only recompute the summary and redraw the plot from the runs in <out>/rl.json",
    )
    args = parser.parse_args(argv)
    if args.reward == "true":
        parser.error("--reward names the FM reward; the true-reward PPO baseline always runs")
    if args.report_only:
        results = json.loads((args.out / JSON_FILE).read_text())
        write_report(results, args.out)
    else:
        results = run(args.seeds, PPOConfig(steps=args.steps, eval_every=args.eval_every), args.reward, args.out)
    for c in ("fm", "true", "random"):
        s = results["summary"][c]
        reach = f", first reached {REACH} at steps {s[REACH_KEY]}" if c != "random" else ""
        print(f"{c:6s} final success {MeanStd(s['mean'], s['std'] or 0.0, s['n']).format(2)}{reach}")
    load = results.get("load_average_1_5_15_min", {})
    ratio = results["wall_s"]["fm"] / results["wall_s"]["true"]
    print(f"PPO wall time, FM reward / true reward: {ratio:.2f}x (load average {load})")
    how = "from the recorded runs" if args.report_only else f"in {results['wall_s']['total']} s"
    print(f"wrote {args.out / JSON_FILE} and {args.out / PLOT_FILE} {how}")


if __name__ == "__main__":
    main()
