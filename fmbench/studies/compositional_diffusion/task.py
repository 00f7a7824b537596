"""Concept-generation tasks: can a conditional image generator draw concept combinations it was not trained on?

A task fixes one of the authors' splits of the binary concept space (shape, colour, size[,
background]; :mod:`~fmbench.studies.compositional_diffusion.concepts`). Its ``train`` split holds
renders of the training classes (what a generator may learn from); its ``eval`` split lists the
evaluation items, ``per_class`` for every class of the space. A submitted ``image-generator``
draws each item's class; the shipped per-concept linear probes
(:mod:`~fmbench.studies.compositional_diffusion.concept_probes`) read each image, and an image is
right when every concept is (the authors' accuracy: the mean over samples of the product of the
per-concept indicators). Scores are reported per class, per concept distance (Hamming distance
to the nearest training class) and per concept.

Example:
    >>> import fmbench
    >>> task = fmbench.make_task("fmbench/ConceptGenH32Train1-v0")
    >>> scores = task.evaluate(task.load_baseline("renderer"), seed=0, limit=16)
    >>> scores["accuracy"], scores["accuracy|distance=2"]
    (1.0, 1.0)
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import torch

from fmbench.interfaces import IMAGE_GENERATOR
from fmbench.models import LoadedModel, load_baseline_checkpoint
from fmbench.random_access import check_seed, stream_key
from fmbench.studies.compositional_diffusion import model as _model  # noqa: F401  (registers concept-unet)
from fmbench.studies.compositional_diffusion.concept_probes import load_probes, predict
from fmbench.studies.compositional_diffusion.concepts import SHAPES, SPLITS, ConceptSpace, distances, space_of
from fmbench.studies.compositional_diffusion.data import eval_classes, eval_size, train_classes, train_images
from fmbench.studies.compositional_diffusion.generators import GENERATORS
from fmbench.studies.compositional_diffusion.render import to_uint8
from fmbench.task import POSITIVE, Task, params_of, stratified_subset

HERE = Path(__file__).parent
IMAGE_SHAPE = (3, 28, 28)


def score_images(space: ConceptSpace, class_ids: np.ndarray, images: np.ndarray) -> np.ndarray:
    """``(N, n_concepts)`` booleans: whether the probes read each concept of each image as its class's.

    Example:
        >>> from fmbench.studies.compositional_diffusion.concepts import THREE
        >>> score_images(THREE, np.array([1]), np.zeros((1, 3, 28, 28), np.float32)).shape
        (1, 3)
    """
    return predict(load_probes(space), images) == space.values(class_ids)


class ConceptGenTask(Task):
    """One split of the concept space: train renders, evaluation items, probe scoring of a generator."""

    splits = ("train", "eval")
    params_schema = params_of(
        {"split": {"enum": list(SPLITS)}, "n_train": POSITIVE, "per_class": POSITIVE},
        required=("split", "n_train", "per_class"),
    )
    min_limit = 16
    """One evaluation item of each class of the larger (4-concept) space."""

    @property
    def split(self) -> str:
        return self.spec.params["split"]

    @property
    def space(self) -> ConceptSpace:
        return space_of(self.split)

    @property
    def per_class(self) -> int:
        return self.spec.params["per_class"]

    # ---- data --------------------------------------------------------------------------------
    def split_size(self, split: str) -> int:
        self.check_split(split)
        return self.spec.params["n_train"] if split == "train" else eval_size(self.split, self.per_class)

    def export_chunks(self, split: str, seed: int, chunk: int = 1024) -> Iterator[dict[str, np.ndarray]]:
        """``train``: ids, class ids and strings, uint8 images ``(N, 3, 28, 28)``; ``eval``: ids, classes, distances."""
        n, dist = self.split_size(split), distances(self.split)
        for start in range(0, n, chunk):
            index = np.arange(start, min(n, start + chunk))
            if split == "train":
                classes = train_classes(self.split, index)
                extra = {"image": to_uint8(train_images(self.split, check_seed(seed), index))}
            else:
                classes = eval_classes(self.split, self.per_class, seed, index)
                extra = {"distance": np.array([dist[self.space.class_name(c)] for c in classes])}
            names = np.array([self.space.class_name(c) for c in classes])
            yield {"ids": index, "class_id": classes, "class": names, **extra}

    def data_hash(self, seed: int) -> str:
        """sha256 over the uint8 train images and the classes of both splits."""
        h = hashlib.sha256()
        for split in self.splits:
            h.update(split.encode())
            for chunk in self.export_chunks(split, seed):
                h.update(chunk["class_id"].astype(np.int64).tobytes())
                if "image" in chunk:
                    h.update(chunk["image"].tobytes())
        return h.hexdigest()

    def stats(self, seed: int) -> dict[str, Any]:
        check_seed(seed)
        dist = distances(self.split)
        train = np.unique(train_classes(self.split, np.arange(self.split_size("train"))), return_counts=True)
        return {
            "task": self.id,
            "seed": seed,
            "split": self.split,
            "concepts": list(self.space.names),
            "train_classes": {self.space.class_name(c): int(k) for c, k in zip(*train)},
            "distance": dist,
            "eval_items": self.split_size("eval"),
            "probe_held_out_accuracy": load_probes(self.space).held_out,
        }

    # ---- models ------------------------------------------------------------------------------
    def input_format(self) -> str:
        values = (tuple(SHAPES[s] for s in self.space.shapes), *_VALUE_NAMES)
        names = ", ".join(f"{c} (0: {a}, 1: {b})" for c, (a, b) in zip(self.space.names, values))
        return (
            f"A conditional image generator: generate(conditions, seed) gets a LongTensor (B,) of class ids in "
            f"[0, {self.space.n_classes}) and an int seed and returns float images (B, 3, 28, 28) in [0, 1], the same "
            f"for the same seed. Class id k is the binary string of k, one digit per concept, most significant "
            f"first, each digit choosing a value: {names}; e.g. id 5 is the authors' class "
            f"{self.space.class_name(5)}. Train on the train split only."
        )

    def check_model(self, model: LoadedModel) -> None:
        self.interface.check(model, n_conditions=self.space.n_classes, image_shape=IMAGE_SHAPE)

    def load_baseline(self, name: str) -> LoadedModel:
        entry = self.baseline_entry(name)
        if "file" in entry:
            return load_baseline_checkpoint(self, name, HERE / entry["file"])
        return LoadedModel(
            model=GENERATORS[name](self.space),
            spec=f"baseline:{name}",
            name=name,
            interface="image-generator",
            n_params=0,
            weights_sha256=None,
            dtype="none",
            identity={"baseline": name, "generator": GENERATORS[name].__name__, "concepts": self.space.n_concepts},
        )

    def correct(
        self, model: LoadedModel, seed: int, items: np.ndarray, device: str = "cpu", batch_size: int = 256
    ) -> tuple[np.ndarray, np.ndarray]:
        """Class ids of evaluation ``items`` and ``(N, n_concepts)`` booleans: each concept of each image right.

        Batch ``b`` is generated with seed ``stream_key(task, seed, first item of b)`` (below 2**63).
        """
        classes = eval_classes(self.split, self.per_class, seed, items)
        right = np.zeros((len(items), self.space.n_concepts), dtype=bool)
        for start in range(0, len(items), batch_size):
            ids = classes[start : start + batch_size]
            batch_seed = stream_key("compositional_diffusion.eval", self.id, seed, int(items[start])) >> 1
            conditions = torch.from_numpy(ids).to(device)
            with torch.no_grad():
                images = IMAGE_GENERATOR.generate(model, conditions, batch_seed, IMAGE_SHAPE)
            right[start : start + len(ids)] = score_images(self.space, ids, images.float().cpu().numpy())
        return classes, right

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
        all_classes = eval_classes(self.split, self.per_class, seed, np.arange(self.split_size("eval")))
        items = stratified_subset(all_classes, limit)
        classes, right = self.correct(model, seed, items, device, batch_size)
        return summarise(self.split, classes, right)


_VALUE_NAMES = (("red", "blue"), ("large", "small"), ("black", "grey"))
"""Names of the values of each concept after the shape."""


def summarise(split: str, classes: np.ndarray, right: np.ndarray) -> dict[str, float]:
    """The task's metrics from per-item concept correctness: held-out and seen classes, per class, distance, concept.

    Example:
        >>> s = summarise("H32-train1", np.arange(8), np.ones((8, 3), bool))
        >>> s["accuracy"], s["accuracy_seen"], s["colour_accuracy|class=111"]
        (1.0, 1.0, 1.0)
    """
    space, dist = space_of(split), distances(split)
    joint = right.all(axis=1)
    present = np.unique(classes)
    names = {c: space.class_name(c) for c in present}
    per_class = {c: float(joint[classes == c].mean()) for c in present}
    held = [c for c in present if dist[names[c]] > 0]
    seen = [c for c in present if dist[names[c]] == 0]
    out = {"accuracy": float(np.mean([per_class[c] for c in held])),
           "accuracy_seen": float(np.mean([per_class[c] for c in seen]))}  # fmt: skip
    for d in sorted({dist[n] for n in names.values()}):
        out[f"accuracy|distance={d}"] = float(np.mean([per_class[c] for c in present if dist[names[c]] == d]))
    for c in present:
        out[f"accuracy|class={names[c]}"] = per_class[c]
    for j, concept in enumerate(space.names):
        per = {c: float(right[classes == c, j].mean()) for c in present}
        out[f"{concept}_accuracy"] = float(np.mean([per[c] for c in held]))
        for c in present:
            out[f"{concept}_accuracy|class={names[c]}"] = per[c]
    return out
