"""Fashion-MNIST read offline from the IDX files of Debian's ``dataset-fashion-mnist`` package.

The four gzipped IDX files (``{train,t10k}-{images-idx3,labels-idx1}-ubyte.gz``) live in
:func:`fashion_mnist_dir`; :func:`load_fashion_mnist` checks each file's sha256 against the
published one (:data:`SHA256`), parses them with numpy (magic numbers, 28x28 images, the
published image/label counts) and caches the read-only arrays. Nothing is decompressed beyond
the bytes the header's dimensions need, so a small gzip cannot expand into gigabytes.

Your own IDX files (a subset, another copy): set ``$FMBENCH_FASHION_MNIST_VERIFY=0`` (or
pass ``verify=False``) to skip the sha256 and allow fewer images than published; the header
must still agree with the file's size, and a split may not hold more images than published.

Example:
    >>> images, labels = load_fashion_mnist("test")
    >>> images.shape, images.dtype, labels.shape, CLASSES[labels[0]]
    ((10000, 28, 28), dtype('uint8'), (10000,), 'Ankle boot')
"""

from __future__ import annotations

import functools
import gzip
import hashlib
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
VERIFY_ENV_VAR = "FMBENCH_FASHION_MNIST_VERIFY"
"""Set to ``0`` to read IDX files that are not the published ones (see the module docstring)."""
COUNTS = {"train": 60_000, "test": 10_000}
"""The published number of images of each split."""
SHA256 = {
    "train-images-idx3-ubyte.gz": "b0564c3eedabfbf835052cff8503ea422014ce006caf5b757f851416ee8300c7",
    "train-labels-idx1-ubyte.gz": "0ae29f65d86684f32d1b9c85147786c547b9c6aebcaf235f0400a0cce308b056",
    "t10k-images-idx3-ubyte.gz": "cc1d090a38ace84dfa1aa66e3ada7c336ef481a96936906477e6dd344da56eaa",
    "t10k-labels-idx1-ubyte.gz": "8d3605d196f4be44669e46906da9733c8131fef761fdbfec72c424d5222f1a05",
}
"""sha256 of the published files (as zalandoresearch/fashion-mnist and Debian's package ship them)."""
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


def _check_sha256(path: Path) -> None:
    with open(path, "rb") as f:
        digest = hashlib.file_digest(f, "sha256").hexdigest()
    if digest != SHA256[path.name]:
        raise DataError(
            f"{path}: sha256 {digest} is not the published Fashion-MNIST file's {SHA256[path.name]} "
            f"(set {VERIFY_ENV_VAR}=0 to read your own IDX files)"
        )


def _read_idx(path: Path, magic: int, item_shape: tuple[int, ...], count: int, exact: bool) -> np.ndarray:
    """The unsigned-byte array of a gzipped IDX file, or ``DataError`` naming the file.

    The header must give ``magic``, items of ``item_shape`` and ``count`` items (at most
    ``count`` unless ``exact``); then exactly the bytes it needs are decompressed.
    """
    header_size = 4 * (2 + len(item_shape))
    try:
        with gzip.open(path, "rb") as f:
            header = f.read(header_size)
            if len(header) < header_size:
                raise DataError(f"{path}: truncated IDX header ({len(header)} bytes)")
            found, n, *shape = (int(v) for v in np.frombuffer(header, ">u4"))
            if found != magic:
                raise DataError(f"{path}: IDX magic number {found}, expected {magic}")
            if tuple(shape) != item_shape:
                raise DataError(f"{path}: images are {'x'.join(map(str, shape))}, expected 28x28")
            if n > count or (exact and n != count):
                raise DataError(
                    f"{path}: the header says {n} {'images' if item_shape else 'labels'}; the published split "
                    f"has {count}" + ("" if exact else " (your own files may hold fewer, not more)")
                )
            need = n * int(np.prod(item_shape))
            data = f.read(need + 1)
    except (OSError, EOFError, zlib.error) as e:
        raise DataError(f"{path}: not a readable gzip file ({e})") from e
    if len(data) != need:
        found_bytes = f"{len(data)}" if len(data) < need else "more"
        raise DataError(f"{path}: {found_bytes} data bytes, but the header's dimensions {[n, *shape]} need {need}")
    return np.frombuffer(data, np.uint8).reshape(n, *item_shape)


@functools.cache
def _load(folder: Path, split: str, verify: bool) -> tuple[np.ndarray, np.ndarray]:
    image_file, label_file = (folder / name for name in FILES[split])
    if verify:
        _check_sha256(image_file)
        _check_sha256(label_file)
    images = _read_idx(image_file, _IMAGE_MAGIC, (28, 28), COUNTS[split], exact=verify)
    labels = _read_idx(label_file, _LABEL_MAGIC, (), COUNTS[split], exact=verify).astype(np.int64)
    if len(images) != len(labels):
        raise DataError(f"{image_file} holds {len(images)} images but {label_file} {len(labels)} labels")
    if labels.size and labels.max() >= len(CLASSES):
        raise DataError(f"{label_file}: label {labels.max()} is not one of the {len(CLASSES)} classes")
    labels.flags.writeable = False  # the images are a read-only view of the file's bytes already
    return images, labels


def load_fashion_mnist(split: str, verify: bool | None = None) -> tuple[np.ndarray, np.ndarray]:
    """Images (N, 28, 28) uint8 and labels (N,) int64 of ``"train"`` (60,000) or ``"test"`` (10,000).

    ``verify`` (default: true unless ``$FMBENCH_FASHION_MNIST_VERIFY`` is ``0``) checks the files'
    sha256 and the published counts; without it, a split may hold fewer images (module docstring).
    The arrays are read-only and cached per folder, split and ``verify``.

    Example:
        >>> images, labels = load_fashion_mnist("train")
        >>> len(images), int(labels.max()), images.flags.writeable
        (60000, 9, False)
    """
    if split not in FILES:
        raise ValueError(f"split must be one of {sorted(FILES)}, got {split!r}")
    if verify is None:
        verify = os.environ.get(VERIFY_ENV_VAR, "1") != "0"
    return _load(fashion_mnist_dir(), split, verify)
