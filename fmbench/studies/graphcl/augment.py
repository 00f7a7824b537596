"""Graph augmentations for contrastive learning, applied to whole mini-batches with per-graph draws.

Each augmentation takes a torch_geometric ``Batch`` (or a single ``Data``) and a
``torch.Generator`` and returns a new batch; every node / edge draws its own random number,
so each graph is augmented independently, in one vectorised pass over the batch, and the
result depends only on the generator's seed. Undirected edges (stored in both directions)
are kept or dropped together. Generic augmentations: :func:`drop_edges`, :func:`drop_nodes`,
:func:`subgraph`, :func:`mask_features`, :func:`perturb_edges`; task-relevant:
:func:`drop_style_edges` (only edges labelled style, ``edge_label == -1``, on the synthetic
graphs) and :func:`jitter_features` (intensity jitter on the superpixel graphs).

Example:
    >>> from torch_geometric.data import Batch
    >>> from fmbench.studies.graphcl.generator import GraphConfig, synthetic_graph
    >>> batch = Batch.from_data_list([synthetic_graph(GraphConfig(), 0, c, 0) for c in range(6)])
    >>> view = drop_edges(batch, 0.2, torch.Generator().manual_seed(0))
    >>> view.num_graphs, view.edge_index.shape[1] < batch.edge_index.shape[1]
    (6, True)
"""

from __future__ import annotations

import torch
from torch_geometric.data import Data


def _check_ratio(ratio: float) -> None:
    if not 0.0 <= ratio < 1.0:
        raise ValueError(f"augmentation ratio must be in [0, 1), got {ratio}")


def _graph_of_node(batch: Data) -> torch.Tensor:
    """Each node's graph index (all 0 for a single ``Data``)."""
    if "batch" in batch and batch.batch is not None:
        return batch.batch
    return torch.zeros(batch.num_nodes, dtype=torch.long)


def _undirected_keep(edge_index: torch.Tensor, keep_prob: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
    """A keep mask over directed edges drawn once per undirected edge (both directions agree)."""
    lo, hi = torch.minimum(edge_index[0], edge_index[1]), torch.maximum(edge_index[0], edge_index[1])
    pairs, inverse = torch.unique(
        lo * (int(edge_index.max()) + 1 if edge_index.numel() else 1) + hi, return_inverse=True
    )
    draws = torch.rand(len(pairs), generator=generator)
    return draws[inverse] < keep_prob


def _with_edges(batch: Data, mask: torch.Tensor) -> Data:
    out = batch.clone()
    out.edge_index = batch.edge_index[:, mask]
    for key in ("edge_label", "edge_attr"):
        if key in batch:
            out[key] = batch[key][mask]
    return out


def drop_edges(batch: Data, ratio: float, generator: torch.Generator) -> Data:
    """Remove each undirected edge with probability ``ratio``."""
    _check_ratio(ratio)
    return _with_edges(batch, _undirected_keep(batch.edge_index, torch.tensor(1.0 - ratio), generator))


def drop_style_edges(batch: Data, ratio: float, generator: torch.Generator) -> Data:
    """Remove each *style* edge (``edge_label == -1``) with probability ``ratio``; content edges stay.

    Raises ``ValueError`` when the batch has no ``edge_label`` (only the synthetic graphs have it).
    """
    _check_ratio(ratio)
    if "edge_label" not in batch:
        raise ValueError("drop_style_edges needs edge_label (+1 content / -1 style) on every edge")
    keep_prob = torch.where(batch.edge_label == -1, 1.0 - ratio, 1.0)
    return _with_edges(batch, _undirected_keep(batch.edge_index, keep_prob, generator))


def _keep_nodes(batch: Data, keep: torch.Tensor) -> Data:
    """The sub-batch induced by the nodes where ``keep`` is true (ids renumbered, ``batch``/``ptr`` updated)."""
    graph = _graph_of_node(batch)
    new_id = torch.cumsum(keep.long(), 0) - 1
    out = _with_edges(batch, keep[batch.edge_index[0]] & keep[batch.edge_index[1]])
    out.edge_index = new_id[out.edge_index]
    out.x = batch.x[keep]
    out.num_nodes = int(keep.sum())
    if "pos" in batch and batch.pos is not None:
        out.pos = batch.pos[keep]
    if "batch" in batch and batch.batch is not None:
        out.batch = graph[keep]
        out.ptr = torch.cat(
            [torch.zeros(1, dtype=torch.long), torch.cumsum(torch.bincount(out.batch, minlength=len(batch.ptr) - 1), 0)]
        )
    return out


def drop_nodes(batch: Data, ratio: float, generator: torch.Generator) -> Data:
    """Remove each node (and its edges) with probability ``ratio``; every graph keeps one node at least."""
    _check_ratio(ratio)
    n = batch.num_nodes
    keep = torch.rand(n, generator=generator) >= ratio
    graph = _graph_of_node(batch)
    n_graphs = int(graph.max()) + 1 if n else 0
    kept = torch.zeros(n_graphs, dtype=torch.long).scatter_add_(0, graph, keep.long())
    first = torch.full((n_graphs,), n, dtype=torch.long).scatter_reduce_(0, graph, torch.arange(n), "amin")
    keep[first[kept == 0]] = True  # a graph that would lose every node keeps its first one
    return _keep_nodes(batch, keep)


def subgraph(batch: Data, ratio: float, generator: torch.Generator) -> Data:
    """Keep a connected subgraph of about ``1 - ratio`` of each graph's nodes, grown from a random node.

    From one random start node per graph, rounds of expansion add randomly chosen neighbours
    of the kept set until the graph reaches ``ceil((1 - ratio) * n)`` nodes or its start
    node's component is exhausted (GraphCL's subgraph augmentation, batched).
    """
    _check_ratio(ratio)
    n = batch.num_nodes
    graph = _graph_of_node(batch)
    sizes = torch.bincount(graph)
    ptr = torch.cat([torch.zeros(1, dtype=torch.long), torch.cumsum(sizes, 0)])
    target = torch.ceil((1.0 - ratio) * sizes).long().clamp(min=1)
    start = ptr[:-1] + (torch.rand(len(sizes), generator=generator) * sizes).long().clamp(max=sizes - 1)
    keep = torch.zeros(n, dtype=torch.bool)
    keep[start[sizes > 0]] = True
    src, dst = batch.edge_index
    while True:
        need = target - torch.zeros_like(sizes).scatter_add_(0, graph, keep.long())
        frontier = torch.unique(dst[keep[src] & ~keep[dst]])
        frontier = frontier[need[graph[frontier]] > 0]
        if len(frontier) == 0:
            return _keep_nodes(batch, keep)
        # random order within each graph; take the first `need` frontier nodes of every graph
        order = torch.argsort(torch.rand(len(frontier), generator=generator))
        order = order[torch.argsort(graph[frontier[order]], stable=True)]
        ranked = frontier[order]
        g = graph[ranked]
        first = torch.searchsorted(g, g)
        rank = torch.arange(len(ranked)) - first
        keep[ranked[rank < need[g]]] = True


def mask_features(batch: Data, ratio: float, generator: torch.Generator) -> Data:
    """Zero each node-feature column with probability ``ratio``, drawn per graph (GraphCL's masking)."""
    _check_ratio(ratio)
    graph = _graph_of_node(batch)
    n_graphs = int(graph.max()) + 1 if batch.num_nodes else 0
    keep = torch.rand(n_graphs, batch.x.shape[1], generator=generator) >= ratio
    out = batch.clone()
    out.x = batch.x * keep[graph].to(batch.x.dtype)
    return out


def jitter_features(batch: Data, strength: float, generator: torch.Generator, columns: tuple[int, ...] = (0,)) -> Data:
    """Per graph, scale ``columns`` of ``x`` by ``1 + u`` and shift them by ``v``, ``u, v ~ U(-strength, strength)``.

    The task-relevant augmentation of the superpixel graphs (an intensity / colour jitter:
    column 0 is intensity); results are clipped to ``[0, 1]`` and other columns (position)
    are untouched.
    """
    if not 0.0 <= strength < 1.0:
        raise ValueError(f"jitter strength must be in [0, 1), got {strength}")
    graph = _graph_of_node(batch)
    n_graphs = int(graph.max()) + 1 if batch.num_nodes else 0
    scale = 1.0 + (2 * torch.rand(n_graphs, len(columns), generator=generator) - 1) * strength
    shift = (2 * torch.rand(n_graphs, len(columns), generator=generator) - 1) * strength
    out = batch.clone()
    cols = list(columns)
    out.x = batch.x.clone()
    out.x[:, cols] = (batch.x[:, cols] * scale[graph] + shift[graph]).clamp(0.0, 1.0).to(batch.x.dtype)
    return out


def perturb_edges(batch: Data, ratio: float, generator: torch.Generator) -> Data:
    """Drop each undirected edge with probability ``ratio`` and add as many random edges, per graph.

    Added edges join two distinct nodes of the same graph (possibly ones already joined) and
    are labelled style (-1) when the batch carries ``edge_label``.
    """
    dropped = drop_edges(batch, ratio, generator)
    removed = (batch.edge_index.shape[1] - dropped.edge_index.shape[1]) // 2
    graph = _graph_of_node(batch)
    sizes = torch.bincount(graph)
    eligible = torch.nonzero(sizes >= 2).flatten()
    if removed == 0 or len(eligible) == 0:
        return dropped
    ptr = torch.cat([torch.zeros(1, dtype=torch.long), torch.cumsum(sizes, 0)])
    which = eligible[torch.randint(len(eligible), (removed,), generator=generator)]
    size = sizes[which]
    a = (torch.rand(removed, generator=generator) * size).long()
    b = (a + 1 + (torch.rand(removed, generator=generator) * (size - 1)).long()) % size  # b != a
    src, dst = ptr[which] + a, ptr[which] + b
    out = dropped
    out.edge_index = torch.cat([dropped.edge_index, torch.stack([torch.cat([src, dst]), torch.cat([dst, src])])], 1)
    if "edge_label" in batch:
        out.edge_label = torch.cat([dropped.edge_label, torch.full((2 * removed,), -1, dtype=dropped.edge_label.dtype)])
    return out
