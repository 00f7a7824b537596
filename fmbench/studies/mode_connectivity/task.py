"""The "switch the mechanism by fine-tuning" task of arXiv:2211.08422 on cue data.

fmbench ships a BatchNorm CNN trained on the task's cued ``train`` split of seed 0 (the
``cue-reliant`` baseline): it classifies by the cue more than by the object. A submission is that
model fine-tuned within the task's budget: the clean ``finetune`` split of seed 0 (2,000 images,
``fmbench data export``) with labels, plus, as in the authors' CBFT, the cued ``train`` split it was
trained on. It must keep the shipped architecture (the barrier compares the two weight by weight).

Metrics on the seed's counterfactual test sets (:mod:`fmbench.studies.mode_connectivity.data`):
accuracy on clean images, on cued images (p = 1), with the cue of another class
(``accuracy_random_cue``, the primary metric: right only by the object), and agreement with the cue
when the image is of another class (``accuracy_random_image``: right only by the cue);
``cue_reliance``, the fraction of randomised-cue images classified as the cue's class; and
``barrier``, the loss barrier (nats) on the cued test set along the linear path from the shipped
model to the submission, on a class-balanced 2,000 of them (11 points, BatchNorm statistics
recomputed at each from the seed's first 1,000 clean fine-tuning images: 4 batches of 250): a large
barrier says the mechanism changed.

Example:
    >>> import fmbench
    >>> task = fmbench.make_task("fmbench/MMCFashionBoxFT-v0")
    >>> scores = task.evaluate(task.load_baseline("cue-reliant"), seed=0, limit=40)
    >>> scores["barrier"], scores["cue_reliance"] > 0.5
    (0.0, True)
"""

from __future__ import annotations

from collections.abc import Iterator
from functools import lru_cache
from pathlib import Path
from typing import Any

import numpy as np
import torch

from fmbench.checkpoints import file_sha256
from fmbench.errors import ModelError
from fmbench.loss_path import ImageSet, check_pair, loss_path
from fmbench.model_key import weights_key
from fmbench.models import LoadedModel, load_baseline_checkpoint
from fmbench.studies.mode_connectivity.data import (
    CUES,
    SOURCES,
    SPLITS,
    TEST_SETS,
    CueData,
    counterfactual_labels,
    data_hash,
    split_arrays,
)
from fmbench.studies.mode_connectivity.model import ConvNet
from fmbench.task import POSITIVE, Task, params_of, stratified_subset

HERE = Path(__file__).parent
CUE_MODEL = "cue-reliant"
"""The shipped model a submission fine-tunes."""
BARRIER_ALPHAS = tuple(float(a) for a in np.linspace(0, 1, 11))
BARRIER_ITEMS = 2000
"""The barrier is measured on a class-balanced 2,000 of the cued test images ..."""
BARRIER_BATCH = 2000
"""Test images per forward pass of the barrier (fixed: the order of summation is part of the scores)."""
BN_BATCH, BN_BATCHES = 250, 4
"""... with BatchNorm statistics recomputed at each point from 4 batches of 250 clean fine-tuning images."""


class MechanismTask(Task):
    """Fine-tune the shipped cue-reliant classifier so that it classifies by the object (module docstring)."""

    splits = SPLITS
    params_schema = params_of(
        {
            "cue": {"type": "string", "enum": list(CUES)},
            "p": {"type": "number", "minimum": 0, "maximum": 1},
            "n_train": POSITIVE,
            "n_finetune": POSITIVE,
            "n_test": POSITIVE,
            "source": {"enum": sorted(SOURCES)},
        },
        required=("cue", "p"),
    )
    min_limit = 10  # one image of every class

    @property
    def data(self) -> CueData:
        return CueData(**self.spec.params)

    def split_size(self, split: str) -> int:
        self.check_split(split)
        return self.data.size(split)

    def data_hash(self, seed: int) -> str:
        return data_hash(self.data, seed)

    def export_chunks(self, split: str, seed: int, chunk: int = 4096) -> Iterator[dict[str, np.ndarray]]:
        """Columns ``ids`` (item index), ``images`` (uint8 ``(1, H, W)``), ``labels`` and ``cue_class`` (-1: none)."""
        self.check_split(split)
        for start in range(0, self.split_size(split), chunk):
            index = np.arange(start, min(self.split_size(split), start + chunk))
            images, labels, cues = split_arrays(self.data, seed, split, index)
            yield {"ids": index, "images": images, "labels": labels, "cue_class": cues}

    def stats(self, seed: int) -> dict[str, Any]:
        out: dict[str, Any] = {"task": self.id, "seed": seed, "cue": self.data.cue, "p": self.data.p}
        for split in self.splits:
            _, labels, cues = split_arrays(self.data, seed, split, np.arange(self.split_size(split)))
            out[split] = {
                "items": len(labels),
                "image_shape": list(self.data.image_shape),
                "class_counts": np.bincount(labels, minlength=10).tolist(),
                "cued_fraction": float((cues >= 0).mean()),
                "cue_is_label_fraction": float((cues == labels).mean()),
            }
        return out

    # ---- models ----------------------------------------------------------------------------------
    def input_format(self) -> str:
        c, h, w = self.data.image_shape
        return (
            f"A fine-tuned copy of the shipped {CUE_MODEL} classifier (architecture mmc-cnn, same shapes): float "
            f"images (B, {c}, {h}, {w}){' (RGB)' if c == 3 else ''} in [0, 1] -> logits (B, 10); its BatchNorm "
            "statistics are recomputed along the path to the shipped model."
        )

    def check_model(self, model: LoadedModel) -> None:
        self.interface.check(model, image_shape=self.data.image_shape, n_classes=10)
        if not isinstance(model.model, ConvNet):
            raise ModelError(
                f"{model.spec}: a submission is a fine-tuned copy of the shipped {CUE_MODEL} model (mmc-cnn), "
                f"got {type(model.model).__name__}"
            )
        check_pair(self.cue_model().model, model.model)

    def checkpoint(self, name: str) -> Path:
        """Where shipped baseline ``name`` lives."""
        return HERE / "checkpoints" / f"{self.spec.name}-{name}.safetensors"

    def load_baseline(self, name: str) -> LoadedModel:
        self.baseline_entry(name)
        return load_baseline_checkpoint(self, name, self.checkpoint(name))

    def baseline_key(self, name: str) -> dict[str, str]:
        self.baseline_entry(name)
        return weights_key(file_sha256(self.checkpoint(name)))

    def cue_model(self) -> LoadedModel:
        """The shipped cue-reliant model submissions start from."""
        return self.load_baseline(CUE_MODEL)

    # ---- scoring ---------------------------------------------------------------------------------
    def test_sets(self, seed: int, limit: int | None = None) -> dict[str, ImageSet]:
        """The counterfactual test sets of ``seed`` as tensors (``limit``: a class-balanced subset of items)."""
        return _test_sets(self.data, seed, limit)

    def path_data(self, seed: int, limit: int | None = None) -> tuple[dict[str, ImageSet], torch.Tensor]:
        """What ``fmbench connect`` evaluates: the four test sets, and every clean fine-tuning image (8 batches of 250)
        to recompute BatchNorm statistics from."""
        return self.test_sets(seed, limit), self.bn_images(seed, limit)

    def curve_data(self, seed: int, limit: int | None = None) -> ImageSet:
        """What ``fmbench connect --bezier`` trains its curve on: the seed's cued ``train`` split (its first ``limit``
        items), the data the shipped model learnt from."""
        n = self.split_size("train") if limit is None else min(limit, self.split_size("train"))
        images, labels, _ = split_arrays(self.data, seed, "train", np.arange(n))
        return torch.from_numpy(images), torch.from_numpy(labels)

    def bn_images(self, seed: int, limit: int | None = None) -> torch.Tensor:
        """The clean images BatchNorm statistics are recomputed from: the seed's fine-tuning split (or ``limit``)."""
        n = self.split_size("finetune") if limit is None else min(limit, self.split_size("finetune"))
        return torch.from_numpy(split_arrays(self.data, seed, "finetune", np.arange(n))[0])

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
        return self.scores(model.model, seed, self.cue_model().model, device=device, batch_size=batch_size, limit=limit)

    def scores(
        self,
        model: ConvNet,
        seed: int,
        anchor: ConvNet,
        *,
        device: str = "cpu",
        batch_size: int = 256,
        limit: int | None = None,
    ) -> dict[str, float]:
        """``evaluate``'s metrics with the barrier measured from ``anchor`` instead of the shipped model (what the
        reproduction uses for a cue-reliant model trained with another seed and its fine-tunes)."""
        sets = self.test_sets(seed, limit)
        few = min(limit or BARRIER_ITEMS, BARRIER_ITEMS)
        path = loss_path(
            anchor,
            model,
            {"test_cue": self.test_sets(seed, few)["test_cue"]},
            self.bn_images(seed, min(limit or BN_BATCH * BN_BATCHES, BN_BATCH * BN_BATCHES)),
            BARRIER_ALPHAS,
            bn_batch_size=BN_BATCH,
            batch_size=BARRIER_BATCH,
            device=device,
        )
        model.to(device).eval()
        predictions = {}
        with torch.inference_mode():
            for name, (x, _) in sets.items():
                predictions[name] = torch.cat(
                    [
                        model(x[i : i + batch_size].to(device).float().div_(255)).argmax(1).cpu()
                        for i in range(0, len(x), batch_size)
                    ]
                )
        right = {name: float((predictions[name] == y).float().mean()) for name, (_, y) in sets.items()}
        cues = _random_cues(self.data, seed, limit)
        return {
            "accuracy_clean": right["test_clean"],
            "accuracy_cue": right["test_cue"],
            "accuracy_random_cue": right["test_random_cue"],
            "accuracy_random_image": right["test_random_image"],
            "cue_reliance": float((predictions["test_random_cue"] == cues).float().mean()),
            "barrier": path.barrier["test_cue"],
        }


def _subset(data: CueData, seed: int, limit: int | None) -> np.ndarray:
    return stratified_subset(counterfactual_labels(data, seed), limit)


@lru_cache(maxsize=4)
def _test_sets(data: CueData, seed: int, limit: int | None) -> dict[str, ImageSet]:
    index = _subset(data, seed, limit)
    out = {}
    for split in TEST_SETS:
        images, labels, _ = split_arrays(data, seed, split, index)
        out[split] = (torch.from_numpy(images), torch.from_numpy(labels))
    return out


def _random_cues(data: CueData, seed: int, limit: int | None) -> torch.Tensor:
    return torch.from_numpy(split_arrays(data, seed, "test_random_cue", _subset(data, seed, limit))[2])
