"""The evaluation protocol for graph encoders: frozen embeddings, probes, the untrained-twin check.

An encoder is any ``torch.nn.Module`` mapping a torch_geometric ``Batch`` to
``(num_graphs, d)`` embeddings. :func:`evaluate_encoder` embeds the probe's train and test
graphs with the encoder frozen (eval mode, no gradients), fits a logistic-regression
linear probe and an RBF SVM (``C`` chosen by stratified cross-validation on the train
split) on standardised embeddings, and scores both on the test split. It does the same for
the encoder's *untrained twin* (:func:`fmbench.interfaces.untrained_twin`: a copy
re-initialised with a fixed seed, same architecture) so every result carries
arXiv:2111.03220's sanity baseline beside the score. It also measures, on the test graphs (arXiv:2208.02810):

* invariance: mean cosine similarity between a graph's embedding and the embedding of an
  augmented view (averaged over ``repeats`` views), for a task-relevant and a generic
  augmentation;
* separability: per graph, the highest similarity to another graph of its class divided by
  the highest similarity to a graph of another class, averaged. Similarities are
  ``(1 + cos) / 2`` so the ratio is defined for any encoder (the paper divides raw
  cosines, which are non-negative only for non-negative embeddings); above 1 means the
  nearest neighbour is of the same class.

Example:
    >>> from fmbench.nn.gin import GIN, GINConfig
    >>> from fmbench.studies.graphcl.generator import GraphConfig, synthetic_graph
    >>> train = [synthetic_graph(GraphConfig(), 0, c, i) for c in range(6) for i in range(4)]
    >>> test = [synthetic_graph(GraphConfig(), 0, c, i) for c in range(6) for i in range(4, 8)]
    >>> scores = evaluate_encoder(GIN(GINConfig(in_dim=1)), train, test, seed=0)
    >>> 0 <= scores["probe_accuracy"] <= 1, "probe_accuracy_untrained" in scores
    (True, True)
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import torch
from sklearn.model_selection import GridSearchCV, StratifiedKFold
from sklearn.svm import SVC
from torch_geometric.data import Batch, Data
from tqdm.auto import tqdm

from fmbench.interfaces import encode, untrained_twin
from fmbench.probes import linear_probe, standardise
from fmbench.random_access import stream_key
from fmbench.studies.graphcl.augment import drop_edges
from fmbench.studies.graphcl.checks import check_graph

Augmentation = Callable[[Batch, torch.Generator], Batch]
"""A view of a batch drawn with a generator (an augmentation with its ratio bound)."""
SVM_C = (0.01, 0.1, 1.0, 10.0, 100.0)


def generic_view(batch: Batch, generator: torch.Generator) -> Batch:
    """The default generic augmentation for invariance: edge removal at 0.2 (arXiv:2208.02810)."""
    return drop_edges(batch, 0.2, generator)


def batches(graphs: list[Data], batch_size: int) -> list[tuple[int, Batch]]:
    """Consecutive mini-batches ``(first graph index, Batch)`` of ``graphs``."""
    return [(i, Batch.from_data_list(graphs[i : i + batch_size])) for i in range(0, len(graphs), batch_size)]


@torch.no_grad()
def embed(
    encoder: torch.nn.Module,
    graphs: list[Data],
    batch_size: int = 256,
    device: str = "cpu",
    augment: Augmentation | None = None,
    generator_seed: int = 0,
    bar: tqdm | None = None,
) -> torch.Tensor:
    """Frozen embeddings ``(len(graphs), d)``; with ``augment``, of a seeded augmented view of each batch.

    Every graph is checked first (a malformed one raises ``GraphError`` naming its index),
    and every batch's output (wrong shape or NaN raises ``ModelError`` naming the batch).
    A progress ``bar`` advances by one per batch.
    """
    if not graphs:
        raise ValueError("no graphs to embed")
    for i, g in enumerate(graphs):
        check_graph(g, f"graph {i}")
    encoder.eval()
    out: list[torch.Tensor] = []
    for first, batch in batches(graphs, batch_size):
        if augment is not None:
            batch = augment(batch, torch.Generator().manual_seed(stream_key(generator_seed, "view", first)))
        out.append(
            encode(
                encoder,
                batch.to(device),
                batch.num_graphs,
                out[0].shape[1] if out else None,
                f"batch of graphs {first}-{first + batch.num_graphs - 1}",
            )
        )
        if bar is not None:
            bar.update(1)
    return torch.cat(out)


def probe_accuracies(
    train_z: np.ndarray, train_y: np.ndarray, test_z: np.ndarray, test_y: np.ndarray, seed: int
) -> dict[str, float]:
    """Test accuracy of a logistic-regression probe and of an RBF SVM fitted on standardised train embeddings.

    Example:
        >>> z = np.array([[0.0], [0.1], [1.0], [1.1]]); y = np.array([0, 0, 1, 1])
        >>> probe_accuracies(z, y, z, y, seed=0)
        {'probe_accuracy': 1.0, 'svm_accuracy': 1.0}
    """
    probe = linear_probe(train_z, train_y, test_z)
    a, b = standardise(train_z, test_z)
    folds = min(3, int(np.bincount(train_y).min()))
    if folds >= 2:
        svm = GridSearchCV(SVC(), {"C": list(SVM_C)}, cv=StratifiedKFold(folds, shuffle=True, random_state=seed)).fit(
            a, train_y
        )
    else:
        svm = SVC().fit(a, train_y)
    return {"probe_accuracy": float((probe == test_y).mean()), "svm_accuracy": float((svm.predict(b) == test_y).mean())}


def stratified_split(graphs: list[Data], test_fraction: float, seed: int) -> tuple[list[Data], list[Data]]:
    """A seeded split of labelled graphs into train and test, the same fraction of every class in test.

    Example:
        >>> from fmbench.studies.graphcl.generator import GraphConfig, synthetic_graph
        >>> graphs = [synthetic_graph(GraphConfig(), 0, c, i) for c in range(6) for i in range(10)]
        >>> train, test = stratified_split(graphs, 0.2, seed=0)
        >>> len(train), len(test)
        (48, 12)
    """
    if not 0 < test_fraction < 1:
        raise ValueError(f"test_fraction must be in (0, 1), got {test_fraction}")
    labels = np.array([int(g.y.view(-1)[0]) for g in graphs])
    rng = np.random.default_rng([stream_key("graph-split"), seed])
    test = np.zeros(len(graphs), dtype=bool)
    for c in np.unique(labels):
        members = rng.permutation(np.flatnonzero(labels == c))
        test[members[: max(1, round(test_fraction * len(members)))]] = True
    return [g for g, t in zip(graphs, test) if not t], [g for g, t in zip(graphs, test) if t]


def _cosine(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    return torch.nn.functional.cosine_similarity(a, b, dim=-1, eps=1e-12)


def separability(z: torch.Tensor, y: np.ndarray) -> float:
    """Mean over graphs of max similarity to another same-class graph / max to another class's graph.

    Example:
        >>> separability(torch.tensor([[1.0, 0.0], [1.0, 0.1], [0.0, 1.0], [0.1, 1.0]]), np.array([0, 0, 1, 1])) > 1
        True
    """
    labels = torch.as_tensor(y)
    zn = torch.nn.functional.normalize(z.double(), dim=1, eps=1e-12)
    sim = (1 + zn @ zn.T) / 2
    same = labels[:, None] == labels[None, :]
    eye = torch.eye(len(labels), dtype=torch.bool)
    in_class = torch.where(same & ~eye, sim, torch.tensor(-1.0, dtype=sim.dtype)).max(1).values
    out_class = torch.where(~same, sim, torch.tensor(-1.0, dtype=sim.dtype)).max(1).values
    valid = (in_class >= 0) & (out_class >= 0)
    return float((in_class[valid] / out_class[valid].clamp(min=1e-12)).mean())


def invariance(
    encoder: torch.nn.Module,
    graphs: list[Data],
    z: torch.Tensor,
    augment: Augmentation,
    seed: int,
    repeats: int = 3,
    batch_size: int = 256,
    device: str = "cpu",
    bar: tqdm | None = None,
) -> float:
    """Mean cosine similarity between each graph's embedding ``z`` and those of ``repeats`` augmented views."""
    sims = [
        _cosine(z, embed(encoder, graphs, batch_size, device, augment, stream_key(seed, "invariance", r), bar))
        for r in range(repeats)
    ]
    return float(torch.stack(sims).mean())


def evaluate_encoder(
    encoder: torch.nn.Module,
    train: list[Data],
    test: list[Data],
    *,
    seed: int,
    relevant: Augmentation | None = None,
    generic: Augmentation = generic_view,
    repeats: int = 3,
    batch_size: int = 256,
    device: str = "cpu",
    progress: bool = False,
) -> dict[str, float]:
    """The full protocol on labelled ``train`` / ``test`` graphs (``y`` per graph); see the module docstring.

    Returns ``probe_accuracy``, ``svm_accuracy``, their ``*_untrained`` twins and
    ``probe_gain`` (encoder minus twin), ``separability`` (and ``*_untrained``),
    ``invariance_generic`` (under ``generic``) and, with a task-relevant augmentation
    ``relevant``, ``invariance_relevant``. ``progress`` shows a bar on stderr: one step per
    batch embedded, the stage (encoder or twin, embedding, probes, invariance) beside it.
    """
    train_y = np.array([int(g.y.view(-1)[0]) for g in train])
    test_y = np.array([int(g.y.view(-1)[0]) for g in test])
    test_batches = -(-len(test) // batch_size)
    invariances = {"generic": generic, **({"relevant": relevant} if relevant is not None else {})}
    total = 2 * (-(-len(train) // batch_size) + test_batches) + len(invariances) * repeats * test_batches
    bar = tqdm(total=total, disable=not progress, desc=f"seed {seed}", unit="batch", leave=False)
    metrics: dict[str, float] = {}
    for suffix, model in (("", encoder), ("_untrained", untrained_twin(encoder, seed).to(device))):
        who = "untrained twin" if suffix else "encoder"
        bar.set_postfix_str(f"{who}: embedding")
        z_train = embed(model, train, batch_size, device, bar=bar)
        z_test = embed(model, test, batch_size, device, bar=bar)
        bar.set_postfix_str(f"{who}: fitting probes")
        for key, value in probe_accuracies(
            z_train.double().numpy(), train_y, z_test.double().numpy(), test_y, seed
        ).items():
            metrics[key + suffix] = value
        metrics["separability" + suffix] = separability(z_test, test_y)
        if not suffix:
            for name, augment in invariances.items():
                bar.set_postfix_str(f"encoder: invariance ({name})")
                metrics[f"invariance_{name}"] = invariance(
                    model, test, z_test, augment, seed, repeats, batch_size, device, bar
                )
    bar.close()
    metrics["probe_gain"] = metrics["probe_accuracy"] - metrics["probe_accuracy_untrained"]
    return metrics
