"""Validation of graphs, with errors that name the culprit.

Every graph a task scores passes through :func:`check_graph`, so a malformed graph fails
with the graph's name instead of deep inside a message-passing layer.

Example:
    >>> import torch
    >>> from torch_geometric.data import Data
    >>> check_graph(Data(x=torch.ones(2, 1), edge_index=torch.tensor([[0], [5]])), "graph 7")
    Traceback (most recent call last):
    ...
    fmbench.studies.graphcl.checks.GraphError: graph 7: edge_index refers to node 5 but the graph has 2 nodes
"""

from __future__ import annotations

import torch
from torch_geometric.data import Data

from fmbench.errors import FmbenchError


class GraphError(FmbenchError, ValueError):
    """A graph that cannot be used: no nodes, no features, or edges to missing nodes."""


def check_graph(graph: Data, name: str) -> None:
    """Raise ``GraphError`` naming ``name`` unless ``graph`` has nodes, float features and valid edges."""
    x = getattr(graph, "x", None)
    if x is None:
        raise GraphError(f"{name}: missing node features (x)")
    if not isinstance(x, torch.Tensor) or x.dim() != 2 or not x.is_floating_point():
        raise GraphError(
            f"{name}: node features x must be a 2-D float tensor, got "
            f"{tuple(x.shape) if isinstance(x, torch.Tensor) else type(x).__name__}"
        )
    n = x.shape[0]
    if n == 0:
        raise GraphError(f"{name}: empty graph (no nodes)")
    if not torch.isfinite(x).all():
        raise GraphError(f"{name}: node features contain NaN or infinity")
    edge_index = getattr(graph, "edge_index", None)
    if edge_index is None:
        raise GraphError(f"{name}: missing edge_index")
    if edge_index.dim() != 2 or edge_index.shape[0] != 2 or edge_index.dtype != torch.long:
        raise GraphError(
            f"{name}: edge_index must be a (2, E) int64 tensor, got {tuple(edge_index.shape)} {edge_index.dtype}"
        )
    if edge_index.numel():
        lo, hi = int(edge_index.min()), int(edge_index.max())
        if lo < 0 or hi >= n:
            bad = lo if lo < 0 else hi
            raise GraphError(f"{name}: edge_index refers to node {bad} but the graph has {n} nodes")
