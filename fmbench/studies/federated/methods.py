"""Self-supervised methods a client trains locally: Orchestra and SimCLR, on the shared CNN backbone.

Each method is a ``torch.nn.Module`` with a ``backbone`` (the encoder that is evaluated),
``loss(images, generator)`` (it draws its own augmented views), ``after_step()`` and two
hooks around a client's local training: ``begin_client()`` and ``end_client(generator)``,
whose returned tensors travel to the server beside the weights (Orchestra's local
centroids). :func:`server_update` applies a method's server-side step after averaging.

Orchestra (arXiv:2205.11506, sized for a CPU): an online backbone + projector, an EMA target
copy, ``n_global`` global centroids that clients keep fixed, a FIFO memory of target
projections, and a rotation-prediction head. The client loss is the cross-entropy between
the target's soft assignment of view 1 to the global centroids and the online network's
assignment of view 2 (temperature ``T``), plus rotation prediction on view 3. After local
training a client clusters its memory into ``n_local`` centroids (Sinkhorn-Knopp balanced
assignments); the server fits the global centroids to all participants' local centroids.

Example:
    >>> m = make_method("simclr", MethodConfig(width=8, embedding_dim=16))
    >>> loss = m.loss(torch.rand(8, 1, 28, 28), torch.Generator().manual_seed(0))
    >>> loss.shape, m.backbone(torch.rand(2, 1, 28, 28)).shape
    (torch.Size([]), torch.Size([2, 16]))
"""

from __future__ import annotations

import copy
from dataclasses import dataclass

import torch
from torch import nn
from torch.nn import functional as F

from fmbench.nn.cnn import CNN, CNNConfig
from fmbench.nn.contrastive import nt_xent
from fmbench.studies.federated.augment import rotated, simclr_view


@dataclass(frozen=True)
class MethodConfig:
    """Backbone and method hyper-parameters (Orchestra's defaults scaled down: 64 global, 8 local clusters)."""

    in_channels: int = 1
    width: int = 32
    embedding_dim: int = 128
    projection_dim: int = 64
    temperature: float = 0.1
    ema: float = 0.996
    n_global: int = 64
    n_local: int = 8
    memory: int = 128


def sinkhorn(scores: torch.Tensor, epsilon: float = 0.05, iterations: int = 10) -> torch.Tensor:
    """Balanced soft assignments of rows to columns (Sinkhorn-Knopp on ``exp(scores / epsilon)``).

    Example:
        >>> q = sinkhorn(torch.randn(8, 4, generator=torch.Generator().manual_seed(0)))
        >>> bool(torch.allclose(q.sum(1), torch.ones(8), atol=1e-5)), q.sum(0).round().tolist()
        (True, [2.0, 2.0, 2.0, 2.0])
    """
    q = torch.exp((scores - scores.max()) / epsilon).T  # (columns, rows)
    q /= q.sum()
    k, n = q.shape
    for _ in range(iterations):
        q /= q.sum(dim=1, keepdim=True) * k
        q /= q.sum(dim=0, keepdim=True) * n
    return (q * n).T


class SimCLR(nn.Module):
    """Backbone + 2-layer projector; NT-Xent between two views (federated: FedAvg of everything)."""

    def __init__(self, config: MethodConfig) -> None:
        super().__init__()
        self.config = config
        self.backbone = CNN(CNNConfig(config.in_channels, config.width, config.embedding_dim))
        d = config.embedding_dim
        self.projector = nn.Sequential(nn.Linear(d, d), nn.ReLU(), nn.Linear(d, config.projection_dim))

    def loss(self, x: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
        a, b = simclr_view(x, generator), simclr_view(x, generator)
        return nt_xent(self.projector(self.backbone(a)), self.projector(self.backbone(b)), self.config.temperature)

    def after_step(self) -> None:
        """Nothing to update between steps."""

    def begin_client(self) -> None:
        """No client state."""

    def end_client(self, generator: torch.Generator) -> dict[str, torch.Tensor]:
        return {}


class Orchestra(nn.Module):
    """Orchestra's model: online and EMA target networks, global centroids, rotation head (see module doc)."""

    def __init__(self, config: MethodConfig) -> None:
        super().__init__()
        self.config = config
        d, p = config.embedding_dim, config.projection_dim
        self.backbone = CNN(CNNConfig(config.in_channels, config.width, d))
        self.projector = nn.Sequential(
            nn.Linear(d, d, bias=False),
            nn.BatchNorm1d(d),
            nn.ReLU(),
            nn.Linear(d, p, bias=False),
            nn.BatchNorm1d(p, affine=False),
        )
        self.target_backbone = copy.deepcopy(self.backbone).requires_grad_(False)
        self.target_projector = copy.deepcopy(self.projector).requires_grad_(False)
        self.rotation_head = nn.Linear(d, 4)
        self.global_centroids = nn.Parameter(F.normalize(torch.randn(config.n_global, p), dim=1), requires_grad=False)
        self.memory = torch.empty(0, p)

    def loss(self, x: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
        t = self.config.temperature
        x1, x2 = simclr_view(x, generator), simclr_view(x, generator)
        x3, turns = rotated(simclr_view(x, generator), generator)
        with torch.no_grad():
            target = F.normalize(self.target_projector(self.target_backbone(x1)), dim=1)
        online = F.normalize(self.projector(self.backbone(x2)), dim=1)
        centroids = F.normalize(self.global_centroids, dim=1)
        assign = F.softmax(target @ centroids.T / t, dim=1)
        cluster = -(assign * F.log_softmax(online @ centroids.T / t, dim=1)).sum(1).mean()
        rotation = F.cross_entropy(self.rotation_head(self.backbone(x3)), turns.to(x.device))
        self.memory = torch.cat([target.detach(), self.memory])[: self.config.memory]
        return cluster + rotation

    @torch.no_grad()
    def after_step(self) -> None:
        """Move the target networks towards the online ones (EMA)."""
        tau = self.config.ema
        for online, target in ((self.backbone, self.target_backbone), (self.projector, self.target_projector)):
            for p, q in zip(online.parameters(), target.parameters()):
                q.mul_(tau).add_(p.detach(), alpha=1 - tau)

    def begin_client(self) -> None:
        """Start the client's memory empty (clients are stateless between rounds)."""
        self.memory = torch.empty(0, self.config.projection_dim)

    @torch.no_grad()
    def end_client(self, generator: torch.Generator) -> dict[str, torch.Tensor]:
        """The client's ``n_local`` centroids of its memory: 5 rounds of balanced assignment and re-centring."""
        memory = self.memory
        k = min(self.config.n_local, len(memory))
        centroids = memory[torch.randperm(len(memory), generator=generator)[:k]].clone()
        for _ in range(5):
            labels = sinkhorn(memory @ centroids.T).argmax(1)
            sums = torch.zeros_like(centroids).index_add_(0, labels, memory)
            filled = torch.bincount(labels, minlength=k) > 0
            centroids[filled] = F.normalize(sums[filled], dim=1)
        return {"local_centroids": centroids}


def fit_global_centroids(model: Orchestra, local: torch.Tensor, steps: int = 200, lr: float = 0.01) -> None:
    """Server step: fit the global centroids to the participants' stacked local centroids.

    Minimises the cross-entropy between balanced (Sinkhorn) assignments of the local centroids
    to the global ones and their softmax assignments, re-normalising the centroids each step.
    """
    centroids = model.global_centroids.detach().clone().requires_grad_(True)
    optimiser = torch.optim.SGD([centroids], lr=lr, momentum=0.9, weight_decay=1e-4)
    z = F.normalize(local, dim=1)
    for _ in range(steps):
        scores = z @ F.normalize(centroids, dim=1).T
        target = sinkhorn(scores.detach())
        loss = -(target * F.log_softmax(scores / model.config.temperature, dim=1)).sum(1).mean()
        optimiser.zero_grad()
        loss.backward()
        optimiser.step()
        with torch.no_grad():
            centroids.copy_(F.normalize(centroids, dim=1))
    model.global_centroids.data.copy_(centroids.detach())


METHODS = {"orchestra": Orchestra, "simclr": SimCLR}


def make_method(name: str, config: MethodConfig) -> nn.Module:
    """A method's model by name (``orchestra`` or ``simclr``)."""
    if name not in METHODS:
        raise ValueError(f"unknown method {name!r}; known: {sorted(METHODS)}")
    return METHODS[name](config)


def server_update(model: nn.Module, extras: list[dict[str, torch.Tensor]]) -> None:
    """The method's server-side step after averaging (Orchestra: global clustering; SimCLR: none)."""
    if isinstance(model, Orchestra):
        local = [e["local_centroids"] for e in extras if "local_centroids" in e and len(e["local_centroids"])]
        if local:
            fit_global_centroids(model, torch.cat(local))
