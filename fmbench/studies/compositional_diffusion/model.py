"""A small conditional DDPM on 28x28 RGB concept images: a reduced version of the authors' ContextUnet.

The UNet goes 28 -> 14 -> 7 -> 14 -> 28 (a convolution at 28 px, residual blocks of width ``width``
and ``2 * width`` at 14 and 7 px, skip connections); as in the authors' ContextUnet, the condition
enters multiplicatively and the time additively at 7 and 14 px (``h * (1 + c_emb) + t_emb``). The
condition is the paper's: shape one-hot (2), RGB colour (3), size scalar (1), and with a 4th concept
the background RGB (3).
Training follows DDPM (T steps, linear betas 1e-4..0.02) but the network predicts the clean image, not
the noise (the authors' choice): a model this small fails to remove the last noise when predicting it,
and leaves visibly noisy samples after a thousand steps (measured); sampling is deterministic
DDIM (eta 0) on ``sample_steps`` evenly spaced steps, from noise drawn with ``torch.Generator(seed)``,
so the same seed gives the same images on one device.

Example:
    >>> import torch
    >>> m = ConceptUNet(ConceptUNetConfig(width=8, sample_steps=2))
    >>> m.generate(torch.tensor([0, 7]), seed=0).shape
    torch.Size([2, 3, 28, 28])
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import torch
from torch import nn

from fmbench.checkpoints import register_architecture
from fmbench.nn.config import ArchConfig
from fmbench.studies.compositional_diffusion.concepts import BACKGROUNDS, COLOURS, SIZES, ConceptSpace


@dataclass(frozen=True)
class ConceptUNetConfig(ArchConfig):
    """Concepts (3 or 4), channel width, diffusion steps T, DDIM sampling steps."""

    n_concepts: int = 3
    width: int = 24
    timesteps: int = 500
    sample_steps: int = 50

    def __post_init__(self) -> None:
        self.check_positive("width", "timesteps", "sample_steps")
        if self.n_concepts not in (3, 4):
            raise ValueError(f"ConceptUNetConfig.n_concepts must be 3 or 4, got {self.n_concepts}")
        if self.sample_steps > self.timesteps:
            raise ValueError(f"sample_steps ({self.sample_steps}) exceeds timesteps ({self.timesteps})")


def condition_vectors(space: ConceptSpace, class_ids: np.ndarray) -> np.ndarray:
    """The paper's conditioning of each class: shape one-hot, RGB colour, size (, background RGB); float32.

    Example:
        >>> from fmbench.studies.compositional_diffusion.concepts import THREE
        >>> condition_vectors(THREE, np.array([3])).astype(float).round(2).tolist()
        [[1.0, 0.0, 0.1, 0.1, 0.9, 1.6]]
    """
    v = space.values(class_ids)
    parts = [np.eye(2)[v[:, 0]], np.asarray(COLOURS)[v[:, 1]], np.asarray(SIZES)[v[:, 2], None]]
    if space.n_concepts > 3:
        parts.append(np.asarray(BACKGROUNDS)[v[:, 3]])
    return np.concatenate(parts, axis=1).astype(np.float32)


class _Res(nn.Module):
    def __init__(self, a: int, b: int) -> None:
        super().__init__()
        self.body = nn.Sequential(
            nn.Conv2d(a, b, 3, padding=1), nn.GroupNorm(8, b), nn.SiLU(), nn.Conv2d(b, b, 3, padding=1),
            nn.GroupNorm(8, b), nn.SiLU(),
        )  # fmt: skip
        self.skip = nn.Conv2d(a, b, 1) if a != b else nn.Identity()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.skip(x) + self.body(x)


def _embed(a: int, b: int) -> nn.Module:
    return nn.Sequential(nn.Linear(a, b), nn.SiLU(), nn.Linear(b, b))


class ConceptUNet(nn.Module):
    """Noisy images ``(B, 3, 28, 28)``, times ``(B,)``, class ids ``(B,)`` -> the predicted clean image in [-1, 1]."""

    def __init__(self, config: ConceptUNetConfig) -> None:
        super().__init__()
        self.config = config
        self.space = ConceptSpace(("shape", "colour", "size", "background")[: config.n_concepts])
        w, cond = config.width, 6 if config.n_concepts == 3 else 9
        self.inc = nn.Sequential(nn.Conv2d(3, w, 3, padding=1), nn.GroupNorm(8, w), nn.SiLU())
        self.down1, self.down2 = _Res(w, w), _Res(w, 2 * w)
        self.pool = nn.AvgPool2d(2)
        self.up1 = _Res(3 * w, w)
        self.upsample = nn.Upsample(scale_factor=2, mode="nearest")
        self.out = nn.Sequential(nn.Conv2d(2 * w, w, 3, padding=1), nn.SiLU(), nn.Conv2d(w, 3, 3, padding=1))
        self.t1, self.t2 = _embed(16, 2 * w), _embed(16, w)
        self.c1, self.c2 = _embed(cond, 2 * w), _embed(cond, w)
        alpha_bar = np.cumprod(1 - np.linspace(1e-4, 0.02, config.timesteps))  # numpy: cheap on the meta device
        self.register_buffer("alpha_bar", torch.tensor(alpha_bar, dtype=torch.float32), persistent=False)

    def _time(self, t: torch.Tensor) -> torch.Tensor:
        freqs = torch.exp(torch.arange(8, device=t.device) * (-math.log(1000.0) / 8))
        angle = t.float()[:, None] * freqs[None] * (1000.0 / self.config.timesteps)
        return torch.cat([angle.sin(), angle.cos()], dim=1)

    def conditions(self, class_ids: torch.Tensor) -> torch.Tensor:
        """The conditioning vectors of class ids (``InputError`` for ids outside the concept space)."""
        vectors = condition_vectors(self.space, class_ids.detach().cpu().numpy())
        return torch.from_numpy(vectors).to(class_ids.device)

    def forward(self, x: torch.Tensor, t: torch.Tensor, class_ids: torch.Tensor) -> torch.Tensor:
        c, te = self.conditions(class_ids), self._time(t)
        x0 = self.inc(x)  # 28
        d1 = self.down1(self.pool(x0))  # 14
        h = self.down2(self.pool(d1))  # 7
        h = h * (1 + self.c1(c)[:, :, None, None]) + self.t1(te)[:, :, None, None]
        h = self.up1(torch.cat([self.upsample(h), d1], 1))  # 14
        h = h * (1 + self.c2(c)[:, :, None, None]) + self.t2(te)[:, :, None, None]
        return self.out(torch.cat([self.upsample(h), x0], 1))  # 28

    def loss(self, images: torch.Tensor, class_ids: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
        """The loss on a batch of images in [0, 1]: MSE of the predicted clean image at uniform random times."""
        x0 = images * 2 - 1
        t = torch.randint(0, self.config.timesteps, (len(x0),), generator=generator).to(x0.device)
        noise = torch.randn(x0.shape, generator=generator).to(x0.device)
        ab = self.alpha_bar[t][:, None, None, None]
        return nn.functional.mse_loss(self(ab.sqrt() * x0 + (1 - ab).sqrt() * noise, t, class_ids), x0)

    @torch.no_grad()
    def generate(self, conditions: torch.Tensor, seed: int) -> torch.Tensor:
        """Images ``(B, 3, 28, 28)`` in [0, 1] of class ids ``conditions`` by DDIM (eta 0), seeded."""
        device = self.alpha_bar.device
        conditions = conditions.to(device)
        self.conditions(conditions)  # refuses ids outside the concept space before any work
        x = torch.randn((len(conditions), 3, 28, 28), generator=torch.Generator().manual_seed(int(seed))).to(device)
        steps = torch.linspace(self.config.timesteps - 1, 0, self.config.sample_steps).round().long().tolist()
        for i, t in enumerate(steps):
            ab = self.alpha_bar[t]
            ab_next = self.alpha_bar[steps[i + 1]] if i + 1 < len(steps) else torch.ones((), device=device)
            x0 = self(x, torch.full((len(x),), t, device=device), conditions).clamp(-1, 1)
            eps = (x - ab.sqrt() * x0) / (1 - ab).sqrt()
            x = ab_next.sqrt() * x0 + (1 - ab_next).sqrt() * eps
        return ((x0 + 1) / 2).clamp(0, 1)


register_architecture("concept-unet", ConceptUNet, ConceptUNetConfig.from_dict, "image-generator")
