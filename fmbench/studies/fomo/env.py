"""BabyAI levels as fmbench envs whose reward comes from a pluggable reward model.

Example:
    >>> import gymnasium as gym
    >>> import fmbench
    >>> env = gym.make("fmbench/FoMoGoToRedBall-v0", reward="true")
    >>> obs, info = env.reset(seed=0)
    >>> decode_mission(obs["mission"]), obs["view"].shape
    ('go to the red ball', (147,))
"""

from __future__ import annotations

import re
from typing import Any

import gymnasium as gym
import numpy as np
from gymnasium import spaces

from fmbench.env_contract import check_step, env_label
from fmbench.errors import InputError, ModelError
from fmbench.studies.fomo.frames import seen_cells, top_down_frames
from fmbench.studies.fomo.instructions import candidates
from fmbench.studies.fomo.levels import LEVELS, make_level, reset_quietly
from fmbench.studies.fomo.rewards import build_reward, check_reward_name, finite
from fmbench.studies.fomo.scene import scene_of
from fmbench.studies.fomo.trajectory import Trajectory

REWARD_MODES = ("episode", "dense")
DEFAULT_REWARD = "learned+smollm2+pmi"
MISSION_WORDS = (
    "<pad>",
    ",",
    "a",
    "after",
    "and",
    "ball",
    "behind",
    "blue",
    "box",
    "door",
    "front",
    "go",
    "green",
    "grey",
    "in",
    "key",
    "left",
    "next",
    "object",
    "of",
    "on",
    "open",
    "pick",
    "purple",
    "put",
    "red",
    "right",
    "the",
    "then",
    "to",
    "up",
    "yellow",
    "you",
    "your",
)
"""BabyAI's mission vocabulary; word ``i`` is token ``i`` of the observation's ``mission`` (0 pads)."""
MISSION_LENGTH = 32


def encode_mission(mission: str) -> np.ndarray:
    """A mission as ``MISSION_LENGTH`` word ids (0-padded).

    Example:
        >>> decode_mission(encode_mission("put the red ball next to a key"))
        'put the red ball next to a key'
    """
    words = re.findall(r"[a-z]+|,", mission.lower())
    unknown = sorted(set(words) - set(MISSION_WORDS))
    if unknown or len(words) > MISSION_LENGTH:
        raise ValueError(
            f"mission {mission!r} does not fit the observation: "
            + (f"unknown words {unknown}" if unknown else f"more than {MISSION_LENGTH} words")
        )
    ids = np.zeros(MISSION_LENGTH, dtype=np.int64)
    ids[: len(words)] = [MISSION_WORDS.index(w) for w in words]
    return ids


def decode_mission(ids: np.ndarray) -> str:
    """The mission text of an observation's ``mission`` word ids."""
    return " ".join(MISSION_WORDS[i] for i in np.asarray(ids) if i).replace(" ,", ",")


class FoMoEnv(gym.Env):
    """A BabyAI level whose reward is a foundation-model reward (arXiv:2312.03881) or the true one.

    ## Description

    The agent follows the level's instruction (the mission). Every step is recorded as a
    scene (and, when the reward model reads frames, the cells the agent saw: its frames are
    drawn from those, all at once, when the trajectory is read); the reward model scores the
    trajectory against the mission. The episode ends when the level's verifier says the
    mission is done (``terminated``) or after the level's step limit (``truncated``); a step
    after that (or before the first reset) raises ``gym.error.ResetNeeded`` until ``reset``,
    and an action outside the action space raises ``InputError``.

    ## Observation Space

    ``Dict(view=Box(0, 10, (147,), int64), direction=Discrete(4), mission=MultiDiscrete)``:
    the agent's 7x7 egocentric view in minigrid's ``(object, colour, state)`` encoding,
    flattened from ``(7, 7, 3)`` (integer codes, not pixels: frames come from ``render()``),
    its direction, and the mission as ``MISSION_LENGTH`` word ids over ``MISSION_WORDS``
    (``decode_mission`` gives the text back exactly; ``info["mission"]`` holds it too). The
    mission is word ids rather than a ``Text`` space because Stable-Baselines3 cannot take
    text observations.

    ## Action Space

    ``Discrete(7)``: left, right, forward, pickup, drop, toggle, done (minigrid's actions).

    ## Rewards

    ``reward="true"``: the level's sparse reward ``1 - 0.9 * steps / max_steps`` on success.
    Otherwise a reward model (``reward`` names one, see
    :func:`fmbench.studies.fomo.rewards.build_reward`; ``reward_model`` passes an object):
    ``reward_mode="episode"`` gives its score of the whole trajectory at the last step and
    0 before; ``"dense"`` gives the difference of successive prefix scores each step. A reward
    name is checked by ``gym.make`` (no model loads); the model is built at the first reset: its
    language model loads then (about a minute for SmolLM2 on a CPU, once per process, shared by
    every env; stderr says so).

    ## Info

    ``success`` (the level's verifier), ``true_reward`` (the level's reward), ``mission``;
    after reset also ``level_seed``, the minigrid seed of the layout (drawn from ``seed``).

    ## Arguments

    ``level`` (a name in :data:`fmbench.studies.fomo.levels.LEVELS`), ``reward`` (default
    ``"learned+smollm2+pmi"``; not contrastive or posterior, which are constant on a level
    whose layouts admit one instruction), ``reward_model``, ``reward_mode``, ``tile_size`` (frame pixels
    per cell), ``render_mode`` (``"rgb_array"``).
    """

    metadata = {"render_modes": ["rgb_array"], "render_fps": 10}

    def __init__(
        self,
        level: str,
        reward: str = DEFAULT_REWARD,
        reward_model: Any = None,
        reward_mode: str = "episode",
        tile_size: int = 32,
        render_mode: str | None = None,
    ) -> None:
        self.env_id = env_label(type(self), level=level)
        if level not in LEVELS:
            raise InputError(f"{self.env_id}: unknown BabyAI level {level!r}; fmbench knows {sorted(LEVELS)}")
        if reward_mode not in REWARD_MODES:
            raise InputError(f"{self.env_id}: reward_mode must be one of {REWARD_MODES}, got {reward_mode!r}")
        if render_mode not in (None, "rgb_array"):
            raise InputError(f"{self.env_id}: render_mode must be None or 'rgb_array', got {render_mode!r}")
        if not isinstance(tile_size, int) or tile_size < 8:
            raise InputError(f"{self.env_id}: tile_size must be an integer >= 8, got {tile_size!r}")
        if reward_model is not None and not callable(getattr(reward_model, "score", None)):
            raise InputError(f"{self.env_id}: reward_model must have a score(trajectories) method")
        if reward_model is None and reward != "true":
            try:
                check_reward_name(reward)  # the model itself loads at the first reset
            except ModelError as e:
                raise InputError(f"{self.env_id}: {e}") from None
        self.level_name, self.reward_name, self.reward_mode = level, reward, reward_mode
        self.tile_size, self.render_mode = tile_size, render_mode
        self._reward_model, self._given_model = reward_model, reward_model is not None
        self.level = make_level(level)
        self.action_space = spaces.Discrete(int(self.level.action_space.n))
        self.observation_space = spaces.Dict(
            {
                "view": spaces.Box(0, 10, (147,), np.int64),
                "direction": spaces.Discrete(4),
                "mission": spaces.MultiDiscrete([len(MISSION_WORDS)] * MISSION_LENGTH),
            }
        )
        self._scenes: list = []
        self._seen: list = []  # per scene, the cells of the agent's view it saw (frames need them)
        self._frames: list = []  # the frames drawn so far (by trajectory())
        self._candidates: tuple[str, ...] = ()
        self._last_score = 0.0
        self._episode_over = True
        self._deferred = False

    def defer_rewards(self):
        """Leave scoring to a batching wrapper (:mod:`fmbench.studies.fomo.vector`): FM rewards become 0.

        Returns the reward model, which the wrapper calls on :meth:`trajectory` for many envs at once.
        """
        if self.reward_model is None:
            raise InputError(f"{self.env_id}: the true reward has nothing to batch; use reward=<FM reward name>")
        self._deferred = True
        return self.reward_model

    @property
    def reward_model(self):
        """The reward model (built from ``reward`` on first use; ``None`` for the true reward)."""
        if self._reward_model is None and self.reward_name != "true":
            self._reward_model = build_reward(self.reward_name)
        return self._reward_model

    def _obs(self, raw: dict) -> dict:
        return {
            "view": np.asarray(raw["image"], dtype=np.int64).reshape(-1),
            "direction": int(raw["direction"]),
            "mission": self._mission_ids.copy(),
        }

    def _record(self, view: np.ndarray) -> None:
        self._scenes.append(scene_of(self.level))
        if self.reward_model is not None and self.reward_model.needs_frames:
            self._seen.append(seen_cells(view))

    def trajectory(self) -> Trajectory:
        """The episode so far, as the reward model sees it.

        Frames are drawn here, all those not drawn yet in one pass (:func:`top_down_frames`),
        not at every step: an episode-end reward draws an episode's frames once, at its end.
        """
        drawn = len(self._frames)
        if drawn < len(self._seen):
            self._frames.extend(top_down_frames(self._scenes[drawn:], self._seen[drawn:], self.tile_size))
        frames = np.stack(self._frames) if self._frames else None
        return Trajectory(self.level.mission, list(self._scenes), frames, self._candidates, self.tile_size)

    def _score(self) -> float:
        return float(finite(self.reward_model.score([self.trajectory()]), self.reward_model.name)[0])

    def reset(self, *, seed: int | None = None, options: dict | None = None):
        super().reset(seed=seed)
        self.level_seed = int(self.np_random.integers(0, 2**31))
        raw = reset_quietly(self.level, self.level_seed)
        self._scenes, self._seen, self._frames = [], [], []
        self._episode_over = False
        self._candidates = candidates(self.level, self.level.instrs)
        self._mission_ids = encode_mission(self.level.mission)
        self._record(raw["image"])
        dense = self.reward_model is not None and self.reward_mode == "dense" and not self._deferred
        self._last_score = self._score() if dense else 0.0
        return self._obs(raw), {
            "mission": self.level.mission,
            "success": False,
            "true_reward": 0.0,
            "level_seed": self.level_seed,
        }

    def step(self, action):
        check_step(self.env_id, self.action_space, action, self._episode_over)
        raw, true_reward, terminated, truncated, _ = self.level.step(int(action))
        self._episode_over = bool(terminated or truncated)
        self._record(raw["image"])
        success = bool(terminated and true_reward > 0)
        if self.reward_model is None:
            reward = float(true_reward)
        elif self._deferred:
            reward = 0.0
        elif self.reward_mode == "dense":
            score = self._score()
            reward, self._last_score = score - self._last_score, score
        else:
            reward = self._score() if terminated or truncated else 0.0
        info = {"mission": self.level.mission, "success": success, "true_reward": float(true_reward)}
        return self._obs(raw), float(reward), bool(terminated), bool(truncated), info

    def render(self):
        if self.render_mode == "rgb_array":
            return self.level.get_frame(highlight=True, tile_size=self.tile_size)
        return None

    def __getstate__(self) -> dict:
        state = self.__dict__.copy()
        if not self._given_model:
            state["_reward_model"] = None  # rebuilt from its name on first use: models are not pickled
        return state
