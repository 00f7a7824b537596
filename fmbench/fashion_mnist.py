"""Fashion-MNIST read offline from the IDX files of Debian's ``dataset-fashion-mnist`` package.

The four gzipped IDX files (``{train,t10k}-{images-idx3,labels-idx1}-ubyte.gz``) live in
:func:`fashion_mnist_dir`; :func:`load_fashion_mnist` parses them with numpy (magic numbers,
dimensions and the image/label counts are checked) and caches the read-only arrays.

Example:
    >>> images, labels = load_fashion_mnist("test")
    >>> images.shape, images.dtype, labels.shape, CLASSES[labels[0]]
    ((10000, 28, 28), dtype('uint8'), (10000,), 'Ankle boot')
"""

from __future__ import annotations

import functools
import gzip
import math
import os
import zlib
from pathlib import Path

import numpy as np

from fmbench.errors import DataError

DEFAULT_DIR = Path("/usr/share/datasets/fashion-mnist")
"""Where ``apt-get install dataset-fashion-mnist`` puts the files."""
ENV_VAR = "FMBENCH_FASHION_MNIST"
"""Environment variable naming another folder holding the four files."""
CLASSES = ("T-shirt/top", "Trouser", "Pullover", "Dress", "Coat", "Sandal", "Shirt", "Sneaker", "Bag", "Ankle boot")
"""Class names, indexed by label."""
FILES = {
    split: (f"{prefix}-images-idx3-ubyte.gz", f"{prefix}-labels-idx1-ubyte.gz")
    for split, prefix in (("train", "train"), ("test", "t10k"))
}
"""Image and label file names of each split."""
_IMAGE_MAGIC, _LABEL_MAGIC = 2051, 2049  # IDX: unsigned bytes, 3 resp. 1 dimensions


def fashion_mnist_dir() -> Path:
    """The folder holding the four Fashion-MNIST files (``$FMBENCH_FASHION_MNIST``, else the Debian one).

    Raises ``DataError`` naming the missing files and how to get them.

    Example:
        >>> sorted(p.name for p in fashion_mnist_dir().glob("t10k-*"))
        ['t10k-images-idx3-ubyte.gz', 't10k-labels-idx1-ubyte.gz']
    """
    folder = Path(os.environ.get(ENV_VAR) or DEFAULT_DIR)
    missing = [name for pair in FILES.values() for name in pair if not (folder / name).is_file()]
    if missing:
        raise DataError(
            f"Fashion-MNIST files missing from {folder}: {', '.join(missing)}; "
            f"run `apt-get install dataset-fashion-mnist` or set {ENV_VAR} to a folder holding them"
        )
    return folder


def _read_idx(path: Path, magic: int, ndim: int) -> np.ndarray:
    """The unsigned-byte array of a gzipped IDX file, or ``DataError`` naming the file."""
    try:
        with gzip.open(path, "rb") as f:
            data = f.read()
    except (OSError, EOFError, zlib.error) as e:
        raise DataError(f"{path}: not a readable gzip file ({e})") from e
    header = 4 * (1 + ndim)
    if len(data) < header:
        raise DataError(f"{path}: truncated IDX header ({len(data)} bytes)")
    found, *dims = (int(v) for v in np.frombuffer(data, ">u4", 1 + ndim))
    if found != magic:
        raise DataError(f"{path}: IDX magic number {found}, expected {magic}")
    need = math.prod(dims)  # exact: numpy's product of 32-bit dimensions can overflow (to 0, say)
    if len(data) != header + need:
        raise DataError(f"{path}: {len(data) - header} data bytes, but the header's dimensions {dims} need {need}")
    return np.frombuffer(data, np.uint8, offset=header).reshape(dims)


@functools.cache
def _load(folder: Path, split: str) -> tuple[np.ndarray, np.ndarray]:
    image_file, label_file = (folder / name for name in FILES[split])
    images = _read_idx(image_file, _IMAGE_MAGIC, 3)
    labels = _read_idx(label_file, _LABEL_MAGIC, 1).astype(np.int64)
    if images.shape[1:] != (28, 28):
        raise DataError(f"{image_file}: images are {images.shape[1]}x{images.shape[2]}, expected 28x28")
    if len(images) != len(labels):
        raise DataError(f"{image_file} holds {len(images)} images but {label_file} {len(labels)} labels")
    if labels.size and labels.max() >= len(CLASSES):
        raise DataError(f"{label_file}: label {labels.max()} is not one of the {len(CLASSES)} classes")
    labels.flags.writeable = False  # the images are a read-only view of the file's bytes already
    return images, labels


def load_fashion_mnist(split: str) -> tuple[np.ndarray, np.ndarray]:
    """Images (N, 28, 28) uint8 and labels (N,) int64 of ``"train"`` (60,000) or ``"test"`` (10,000).

    The arrays are read-only and cached per folder and split.

    Example:
        >>> images, labels = load_fashion_mnist("train")
        >>> len(images), int(labels.max()), images.flags.writeable
        (60000, 9, False)
    """
    if split not in FILES:
        raise ValueError(f"split must be one of {sorted(FILES)}, got {split!r}")
    return _load(fashion_mnist_dir(), split)
