"""A registered task that scores any policy by rolling it out on a composition env.

A ``policy`` model's ``model`` maps an int64 observation batch ``(B, document_length)`` to
a numpy integer array of ``B`` actions. An evaluation seed fixes the episodes: ``episodes``
reset seeds drawn from it, each picking a test document of the env's world.

Example:
    >>> import fmbench
    >>> task = fmbench.make_task("fmbench/ComposeTokensPolicy-v0")
    >>> random = task.load_baseline("random")
    >>> task.check_model(random)
    >>> 0.0 <= task.evaluate(random, seed=0)["mean_return"] <= 1.0
    True
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterator
from functools import cached_property
from typing import Any

import gymnasium as gym
import numpy as np
from tqdm.auto import tqdm

from fmbench.interfaces import POLICY
from fmbench.models import LoadedModel
from fmbench.random_access import check_seed, integers, stream_key
from fmbench.studies.compositional.env import DOCUMENT_SEED, CompositionEnv
from fmbench.studies.compositional.generator import CompositionWorld
from fmbench.task import POSITIVE, Task, evaluation_subset, params_of


class RandomPolicy:
    """Uniform random actions among ``tokens``, drawn as a fixed random function of the observation.

    The action depends only on ``(seed, observation)``, so a score depends only on the
    evaluation seed, not on how many batches were scored before. ``tokens`` should leave
    out ``<pad>``: writing it leaves the observation unchanged, so every later step of the
    episode would repeat it.

    Example:
        >>> p = RandomPolicy(np.arange(5))
        >>> obs = np.zeros((3, 4), dtype=np.int64)
        >>> a = p(obs)
        >>> a.shape, bool((a == p(obs)).all())
        ((3,), True)
    """

    def __init__(self, tokens: np.ndarray, seed: int = 0) -> None:
        self.tokens, self.seed = np.asarray(tokens, dtype=np.int64), seed

    def __call__(self, obs: np.ndarray) -> np.ndarray:
        return self.tokens[
            [
                stream_key("random-policy", self.seed, row.tobytes()) % len(self.tokens)
                for row in np.ascontiguousarray(obs, dtype=np.int64)
            ]
        ]


class CompositionPolicyTask(Task):
    """Score a policy's return on the test documents of a composition env (arXiv:2311.12997)."""

    splits = ("test",)
    params_schema = params_of(
        {"env": {"type": "string", "pattern": "^fmbench/"}, "episodes": POSITIVE}, required=("env", "episodes")
    )
    baseline_schema = {}

    @property
    def env_id(self) -> str:
        return self.spec.params["env"]

    @property
    def episodes(self) -> int:
        return int(self.spec.params["episodes"])

    @cached_property
    def env(self) -> CompositionEnv:
        """The env on the test split, unwrapped (used to draw documents and probe observations)."""
        env = gym.make(self.env_id, split="test").unwrapped
        if not isinstance(env, CompositionEnv):
            raise ValueError(f"{self.spec.spec_file} {self.id}: env {self.env_id} is not a CompositionEnv")
        return env

    @property
    def world(self) -> CompositionWorld:
        return self.env.world

    @property
    def vocab(self) -> list[str]:
        return self.world.vocab

    # ---- data ------------------------------------------------------------------------
    def split_size(self, split: str) -> int:
        self.check_split(split)
        return self.episodes

    def reset_seeds(self, seed: int) -> np.ndarray:
        """The ``episodes`` env reset seeds of an evaluation seed.

        Example:
            >>> import fmbench
            >>> fmbench.make_task("fmbench/ComposeTokensPolicy-v0").reset_seeds(0).shape
            (256,)
        """
        return integers(
            stream_key("compositional-policy", self.id, check_seed(seed)), np.arange(self.episodes), 1, 2**31
        )[:, 0]

    def document_indices(self, seed: int) -> np.ndarray:
        """The test document each episode of an evaluation seed starts from."""
        return np.array(
            [self.env.reset(seed=int(s))[1]["document_index"] for s in self.reset_seeds(seed)], dtype=np.int64
        )

    def data_hash(self, seed: int) -> str:
        h = hashlib.sha256(self.world.data_hash(DOCUMENT_SEED).encode())
        h.update(np.ascontiguousarray(self.document_indices(seed), dtype="<i8").tobytes())
        return h.hexdigest()

    def export_chunks(self, split: str, seed: int) -> Iterator[dict[str, np.ndarray]]:
        """``ids`` (the episode), ``reset_seed``, ``document_index`` (the test document it starts from),
        ``token_ids`` (that document) and ``prompt_length``."""
        self.check_split(split)
        index = self.document_indices(seed)
        yield {
            "ids": np.arange(self.episodes),
            "reset_seed": self.reset_seeds(seed),
            "document_index": index,
            "token_ids": self.world.documents("test", DOCUMENT_SEED, index),
            "prompt_length": np.full(self.episodes, self.world.prompt_length),
        }

    def stats(self, seed: int) -> dict[str, Any]:
        w = self.world
        index = self.document_indices(seed)
        held = ~w.eval_in_train[index // w.config.samples_per_composition]
        return {
            "task": self.id,
            "seed": seed,
            "env": self.env_id,
            "episodes": self.episodes,
            "vocab_size": len(w.vocab),
            "document_length": w.document_length,
            "prompt_length": w.prompt_length,
            "answer_length": w.answer_length,
            "test": {
                "documents": w.split_size("test"),
                "document_index": {
                    "min": int(index.min()),
                    "max": int(index.max()),
                    "distinct": int(len(np.unique(index))),
                },
                "held_out_episodes": int(held.sum()),
                "seen_episodes": int((~held).sum()),
            },
        }

    # ---- models ----------------------------------------------------------------------
    def input_format(self) -> str:
        w = self.world
        return (
            f"A policy: callable mapping an int64 numpy array (B, {w.document_length}) of observations of "
            f"{self.env_id} (token ids in [0, {len(w.vocab)}), unwritten answer positions = <pad> "
            f"{w.pad_id}) to a numpy integer array (B,) of actions in [0, {len(w.vocab)}), the next "
            f"answer token. Each episode writes {w.answer_length} tokens; the vocabulary is "
            "`fmbench describe` / `task.vocab` (token i is vocab[i])."
        )

    def check_model(self, model: LoadedModel) -> None:
        self.interface.check(
            model,
            observations=np.stack([self.env.reset(seed=s)[0] for s in (0, 1)]),
            n_actions=int(self.env.action_space.n),
        )

    def load_baseline(self, name: str) -> LoadedModel:
        self.baseline_entry(name)
        tokens = np.delete(np.arange(len(self.world.vocab)), self.world.pad_id)
        return LoadedModel(
            model=RandomPolicy(tokens),
            spec=f"baseline:{name}",
            name=name,
            interface="policy",
            n_params=0,
            weights_sha256=None,
            dtype="none",
        )

    def evaluate(
        self,
        model: LoadedModel,
        seed: int,
        *,
        device: str = "cpu",
        batch_size: int = 256,
        limit: int | None = None,
        progress: bool = False,
    ) -> dict[str, float]:
        seeds = self.reset_seeds(seed)
        seeds = seeds[evaluation_subset(len(seeds), limit)]
        width = min(batch_size, len(seeds))
        returns, exact = np.zeros(len(seeds)), np.zeros(len(seeds), bool)
        n_actions = int(self.env.action_space.n)
        envs = gym.make_vec(self.env_id, num_envs=width, vectorization_mode="sync", split="test")
        bar = tqdm(total=len(seeds), disable=not progress, desc=f"seed {seed}", unit="episode", leave=False)
        for start in range(0, len(seeds), width):
            rows = slice(start, min(start + width, len(seeds)))
            obs, _ = envs.reset(seed=np.resize(seeds[rows], width).tolist())  # a short last batch repeats seeds
            total, final, done = np.zeros(width), np.zeros(width, bool), np.zeros(width, bool)
            while not done.all():
                obs, reward, terminated, truncated, info = envs.step(POLICY.act(model, obs, n_actions))
                total += np.where(done, 0.0, reward)
                ended = (terminated | truncated) & ~done
                final[ended] = info["exact_match"][ended]
                done |= ended
            count = rows.stop - rows.start
            returns[rows], exact[rows] = total[:count], final[:count]
            bar.update(count)
        bar.close()
        envs.close()
        return {"mean_return": float(returns.mean()), "exact_match": float(exact.mean())}
