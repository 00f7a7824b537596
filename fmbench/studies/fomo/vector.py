"""Vectorised FoMo envs whose foundation-model rewards are scored in one batched call per vector step.

A FoMo env (:class:`~fmbench.studies.fomo.env.FoMoEnv`) scores its own trajectory: one
language-model call per episode end (per step, dense). Run side by side, ``n`` envs make
``n`` small calls. The wrappers here let the sub-envs record their trajectories but not
score them (:meth:`FoMoEnv.defer_rewards`); after every vector step they score every
trajectory that needs a reward in **one** call of the shared reward model:

* ``reward_mode="episode"``: the trajectories of the episodes that ended at this step;
* ``reward_mode="dense"``: every sub-env's trajectory so far (the reward is the difference
  from its previous score), and the reset trajectory of each sub-env that started a new
  episode (its baseline score), still in one call.

On top of that call the reward model's own caches apply (the LM's prompt cache and its memo
of caption texts). The rewards are the per-env ones, up to the float32 spread of different
LM batch compositions (about 1e-7 on a small model; up to ~3e-5 nats on SmolLM2 on a CPU,
~6e-5 on CUDA).

* :class:`FoMoVectorEnv`: a gymnasium ``SyncVectorEnv`` (``NEXT_STEP`` autoreset);
* :class:`FoMoVecEnv`: a Stable-Baselines3 ``DummyVecEnv`` (resets within the step, the
  final observation in ``info["terminal_observation"]``), for ``PPO(..., env=FoMoVecEnv(...))``.

Every sub-env must be a FoMo env on the same level with the same reward model (name and
mode): the batch is one model's call. The reward model is built when the wrapper is made,
and its language model must have tokens for every word of BabyAI's missions.

Example:
    >>> import gymnasium as gym
    >>> from fmbench.studies.fomo.rewards import RandomReward
    >>> fns = [lambda: gym.make("fmbench/FoMoGoToRedBall-v0", reward_model=RandomReward())] * 2
    >>> envs = FoMoVectorEnv(fns)
    >>> obs, info = envs.reset(seed=0)
    >>> obs["view"].shape
    (2, 147)
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from copy import deepcopy

import gymnasium as gym
import numpy as np
from gymnasium.vector import AutoresetMode, SyncVectorEnv
from stable_baselines3.common.vec_env import DummyVecEnv

from fmbench.errors import InputError
from fmbench.studies.fomo.env import MISSION_WORDS, FoMoEnv
from fmbench.studies.fomo.rewards import finite
from fmbench.studies.fomo.trajectory import Trajectory


class BatchedReward:
    """One reward-model call per vector step for a list of FoMo sub-envs.

    Args:
        envs: the sub-envs (wrapped or not); each must unwrap to a :class:`FoMoEnv` with a
            reward model, all on one level with one reward model and mode.
    """

    def __init__(self, envs: Sequence[gym.Env]) -> None:
        fomo = [env.unwrapped for env in envs]
        if not fomo:
            raise InputError("a FoMo vector env needs at least one sub-env")
        wrong = [type(e).__name__ for e in fomo if not isinstance(e, FoMoEnv)]
        if wrong:
            raise InputError(f"FoMo vector envs batch FoMoEnv rewards; sub-env is a {wrong[0]}")
        levels = sorted({e.level_name for e in fomo})
        if len(levels) > 1:
            raise InputError(f"FoMo vector env sub-envs must share one level; got {levels}")
        models = [e.defer_rewards() for e in fomo]
        kinds = sorted({(m.name, e.reward_mode) for m, e in zip(models, fomo)})
        if len(kinds) > 1:
            raise InputError(f"FoMo vector env sub-envs must share one reward model and mode; got {kinds}")
        self.envs, self.model, self.mode = fomo, models[0], fomo[0].reward_mode
        scorer = getattr(self.model, "scorer", None)
        if scorer is not None:
            scorer.check_words([w for w in MISSION_WORDS if w.isalpha()])
        self.last = np.zeros(len(fomo))
        self.calls = 0

    def needs(self, done: bool) -> bool:
        """Whether a sub-env's trajectory is scored after a step (always when dense; at its end otherwise)."""
        return done or self.mode == "dense"

    def _score(self, trajectories: list[Trajectory]) -> np.ndarray:
        if not trajectories:
            return np.zeros(0)
        self.calls += 1
        return finite(self.model.score(trajectories), self.model.name)

    def start(self, indices: Sequence[int]) -> None:
        """After sub-envs ``indices`` reset: dense mode scores their reset trajectories (one call)."""
        if self.mode == "dense":
            self.last[list(indices)] = self._score([self.envs[i].trajectory() for i in indices])

    def rewards(self, stepped: dict[int, Trajectory], ended: Sequence[int], fresh: dict[int, Trajectory]) -> np.ndarray:
        """Rewards of one vector step (0 for sub-envs that did not step), from one reward-model call.

        Args:
            stepped: the trajectory of every sub-env that stepped (taken before any reset).
            ended: which of them ended their episode at this step.
            fresh: the reset trajectory of every sub-env that started a new episode at this step.
        """
        out = np.zeros(len(self.envs))
        if self.mode == "episode":
            ends = [i for i in stepped if i in ended]
            out[ends] = self._score([stepped[i] for i in ends])
            return out
        order = list(stepped) + list(fresh)
        scores = self._score([*stepped.values(), *fresh.values()])
        for i, s in zip(order[: len(stepped)], scores[: len(stepped)]):
            out[i], self.last[i] = s - self.last[i], s
        self.last[order[len(stepped) :]] = scores[len(stepped) :]
        return out


class FoMoVectorEnv(SyncVectorEnv):
    """A gymnasium ``SyncVectorEnv`` of FoMo envs scoring each vector step's FM rewards in one call.

    Args:
        env_fns: functions making the sub-envs (e.g. ``lambda: gym.make("fmbench/FoMoGoToLocal-v0")``).
        **kwargs: for ``SyncVectorEnv`` (``copy``, ``observation_mode``); autoreset is ``NEXT_STEP``.

    Attributes:
        batch: the :class:`BatchedReward` (``batch.calls`` counts reward-model calls).
    """

    def __init__(self, env_fns: Sequence[Callable[[], gym.Env]], **kwargs) -> None:
        if kwargs.get("autoreset_mode", AutoresetMode.NEXT_STEP) != AutoresetMode.NEXT_STEP:
            raise InputError("FoMoVectorEnv resets sub-envs at the next step (autoreset_mode NEXT_STEP) only")
        super().__init__(env_fns, **kwargs)
        self.batch = BatchedReward(self.envs)
        self._ended = np.zeros(self.num_envs, dtype=bool)

    def reset(self, *, seed=None, options=None):
        obs, info = super().reset(seed=seed, options=options)
        mask = np.ones(self.num_envs, bool) if not options or "reset_mask" not in options else options["reset_mask"]
        self.batch.start(np.flatnonzero(mask).tolist())
        self._ended[mask] = False
        return obs, info

    def step(self, actions):
        obs, rewards, terminated, truncated, info = super().step(actions)
        done = terminated | truncated
        envs = self.batch.envs
        stepped = {i: envs[i].trajectory() for i in np.flatnonzero(~self._ended) if self.batch.needs(done[i])}
        fresh = {i: envs[i].trajectory() for i in np.flatnonzero(self._ended) if self.batch.needs(False)}
        rewards = self.batch.rewards(stepped, np.flatnonzero(done).tolist(), fresh)
        self._ended = done
        return obs, rewards, terminated, truncated, info


class FoMoVecEnv(DummyVecEnv):
    """A Stable-Baselines3 ``DummyVecEnv`` of FoMo envs scoring each vector step's FM rewards in one call.

    Args:
        env_fns: functions making the sub-envs.

    Attributes:
        batch: the :class:`BatchedReward`.
    """

    def __init__(self, env_fns: Sequence[Callable[[], gym.Env]]) -> None:
        super().__init__(list(env_fns))
        self.batch = BatchedReward(self.envs)

    def reset(self):
        obs = super().reset()
        self.batch.start(range(self.num_envs))
        return obs

    def step_wait(self):
        stepped, fresh, ended = {}, {}, []
        for i in range(self.num_envs):
            obs, _, terminated, truncated, self.buf_infos[i] = self.envs[i].step(self.actions[i])
            self.buf_dones[i] = terminated or truncated
            self.buf_infos[i]["TimeLimit.truncated"] = truncated and not terminated
            if self.batch.needs(self.buf_dones[i]):
                stepped[i] = self.batch.envs[i].trajectory()
            if self.buf_dones[i]:
                ended.append(i)
                self.buf_infos[i]["terminal_observation"] = obs
                obs, self.reset_infos[i] = self.envs[i].reset()
                if self.batch.needs(False):
                    fresh[i] = self.batch.envs[i].trajectory()
            self._save_obs(i, obs)
        self.buf_rews[:] = self.batch.rewards(stepped, ended, fresh)
        return self._obs_from_buf(), np.copy(self.buf_rews), np.copy(self.buf_dones), deepcopy(self.buf_infos)
