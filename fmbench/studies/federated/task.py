"""Federated split tasks: how good is an encoder learned without labels from partitioned clients?

A task fixes a dataset, a partition of its training set among ``n_clients`` clients
(Orchestra's balanced Dirichlet split with concentration ``alpha``: every client the same
size, class proportions per client drawn from Dirichlet(alpha)), the test set split by the
same matrix, and the training protocol a submission must follow: the fraction of clients
taking part in each round (``participation``) and local epochs per round. The partition is
deterministic for the evaluation seed; ``fmbench data export`` gives each sample's client.

Any image encoder (``torch.nn.Module``: float images ``(B, 1, 28, 28)`` in [0, 1] ->
``(B, d)``) is scored the paper's way: frozen, a linear probe (logistic regression on
standardised embeddings) fitted on the centralised labelled training set and scored on the
test set (``probe_accuracy``); the same probe fitted on a class-balanced 10% and 1% of the
labels, drawn from the seed (``probe_accuracy_10pct``, ``probe_accuracy_1pct``; the paper
fine-tunes the whole network there, fmbench keeps it frozen); and the full probe's accuracy
on each client's test split (``client_accuracy_mean`` / ``_std`` / ``_min``).

Example:
    >>> import fmbench
    >>> task = fmbench.make_task("fmbench/FedFashionA0p1C10-v0")
    >>> scores = task.evaluate(task.load_baseline("random"), seed=0, limit=20)
    >>> 0 <= scores["probe_accuracy"] <= 1
    True
"""

from __future__ import annotations

import hashlib
from functools import lru_cache
from pathlib import Path
from typing import Any, Iterator

import numpy as np
import torch

from fmbench.errors import ModelError
from fmbench.fashion_mnist import load_fashion_mnist
from fmbench.interfaces import encode
from fmbench.models import LoadedModel, from_module, load_baseline_checkpoint
from fmbench.nn.cnn import CNN, CNNConfig
from fmbench.probes import linear_probe
from fmbench.random_access import check_seed, stream_key
from fmbench.studies.federated.partition import Partition, balanced_dirichlet
from fmbench.task import Task

HERE = Path(__file__).parent
SPLITS = ("train", "test")
LABEL_FRACTIONS = {"10pct": 0.1, "1pct": 0.01}


@lru_cache(maxsize=16)
def _partitions(alpha: float, n_clients: int, seed: int) -> tuple[Partition, Partition]:
    _, train_y = load_fashion_mnist("train")
    _, test_y = load_fashion_mnist("test")
    return balanced_dirichlet(train_y, n_clients, alpha, seed, test_labels=test_y)


@lru_cache(maxsize=1)
def _images_digest() -> str:
    h = hashlib.sha256()
    for split in SPLITS:
        images, labels = load_fashion_mnist(split)
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
    picked = [rng.permutation(np.flatnonzero(labels == c))[:int(np.ceil(fraction * np.sum(labels == c)))]
              for c in np.unique(labels)]
    return np.sort(np.concatenate(picked))


class FederatedTask(Task):
    """Fashion-MNIST split among clients; scores frozen image encoders by linear probes."""

    splits = SPLITS

    def __init__(self, spec) -> None:
        super().__init__(spec)
        p = spec.params
        if p.get("dataset") != "fashion-mnist":
            raise ValueError(f"{spec.id}: dataset must be 'fashion-mnist', got {p.get('dataset')!r}")
        if not 0 < p["participation"] <= 1:
            raise ValueError(f"{spec.id}: participation must be in (0, 1], got {p['participation']}")
        if not (isinstance(p["local_epochs"], int) and p["local_epochs"] >= 1):
            raise ValueError(f"{spec.id}: local_epochs must be a positive integer, got {p['local_epochs']!r}")

    # ---- data -----------------------------------------------------------------------------------
    def partitions(self, seed: int) -> tuple[Partition, Partition]:
        """The train and test partitions among clients for ``seed``."""
        p = self.spec.params
        return _partitions(float(p["alpha"]), int(p["n_clients"]), check_seed(seed))

    def split_size(self, split: str) -> int:
        self.check_split(split)
        return len(load_fashion_mnist(split)[1])

    def export_chunks(self, split: str, seed: int) -> Iterator[dict[str, np.ndarray]]:
        """Chunks of 10,000: ``ids`` (index in the split's file), ``image`` uint8 (28, 28), ``label``
        and ``client`` (-1: left out by the partition)."""
        self.check_split(split)
        images, labels = load_fashion_mnist(split)
        client = self.partitions(seed)[self.splits.index(split)].client_of
        for start in range(0, len(labels), 10_000):
            rows = slice(start, start + 10_000)
            yield {"ids": np.arange(len(labels))[rows], "image": images[rows], "label": labels[rows],
                   "client": client[rows]}

    def data_hash(self, seed: int) -> str:
        h = hashlib.sha256(f"{self.id}|{_images_digest()}".encode())
        for part in self.partitions(seed):
            h.update(part.client_of.tobytes())
        return h.hexdigest()

    def stats(self, seed: int) -> dict[str, Any]:
        out: dict[str, Any] = {"task": self.id, "seed": seed, "clients": int(self.spec.params["n_clients"])}
        for split, part in zip(self.splits, self.partitions(seed)):
            counts = part.class_counts(load_fashion_mnist(split)[1])
            out[split] = {"samples": int(len(part.client_of)), "unassigned": part.unassigned,
                          "client_sizes": part.sizes.tolist(),
                          "classes_per_client": float((counts > 0).sum(1).mean()),
                          "class_histograms": counts.tolist()}
        return out

    # ---- models ---------------------------------------------------------------------------------
    def input_format(self) -> str:
        return ("An image encoder: a torch.nn.Module mapping float images (B, 1, 28, 28) with values in [0, 1] "
                "to embeddings (B, d), d fixed. It is used frozen (eval mode, no gradients).")

    def embed(self, model: LoadedModel, images: np.ndarray, device: str, batch_size: int) -> np.ndarray:
        """Frozen embeddings of uint8 ``images`` (N, 28, 28); ``ModelError`` naming the batch if one is malformed."""
        encoder = model.model
        if not isinstance(encoder, torch.nn.Module):
            raise ModelError(f"{model.spec}: an image encoder must be a torch.nn.Module, got {type(encoder).__name__}")
        encoder.eval()
        out: list[np.ndarray] = []
        with torch.no_grad():
            for start in range(0, len(images), batch_size):
                batch = torch.tensor(images[start:start + batch_size], dtype=torch.float32, device=device)
                batch = batch.div_(255).unsqueeze(1)
                out.append(encode(encoder, batch, len(batch), out[0].shape[1] if out else None,
                                  f"{model.spec}: batch of images {start}-{start + len(batch) - 1}").numpy())
        return np.concatenate(out)

    def check_model(self, model: LoadedModel) -> None:
        self.check_interface(model)
        encoder = model.model
        device = next((str(p.device) for p in getattr(encoder, "parameters", lambda: [])()), "cpu")
        self.embed(model, load_fashion_mnist("test")[0][:2], device, 2)

    def load_baseline(self, name: str) -> LoadedModel:
        entry = self.baseline_entry(name)
        if "file" in entry:  # a backbone trained by fmbench.studies.federated.flower
            return load_baseline_checkpoint(self, name, HERE / entry["file"])
        with torch.random.fork_rng(devices=[]):  # "random": the backbone at its seed-0 initialisation
            torch.manual_seed(0)
            encoder = CNN(CNNConfig())
        return from_module(encoder, f"baseline:{name}", name, interface=self.spec.interface)

    def evaluate(self, model: LoadedModel, seed: int, *, device: str = "cpu", batch_size: int = 256,
                 limit: int | None = None, progress: bool = False) -> dict[str, float]:
        """``limit`` keeps at most that many images per class in train and test (a smoke check)."""
        seed = check_seed(seed)
        (train_x, train_y), (test_x, test_y) = load_fashion_mnist("train"), load_fashion_mnist("test")
        train_rows, test_rows = np.arange(len(train_y)), np.arange(len(test_y))
        if limit is not None:
            train_rows = _per_class(train_y, limit)
            test_rows = _per_class(test_y, limit)
        z_train = self.embed(model, train_x[train_rows], device, batch_size)
        z_test = self.embed(model, test_x[test_rows], device, batch_size)
        y_train, y_test = train_y[train_rows], test_y[test_rows]
        predicted = linear_probe(z_train, y_train, z_test)
        metrics = {"probe_accuracy": float((predicted == y_test).mean())}
        for name, fraction in LABEL_FRACTIONS.items():
            subset = labelled_subset(y_train, fraction, seed)
            metrics[f"probe_accuracy_{name}"] = float((linear_probe(z_train[subset], y_train[subset], z_test)
                                                       == y_test).mean())
        client = self.partitions(seed)[1].client_of[test_rows]
        per_client = [float((predicted[client == c] == y_test[client == c]).mean())
                      for c in np.unique(client[client >= 0])]
        metrics |= {"client_accuracy_mean": float(np.mean(per_client)),
                    "client_accuracy_std": float(np.std(per_client)),
                    "client_accuracy_min": float(np.min(per_client))}
        return metrics


def _per_class(labels: np.ndarray, n: int) -> np.ndarray:
    """The first ``n`` indices of every class, sorted."""
    return np.sort(np.concatenate([np.flatnonzero(labels == c)[:n] for c in np.unique(labels)]))
