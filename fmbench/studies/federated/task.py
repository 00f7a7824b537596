"""Federated split tasks: how good is an encoder learned without labels from partitioned clients?

A task fixes a data set (Fashion-MNIST, installed by fmbench's setup; CIFAR-10 or CIFAR-100,
read from the user's own copy: see :mod:`fmbench.cifar`), a partition of its training set
among ``n_clients`` clients (Orchestra's balanced Dirichlet split with concentration
``alpha``: every client the same size, class proportions per client drawn from
Dirichlet(alpha)), the test set split by the same matrix, and the training protocol a
submission must follow: the fraction of clients taking part in each round
(``participation``) and local epochs per round. The partition is deterministic for the
evaluation seed; ``fmbench data export`` gives each sample's client.

Any image encoder (``torch.nn.Module``: float images ``(B, C, H, W)`` in [0, 1] -> ``(B, d)``;
``(1, 28, 28)`` for Fashion-MNIST, ``(3, 32, 32)`` RGB for CIFAR) is scored the paper's way:
frozen, a linear probe (logistic regression on standardised embeddings) fitted on the
centralised labelled training set and scored on the test set (``probe_accuracy``); the same
probe fitted on a class-balanced 10% and 1% of the labels, drawn from the seed
(``probe_accuracy_10pct``, ``probe_accuracy_1pct``; the paper fine-tunes the whole network
there, fmbench keeps it frozen); and the full probe's accuracy on each client's test split
(``client_accuracy_mean`` / ``_std`` / ``_min``).

Example:
    >>> import fmbench
    >>> task = fmbench.make_task("fmbench/FedFashionA0p1C10-v0")
    >>> scores = task.evaluate(task.load_baseline("random"), seed=0, limit=20)
    >>> 0 <= scores["probe_accuracy"] <= 1
    True
"""

from __future__ import annotations

import hashlib
import weakref
from collections.abc import Iterator
from functools import lru_cache
from pathlib import Path
from typing import Any

import numpy as np
import torch

from fmbench.checkpoints import weights_sha256
from fmbench.errors import DataError
from fmbench.image_sources import IMAGE_SOURCES
from fmbench.interfaces import encode, seeded
from fmbench.models import LoadedModel, from_module, load_baseline_checkpoint
from fmbench.nn.cnn import CNN, CNNConfig
from fmbench.probes import linear_probe
from fmbench.random_access import check_seed, stream_key
from fmbench.studies.federated.partition import Partition, balanced_dirichlet
from fmbench.task import POSITIVE, Task, params_of, stratified_subset

HERE = Path(__file__).parent
SPLITS = ("train", "test")
LABEL_FRACTIONS = {"10pct": 0.1, "1pct": 0.01}


DATASETS = IMAGE_SOURCES
"""The data sets a task's ``dataset`` parameter can name."""


def images_to_tensor(images: np.ndarray, device: str = "cpu") -> torch.Tensor:
    """uint8 images ``(N, H, W)`` (grayscale) or ``(N, H, W, C)`` -> float ``(N, C, H, W)`` in [0, 1].

    Example:
        >>> images_to_tensor(np.zeros((2, 32, 32, 3), np.uint8)).shape
        torch.Size([2, 3, 32, 32])
    """
    x = torch.tensor(images, dtype=torch.float32, device=device).div_(255)
    return x.unsqueeze(1) if x.ndim == 3 else x.permute(0, 3, 1, 2).contiguous()


@lru_cache(maxsize=16)
def _partitions(dataset: str, folder: Path, alpha: float, n_clients: int, seed: int) -> tuple[Partition, Partition]:
    _, train_y = DATASETS[dataset].load("train")
    _, test_y = DATASETS[dataset].load("test")
    return balanced_dirichlet(train_y, n_clients, alpha, seed, test_labels=test_y)


@lru_cache(maxsize=4)
def _images_digest(dataset: str, folder: Path) -> str:
    h = hashlib.sha256()
    for split in SPLITS:
        images, labels = DATASETS[dataset].load(split)
        h.update(images.tobytes())
        h.update(labels.tobytes())
    return h.hexdigest()


def labelled_subset(labels: np.ndarray, fraction: float, seed: int) -> np.ndarray:
    """A class-balanced random subset: ``ceil(fraction * n_c)`` samples of each class ``c``, sorted.

    Example:
        >>> labelled_subset(np.repeat(np.arange(3), 100), 0.1, seed=0).shape
        (30,)
    """
    rng = np.random.default_rng([stream_key("federated-labels", fraction), seed])
    picked = [
        rng.permutation(np.flatnonzero(labels == c))[: int(np.ceil(fraction * np.sum(labels == c)))]
        for c in np.unique(labels)
    ]
    return np.sort(np.concatenate(picked))


class FederatedTask(Task):
    """An image data set split among clients; scores frozen image encoders by linear probes."""

    splits = SPLITS
    min_limit = 2
    params_schema = params_of(
        {
            "dataset": {"enum": sorted(DATASETS)},
            "partition": {"const": "balanced-dirichlet"},
            "alpha": {"type": "number", "exclusiveMinimum": 0},
            "n_clients": POSITIVE,
            "participation": {"type": "number", "exclusiveMinimum": 0, "maximum": 1},
            "local_epochs": POSITIVE,
        },
        required=("dataset", "partition", "alpha", "n_clients", "participation", "local_epochs"),
    )
    """``partition`` names the split (Orchestra's balanced Dirichlet, the only one tasks use)."""

    def __init__(self, spec) -> None:
        super().__init__(spec)
        self.source = DATASETS[spec.params["dataset"]]
        self._probe_cache: tuple[weakref.ref, tuple, tuple[np.ndarray, np.ndarray, np.ndarray]] | None = None

    # ---- data -----------------------------------------------------------------------------------
    def partitions(self, seed: int) -> tuple[Partition, Partition]:
        """The train and test partitions among clients for ``seed``."""
        p = self.spec.params
        return _partitions(p["dataset"], self.source.folder(), float(p["alpha"]), int(p["n_clients"]), check_seed(seed))

    def user_data(self) -> str | None:
        return self.source.env_var

    def split_size(self, split: str) -> int:
        """The number of images in the split; its published size when the user's copy is not on this machine."""
        self.check_split(split)
        try:
            return len(self.source.load(split)[1])
        except DataError:
            return self.source.sizes[split]

    def export_chunks(self, split: str, seed: int) -> Iterator[dict[str, np.ndarray]]:
        """Chunks of 10,000: ``ids`` (index in the split), ``image`` uint8 (28, 28) or (32, 32, 3), ``label``
        and ``client`` (-1: left out by the partition)."""
        self.check_split(split)
        images, labels = self.source.load(split)
        client = self.partitions(seed)[self.splits.index(split)].client_of
        for start in range(0, len(labels), 10_000):
            rows = slice(start, start + 10_000)
            yield {
                "ids": np.arange(len(labels))[rows],
                "image": images[rows],
                "label": labels[rows],
                "client": client[rows],
            }

    def data_hash(self, seed: int) -> str:
        h = hashlib.sha256(f"{self.id}|{_images_digest(self.spec.params['dataset'], self.source.folder())}".encode())
        for part in self.partitions(seed):
            h.update(part.client_of.tobytes())
        return h.hexdigest()

    def stats(self, seed: int) -> dict[str, Any]:
        out: dict[str, Any] = {"task": self.id, "seed": seed, "clients": int(self.spec.params["n_clients"])}
        for split, part in zip(self.splits, self.partitions(seed)):
            counts = part.class_counts(self.source.load(split)[1])
            out[split] = {
                "samples": int(len(part.client_of)),
                "unassigned": part.unassigned,
                "client_sizes": part.sizes.tolist(),
                "classes_per_client": float((counts > 0).sum(1).mean()),
                "class_histograms": counts.tolist(),
            }
        return out

    # ---- models ---------------------------------------------------------------------------------
    def input_format(self) -> str:
        c, h, w = self.source.shape
        return (
            f"An image encoder: a torch.nn.Module mapping float images (B, {c}, {h}, {w}) "
            f"{'(RGB) ' if c == 3 else ''}with values in [0, 1] to embeddings (B, d), d fixed. "
            "It is used frozen (eval mode, no gradients)."
        )

    def embed(self, model: LoadedModel, images: np.ndarray, device: str, batch_size: int) -> np.ndarray:
        """Frozen embeddings of uint8 ``images`` (N, H, W[, C]); ``ModelError`` naming the batch if one is malformed."""
        encoder = model.model
        encoder.eval()
        out: list[np.ndarray] = []
        with torch.no_grad():
            for start in range(0, len(images), batch_size):
                batch = images_to_tensor(images[start : start + batch_size], device)
                out.append(
                    encode(
                        encoder,
                        batch,
                        len(batch),
                        out[0].shape[1] if out else None,
                        f"{model.spec}: batch of images {start}-{start + len(batch) - 1}",
                    ).numpy()
                )
        return np.concatenate(out)

    def check_model(self, model: LoadedModel) -> None:
        self.interface.check(model, images=images_to_tensor(self.source.load("test")[0][:2]))

    def load_baseline(self, name: str) -> LoadedModel:
        entry = self.baseline_entry(name)
        if "file" in entry:  # a backbone trained by fmbench.studies.federated.flower
            return load_baseline_checkpoint(self, name, HERE / entry["file"])
        encoder = seeded(lambda: CNN(CNNConfig(in_channels=self.source.shape[0])), 0)  # "random": seed-0 init
        return from_module(encoder, f"baseline:{name}", name, interface=self.spec.interface)

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
        """``limit`` scores that many test images with probes fitted on that many training images, each a
        class-balanced subset (:func:`~fmbench.task.stratified_subset`; a smoke check).

        The embeddings and the full probe are computed on the first seed and reused for the next
        ones (see ``_full_probe``), so a record's first seed carries most of the time.
        """
        seed = check_seed(seed)
        (_, train_y), (_, test_y) = self.source.load("train"), self.source.load("test")
        train_rows, test_rows = stratified_subset(train_y, limit), stratified_subset(test_y, limit)
        z_train, z_test, predicted = self._full_probe(model, train_rows, test_rows, device, batch_size)
        y_train, y_test = train_y[train_rows], test_y[test_rows]
        metrics = {"probe_accuracy": float((predicted == y_test).mean())}
        for name, fraction in LABEL_FRACTIONS.items():
            subset = labelled_subset(y_train, fraction, seed)
            metrics[f"probe_accuracy_{name}"] = float(
                (linear_probe(z_train[subset], y_train[subset], z_test) == y_test).mean()
            )
        client = self.partitions(seed)[1].client_of[test_rows]
        per_client = [
            float((predicted[client == c] == y_test[client == c]).mean()) for c in np.unique(client[client >= 0])
        ]
        metrics |= {
            "client_accuracy_mean": float(np.mean(per_client)),
            "client_accuracy_std": float(np.std(per_client, ddof=0)),  # over every client: ddof 0
            "client_accuracy_min": float(np.min(per_client)),
        }
        return metrics

    def _full_probe(
        self, model: LoadedModel, train_rows: np.ndarray, test_rows: np.ndarray, device: str, batch_size: int
    ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Train and test embeddings and the full probe's predictions: seed-independent, so kept for the
        next seed while the model (the same object, with the same weights) and the rows are the same."""
        encoder = model.model
        key = (
            weights_sha256(encoder) if isinstance(encoder, torch.nn.Module) else None,
            train_rows.tobytes(),
            test_rows.tobytes(),
            device,
        )
        cached = self._probe_cache
        if cached is None or cached[0]() is not encoder or cached[1] != key:
            z_train = self.embed(model, self.source.load("train")[0][train_rows], device, batch_size)
            z_test = self.embed(model, self.source.load("test")[0][test_rows], device, batch_size)
            predicted = linear_probe(z_train, self.source.load("train")[1][train_rows], z_test)
            cached = self._probe_cache = (weakref.ref(encoder), key, (z_train, z_test, predicted))
        return cached[2]
