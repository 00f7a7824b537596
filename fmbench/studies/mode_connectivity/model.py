"""The study's CPU-sized BatchNorm CNN classifier (checkpoint architecture ``mmc-cnn``, interface ``bn-classifier``).

Two 3x3 convolution blocks (conv, BatchNorm, ReLU, 2x2 max-pool), a flattened hidden layer
(linear, BatchNorm, ReLU) and a linear head ``linear``: a plain chain of units, so weight
matching can permute it. The head reads the flattened feature map, not a global average, so the
position of a box cue stays visible (a stand-in for the authors' VGG-13).

Example:
    >>> import torch
    >>> model = ConvNet(ConvNetConfig(height=28, width=28))
    >>> model(torch.zeros(2, 1, 28, 28)).shape, model.features(torch.zeros(2, 1, 28, 28)).shape
    (torch.Size([2, 10]), torch.Size([2, 64]))
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

from fmbench.checkpoints import register_architecture
from fmbench.nn.config import ArchConfig


@dataclass(frozen=True)
class ConvNetConfig(ArchConfig):
    """Input channels and size (a multiple of 4), channels of the first block (doubled in the second), hidden width."""

    in_channels: int = 1
    height: int = 28
    width: int = 28
    channels: int = 8
    hidden: int = 64
    n_classes: int = 10

    def __post_init__(self) -> None:
        self.check_positive("in_channels", "height", "width", "channels", "hidden", "n_classes")
        if self.height % 4 or self.width % 4:
            raise ValueError(f"ConvNetConfig: height and width must be multiples of 4, got {self.height}x{self.width}")


class ConvNet(nn.Module):
    """Images ``(B, C, H, W)`` in [0, 1] -> logits ``(B, n_classes)``; ``features`` gives the hidden layer."""

    def __init__(self, config: ConvNetConfig) -> None:
        super().__init__()
        self.config = config
        c = config.channels
        flat = 2 * c * (config.height // 4) * (config.width // 4)
        self.body = nn.Sequential(
            nn.Conv2d(config.in_channels, c, 3, padding=1, bias=False),
            nn.BatchNorm2d(c),
            nn.ReLU(),
            nn.MaxPool2d(2),
            nn.Conv2d(c, 2 * c, 3, padding=1, bias=False),
            nn.BatchNorm2d(2 * c),
            nn.ReLU(),
            nn.MaxPool2d(2),
            nn.Flatten(),
            nn.Linear(flat, config.hidden, bias=False),
            nn.BatchNorm1d(config.hidden),
            nn.ReLU(),
        )
        self.linear = nn.Linear(config.hidden, config.n_classes)

    def features(self, images: torch.Tensor) -> torch.Tensor:
        """The hidden layer ``(B, hidden)``: what the head reads (CBFT's invariance loss compares it)."""
        return self.body(images)

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        return self.linear(self.body(images))


register_architecture("mmc-cnn", ConvNet, ConvNetConfig.from_dict, "bn-classifier")
