"""A vision stage backed by any Hugging Face image-to-text model (BLIP, GIT, VisionEncoderDecoder, ...).

:class:`HFCaptionVision` captions a few keyframes of the trajectory — ``keyframes`` evenly
spaced frames, the first and the last included — and joins the captions, consecutive
duplicates dropped, into one text::

    At first: <caption 0>. Then: <caption 1>. ... At the end: <caption N>.

Two distinct captions give ``"At first: <c0>. At the end: <c1>."``; a single one (a
one-frame prefix, or a trajectory whose keyframes all read the same) gives
``"At the end: <c0>."``. A trailing full stop and surrounding whitespace are stripped
from each caption. Decoding is greedy, so the text is a deterministic function of the
frames; captions are memoised by the frame's bytes, so a repeated frame is captioned once.

Example:
    >>> from fmbench.studies.fomo.rollouts import run_policy
    >>> from fmbench.studies.fomo.trajectory import Trajectory
    >>> run = run_policy("GoToRedBall", seed=0, frames=True)
    >>> vision = HFCaptionVision("models/blip-image-captioning-base")       # doctest: +SKIP
    >>> vision.text(Trajectory(run.mission, run.scenes, run.frames))       # doctest: +SKIP
    'At first: a screenshot of a game. At the end: a red ball on a black background.'
"""

from __future__ import annotations

import os
import pickle
from collections.abc import Iterable
from pathlib import Path

import numpy as np
import torch

from fmbench.errors import ModelError, first_line
from fmbench.models import existing_path, from_pretrained_checked
from fmbench.studies.fomo.frames import frame_digest
from fmbench.studies.fomo.trajectory import Trajectory


def keyframe_indices(n: int, keyframes: int) -> list[int]:
    """Up to ``keyframes`` evenly spaced, distinct indices into ``n`` frames, first and last included.

    Example:
        >>> keyframe_indices(10, 4), keyframe_indices(2, 4), keyframe_indices(5, 1)
        ([0, 3, 6, 9], [0, 1], [4])
    """
    if keyframes == 1:
        return [n - 1]
    return sorted({int(i) for i in np.linspace(0, n - 1, keyframes).round()})


def join_captions(captions: list[str]) -> str:
    """The trajectory text from keyframe captions in order (see the module docstring).

    Example:
        >>> join_captions(["a grid.", "a grid", "a red ball"])
        'At first: a grid. At the end: a red ball.'
    """
    kept: list[str] = []
    for c in (c.strip().removesuffix(".").strip() for c in captions):
        if not kept or c != kept[-1]:
            kept.append(c)
    if len(kept) == 1:
        return f"At the end: {kept[0]}."
    middle = "".join(f" Then: {c}." for c in kept[1:-1])
    return f"At first: {kept[0]}.{middle} At the end: {kept[-1]}."


def _load(path: str):
    """``(model, image encoder, decoder)`` from a local folder: its processor, or image processor and tokenizer."""
    folder = str(existing_path(path, "image-to-text model"))
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    import transformers
    from transformers.utils import logging as hf_logging

    hf_logging.set_verbosity_error()
    hf_logging.disable_progress_bar()
    try:
        processor = transformers.AutoProcessor.from_pretrained(folder, local_files_only=True)
        if hasattr(processor, "image_processor"):
            images, decoder = processor, processor
        else:  # no processor saved: AutoProcessor gave a tokenizer or an image processor alone
            images = transformers.AutoImageProcessor.from_pretrained(folder, local_files_only=True)
            decoder = transformers.AutoTokenizer.from_pretrained(folder, local_files_only=True)
        model = _model(transformers, folder)
    except (
        OSError,
        ValueError,
        KeyError,
        RuntimeError,
        pickle.UnpicklingError,
    ) as e:  # pickles: refused by weights_only
        first = first_line(e)
        raise ModelError(f"cannot load image-to-text model {path}: {first}") from None
    return model.eval(), images, decoder


def _model(transformers, folder: str) -> torch.nn.Module:
    try:
        return from_pretrained_checked(transformers.AutoModelForImageTextToText, Path(folder))
    except ValueError:  # transformers 4.x maps some captioners (VisionEncoderDecoder) only to Vision2Seq
        if not hasattr(transformers, "AutoModelForVision2Seq"):
            raise
        return from_pretrained_checked(transformers.AutoModelForVision2Seq, Path(folder))


class HFCaptionVision:
    """The vision stage: keyframe captions by a local Hugging Face image-to-text model.

    Args:
        path: a local model folder (``save_pretrained`` layout with a processor, or an image
            processor and a tokenizer).
        keyframes: how many evenly spaced frames to caption (first and last included).
        max_new_tokens: the longest caption, in tokens.
        device: where the model runs.
        batch_size: frames per ``generate`` call.
    """

    needs_frames = True

    def __init__(
        self, path: str, keyframes: int = 4, max_new_tokens: int = 20, device: str = "cpu", batch_size: int = 16
    ) -> None:
        if keyframes < 1 or max_new_tokens < 1 or batch_size < 1:
            raise ValueError(
                f"keyframes, max_new_tokens and batch_size must be >= 1, got "
                f"{keyframes}, {max_new_tokens}, {batch_size}"
            )
        model, self._images, self._decoder = _load(path)
        self.model = model.to(device)
        self.name = "hf-" + Path(path).resolve().name
        self.keyframes, self.max_new_tokens = keyframes, max_new_tokens
        self.device, self.batch_size = device, batch_size
        self._memo: dict[bytes, str] = {}

    def captions(self, frames: np.ndarray) -> list[str]:
        """The caption of each ``(H, W, 3)`` uint8 frame (memoised; new frames captioned in batches)."""
        from PIL import Image

        keys = [frame_digest(f) for f in frames]
        todo = list({k: f for k, f in zip(keys, frames) if k not in self._memo}.items())
        for start in range(0, len(todo), self.batch_size):
            batch = todo[start : start + self.batch_size]
            inputs = self._images(images=[Image.fromarray(f) for _, f in batch], return_tensors="pt").to(self.device)
            with torch.inference_mode():
                ids = self.model.generate(**inputs, max_new_tokens=self.max_new_tokens, do_sample=False, num_beams=1)
            texts = self._decoder.batch_decode(ids, skip_special_tokens=True)
            self._memo.update((k, t) for (k, _), t in zip(batch, texts))
        return [self._memo[k] for k in keys]

    def text(self, trajectory: Trajectory) -> str:
        """The trajectory text: its keyframes' captions, joined."""
        trajectory.check(need_frames=True)
        return self._texts(trajectory.frames, [len(trajectory.frames)])[0]

    def prefix_texts(self, trajectory: Trajectory) -> list[str]:
        """The text of every prefix (the reset frame alone first), keyframes chosen within each prefix."""
        trajectory.check(need_frames=True)
        return self._texts(trajectory.frames, range(1, len(trajectory.frames) + 1))

    def _texts(self, frames: np.ndarray, lengths: Iterable[int]) -> list[str]:
        """The text of the first ``n`` frames for each ``n`` in ``lengths``; every needed frame captioned once."""
        chosen = [keyframe_indices(n, self.keyframes) for n in lengths]
        needed = sorted({i for idx in chosen for i in idx})
        caption = dict(zip(needed, self.captions(frames[needed])))
        return [join_captions([caption[i] for i in idx]) for idx in chosen]
