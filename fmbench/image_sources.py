"""The image data sets tasks draw from: Fashion-MNIST (installed by fmbench's setup) and CIFAR-10/100 (the user's copy).

Each is an :class:`ImageSource`: how to load a split, where its files are, the image shape a model
receives, the published split sizes and, for data the user brings, the environment variable naming
the copy (:mod:`fmbench.cifar`).

Example:
    >>> source = IMAGE_SOURCES["cifar10"]
    >>> source.shape, source.sizes["train"], source.env_var
    ((3, 32, 32), 50000, 'FMBENCH_CIFAR10')
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from functools import partial
from pathlib import Path

import numpy as np

from fmbench.cifar import SOURCES as CIFAR
from fmbench.cifar import cifar_dir, load_cifar
from fmbench.fashion_mnist import fashion_mnist_dir, load_fashion_mnist


@dataclass(frozen=True)
class ImageSource:
    """An image data set: its loader (split -> uint8 images ``(N, H, W)`` or ``(N, H, W, C)``, labels), its folder,
    the image shape ``(C, H, W)`` a model receives, the published split sizes."""

    load: Callable[[str], tuple[np.ndarray, np.ndarray]]
    folder: Callable[[], Path]
    shape: tuple[int, int, int]
    sizes: dict[str, int]
    env_var: str | None = None
    """The environment variable naming the user's own copy; ``None``: fmbench's setup installs it."""


IMAGE_SOURCES = {
    "fashion-mnist": ImageSource(load_fashion_mnist, fashion_mnist_dir, (1, 28, 28), {"train": 60_000, "test": 10_000}),
    **{
        name: ImageSource(
            partial(load_cifar, name),
            partial(cifar_dir, name),
            (3, 32, 32),
            {"train": 50_000, "test": 10_000},
            source.env_var,
        )
        for name, source in CIFAR.items()
    },
}
"""The image data sets by name."""
