"""Graph-encoder probing tasks: how much class information do frozen graph embeddings carry?

A task fixes a graph source and, per evaluation seed, three splits of labelled graphs:
``pretrain`` (for self-supervised training of the encoder; its labels must not be used),
``train`` (fits the probes) and ``test`` (scores them). Sources:

* ``motifs`` (:class:`MotifTask`): fmbench's synthetic content-motif graphs
  (:mod:`~fmbench.studies.graphcl.generator`) at a style:content ``multiplier`` on a
  ``tree``, ``ba`` or ``ba-mixed`` background, with the ``varied`` or the ``degree-matched``
  motif set (default ``varied``); the task-relevant augmentation removes style edges.
* ``fashion-mnist`` (:class:`SuperpixelTask`): superpixel graphs of Fashion-MNIST images
  (:mod:`~fmbench.studies.graphcl.superpixels`); the generic augmentation drops nodes, the
  task-relevant one drops nodes and jitters intensity (arXiv:2111.03220's colourising).

Any graph encoder (``torch.nn.Module``: ``Batch`` -> ``(num_graphs, d)``) is scored by
:func:`~fmbench.studies.graphcl.protocol.evaluate_encoder`, which stores the untrained twin's
scores beside the model's in every result.

Example:
    >>> import fmbench
    >>> task = fmbench.make_task("fmbench/GraphMotifsTreeX1-v1")
    >>> scores = task.evaluate(task.load_baseline("untrained"), seed=0, limit=12)
    >>> 0 <= scores["probe_accuracy"] <= 1
    True
"""

from __future__ import annotations

import abc
import hashlib
from collections.abc import Iterator
from functools import lru_cache
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch_geometric.data import Batch, Data

from fmbench.export import ragged
from fmbench.fashion_mnist import load_fashion_mnist
from fmbench.interfaces import seeded
from fmbench.models import LoadedModel, from_module, load_baseline_checkpoint
from fmbench.nn.gin import GIN, GINConfig
from fmbench.random_access import check_seed, stream_key
from fmbench.studies.graphcl.audit import Audit, audit_task, shipped_audit
from fmbench.studies.graphcl.augment import drop_edges, drop_nodes, drop_style_edges, jitter_features
from fmbench.studies.graphcl.generator import BACKGROUNDS, MOTIF_SETS, MOTIFS, GraphConfig, synthetic_graph
from fmbench.studies.graphcl.protocol import Augmentation, evaluate_encoder
from fmbench.studies.graphcl.superpixels import superpixel_graphs
from fmbench.task import POSITIVE, Task, params_of, stratified_subset

HERE = Path(__file__).parent
SPLITS = ("pretrain", "train", "test")
COMMON_PARAMS = {
    "pretrain_size": POSITIVE,
    "train_per_class": POSITIVE,
    "test_per_class": POSITIVE,
    "augment_ratio": {"type": "number", "minimum": 0, "exclusiveMaximum": 1},
}


class GraphProbeTask(Task):
    """Shared split handling, export, hashing and evaluation; subclasses say where graphs come from."""

    splits = SPLITS
    n_classes: int
    baseline_schema = {"augment": {"enum": ["generic", "relevant"]}}
    """``augment``: the GraphCL checkpoint trained with that augmentation (none: the untrained encoder)."""

    # ---- what a source provides -------------------------------------------------------------
    @abc.abstractmethod
    def labels(self, split: str, seed: int) -> np.ndarray:
        """The class of each graph of the split, in :meth:`graphs` order (without building the graphs)."""

    @abc.abstractmethod
    def graphs(self, split: str, seed: int, rows: np.ndarray | None = None) -> list[Data]:
        """The split's graphs for ``seed`` (only those at ``rows``, if given)."""

    @abc.abstractmethod
    def graph_ids(self, split: str, seed: int) -> np.ndarray:
        """A stable int64 id of each graph of the split, in :meth:`graphs` order."""

    @abc.abstractmethod
    def relevant_augmentation(self, batch: Batch, generator: torch.Generator) -> Batch:
        """The task-relevant (content-preserving) augmentation of this source."""

    @abc.abstractmethod
    def generic_augmentation(self, batch: Batch, generator: torch.Generator) -> Batch:
        """The generic augmentation GraphCL-style baselines train with on this source."""

    # ---- data -----------------------------------------------------------------------------------
    def split_size(self, split: str) -> int:
        self.check_split(split)
        p = self.spec.params
        return p["pretrain_size"] if split == "pretrain" else p[f"{split}_per_class"] * self.n_classes

    def export_chunks(self, split: str, seed: int) -> Iterator[dict[str, np.ndarray]]:
        """Graphs in chunks of 1,000, each at its own size: ``ids`` (:meth:`graph_ids`), ``num_nodes``,
        ``num_directed_edges`` (both directions of every edge), ``x`` (node features, ``(num_nodes, F)``),
        ``edges`` (``(num_directed_edges, 2)`` local node ids: the transposed ``edge_index``) and, except
        for ``pretrain``, ``label``."""
        self.check_split(split)
        graphs, ids = self.graphs(split, check_seed(seed)), self.graph_ids(split, seed)
        for start in range(0, len(graphs), 1000):
            chunk = graphs[start : start + 1000]
            cols = {
                "ids": ids[start : start + len(chunk)],
                "num_nodes": np.array([g.num_nodes for g in chunk]),
                "num_directed_edges": np.array([g.edge_index.shape[1] for g in chunk]),
                "x": ragged([g.x.numpy() for g in chunk]),
                "edges": ragged([g.edge_index.numpy().T for g in chunk]),
            }
            if split != "pretrain":
                cols["label"] = np.array([int(g.y) for g in chunk])
            yield cols

    def data_hash(self, seed: int) -> str:
        h = hashlib.sha256(self.id.encode())
        for split in self.splits:
            for g in self.graphs(split, check_seed(seed)):
                for t in (g.x, g.edge_index, g.y):
                    h.update(t.numpy().tobytes())
        return h.hexdigest()

    def stats(self, seed: int) -> dict[str, Any]:
        """Per split: graphs, graphs per class, and min/mean/max of nodes and of ``directed_edges`` (both
        directions of every edge, as the export's ``num_directed_edges`` counts them)."""
        out: dict[str, Any] = {"task": self.id, "seed": seed}
        for split in self.splits:
            graphs = self.graphs(split, check_seed(seed))
            nodes = np.array([g.num_nodes for g in graphs])
            edges = np.array([g.edge_index.shape[1] for g in graphs])
            labels = np.bincount([int(g.y) for g in graphs], minlength=self.n_classes)
            out[split] = {
                "graphs": len(graphs),
                "per_class": labels.tolist(),
                "nodes": {"min": int(nodes.min()), "mean": float(nodes.mean()), "max": int(nodes.max())},
                "directed_edges": {"min": int(edges.min()), "mean": float(edges.mean()), "max": int(edges.max())},
            }
        return out

    def shortcut_audit(self, seed: int = 0) -> Audit:
        """Simple classifiers on statistics that should not tell the class, on ``seed``'s train/test splits
        (:mod:`~fmbench.studies.graphcl.audit`; ``fmbench audit ID``)."""
        return audit_task(self, check_seed(seed))

    def describe(self) -> dict[str, Any]:
        """The task's description, with the shipped shortcut audit of seed 0."""
        return {**super().describe(), "shortcut_audit": shipped_audit(self)}

    # ---- models ---------------------------------------------------------------------------------
    @property
    def feature_dim(self) -> int:
        return int(self.graphs("test", 0, rows=np.array([0]))[0].x.shape[1])

    def input_format(self) -> str:
        return (
            f"A graph encoder: a torch.nn.Module called on a torch_geometric Batch (x float "
            f"(num_nodes, {self.feature_dim}), edge_index int64 (2, E) with both directions of every edge, "
            "batch int64 (num_nodes,), num_graphs) returning float embeddings (num_graphs, d), d fixed. It is "
            "used frozen (eval mode, no gradients); it must be a module so that its untrained twin "
            "(same architecture, re-initialised) can be scored beside it."
        )

    def check_model(self, model: LoadedModel) -> None:
        self.interface.check(model, graphs=self.graphs("test", 0, rows=np.array([0])))

    def load_baseline(self, name: str) -> LoadedModel:
        entry = self.baseline_entry(name)
        if "augment" not in entry:  # the untrained encoder, initialised with seed 0
            encoder = seeded(lambda: GIN(GINConfig(in_dim=self.feature_dim)), 0)
            return from_module(encoder, f"baseline:{name}", name, interface=self.spec.interface)
        return load_baseline_checkpoint(self, name, checkpoint_path(self, entry["augment"]))

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
        """``limit`` scores that many ``test`` graphs with probes fitted on that many ``train`` graphs, each a
        class-balanced subset (:func:`~fmbench.task.stratified_subset`)."""
        seed = check_seed(seed)
        train, test = (
            self.graphs(split, seed, stratified_subset(self.labels(split, seed), limit)) for split in ("train", "test")
        )
        return evaluate_encoder(
            model.model,
            train,
            test,
            seed=seed,
            relevant=self.relevant_augmentation,
            generic=self.generic_augmentation,
            batch_size=batch_size,
            device=device,
            progress=progress,
        )


class MotifTask(GraphProbeTask):
    """Synthetic content-motif graphs; graph ``i`` of class ``c`` is generator index ``i`` (pretrain
    first, then train, then test) for the seed."""

    n_classes = len(MOTIFS)
    min_limit = 2 * n_classes  # two graphs of every class: separability needs a same-class neighbour
    params_schema = params_of(
        {
            **COMMON_PARAMS,
            "multiplier": {"type": "number", "exclusiveMinimum": 0},
            "background": {"enum": list(BACKGROUNDS)},
            "motifs": {"enum": list(MOTIF_SETS)},
        },
        required=(*COMMON_PARAMS, "multiplier", "background"),
    )

    @property
    def config(self) -> GraphConfig:
        p = self.spec.params
        return GraphConfig(
            multiplier=float(p["multiplier"]), background=p["background"], motifs=p.get("motifs", "varied")
        )

    def _range(self, split: str) -> tuple[int, int]:
        """The split's first generator index and its number of graphs per class."""
        self.check_split(split)
        p = self.spec.params
        per_class = {
            "pretrain": p["pretrain_size"] // self.n_classes,
            "train": p["train_per_class"],
            "test": p["test_per_class"],
        }
        first = {"pretrain": 0, "train": per_class["pretrain"], "test": per_class["pretrain"] + per_class["train"]}
        return first[split], per_class[split]

    def labels(self, split: str, seed: int) -> np.ndarray:
        return np.repeat(np.arange(self.n_classes), self._range(split)[1])

    def _coordinates(self, split: str, rows: np.ndarray | None) -> tuple[np.ndarray, np.ndarray]:
        """Class and generator index of the split's graphs at ``rows`` (all if ``None``)."""
        first, n = self._range(split)
        rows = np.arange(n * self.n_classes) if rows is None else np.asarray(rows)
        return rows // n, first + rows % n

    def graphs(self, split: str, seed: int, rows: np.ndarray | None = None) -> list[Data]:
        classes, index = self._coordinates(split, rows)
        return _motif_graphs(self.config, check_seed(seed), tuple(zip(classes.tolist(), index.tolist())))

    def graph_ids(self, split: str, seed: int) -> np.ndarray:
        """``(seed * 6 + class) * 10**6 + generator index``: the graph's generator coordinates."""
        first, n = self._range(split)
        if first + n > 10**6:
            raise ValueError(f"{self.id}: more than 10**6 graphs per class do not fit the id scheme")
        classes, index = self._coordinates(split, None)
        return (check_seed(seed) * self.n_classes + classes) * 10**6 + index

    def relevant_augmentation(self, batch: Batch, generator: torch.Generator) -> Batch:
        return drop_style_edges(batch, self.spec.params["augment_ratio"], generator)

    def generic_augmentation(self, batch: Batch, generator: torch.Generator) -> Batch:
        return drop_edges(batch, self.spec.params["augment_ratio"], generator)


@lru_cache(maxsize=32)
def _motif_graphs(config: GraphConfig, seed: int, coordinates: tuple[tuple[int, int], ...]) -> list[Data]:
    return [synthetic_graph(config, seed, c, i) for c, i in coordinates]


class SuperpixelTask(GraphProbeTask):
    """Fashion-MNIST superpixel graphs. Per seed, a permutation of the 60,000 training images gives
    ``pretrain`` (its first ``pretrain_size``) and ``train`` (the first ``train_per_class`` of each class
    among the rest); ``test`` takes ``test_per_class`` of each class from a permutation of the 10,000
    test images."""

    n_classes = 10
    min_limit = 2 * n_classes  # two graphs of every class: separability needs a same-class neighbour
    params_schema = params_of({**COMMON_PARAMS, "n_segments": POSITIVE}, required=(*COMMON_PARAMS, "n_segments"))

    def _indices(self, split: str, seed: int) -> tuple[str, np.ndarray]:
        p = self.spec.params
        source = "test" if split == "test" else "train"
        _, labels = load_fashion_mnist(source)
        order = np.random.default_rng([stream_key("graphcl-fashion", source), seed]).permutation(len(labels))
        if split == "pretrain":
            return source, order[: p["pretrain_size"]]
        if split == "train":
            order = order[p["pretrain_size"] :]
        picked = [order[labels[order] == c][: p[f"{split}_per_class"]] for c in range(self.n_classes)]
        return source, np.concatenate(picked)

    def labels(self, split: str, seed: int) -> np.ndarray:
        self.check_split(split)
        source, index = self._indices(split, check_seed(seed))
        return load_fashion_mnist(source)[1][index].astype(np.int64)

    def graphs(self, split: str, seed: int, rows: np.ndarray | None = None) -> list[Data]:
        self.check_split(split)
        source, index = self._indices(split, check_seed(seed))
        index = index if rows is None else index[rows]
        return _superpixels(source, tuple(index.tolist()), self.spec.params["n_segments"])

    def graph_ids(self, split: str, seed: int) -> np.ndarray:
        """The image's index in Fashion-MNIST's training file (``pretrain``, ``train``) or test file."""
        self.check_split(split)
        return self._indices(split, check_seed(seed))[1].astype(np.int64)

    def relevant_augmentation(self, batch: Batch, generator: torch.Generator) -> Batch:
        """Node dropping plus an intensity jitter (a jitter alone makes views too alike: the encoder collapses)."""
        ratio = self.spec.params["augment_ratio"]
        return jitter_features(drop_nodes(batch, ratio, generator), ratio, generator)

    def generic_augmentation(self, batch: Batch, generator: torch.Generator) -> Batch:
        return drop_nodes(batch, self.spec.params["augment_ratio"], generator)


@lru_cache(maxsize=32)
def _superpixels(source: str, index: tuple[int, ...], n_segments: int) -> list[Data]:
    images, labels = load_fashion_mnist(source)
    rows = np.asarray(index, dtype=np.int64)
    return superpixel_graphs(images[rows], labels[rows], n_segments=n_segments)


def augmentation(task: GraphProbeTask, kind: str) -> Augmentation:
    """The task's ``"generic"`` or ``"relevant"`` augmentation."""
    if kind not in ("generic", "relevant"):
        raise ValueError(f"augmentation must be 'generic' or 'relevant', got {kind!r}")
    return task.generic_augmentation if kind == "generic" else task.relevant_augmentation


def checkpoint_path(task: GraphProbeTask, augment: str) -> Path:
    """Where the shipped GraphCL baseline of ``task`` trained with ``augment`` lives (``<name>-<augment>`` for
    version 0, ``<name>-v<N>-<augment>`` after)."""
    version = f"-v{task.spec.version}" if task.spec.version else ""
    return HERE / "checkpoints" / f"{task.spec.name}{version}-{augment}.safetensors"
