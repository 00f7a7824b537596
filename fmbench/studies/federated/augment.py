"""Seeded image augmentations for self-supervised training, drawn per image and applied per batch.

Images are float tensors ``(B, C, H, W)`` in [0, 1]. Every image draws its own parameters
from a ``torch.Generator``, and the whole batch is transformed in one pass (an affine grid
for crops and flips), so a view depends only on the generator's seed.

Example:
    >>> x = torch.rand(4, 1, 28, 28)
    >>> view = simclr_view(x, torch.Generator().manual_seed(0))
    >>> view.shape, bool(torch.equal(view, simclr_view(x, torch.Generator().manual_seed(0))))
    (torch.Size([4, 1, 28, 28]), True)
"""

from __future__ import annotations

import math

import torch
from torch.nn import functional as F


def _uniform(n: int, low: float, high: float, generator: torch.Generator) -> torch.Tensor:
    return low + (high - low) * torch.rand(n, generator=generator)


def resized_crop(
    x: torch.Tensor,
    generator: torch.Generator,
    scale: tuple[float, float] = (0.5, 1.0),
    ratio: tuple[float, float] = (3 / 4, 4 / 3),
    flip: bool = True,
) -> torch.Tensor:
    """A random crop of ``scale`` of the area with aspect ratio in ``ratio``, resized back, flipped half the time."""
    n = len(x)
    area = _uniform(n, *scale, generator)
    log_ratio = _uniform(n, math.log(ratio[0]), math.log(ratio[1]), generator)
    w = torch.sqrt(area * torch.exp(log_ratio)).clamp(max=1.0)
    h = torch.sqrt(area / torch.exp(log_ratio)).clamp(max=1.0)
    cx = (2 * torch.rand(n, generator=generator) - 1) * (1 - w)
    cy = (2 * torch.rand(n, generator=generator) - 1) * (1 - h)
    sign = torch.where(torch.rand(n, generator=generator) < 0.5, -1.0, 1.0) if flip else torch.ones(n)
    theta = torch.zeros(n, 2, 3)
    theta[:, 0, 0], theta[:, 0, 2], theta[:, 1, 1], theta[:, 1, 2] = w * sign, cx, h, cy
    grid = F.affine_grid(theta.to(x.device, x.dtype), list(x.shape), align_corners=False)
    return F.grid_sample(x, grid, align_corners=False, padding_mode="border")


def jitter(x: torch.Tensor, generator: torch.Generator, strength: float = 0.4) -> torch.Tensor:
    """Per image, scale brightness and contrast by factors in ``[1 - strength, 1 + strength]``; clipped to [0, 1]."""
    n = len(x)
    brightness = _uniform(n, 1 - strength, 1 + strength, generator).to(x.device, x.dtype).view(n, 1, 1, 1)
    contrast = _uniform(n, 1 - strength, 1 + strength, generator).to(x.device, x.dtype).view(n, 1, 1, 1)
    mean = x.mean(dim=(1, 2, 3), keepdim=True)
    return ((x * brightness - mean) * contrast + mean).clamp(0.0, 1.0)


def simclr_view(x: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
    """Crop (50-100% of the area), flip and brightness/contrast jitter: a grayscale SimCLR view."""
    return jitter(resized_crop(x, generator), generator)


def rotated(x: torch.Tensor, generator: torch.Generator) -> tuple[torch.Tensor, torch.Tensor]:
    """Each image rotated by a random multiple of 90 degrees, and that multiple (0-3): Orchestra's third view."""
    k = torch.randint(4, (len(x),), generator=generator)
    turns = torch.stack([torch.rot90(x, r, dims=(2, 3)) for r in range(4)])
    return turns[k.to(x.device), torch.arange(len(x), device=x.device)], k
