"""Linear-SSL landscape tasks: score any vector encoder's collapse, agreement with theory and probe accuracy.

Two sources share the evaluator (:mod:`~fmbench.studies.ssl_landscape.evaluate`):

* :class:`LandscapeTask`: a generated problem (:class:`~fmbench.studies.ssl_landscape.problems.Setting`,
  every field a task parameter); splits ``pretrain`` (unlabelled, imbalanced), ``train`` and ``test``
  (class-balanced, for the probe).
* :class:`FashionLandscapeTask`: Fashion-MNIST pixels average-pooled to ``(28 / pool)^2`` values in
  [0, 1]; the pretraining distribution is the whole training set with the task's augmentation
  applied to the centred pixels (``mask`` sets a pixel to its mean), so the closed-form optimum uses
  the training set's empirical covariance. Per seed, ``pretrain`` holds ``n_pretrain`` training images
  (samples of that distribution, for encoders trained on samples), ``train`` ``n_train`` labelled
  training images (10% of them per class) and ``test`` ``n_test`` test images, all drawn from the seed.

Baselines: ``optimum`` (the closed-form global minimum), ``gd`` (full-batch gradient descent on the
expected loss from seed 0, with heavy-ball momentum where the task says so,
:mod:`~fmbench.studies.ssl_landscape.train`) and ``random`` (Gaussian
weights, variance ``1 / dim``).

Example:
    >>> import fmbench
    >>> task = fmbench.make_task("fmbench/SSLSpectralNoise-v0")
    >>> scores = task.evaluate(task.load_baseline("optimum"), seed=0, limit=200)
    >>> scores["rank_agreement"], round(scores["spectrum_error"], 6)  # float32 weights against float64 theory
    (1.0, 0.0)
"""

from __future__ import annotations

import abc
import hashlib
from collections.abc import Iterator
from dataclasses import dataclass
from functools import cached_property, lru_cache
from typing import Any

import numpy as np
import torch

from fmbench.fashion_mnist import load_fashion_mnist
from fmbench.interfaces import encode
from fmbench.models import LoadedModel, from_module
from fmbench.random_access import check_seed, normals, stream_key
from fmbench.studies.ssl_landscape.encoders import linear_encoder, two_layer_encoder
from fmbench.studies.ssl_landscape.evaluate import agreement_metrics, collapse_metrics, probe_metrics
from fmbench.studies.ssl_landscape.problems import AUGMENTATIONS, Setting
from fmbench.studies.ssl_landscape.theory import LOSSES, NORMALISATIONS, NoPredictionError, Prediction
from fmbench.studies.ssl_landscape.train import train
from fmbench.task import BOOLEAN, INTEGER, POSITIVE, Task, params_of, stratified_subset

NUMBER = {"type": "number", "minimum": 0}
SIZES = {"n_train": POSITIVE, "n_test": POSITIVE}
SETTING_PARAMS = {
    "dim": POSITIVE,
    "width": POSITIVE,
    "hidden": INTEGER,
    "spectrum": {"type": "array", "items": {"type": "number", "exclusiveMinimum": 0}},
    "decay": NUMBER,
    "n_classes": POSITIVE,
    "class_scale": NUMBER,
    "imbalance": {"type": "number", "exclusiveMinimum": 0, "maximum": 1},
    "augmentation": {"enum": list(AUGMENTATIONS)},
    "strength": NUMBER,
    "loss": {"enum": list(LOSSES)},
    "weight_decay": NUMBER,
    "temperature": {"type": "number", "exclusiveMinimum": 0},
    "mu": {"type": "number", "exclusiveMinimum": 0},
    "bias": BOOLEAN,
    "bias_decay": NUMBER,
    "normalise": {"enum": list(NORMALISATIONS)},
}
BATCH = 4096


def embed(model: LoadedModel, x: np.ndarray, device: str, dim: int | None = None) -> np.ndarray:
    """The encoder's embeddings of ``x`` (float32 batches), checked: one row per input, a fixed width, finite."""
    out, width = [], dim
    with torch.inference_mode():
        for start in range(0, len(x), BATCH):
            batch = torch.from_numpy(np.ascontiguousarray(x[start : start + BATCH], dtype=np.float32)).to(device)
            z = encode(model.model, batch, len(batch), width, f"{model.spec}: inputs {start}-{start + len(batch) - 1}")
            width = z.shape[1]
            out.append(z.numpy().astype(np.float64))
    return np.concatenate(out)


class _EncoderTask(Task):
    """The evaluator shared by both sources; a source provides inputs, labels and its setting."""

    splits = ("pretrain", "train", "test")
    baseline_schema = {"steps": POSITIVE, "momentum": {"type": "number", "minimum": 0, "exclusiveMaximum": 1}}
    """``steps``: the ``gd`` baseline's budget of gradient steps (default 200,000, or a gradient norm of 1e-9);
    ``momentum``: its heavy-ball momentum (default 0, plain gradient descent)."""
    min_limit = 10  # one test item of each class (at most 10 classes), so every probe metric is defined

    @property
    @abc.abstractmethod
    def setting(self) -> Setting:
        """The landscape this task's baselines and predictions come from."""

    @abc.abstractmethod
    def inputs(self, split: str, seed: int, index: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """``(x, y)`` of items ``index`` of ``split`` (labels -1 for ``pretrain``)."""

    def centre(self) -> np.ndarray:
        """The pretraining data's mean, which the baselines subtract (0 for generated data)."""
        return np.zeros(self.setting.dim)

    def split_size(self, split: str) -> int:
        self.check_split(split)
        return self.spec.params[f"n_{split}"]

    def export_chunks(self, split: str, seed: int) -> Iterator[dict[str, np.ndarray]]:
        """``ids``, ``x`` (float32 ``(n, dim)``) and, except for ``pretrain``, ``label``, in chunks of 4,096."""
        self.check_split(split)
        n = self.split_size(split)
        for start in range(0, n, BATCH):
            index = np.arange(start, min(n, start + BATCH))
            x, y = self.inputs(split, check_seed(seed), index)
            cols = {"ids": index, "x": x.astype(np.float32)}
            if split != "pretrain":
                cols["label"] = y
            yield cols

    def data_hash(self, seed: int) -> str:
        h = hashlib.sha256(self.id.encode())
        for split in self.splits:
            for cols in self.export_chunks(split, seed):
                for key in sorted(cols):
                    h.update(key.encode())
                    h.update(np.ascontiguousarray(cols[key]).tobytes())
        return h.hexdigest()

    def prediction(self) -> Prediction:
        """The closed-form global minimum (cached)."""
        return _prediction(self.setting)

    def stats(self, seed: int) -> dict[str, Any]:
        out: dict[str, Any] = {"task": self.id, "seed": seed, "setting": self.setting.describe()}
        try:
            p = self.prediction()
            out["prediction"] = {"rank": p.rank, "covariance": np.round(p.covariance, 6).tolist()}
        except NoPredictionError as e:
            out["prediction"] = str(e)
        for split in ("train", "test"):
            y = self.inputs(split, seed, np.arange(self.split_size(split)))[1]
            out[split] = {"items": len(y), "per_class": np.bincount(y).tolist()}
        return out

    def input_format(self) -> str:
        return (
            f"A vector encoder: float32 (B, {self.setting.dim}) inputs -> float embeddings (B, k), any fixed k; "
            "scored frozen on the test split's clean (unaugmented) inputs."
        )

    def check_model(self, model: LoadedModel) -> None:
        x = self.inputs("test", 0, np.arange(4))[0]
        self.interface.check(model, inputs=torch.from_numpy(x.astype(np.float32)))

    def load_baseline(self, name: str) -> LoadedModel:
        self.baseline_entry(name)
        s, centre = self.setting, self.centre()
        if name == "optimum":
            p = self.prediction()
            module = _module(p.weights, p.bias, p.layers, centre)
        elif name == "gd":
            entry = self.baseline_entry(name)
            fit = _fit(s, entry.get("steps", 200_000), float(entry.get("momentum", 0.0)))
            module = _module(fit.weights, fit.bias, fit.layers, centre)
        else:  # random
            w = normals(stream_key("ssl_landscape.random", self.id), np.arange(s.width), s.dim) / np.sqrt(s.dim)
            module = _module(w, None, None, centre)
        return from_module(module, f"baseline:{name}", name, interface="vector-encoder")

    def evaluate(
        self,
        model: LoadedModel,
        seed: int,
        *,
        device: str = "cpu",
        batch_size: int = BATCH,
        limit: int | None = None,
        progress: bool = False,
    ) -> dict[str, float]:
        seed = check_seed(seed)
        labels = self.inputs("test", seed, np.arange(self.split_size("test")))[1]
        x, y = self.inputs("test", seed, stratified_subset(labels, limit))
        z = embed(model, x, device)
        out = collapse_metrics(z, min(z.shape[1], self.setting.dim))
        metrics = self.spec.metrics
        if "rank_agreement" in metrics:
            p = self.prediction()
            z_star = (x - self.centre()) @ p.weights.T + (0 if p.bias is None else p.bias)
            out |= agreement_metrics(z, z_star, p.rank)
        if "probe_accuracy" in metrics:
            xt, yt = self.inputs("train", seed, np.arange(self.split_size("train")))
            zt = embed(model, xt, device, z.shape[1])
            out |= probe_metrics(zt, yt, z, y, self.minority())
        return {k: v for k, v in out.items() if k in metrics}

    def minority(self) -> int:
        """The class whose probe accuracy ``probe_minority_accuracy`` reports."""
        return self.setting.n_classes - 1


@lru_cache(maxsize=64)
def _prediction(setting: Setting) -> Prediction:
    return setting.predict()


@lru_cache(maxsize=64)
def _fit(setting: Setting, steps: int, momentum: float):  # noqa: ANN202 - a Fit, cached per setting
    return train(setting, seed=0, tol=1e-9, max_steps=steps, momentum=momentum)


def _module(w: np.ndarray, bias: np.ndarray | None, layers: tuple | None, centre: np.ndarray) -> torch.nn.Module:
    """An encoder ``z = W (x - centre) + bias`` (two bias-free layers when ``layers`` is given and ``centre`` is 0)."""
    if layers is not None and not centre.any():
        return two_layer_encoder(*layers)
    return linear_encoder(w, (0 if bias is None else bias) - w @ centre)


class LandscapeTask(_EncoderTask):
    """A generated linear-SSL problem; its parameters are :class:`Setting`'s fields plus the split sizes."""

    params_schema = params_of({**SETTING_PARAMS, **SIZES, "n_pretrain": POSITIVE}, required=("n_pretrain", *SIZES))

    @cached_property
    def setting(self) -> Setting:
        return Setting.from_params(self.spec.params)

    def inputs(self, split: str, seed: int, index: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        x, y = self.setting.sample(seed, split, index)
        return x, (np.full(len(x), -1) if split == "pretrain" else y)


@lru_cache(maxsize=4)
def pooled_fashion_mnist(split: str, pool: int) -> tuple[np.ndarray, np.ndarray]:
    """Fashion-MNIST ``split`` as ``(n, (28 / pool)^2)`` float64 pixel averages in [0, 1], and the labels."""
    images, labels = load_fashion_mnist(split)
    side = 28 // pool
    sums = images.reshape(len(images), side, pool, side, pool).sum(axis=(2, 4), dtype=np.uint32)
    return sums.reshape(len(images), side * side) / (255.0 * pool * pool), labels.astype(np.int64)


@dataclass(frozen=True)
class FashionSetting(Setting):
    """A :class:`Setting` on Fashion-MNIST pooled by ``pool``: its moment is the training set's pixel covariance."""

    pool: int = 2

    def data_moment(self) -> np.ndarray:
        x = pooled_fashion_mnist("train", self.pool)[0]
        xc = x - x.mean(axis=0)
        return xc.T @ xc / len(x)

    @property
    def gaussian(self) -> bool:
        return False


class FashionLandscapeTask(_EncoderTask):
    """The real-data track: a linear SSL landscape on pooled Fashion-MNIST pixels."""

    params_schema = params_of(
        {
            "pool": {"enum": [1, 2, 4, 7]},
            "width": POSITIVE,
            "augmentation": {"enum": list(AUGMENTATIONS)},
            "strength": NUMBER,
            "loss": {"enum": list(LOSSES)},
            "weight_decay": NUMBER,
            "temperature": {"type": "number", "exclusiveMinimum": 0},
            "mu": {"type": "number", "exclusiveMinimum": 0},
            "n_pretrain": POSITIVE,
            **SIZES,
        },
        required=("pool", "width", "n_pretrain", *SIZES),
    )

    @cached_property
    def setting(self) -> Setting:
        p = dict(self.spec.params)
        pool = p.pop("pool")
        for key in ("n_pretrain", "n_train", "n_test"):
            p.pop(key)
        return FashionSetting(dim=(28 // pool) ** 2, n_classes=10, pool=pool, **p)

    def centre(self) -> np.ndarray:
        return pooled_fashion_mnist("train", self.spec.params["pool"])[0].mean(axis=0)

    def split_size(self, split: str) -> int:
        self.check_split(split)
        n = self.spec.params[f"n_{split}"]
        return min(n, len(pooled_fashion_mnist("test" if split == "test" else "train", self.spec.params["pool"])[1]))

    def rows(self, split: str, seed: int) -> np.ndarray:
        """Which images of the source split make up ``split`` for ``seed``: a seeded draw of ``n_<split>``
        training images (``train``: the same number of each class) or test images (``test``)."""
        labels = pooled_fashion_mnist("test" if split == "test" else "train", self.spec.params["pool"])[1]
        n = self.split_size(split)
        order = np.argsort(normals(stream_key("ssl_landscape.fashion", seed, split), np.arange(len(labels)), 1)[:, 0])
        if split != "train":
            return order[:n]
        per_class = [order[labels[order] == c][: -(-n // 10)] for c in range(10)]
        return np.stack(per_class, axis=1).reshape(-1)[:n]

    def inputs(self, split: str, seed: int, index: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        x, y = pooled_fashion_mnist("test" if split == "test" else "train", self.spec.params["pool"])
        rows = self.rows(split, check_seed(seed))[index]
        return x[rows], (np.full(len(rows), -1) if split == "pretrain" else y[rows])

    def minority(self) -> int:
        return 0  # Fashion-MNIST is balanced: class 0 (T-shirt/top) stands in
