"""A graph isomorphism network (GIN) graph encoder in plain torch, for mini-batches of graphs.

Layer ``l`` computes ``h' = ReLU(BN(MLP((1 + eps) h + sum of neighbours' h)))``; the graph
embedding mean-pools every layer's node states and concatenates them (jumping knowledge,
"concat"), so its width is ``n_layers * hidden``. It reads any object with ``x``,
``edge_index`` and (for several graphs) ``batch`` and ``num_graphs`` attributes — a
torch_geometric ``Batch`` — and does not need torch_geometric itself.

Example:
    >>> import torch
    >>> from types import SimpleNamespace
    >>> g = SimpleNamespace(x=torch.ones(3, 1), edge_index=torch.tensor([[0, 1], [1, 2]]),
    ...                     batch=torch.zeros(3, dtype=torch.long), num_graphs=1)
    >>> GIN(GINConfig(in_dim=1, hidden=8, n_layers=2))(g).shape
    torch.Size([1, 16])
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import torch
from torch import nn

from fmbench.checkpoints import register_architecture
from fmbench.nn.config import ArchConfig


@dataclass(frozen=True)
class GINConfig(ArchConfig):
    """Hyper-parameters; the defaults are arXiv:2208.02810's encoder (5 layers of width 32)."""

    in_dim: int
    hidden: int = 32
    n_layers: int = 5

    def __post_init__(self) -> None:
        self.check_positive("in_dim", "hidden", "n_layers")


class GIN(nn.Module):
    """GIN encoder: a batch of graphs -> ``(num_graphs, n_layers * hidden)`` embeddings."""

    def __init__(self, config: GINConfig) -> None:
        super().__init__()
        self.config = config
        dims = [config.in_dim] + [config.hidden] * config.n_layers
        self.eps = nn.Parameter(torch.zeros(config.n_layers))
        self.mlps = nn.ModuleList(
            nn.Sequential(nn.Linear(a, b), nn.BatchNorm1d(b), nn.ReLU(), nn.Linear(b, b))
            for a, b in zip(dims, dims[1:])
        )
        self.norms = nn.ModuleList(nn.BatchNorm1d(config.hidden) for _ in range(config.n_layers))

    @property
    def embedding_dim(self) -> int:
        return self.config.n_layers * self.config.hidden

    def forward(self, graphs: Any) -> torch.Tensor:
        x, edge_index = graphs.x, graphs.edge_index
        batch = getattr(graphs, "batch", None)
        if batch is None:
            batch = torch.zeros(x.shape[0], dtype=torch.long, device=x.device)
        n_graphs = int(getattr(graphs, "num_graphs", 1))
        counts = torch.zeros(n_graphs, device=x.device).index_add_(0, batch, torch.ones_like(batch, dtype=x.dtype))
        pooled, h = [], x
        for eps, mlp, norm in zip(self.eps, self.mlps, self.norms):
            neighbours = torch.zeros_like(h).index_add_(0, edge_index[1], h[edge_index[0]])
            h = torch.relu(norm(mlp((1 + eps) * h + neighbours)))
            sums = torch.zeros(n_graphs, h.shape[1], device=h.device, dtype=h.dtype).index_add_(0, batch, h)
            pooled.append(sums / counts.clamp(min=1).unsqueeze(1))
        return torch.cat(pooled, dim=1)


register_architecture("gin", GIN, GINConfig.from_dict, "graph-encoder")
