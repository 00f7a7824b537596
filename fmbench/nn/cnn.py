"""A small convolutional image encoder for 28×28 grayscale images (the federated study's backbone).

Three 3×3 convolution blocks (conv, batch norm, ReLU; 2×2 max-pool after the first two), a
global average pool and a linear map to ``embedding_dim``: a CPU-sized stand-in for the
ResNet-18 of arXiv:2205.11506.

Example:
    >>> import torch
    >>> CNN(CNNConfig(width=8, embedding_dim=16))(torch.zeros(2, 1, 28, 28)).shape
    torch.Size([2, 16])
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

from fmbench.checkpoints import register_architecture
from fmbench.nn.config import ArchConfig


@dataclass(frozen=True)
class CNNConfig(ArchConfig):
    """Hyper-parameters: input channels, channel width of the first block (doubled after), output width."""

    in_channels: int = 1
    width: int = 32
    embedding_dim: int = 128

    def __post_init__(self) -> None:
        self.check_positive("in_channels", "width", "embedding_dim")


def _block(a: int, b: int, pool: bool) -> list[nn.Module]:
    layers = [nn.Conv2d(a, b, 3, padding=1, bias=False), nn.BatchNorm2d(b), nn.ReLU()]
    return layers + [nn.MaxPool2d(2)] if pool else layers


class CNN(nn.Module):
    """Images ``(B, C, H, W)`` in [0, 1] -> embeddings ``(B, embedding_dim)``."""

    def __init__(self, config: CNNConfig) -> None:
        super().__init__()
        self.config = config
        w = config.width
        self.features = nn.Sequential(
            *_block(config.in_channels, w, True),
            *_block(w, 2 * w, True),
            *_block(2 * w, 2 * w, False),
            nn.AdaptiveAvgPool2d(1),
            nn.Flatten(),
        )
        self.head = nn.Linear(2 * w, config.embedding_dim)

    @property
    def embedding_dim(self) -> int:
        return self.config.embedding_dim

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        return self.head(self.features(images))


register_architecture("cnn", CNN, CNNConfig.from_dict, "image-encoder")
