"""A Gymnasium env in which an agent writes the answer of a composition document token by token.

Example:
    >>> import gymnasium as gym
    >>> import fmbench
    >>> env = gym.make("fmbench/ComposeTokensDirect-v0")
    >>> obs, info = env.reset(seed=0)
    >>> obs.shape, int(env.action_space.n)
    ((20,), 33)
"""

from __future__ import annotations

from functools import cache
from typing import Any

import gymnasium as gym
import numpy as np
from gymnasium import spaces

from fmbench.env_contract import check_step, env_label
from fmbench.errors import InputError, UnknownIdError, first_line
from fmbench.registry import make_task
from fmbench.studies.compositional.generator import DOCUMENT_SPLITS, CompositionWorld
from fmbench.studies.compositional.task import CompositionTask

DOCUMENT_SEED = 0
"""Data seed of the documents episodes are drawn from (``reset``'s seed picks the document)."""


@cache
def composition_world(task: str) -> CompositionWorld:
    """The world of a registered composition task, built once per process and shared read-only.

    Example:
        >>> composition_world("fmbench/ComposeDirect-v0").answer_length
        6
    """
    built = make_task(task)
    if not isinstance(built, CompositionTask):
        raise ValueError(f"{task} is not a composition task (its entry point is {built.spec.entry_point})")
    return built.world


class CompositionEnv(gym.Env[np.ndarray, np.int64]):
    """Write the answer of a composition document (arXiv:2311.12997) one token per step.

    ## Description

    A document of a registered composition task spells out a composition of token
    functions and an input ``x``, then the answer: every intermediate output
    (step-by-step tasks) or only the final one (direct tasks). The agent sees the prompt
    and writes the answer one token per step; the world's functions and splits are those
    of the task.

    ## Observation Space

    ``MultiDiscrete([len(vocab)] * document_length)``, int64: the document's token ids
    with the not-yet-written answer positions holding the ``<pad>`` id. Token ``i`` is
    ``env.unwrapped.world.vocab[i]``.

    ## Action Space

    ``Discrete(len(vocab))``: the id of the next answer token.

    ## Rewards

    ``1 / answer_length`` for each token equal to the reference token at its position,
    else 0, so an episode's return is the fraction of answer tokens written correctly.

    ## Starting State

    A document of the chosen split (of data seed ``DOCUMENT_SEED``) drawn uniformly with
    the env's ``np_random``; the observation is its prompt followed by padding.

    ## Episode End

    The episode terminates after ``answer_length`` actions; ``info["exact_match"]`` then
    says whether every answer token is correct. ``info`` always holds the document's
    ``document_index`` and ``composition`` (its function tokens, space-separated).

    ## Arguments

    ``task``: a registered composition task id (default ``"fmbench/ComposeStepByStep-v0"``);
    ``split``: ``"train"`` or ``"test"`` documents of that task's world; ``render_mode``:
    ``None`` or ``"ansi"`` (the tokens written so far).

    >>> import gymnasium as gym
    >>> import fmbench
    >>> env = gym.make("fmbench/ComposeTokensStepByStep-v0", split="test", render_mode="ansi")
    >>> env.unwrapped.world.answer_length
    34

    ## Version History

    * v0: First release.
    """

    metadata = {"render_modes": ["ansi"], "render_fps": 4}

    def __init__(
        self, task: str = "fmbench/ComposeStepByStep-v0", split: str = "train", render_mode: str | None = None
    ) -> None:
        self.env_id = env_label(type(self), task=task)
        if split not in DOCUMENT_SPLITS:
            raise InputError(f"{self.env_id}: unknown split {split!r}; expected one of {DOCUMENT_SPLITS}")
        if render_mode is not None and render_mode not in self.metadata["render_modes"]:
            raise InputError(
                f"{self.env_id}: render_mode {render_mode!r} is not None or one of {self.metadata['render_modes']}"
            )
        self.task, self.split, self.render_mode = task, split, render_mode
        try:
            self.world = composition_world(task)
        except (UnknownIdError, ValueError) as e:
            raise InputError(f"{self.env_id}: {first_line(e)}") from None
        vocab_size = len(self.world.vocab)
        self.observation_space = spaces.MultiDiscrete(np.full(self.world.document_length, vocab_size), dtype=np.int64)
        self.action_space = spaces.Discrete(vocab_size)
        self._document = np.zeros(0, dtype=np.int64)
        self._obs = np.zeros(0, dtype=np.int64)
        self._index = -1
        self._written = self._correct = 0

    def reset(
        self, *, seed: int | None = None, options: dict[str, Any] | None = None
    ) -> tuple[np.ndarray, dict[str, Any]]:
        super().reset(seed=seed)
        w = self.world
        self._index = int(self.np_random.integers(w.split_size(self.split)))
        self._document = w.documents(self.split, DOCUMENT_SEED, np.array([self._index]))[0]
        self._obs = self._document.copy()
        self._obs[w.prompt_length :] = w.pad_id
        self._written = self._correct = 0
        return self._obs.copy(), self._info()

    def step(self, action: int | np.integer) -> tuple[np.ndarray, float, bool, bool, dict[str, Any]]:
        w = self.world
        check_step(self.env_id, self.action_space, action, not self._document.size or self._written == w.answer_length)
        position = w.prompt_length + self._written
        correct = int(action) == self._document[position]
        self._obs[position] = int(action)
        self._written += 1
        self._correct += int(correct)
        terminated = self._written == w.answer_length
        info = self._info()
        info["exact_match"] = terminated and self._correct == w.answer_length
        return self._obs.copy(), float(correct) / w.answer_length, terminated, False, info

    def render(self) -> str | None:
        if self.render_mode != "ansi":
            return None
        return " ".join(self.world.decode(self._obs[: self.world.prompt_length + self._written]))

    def _info(self) -> dict[str, Any]:
        w = self.world
        functions = self._document[1 : 1 + w.config.depth]
        return {"document_index": self._index, "composition": " ".join(w.decode(functions))}
