"""Contrastive losses shared by the self-supervised studies (graph CL, federated SimCLR)."""

from __future__ import annotations

import torch
from torch.nn import functional as F


def nt_xent(z1: torch.Tensor, z2: torch.Tensor, temperature: float = 0.2) -> torch.Tensor:
    """NT-Xent between two views: row ``i`` of ``z1`` and of ``z2`` are positives, all else negatives.

    Example:
        >>> z = torch.eye(3)
        >>> bool(nt_xent(z, z) < nt_xent(z, z.roll(1, 0)))
        True
    """
    z = F.normalize(torch.cat([z1, z2]), dim=1)
    n = len(z1)
    sim = z @ z.T / temperature
    sim = sim.masked_fill(torch.eye(2 * n, dtype=torch.bool, device=z.device), float("-inf"))
    target = torch.cat([torch.arange(n, 2 * n), torch.arange(n)]).to(z.device)
    return F.cross_entropy(sim, target)
