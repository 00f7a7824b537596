"""PPO trained on a foundation-model reward alone (arXiv:2312.03881) on a BabyAI level.

Three conditions on ``fmbench/FoMo<level>-v0`` (``--level``; default ``GoToRedBall``: one room,
the red ball, no distractors; ``GoToLocal``: one room, 8 objects, go to the one named), each
over the same seeds:

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
direction (:func:`policy_keys`; the mission's word ids too on every level but GoToRedBall, whose
mission is constant), through an MLP; with ``--target-cells`` also which of the view's cells hold
an object the mission names (:class:`TargetCells`), so it need not learn to match words to ids.
The FM reward model is loaded once and shared by all FM runs; its LM scores are memoised by
caption, so repeated captions cost nothing.

Between evaluations, every training episode's last reward and ground-truth success are logged
(:func:`episode_window`): for the FM runs this is how well the FM reward separates the agent's
*own* successes from its failures as training goes on (AUROC, mean reward of each), the
measurement that says whether a flat success curve is the reward's fault or the budget's.

``<out>/rl.json`` (``rl_<level>.json`` for another level) holds the curves, final success rates,
the steps at which each run first reached 90% success, the training-episode windows, wall-clock
times and FM reward calls, and the environment they ran in (package versions, torch's CPU
kernels: curves are exact on one machine, not across them); ``rl_curve.png``
(``rl_<level>_curve.png``) plots success vs env steps (mean ± sample std over seeds) and, when
windows are recorded, the FM reward's AUROC on the agent's own episodes; ``--report-only``
recomputes the summary and redraws the plot from the runs recorded in the JSON; ``--conditions``
runs only some of the three (e.g. ``fm`` alone, for another FM reward beside true-reward runs
already made); ``--combine`` joins the JSONs of runs made apart (one process per seed, or per
condition)::

    python -m fmbench.studies.fomo.rl --steps 102400 --seeds 0 1 2 --out docs/fomo
    python -m fmbench.studies.fomo.rl --out docs/fomo --report-only
    python -m fmbench.studies.fomo.rl --device cuda --seeds 0 --out runs/gpu0  # the LM on a GPU
    python -m fmbench.studies.fomo.rl --level GoToLocal --seeds 0 --out runs/rl0  # ... runs/rl1, runs/rl2
    python -m fmbench.studies.fomo.rl --level GoToLocal --out docs/fomo --combine runs/rl?/rl_gotolocal.json
    python -m fmbench.studies.fomo.rl --level GoToLocal --conditions fm --reward learned+smollm2+posterior \
        --seeds 0 --out runs/p0
    python -m fmbench.studies.fomo.rl --level GoToLocal --target-cells --steps 204800 --seeds 0 --out runs/t0

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
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import gymnasium as gym
import numpy as np
import torch
from gymnasium.spaces import MultiBinary
from gymnasium.wrappers import FilterObservation
from minigrid.core.constants import COLOR_TO_IDX, OBJECT_TO_IDX
from stable_baselines3 import PPO
from stable_baselines3.common.callbacks import BaseCallback
from stable_baselines3.common.vec_env import DummyVecEnv

import fmbench  # noqa: F401  (registers the envs)
from fmbench.errors import InputError
from fmbench.reporting import MeanStd, pyplot, save_png
from fmbench.results import environment
from fmbench.stats import auroc
from fmbench.studies.fomo.levels import LEVELS
from fmbench.studies.fomo.rewards import RewardModel, build_reward
from fmbench.studies.fomo.scene import DOOR, MOVABLE
from fmbench.studies.fomo.vector import FoMoVecEnv

LEVEL = "GoToRedBall"
FM_REWARD = "learned+smollm2+pmi"
EVAL_SEED0 = 10_000
FRAME_TILE = 8  # pixels per cell of the frames the FM reward reads: the smallest size its parser was trained on
REACH = 0.9  # the success rate whose first crossing the summary reports
REACH_KEY = f"steps_to_{REACH}"
CONDITIONS = ("true", "fm", "random")
RUN_PACKAGES = ("stable-baselines3", "gymnasium", "minigrid", "transformers")
"""Distributions whose versions ``rl.json`` records beside torch's and numpy's: each can move a curve."""

Policy = Callable[[dict], int]


def env_id(level: str) -> str:
    """The registered FoMo env of a level (``InputError`` naming the levels that have one).

    Example:
        >>> env_id("GoToLocal")
        'fmbench/FoMoGoToLocal-v0'
    """
    levels = [name for name in LEVELS if f"fmbench/FoMo{name}-v0" in gym.registry]
    if level not in levels:
        raise InputError(f"no FoMo env for level {level!r}; RL runs on {levels}")
    return f"fmbench/FoMo{level}-v0"


def policy_keys(level: str) -> tuple[str, ...]:
    """The observation keys the policy sees: the view and direction, and the mission where it varies.

    Example:
        >>> policy_keys("GoToRedBall"), policy_keys("GoToLocal")
        (('view', 'direction'), ('view', 'direction', 'mission'))
    """
    return ("view", "direction") if level == "GoToRedBall" else ("view", "direction", "mission")


def output_files(level: str) -> tuple[str, str]:
    """The JSON and plot file names of a level's runs (GoToRedBall's keep their original names).

    Example:
        >>> output_files("GoToRedBall"), output_files("GoToLocal")
        (('rl.json', 'rl_curve.png'), ('rl_gotolocal.json', 'rl_gotolocal_curve.png'))
    """
    stem = "rl" if level == LEVEL else f"rl_{level.lower()}"
    return f"{stem}.json", f"{stem}_curve.png"


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
        target_cells: whether the policy also sees :class:`TargetCells`' marks.
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
    target_cells: bool = False

    def ppo_kwargs(self) -> dict[str, Any]:
        """The settings Stable-Baselines3's PPO (or another SB3 on-policy learner) takes by keyword.

        Example:
            >>> PPOConfig().ppo_kwargs()["n_steps"], sorted(PPOConfig().ppo_kwargs())[:2]
            (128, ['batch_size', 'ent_coef'])
        """
        keys = ("n_steps", "batch_size", "n_epochs", "learning_rate", "ent_coef", "gamma", "gae_lambda")
        return {key: getattr(self, key) for key in keys}


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


class TargetCells(gym.ObservationWrapper, gym.utils.RecordConstructorArgs):
    """Adds ``target`` to a :func:`make_env` observation: which cells of the view hold an object
    the mission names (of its type and colour, where the mission gives them).

    A policy reading it knows where its targets are when they are in view, without learning to
    match the mission's words to the view's ids. Every mission of a level with a FoMo env names
    one object (``go to``, ``pick up``, ``open``) or two (``put X next to Y``: both are marked).

    Example:
        >>> env = TargetCells(make_env(level="GoToLocal"))
        >>> obs, info = env.reset(seed=0)
        >>> info["mission"], obs["target"].reshape(7, 7).nonzero()
        ('go to a blue key', (array([5]), array([6])))
    """

    def __init__(self, env: gym.Env) -> None:
        gym.utils.RecordConstructorArgs.__init__(self)  # so that gym.make(env.spec) can rebuild it
        gym.ObservationWrapper.__init__(self, env)
        cells = env.observation_space["view"].shape[0] // 3
        self.observation_space = gym.spaces.Dict({**env.observation_space.spaces, "target": MultiBinary(cells)})

    def observation(self, obs: dict) -> dict:
        instr = self.env.unwrapped.level.instrs
        view = obs["view"].reshape(-1, 3)
        marked = np.zeros(len(view), dtype=bool)
        for key in ("desc", "desc_move", "desc_fixed"):  # put-next missions name two objects
            desc = getattr(instr, key, None)
            if desc is not None:
                type_ok = view[:, 0] == OBJECT_TO_IDX[desc.type] if desc.type else np.isin(view[:, 0], [*MOVABLE, DOOR])
                colour_ok = view[:, 1] == COLOR_TO_IDX[desc.color] if desc.color else True
                marked |= type_ok & colour_ok
        return {**obs, "target": marked.astype(np.int8)}


def make_env(
    reward: str = "true", reward_model: RewardModel | None = None, level: str = LEVEL, target_cells: bool = False
) -> gym.Env:
    """The level's FoMo env with the observation cut to :func:`policy_keys` (and :class:`TargetCells` added if asked).

    Frames for a reward model that reads them are drawn at :data:`FRAME_TILE` pixels per cell:
    the learned captioner reads 8, 16 and 32 px alike (100% held out), and 8 px frames cost a
    sixteenth of the pixels to draw and to parse.

    Args:
        reward: ``"true"`` or a reward name for :class:`fmbench.studies.fomo.env.FoMoEnv`.
        reward_model: a reward model object to use instead of building ``reward``.
        level: a level with a registered FoMo env (:func:`env_id`).
        target_cells: add :class:`TargetCells`' ``target`` to the observation.
    """
    env = gym.make(env_id(level), reward=reward, reward_model=reward_model, tile_size=FRAME_TILE)
    env = FilterObservation(env, list(policy_keys(level)))
    return TargetCells(env) if target_cells else env


def success_rate(policy: Policy, episodes: int, env: gym.Env) -> float:
    """Ground-truth success rate of ``policy`` on the held-out reset seeds ``EVAL_SEED0 ..``.

    Args:
        policy: maps an observation to an action.
        episodes: how many held-out episodes.
        env: the env to run (e.g. a true-reward :func:`make_env`).
    """
    successes = 0
    for k in range(episodes):
        obs, info = env.reset(seed=EVAL_SEED0 + k)
        done = False
        while not done:
            obs, _, terminated, truncated, info = env.step(policy(obs))
            done = terminated or truncated
        successes += bool(info["success"])
    return successes / episodes


def random_success(seed: int, episodes: int, level: str = LEVEL) -> float:
    """Success rate of a uniform random policy (actions drawn from ``default_rng(seed)``) on ``level``."""
    env = make_env(level=level)
    rng = np.random.default_rng(seed)
    return success_rate(lambda obs: int(rng.integers(env.action_space.n)), episodes, env)


def ppo_success(model: PPO, episodes: int, seed: int = 0, level: str = LEVEL, target_cells: bool = False) -> float:
    """Success rate of the stochastic PPO policy on ``level``, sampling under ``torch.manual_seed(seed)``.

    The global torch generator is restored afterwards, so evaluating does not change training.
    ``target_cells``: the policy reads :class:`TargetCells`' marks. A policy trained on other
    observation keys than the env gives is refused (``InputError``).
    """
    env = make_env(level=level, target_cells=target_cells)
    trained, given = sorted(model.observation_space.spaces), sorted(env.observation_space.spaces)
    if trained != given:
        raise InputError(f"the policy was trained on observations {trained}, the {level} env gives {given}")
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        return success_rate(lambda obs: int(model.predict(obs, deterministic=False)[0]), episodes, env)


def steps_to_reach(steps: Sequence[int], success: Sequence[float], level: float = REACH) -> int | None:
    """The first evaluated step whose success rate is at least ``level`` (``None`` if never).

    Example:
        >>> steps_to_reach([0, 10, 20], [0.2, 0.95, 0.9])
        10
    """
    return next((step for step, rate in zip(steps, success) if rate >= level), None)


def episode_window(rewards: Sequence[float], successes: Sequence[bool]) -> dict[str, Any]:
    """How a run's reward judged the training episodes that ended in one window, against ground truth.

    Args:
        rewards: each episode's reward at its last step (the FM score, for an FM reward at episode end).
        successes: each episode's ground-truth success (``info["success"]``).

    Returns:
        ``episodes``, ``success`` (their success rate), ``reward_success`` / ``reward_failure``
        (mean reward of each; ``None`` when there is none) and ``reward_auroc``: the probability
        that a success got a higher reward than a failure, ties one half (``None`` without both).

    Example:
        >>> episode_window([2.0, -1.0, 0.5, 3.0], [True, False, False, True])["reward_auroc"]
        1.0
    """
    r, ok = np.asarray(rewards, dtype=np.float64), np.asarray(successes, dtype=bool)
    both = ok.any() and (~ok).any()
    return {
        "episodes": len(r),
        "success": float(ok.mean()) if len(r) else None,
        "reward_success": float(r[ok].mean()) if ok.any() else None,
        "reward_failure": float(r[~ok].mean()) if (~ok).any() else None,
        "reward_auroc": auroc(r[ok], r[~ok]) if both else None,
    }


class EvalCallback(BaseCallback):
    """Evaluates ground-truth success at step 0 and every ``every`` env steps, and logs training episodes.

    Args:
        every: env steps between evaluations.
        episodes: held-out episodes per evaluation.
        seed: the torch seed of the evaluation's action sampling.
        level: the level to evaluate on.
        target_cells: the policy reads :class:`TargetCells`' marks.

    Attributes:
        windows: one :func:`episode_window` per evaluation after the first, of the training
            episodes that ended since the previous one.
    """

    def __init__(self, every: int, episodes: int, seed: int, level: str = LEVEL, target_cells: bool = False) -> None:
        super().__init__()
        self.every, self.episodes, self.seed, self.level = every, episodes, seed, level
        self.target_cells = target_cells
        self.steps: list[int] = []
        self.success: list[float] = []
        self.windows: list[dict[str, Any]] = []
        self._ended: list[tuple[float, bool]] = []

    def evaluate(self) -> None:
        """Append the current step and its success rate (printed: a long run shows its curve as it goes);
        close the window of training episodes."""
        if self.steps:
            self.windows.append(episode_window([r for r, _ in self._ended], [s for _, s in self._ended]))
            self._ended = []
        self.steps.append(int(self.num_timesteps))
        self.success.append(ppo_success(self.model, self.episodes, self.seed, self.level, self.target_cells))
        auc = self.windows[-1]["reward_auroc"] if self.windows else None
        seen = f", reward AUROC on its training episodes {auc:.3f}" if auc is not None else ""
        print(f"  seed {self.seed} step {self.steps[-1]}: success {self.success[-1]:.2f}{seen}", flush=True)

    def _on_training_start(self) -> None:
        self.evaluate()

    def _on_step(self) -> bool:
        for done, reward, info in zip(self.locals["dones"], self.locals["rewards"], self.locals["infos"]):
            if done:
                self._ended.append((float(reward), bool(info["success"])))
        if self.num_timesteps % self.every == 0:
            self.evaluate()
        return True


def writable_parent(path: Path) -> None:
    """Create ``path``'s folder if needed; ``InputError`` if it cannot be, or cannot be written to."""
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
    except OSError as error:
        raise InputError(f"cannot save the policy to {path}: {error.strerror} ({path.parent})") from None
    if not os.access(path.parent, os.W_OK):
        raise InputError(f"cannot save the policy to {path}: {path.parent} is not writable")


def train_ppo(
    reward: str,
    seed: int,
    cfg: PPOConfig,
    reward_model: RewardModel | None = None,
    level: str = LEVEL,
    save: Path | None = None,
) -> dict[str, Any]:
    """Train PPO on one reward and seed; return its success curve and costs.

    Args:
        reward: ``"true"`` or the FM reward's name.
        seed: PPO, torch and training-env seed.
        cfg: PPO and evaluation settings.
        reward_model: the FM reward model (built from ``reward`` when ``None``); shared to load it once.
        level: a level with a registered FoMo env (:func:`env_id`).
        save: where to save the trained policy (Stable-Baselines3's zip; ``PPO.load`` reads it), if
            anywhere; a folder that cannot be written is refused (``InputError``) before training.

    Returns:
        ``reward``, ``seed``, ``eval_steps``, ``success`` (one rate per evaluation),
        ``final_success``, ``steps_to_0.9`` (:func:`steps_to_reach`), ``train_windows`` (one
        :func:`episode_window` per evaluation after the first), ``wall_s`` and, for an FM
        reward, ``fm_reward_calls`` (episodes scored) and ``fm_reward_s`` (seconds spent scoring).
    """
    env_id(level)  # refuse an unknown level before anything is built
    if cfg.eval_every % cfg.n_envs:
        raise ValueError(f"eval_every ({cfg.eval_every}) must be a multiple of n_envs ({cfg.n_envs})")
    if save is not None:
        writable_parent(Path(save))  # before training, not after it
    start = time.perf_counter()
    counted = None
    if reward != "true":
        counted = CountedReward(reward_model or build_reward(reward))
    fns = [lambda: make_env(reward, counted, level, cfg.target_cells)] * cfg.n_envs
    envs = DummyVecEnv(fns) if counted is None else FoMoVecEnv(fns)
    model = PPO(
        "MultiInputPolicy",
        envs,
        **cfg.ppo_kwargs(),
        policy_kwargs={"net_arch": list(cfg.net_arch)},
        seed=seed,
        device="cpu",
        verbose=0,
    )
    callback = EvalCallback(cfg.eval_every, cfg.eval_episodes, seed, level, cfg.target_cells)
    model.learn(cfg.steps, callback=callback)
    if callback.steps[-1] != model.num_timesteps:
        callback.evaluate()
    if save is not None:
        model.save(save)
    record = {
        "reward": reward,
        "seed": seed,
        "eval_steps": callback.steps,
        "success": callback.success,
        "final_success": callback.success[-1],
        REACH_KEY: steps_to_reach(callback.steps, callback.success),
        "train_windows": callback.windows,
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
    (:func:`summary`; a condition without runs is absent), for PPO each run's ``steps_to_0.9`` and,
    where training windows are recorded, the FM runs' ``reward_auroc``: each run's mean over its
    windows' ``reward_auroc`` (those defined)."""
    final = {
        c: {
            **summary([r["final_success"] for r in results["runs"] if r["condition"] == c]),
            REACH_KEY: [r[REACH_KEY] for r in results["runs"] if r["condition"] == c],
        }
        for c in ("fm", "true")
        if any(r["condition"] == c for r in results["runs"])
    }
    fm_aurocs = [window_aurocs(r) for r in results["runs"] if r["condition"] == "fm" and "train_windows" in r]
    if fm_aurocs and all(fm_aurocs):
        final["fm"]["reward_auroc"] = summary([float(np.mean([x for _, x in a])) for a in fm_aurocs])
    if results["random"]:
        final["random"] = summary([r["success"] for r in results["random"]])
    return final


def window_aurocs(run: dict[str, Any]) -> list[tuple[int, float]]:
    """A run's ``(step, reward_auroc)`` per training window that has one (the step the window ends at).

    Example:
        >>> window_aurocs({"eval_steps": [0, 8, 16], "train_windows": [{"reward_auroc": None}, {"reward_auroc": 0.75}]})
        [(16, 0.75)]
    """
    ends = run["eval_steps"][1:]
    return [(step, w["reward_auroc"]) for step, w in zip(ends, run["train_windows"]) if w["reward_auroc"] is not None]


def _plot_success(results: dict[str, Any], ax) -> None:
    for condition, label in (("fm", f"PPO, FM reward ({results['fm_reward']})"), ("true", "PPO, true reward")):
        runs = [r for r in results["runs"] if r["condition"] == condition]
        if not runs:
            continue
        steps = np.array(runs[0]["eval_steps"])
        curves = [MeanStd.of(column) for column in zip(*(r["success"] for r in runs))]
        mean, std = np.array([c.mean for c in curves]), np.nan_to_num([c.std for c in curves])
        (line,) = ax.plot(steps, mean, label=label)
        ax.fill_between(steps, mean - std, mean + std, color=line.get_color(), alpha=0.2)
    rand = results["summary"].get("random")
    if rand is not None:
        line = ax.axhline(rand["mean"], color="grey", linestyle="--", label="uniform random policy")
        band = (rand["mean"] - (rand["std"] or 0), rand["mean"] + (rand["std"] or 0))
        ax.axhspan(*band, color=line.get_color(), alpha=0.15)
    ax.set(xlabel="env steps", ylabel="ground-truth success rate", ylim=(0, 1.02))


def _plot_reward_accuracy(results: dict[str, Any], ax) -> None:
    for run in (r for r in results["runs"] if r["condition"] == "fm"):
        points = window_aurocs(run)
        steps, aurocs = ([p[0] for p in points], [p[1] for p in points])
        (line,) = ax.plot(steps, aurocs, marker=".", label=f"seed {run['seed']}: FM reward AUROC")
        ends = run["eval_steps"][1:]
        ax.plot(ends, [w["success"] for w in run["train_windows"]], color=line.get_color(), linestyle=":")
    ax.plot([], [], color="black", linestyle=":", label="success rate of those episodes")
    ax.axhline(0.5, color="grey", linewidth=0.8, linestyle="--")
    ax.set(xlabel="env steps", ylabel="on the FM agent's own training episodes", ylim=(0, 1.02), xlim=(0, None))
    ax.locator_params(axis="x", nbins=5)  # step counts are long labels
    ax.set_title("FM reward: success vs failure AUROC", fontsize=10)
    ax.legend(loc="lower right", fontsize=7)


def plot(results: dict[str, Any], path: Path) -> None:
    """Success rate vs env steps: mean ± sample std band over seeds per PPO reward, random as a flat line;
    beside it, when the FM runs recorded training windows, the FM reward's AUROC on the agent's own episodes."""
    title = f"{results['env']}: {len(results['seeds'])} seeds, {results['eval']['episodes']} held-out episodes"
    if results["ppo"].get("target_cells"):
        title += ", target cells in view"
    if not all("train_windows" in r for r in results["runs"]):  # runs recorded before the windows were
        fig, ax = pyplot().subplots(figsize=(6.4, 4.0))
        _plot_success(results, ax)
        ax.set_title(title)
        ax.legend(loc="center right")
    else:
        fig, (ax, right) = pyplot().subplots(1, 2, figsize=(11.0, 4.0))
        _plot_success(results, ax)
        ax.set_title(title, fontsize=10)
        ax.legend(loc="upper left", fontsize=7)
        _plot_reward_accuracy(results, right)
    fig.tight_layout()
    save_png(fig, path, dpi=120)


def write_report(results: dict[str, Any], out: Path, level: str = LEVEL) -> None:
    """Write the level's JSON (its summary recomputed from the runs) and curve PNG under ``out``
    (:func:`output_files`); ``InputError`` if the runs are of another level's env (nothing is written)."""
    if results["env"] != env_id(level):
        raise InputError(f"these runs are on {results['env']}, not on level {level!r} (--level)")
    results["summary"] = summarize(results)
    json_file, plot_file = output_files(level)
    out.mkdir(parents=True, exist_ok=True)
    (out / json_file).write_text(json.dumps(results, indent=1) + "\n")
    plot(results, out / plot_file)


def run(
    seeds: Sequence[int],
    cfg: PPOConfig,
    fm_reward: str,
    out: Path,
    level: str = LEVEL,
    device: str = "cpu",
    conditions: Sequence[str] = CONDITIONS,
) -> dict[str, Any]:
    """The ``conditions`` (default all of :data:`CONDITIONS`) over ``seeds`` on ``level``; writes its
    JSON and curve PNG under ``out``.

    ``device`` is where the FM reward's language model runs (PPO's small MLPs stay on the CPU).
    Without ``fm`` no reward model is loaded, and ``fm_reward`` / ``fm_reward_device`` are
    recorded as ``None``.
    """
    env_id(level)  # refuse an unknown level before the reward model loads
    if not conditions or len(set(conditions)) < len(conditions) or not set(conditions) <= set(CONDITIONS):
        raise InputError(f"conditions must be distinct names among {CONDITIONS}, got {list(conditions)}")
    torch.set_num_threads(1)
    start, load_before = time.perf_counter(), os.getloadavg()
    with_fm = "fm" in conditions
    model = build_reward(fm_reward, device=device) if with_fm else None
    ppo = [(c, r) for c, r in (("true", "true"), ("fm", fm_reward)) if c in conditions]
    runs, random_runs = [], []
    for seed in seeds:
        for condition, reward in ppo:
            runs.append({"condition": condition, **train_ppo(reward, seed, cfg, model, level)})
            print(
                f"seed {seed} {condition:4s}: final success {runs[-1]['final_success']:.2f} "
                f"(curve {' '.join(f'{s:.2f}' for s in runs[-1]['success'])}), {runs[-1]['wall_s']} s",
                flush=True,
            )
        if "random" in conditions:
            t = time.perf_counter()
            rate = random_success(seed, cfg.eval_episodes, level)
            random_runs.append({"seed": seed, "success": rate, "wall_s": round(time.perf_counter() - t, 1)})
            print(f"seed {seed} random: success {rate:.2f}", flush=True)
    wall = {c: round(sum(r["wall_s"] for r in runs if r["condition"] == c), 1) for c, _ in ppo}
    if random_runs:
        wall["random"] = round(sum(r["wall_s"] for r in random_runs), 1)
    results = {
        "env": env_id(level),
        "level": level,
        "fm_reward": fm_reward if with_fm else None,
        "fm_reward_device": device if with_fm else None,
        "frame_tile_size": FRAME_TILE,
        "seeds": list(seeds),
        "ppo": dataclasses.asdict(cfg),
        "eval": {
            "episodes": cfg.eval_episodes,
            "reset_seeds": [EVAL_SEED0, EVAL_SEED0 + cfg.eval_episodes - 1],
            "policy": "stochastic (sampled actions, torch seed = run seed)",
            "metric": "info['success']",
        },
        "summary": {},  # filled in by write_report
        "wall_s": with_ratio({**wall, "total": round(time.perf_counter() - start, 1)}),
        "load_average_1_5_15_min": {
            "start": [round(x, 1) for x in load_before],
            "end": [round(x, 1) for x in os.getloadavg()],
        },
        "environment": environment(RUN_PACKAGES),
        "runs": runs,
        "random": random_runs,
    }
    write_report(results, out, level)
    return results


def with_ratio(wall: dict[str, float]) -> dict[str, float]:
    """``wall`` plus ``fm_over_true`` (FM PPO seconds over true-reward PPO seconds) when it has both.

    Example:
        >>> with_ratio({"fm": 3.0, "true": 2.0}), with_ratio({"fm": 3.0})
        ({'fm': 3.0, 'true': 2.0, 'fm_over_true': 1.5}, {'fm': 3.0})
    """
    both = wall.get("fm") is not None and wall.get("true")
    return {**wall, "fm_over_true": round(wall["fm"] / wall["true"], 2)} if both else dict(wall)


def _per_part(part: dict[str, Any], key: str) -> list:
    """A results dict's ``key`` (load averages, environment) as a list: one run's, or the list a
    combined result keeps; empty where the part has none (older results record no environment)."""
    value = part.get(key)
    return value if isinstance(value, list) else [] if value is None else [value]


def combine(parts: Sequence[dict[str, Any]]) -> dict[str, Any]:
    """One results dict from the results of runs made apart: one process per seed, or per condition.

    The parts must share the env, PPO and evaluation settings and frame size, and the parts with
    FM runs also the FM reward and its device (``InputError`` otherwise, or for a seed's condition
    in two parts). Runs are ordered by seed; wall times are summed over the parts (``total``: the
    parts' totals added, not the elapsed time when they ran side by side), and the load averages
    and environments kept per part, in one flat list each (a part that was itself combined brings
    its list's entries).
    """
    if not parts:
        raise InputError("nothing to combine")
    fm_fields = ("fm_reward", "fm_reward_device")  # the device is absent from older results
    fm_parts = [part for part in parts if any(r["condition"] == "fm" for r in part["runs"])]
    for group, fields in ((parts, ("env", "ppo", "eval", "frame_tile_size")), (fm_parts, fm_fields)):
        for part in group[1:]:
            differ = [k for k in fields if part.get(k) != group[0].get(k)]
            if differ:
                raise InputError(f"cannot combine runs with different {', '.join(differ)}")
    made = [(r["seed"], r["condition"]) for part in parts for r in part["runs"]]
    made += [(r["seed"], "random") for part in parts for r in part["random"]]
    twice = sorted(m for m, n in Counter(made).items() if n > 1)
    if twice:
        raise InputError(f"cannot combine runs: a seed's condition appears twice: {twice}")
    runs = sorted((r for part in parts for r in part["runs"]), key=lambda r: (r["seed"], r["condition"] != "true"))
    keys = ("fm", "true", "random", "total")
    wall = {k: round(sum(p["wall_s"][k] for p in parts if k in p["wall_s"]), 1) for k in keys}
    return {
        **{k: parts[0][k] for k in ("env", "level", "frame_tile_size") if k in parts[0]},
        **{k: fm_parts[0].get(k) if fm_parts else None for k in fm_fields},
        "seeds": sorted({seed for seed, _ in made}),
        **{k: parts[0][k] for k in ("ppo", "eval")},
        "summary": {},
        "wall_s": with_ratio({k: w for k, w in wall.items() if any(k in p["wall_s"] for p in parts)}),
        "load_average_1_5_15_min": [load for part in parts for load in _per_part(part, "load_average_1_5_15_min")],
        "environment": [env for part in parts for env in _per_part(part, "environment")],
        "runs": runs,
        "random": sorted((r for part in parts for r in part["random"]), key=lambda r: r["seed"]),
    }


def main(argv: Sequence[str] | None = None) -> None:
    """Command line: ``python -m fmbench.studies.fomo.rl [--level L] [--steps N] [--seeds ...] [--out DIR] ...``."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--level", default=LEVEL, help=f"a BabyAI level with a FoMo env (default {LEVEL})")
    parser.add_argument("--steps", type=int, default=PPOConfig.steps, help="env steps of training per run")
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--reward", default=FM_REWARD, help="the FM reward's name (see build_reward)")
    parser.add_argument("--eval-every", type=int, default=PPOConfig.eval_every, help="env steps between evaluations")
    parser.add_argument("--device", default="cpu", help="where the FM reward's language model runs: cpu or cuda")
    parser.add_argument(
        "--target-cells", action="store_true", help="the policy also sees the view cells holding what the mission names"
    )
    parser.add_argument("--out", type=Path, default=Path("docs/fomo"))
    parser.add_argument(
        "--conditions",
        nargs="+",
        choices=CONDITIONS,
        default=list(CONDITIONS),
        help="which of the conditions to run (default all; join runs made apart with --combine)",
    )
    parser.add_argument(
        "--report-only",
        action="store_true",
        help="only recompute the summary and redraw the plot from the runs in the level's JSON under --out",
    )
    parser.add_argument(
        "--combine",
        type=Path,
        nargs="+",
        metavar="JSON",
        help="write the level's JSON and plot under --out from these results of runs made apart (seeds, conditions)",
    )
    args = parser.parse_args(argv)
    if args.reward == "true":
        parser.error("--reward names the FM reward; the true-reward PPO baseline is the condition 'true'")
    try:
        env_id(args.level)
    except InputError as e:
        parser.error(str(e))
    json_file, plot_file = output_files(args.level)
    if args.combine or args.report_only:
        try:
            if args.combine:
                results = combine([json.loads(path.read_text()) for path in args.combine])
            else:
                results = json.loads((args.out / json_file).read_text())
            write_report(results, args.out, args.level)
        except KeyError as e:
            parser.error(f"a results file has no field {e}")
        except (OSError, ValueError) as e:
            parser.error(str(e))
    else:
        cfg = PPOConfig(steps=args.steps, eval_every=args.eval_every, target_cells=args.target_cells)
        if args.device.startswith("cuda") and not torch.cuda.is_available():
            parser.error(f"--device {args.device}: CUDA is not available here")
        if len(set(args.conditions)) < len(args.conditions):
            parser.error(f"--conditions names a condition twice: {args.conditions}")
        results = run(args.seeds, cfg, args.reward, args.out, args.level, args.device, args.conditions)
    for c in (c for c in ("fm", "true", "random") if c in results["summary"]):
        s = results["summary"][c]
        reach = f", first reached {REACH} at steps {s[REACH_KEY]}" if c != "random" else ""
        print(f"{c:6s} final success {MeanStd(s['mean'], s['std'] or 0.0, s['n']).format(2)}{reach}")
    if "reward_auroc" in results["summary"].get("fm", {}):
        s = results["summary"]["fm"]["reward_auroc"]
        auc = MeanStd(s["mean"], s["std"] or 0.0, s["n"]).format(2)
        print(f"FM reward AUROC, success vs failure on the FM agent's own training episodes: {auc}")
    if "fm_over_true" in results["wall_s"]:
        load = results.get("load_average_1_5_15_min", {})
        print(f"PPO wall time, FM reward / true reward: {results['wall_s']['fm_over_true']:.2f}x (load average {load})")
    how = "from the recorded runs" if args.report_only or args.combine else f"in {results['wall_s']['total']} s"
    print(f"wrote {args.out / json_file} and {args.out / plot_file} {how}")


if __name__ == "__main__":
    main()
