"""The VLM-RM reward (Rocamonde et al., 2023; AlignmentResearch/vlmrm) on any open_clip model: a peer baseline.

With ``x`` the normalised CLIP embedding of the trajectory's last frame (``frame="last"``)
or the mean of its frames' normalised embeddings (``frame="mean"``), ``g`` the normalised
text embedding of the instruction and ``b`` that of a baseline prompt, ``d = g - b`` and
the goal-baseline projection ``P = alpha d d^T / ||d||^2 + (1 - alpha) I``::

    reward = 1 - ||(x - g) P||^2 / 2

``alpha = 0`` is plain CLIP similarity (``x . g`` for a single frame); ``alpha = 1`` keeps
only the component of ``x - g`` along the baseline-to-goal direction.

Needs the ``clip`` extra (``pip install 'fmbench[clip]'``); weights come from a local
checkpoint file, never downloaded.

Example:
    >>> from fmbench.studies.fomo.rollouts import run_policy
    >>> from fmbench.studies.fomo.trajectory import Trajectory
    >>> run = run_policy("GoToRedBall", seed=0, frames=True)
    >>> reward = CLIPReward.from_spec("ViT-B-32:models/clip-vit-b-32.safetensors")   # doctest: +SKIP
    >>> reward.score([Trajectory(run.mission, run.scenes, run.frames)])             # doctest: +SKIP
    array([0.62...])
"""

from __future__ import annotations

import logging
import pickle
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import torch

from fmbench.checkpoints import meta_device
from fmbench.errors import ModelError, first_line
from fmbench.interfaces import count_parameters, seeded
from fmbench.models import existing_path
from fmbench.studies.fomo.frames import frame_digest
from fmbench.studies.fomo.rewards import checked, finite
from fmbench.studies.fomo.trajectory import Trajectory

FRAMES = ("last", "mean")


def goal_baseline_reward(x: np.ndarray, g: np.ndarray, b: np.ndarray, alpha: float) -> np.ndarray:
    """``1 - ||(x - g) P||^2 / 2`` for each row, ``P`` the goal-baseline projection (module docstring).

    Args:
        x: ``(n, D)`` image embeddings.
        g: ``(n, D)`` normalised goal (instruction) embeddings.
        b: ``(D,)`` normalised baseline embedding.
        alpha: how much of ``x - g`` is projected onto ``d = g - b`` (the rest is kept whole).

    Example:
        >>> e = np.eye(2)
        >>> goal_baseline_reward(e[:1], e[:1], e[1], 0.5)
        array([1.])
    """
    r, d = x - g, g - b
    along = (r * d).sum(axis=1, keepdims=True) / (d * d).sum(axis=1, keepdims=True) * d
    projected = alpha * along + (1 - alpha) * r
    return 1 - (projected * projected).sum(axis=1) / 2


def _open_clip():
    try:
        import open_clip
    except ImportError:
        raise ModelError("the CLIP reward needs open_clip: pip install 'fmbench[clip]'") from None
    return open_clip


def _check_checkpoint_size(open_clip, model_name: str, path: Path) -> None:
    """``ModelError`` if ``path`` is too small to hold ``model_name``'s weights (at least 2 bytes each).

    The model is counted on the meta device, so a tiny file naming a big model is refused
    before that model is allocated.
    """
    logging.disable(logging.WARNING)  # open_clip warns that a model without weights is random
    try:
        with meta_device():
            described = count_parameters(open_clip.create_model(model_name, pretrained=None, device="meta"))
    finally:
        logging.disable(logging.NOTSET)
    size = path.stat().st_size
    if size < 2 * described:
        raise ModelError(
            f"{path}: {size} bytes cannot hold the {described} parameters of CLIP model {model_name} "
            "(16-bit weights take 2 bytes each)"
        )


def _normalised(e: torch.Tensor) -> np.ndarray:
    e = e.double().cpu().numpy()
    return e / np.linalg.norm(e, axis=1, keepdims=True)


class CLIPReward:
    """The VLM-RM goal-baseline reward on an open_clip model.

    Args:
        model_name: an open_clip architecture (``open_clip.list_models()``).
        checkpoint: a local weights file for it, or ``None`` for random weights (seed 0; wiring tests).
        baseline: the baseline prompt ``b``.
        alpha: the goal-baseline regularisation strength, in ``[0, 1]``.
        frame: ``"last"`` (embed the last frame) or ``"mean"`` (average all frames' embeddings).
        device: where the model runs.
        batch_size: frames per forward pass.
    """

    needs_frames = True

    def __init__(
        self,
        model_name: str,
        checkpoint: str | None,
        baseline: str = "a top-down view of a grid world",
        alpha: float = 0.5,
        frame: str = "last",
        device: str = "cpu",
        batch_size: int = 64,
    ) -> None:
        if not 0 <= alpha <= 1:
            raise ModelError(f"the CLIP reward's alpha must lie in [0, 1], got {alpha}")
        if frame not in FRAMES:
            raise ModelError(f"the CLIP reward's frame must be one of {FRAMES}, got {frame!r}")
        open_clip = _open_clip()
        if model_name not in open_clip.list_models():
            raise ModelError(
                f"unknown open_clip model {model_name!r}; list the names with: "
                "python -c 'import open_clip; print(open_clip.list_models())'"
            )
        # An absolute path, so that open_clip never reads it as a pretrained tag to download.
        weights = None if checkpoint is None else str(existing_path(checkpoint, "CLIP checkpoint").resolve())
        if weights is not None:
            _check_checkpoint_size(open_clip, model_name, Path(weights))
        try:
            model, _, self.preprocess = seeded(
                lambda: open_clip.create_model_and_transforms(model_name, pretrained=weights), 0
            )
        # open_clip asserts shapes; a pickled checkpoint that weights_only refuses raises UnpicklingError
        except (RuntimeError, ValueError, OSError, KeyError, AssertionError, pickle.UnpicklingError) as e:
            first = first_line(e)
            raise ModelError(f"cannot load CLIP model {model_name} from {checkpoint}: {first}") from None
        self.model = model.to(device).eval()
        self.tokenizer = open_clip.get_tokenizer(model_name)
        self.name = f"clip-{model_name}"
        self.baseline, self.alpha, self.frame = baseline, alpha, frame
        self.device, self.batch_size = device, batch_size
        self._texts: dict[str, np.ndarray] = {}

    @classmethod
    def from_spec(cls, spec: str, device: str = "cpu") -> CLIPReward:
        """``<model_name>:<checkpoint path>``, or ``<model_name>:random`` for random weights.

        Example:
            >>> CLIPReward.from_spec("ViT-B-32:random").name          # doctest: +SKIP
            'clip-ViT-B-32'
        """
        model_name, _, checkpoint = spec.partition(":")
        if not model_name or not checkpoint:
            raise ModelError(
                f"CLIP reward spec {spec!r} is not <model_name>:<checkpoint path> "
                "(or <model_name>:random for random weights)"
            )
        return cls(model_name, None if checkpoint == "random" else checkpoint, device=device)

    def text_embeddings(self, texts: Sequence[str]) -> np.ndarray:
        """``(n, D)`` normalised text embeddings (cached by text)."""
        todo = sorted(set(texts) - set(self._texts))
        if todo:
            with torch.inference_mode():
                e = self.model.encode_text(self.tokenizer(todo).to(self.device))
            self._texts.update(zip(todo, _normalised(e)))
        return np.stack([self._texts[t] for t in texts])

    def image_embeddings(self, frames: Sequence[np.ndarray]) -> np.ndarray:
        """``(n, D)`` normalised embeddings of ``n`` ``(H, W, 3)`` uint8 frames (sizes may differ).

        Identical frames are embedded once, so they get identical embeddings; the rest in batches.
        """
        from PIL import Image

        keys = [frame_digest(f) for f in frames]
        unique = list(dict(zip(keys, frames)).items())
        out = []
        for start in range(0, len(unique), self.batch_size):
            batch = torch.stack(
                [self.preprocess(Image.fromarray(f)) for _, f in unique[start : start + self.batch_size]]
            )
            with torch.inference_mode():
                out.append(_normalised(self.model.encode_image(batch.to(self.device))))
        row = {k: i for i, (k, _) in enumerate(unique)}
        return np.concatenate(out)[[row[k] for k in keys]]

    @property
    def n_params(self) -> int:
        """Parameters of the CLIP model."""
        return count_parameters(self.model)

    def score(self, trajectories: Sequence[Trajectory]) -> np.ndarray:
        """The VLM-RM reward of each trajectory for its instruction."""
        trajectories = checked(trajectories, self.needs_frames)
        if not trajectories:
            return np.zeros(0)
        if self.frame == "last":
            x = self.image_embeddings([t.frames[-1] for t in trajectories])
        else:
            e = self.image_embeddings([f for t in trajectories for f in t.frames])
            bounds = np.cumsum([0, *(len(t.frames) for t in trajectories)])
            x = np.stack([e[a:z].mean(axis=0) for a, z in zip(bounds[:-1], bounds[1:])])
        g = self.text_embeddings([t.instruction for t in trajectories])
        b = self.text_embeddings([self.baseline])[0]
        return finite(goal_baseline_reward(x, g, b, self.alpha), self.name)
