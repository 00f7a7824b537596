"""CIFAR-10 and CIFAR-100 read from the user's own copy: fmbench never downloads them.

Point ``$FMBENCH_CIFAR10`` (``$FMBENCH_CIFAR100``) at the extracted "python version" of the
data set from https://www.cs.toronto.edu/~kriz/cifar.html — the folder ``cifar-10-batches-py``
(``data_batch_1`` … ``_5``, ``test_batch``) or ``cifar-100-python`` (``train``, ``test``; fine
labels), or at its parent (a torchvision ``root`` holds it after ``download=True``). Every file's
md5 is checked against the published one before it is read, so every user scores on the same
bytes, and the pickles are read by an unpickler that can only build arrays of plain numbers,
dicts, lists, strings and numbers: nothing in the file can run code.

Example:
    >>> images, labels = load_cifar("cifar10", "test")  # doctest: +SKIP
    >>> images.shape, images.dtype, labels.shape  # doctest: +SKIP
    ((10000, 32, 32, 3), dtype('uint8'), (10000,))
"""

from __future__ import annotations

import codecs
import functools
import hashlib
import os
import pickle
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from fmbench.errors import DataError

try:
    from numpy._core.multiarray import _reconstruct  # numpy >= 2
except ImportError:  # numpy 1
    from numpy.core.multiarray import _reconstruct

URL = "https://www.cs.toronto.edu/~kriz/cifar.html"


@dataclass(frozen=True)
class CifarSource:
    """Where a CIFAR variant lives and how its files are laid out."""

    title: str
    env_var: str
    folder: str
    files: dict[str, tuple[str, ...]]
    label_key: str
    n_classes: int


SOURCES = {
    "cifar10": CifarSource(
        "CIFAR-10",
        "FMBENCH_CIFAR10",
        "cifar-10-batches-py",
        {"train": tuple(f"data_batch_{i}" for i in range(1, 6)), "test": ("test_batch",)},
        "labels",
        10,
    ),
    "cifar100": CifarSource(
        "CIFAR-100",
        "FMBENCH_CIFAR100",
        "cifar-100-python",
        {"train": ("train",), "test": ("test",)},
        "fine_labels",
        100,
    ),
}
"""The two variants by name."""
MD5 = {
    "cifar10": {
        "data_batch_1": "c99cafc152244af753f735de768cd75f",
        "data_batch_2": "d4bba439e000b95fd0a9bffe97cbabec",
        "data_batch_3": "54ebc095f3ab1f0389bbae665268c751",
        "data_batch_4": "634d18415352ddfa80567beed471001a",
        "data_batch_5": "482c414d41f54cd18b22e5b47cb7c3cb",
        "test_batch": "40351d587109b95175f43aff81a1287e",
    },
    "cifar100": {"train": "16019d7e3df5f24257cddd939b257f8d", "test": "f0ef6b0ae62326f3e7ffdfab6717acfc"},
}
"""The published md5 of every file (as torchvision also lists them)."""


class _PlainArray(np.ndarray):
    """What a pickled array is rebuilt as: its state may only hold a dtype of plain numbers."""

    def __setstate__(self, state):
        dtype = state[-3] if isinstance(state, tuple) and len(state) in (4, 5) else None
        if not isinstance(dtype, np.dtype) or dtype.hasobject:
            raise pickle.UnpicklingError(f"refusing an array of dtype {dtype!r}: a CIFAR file holds plain numbers")
        super().__setstate__(state)


_NDARRAY = object()
"""Stands for ``numpy.ndarray`` in a file: not callable, only :func:`_reconstruct_plain` accepts it."""


def _reconstruct_plain(cls: object, shape: tuple, typecode: bytes) -> _PlainArray:
    if cls is not _NDARRAY:
        raise pickle.UnpicklingError("refusing to rebuild anything but a numpy array")
    return _reconstruct(_PlainArray, shape, typecode)


def _latin1(text: str, encoding: str) -> bytes:
    if encoding != "latin1":
        raise pickle.UnpicklingError(f"refusing codec {encoding!r}")
    return codecs.encode(text, "latin1")


_ALLOWED = {
    ("numpy.core.multiarray", "_reconstruct"): _reconstruct_plain,
    ("numpy._core.multiarray", "_reconstruct"): _reconstruct_plain,
    ("numpy", "ndarray"): _NDARRAY,
    ("numpy", "dtype"): np.dtype,
    ("_codecs", "encode"): _latin1,
}
"""The globals a pickled array of numbers needs (``_codecs.encode``: bytes in a protocol-2 pickle),
each narrowed to that use: arrays are rebuilt only through ``_reconstruct`` and never with an
object dtype, so a file cannot run code or make numpy read memory it names."""


class _ArraysOnly(pickle.Unpickler):
    """An unpickler that resolves only the globals a pickled numpy array needs."""

    def find_class(self, module: str, name: str):
        if (module, name) not in _ALLOWED:
            raise pickle.UnpicklingError(f"refusing to load {module}.{name}: a CIFAR file holds only arrays")
        return _ALLOWED[module, name]


def cifar_dir(name: str) -> Path:
    """The folder holding ``name``'s files, from its environment variable; ``DataError`` says how to get them.

    Example:
        >>> cifar_dir("cifar10")  # doctest: +SKIP
        PosixPath('/data/cifar-10-batches-py')
    """
    source = _source(name)
    value = os.environ.get(source.env_var)
    if not value:
        raise DataError(
            f"{source.title} is not on this machine (fmbench never downloads data): download the "
            f"python version from {URL}, extract it and set {source.env_var} to the folder"
        )
    folder = Path(value)
    if (folder / source.folder).is_dir():
        folder = folder / source.folder
    missing = [f for names in source.files.values() for f in names if not (folder / f).is_file()]
    if missing:
        raise DataError(f"{source.title} files missing from {folder} (from ${source.env_var}): {', '.join(missing)}")
    return folder


def _source(name: str) -> CifarSource:
    if name not in SOURCES:
        raise ValueError(f"CIFAR variant must be one of {sorted(SOURCES)}, got {name!r}")
    return SOURCES[name]


def _read(path: Path, name: str) -> tuple[np.ndarray, np.ndarray]:
    """One file's images (N, 32, 32, 3) and labels, after its md5 is checked."""
    source = _source(name)
    with open(path, "rb") as f:
        digest = hashlib.file_digest(f, lambda: hashlib.md5(usedforsecurity=False)).hexdigest()
    expected = MD5[name][path.name]
    if digest != expected:
        raise DataError(
            f"{path}: md5 {digest}, but the published {source.title} file has {expected} "
            f"(a different or damaged copy; get the python version from {URL})"
        )
    try:
        with open(path, "rb") as f:
            batch = _ArraysOnly(f, encoding="latin1").load()
    except (pickle.UnpicklingError, EOFError, ValueError, TypeError) as e:
        raise DataError(f"{path}: not a readable CIFAR batch ({e})") from e
    data = batch.get("data") if isinstance(batch, dict) else None
    if not isinstance(data, np.ndarray) or data.dtype != np.uint8 or data.ndim != 2 or data.shape[1] != 3072:
        raise DataError(f"{path}: expected a dict whose 'data' is a uint8 array (N, 3072)")
    data, raw = np.asarray(data), batch.get(source.label_key)
    if not (isinstance(raw, list) and all(type(v) is int for v in raw)):
        raise DataError(f"{path}: '{source.label_key}' must be a list of integer labels")
    labels = np.array(raw, dtype=np.int64)
    if labels.shape != (len(data),) or (labels.size and not 0 <= labels.min() <= labels.max() < source.n_classes):
        raise DataError(f"{path}: '{source.label_key}' must hold {len(data)} labels in 0..{source.n_classes - 1}")
    return data.reshape(-1, 3, 32, 32).transpose(0, 2, 3, 1), labels


@functools.cache
def _load(name: str, folder: Path, split: str) -> tuple[np.ndarray, np.ndarray]:
    parts = [_read(folder / f, name) for f in SOURCES[name].files[split]]
    images = np.ascontiguousarray(np.concatenate([p[0] for p in parts]))
    labels = np.concatenate([p[1] for p in parts])
    images.flags.writeable = labels.flags.writeable = False
    return images, labels


def load_cifar(name: str, split: str) -> tuple[np.ndarray, np.ndarray]:
    """Images (N, 32, 32, 3) uint8 (RGB) and labels (N,) int64 of ``"train"`` (50,000) or ``"test"`` (10,000).

    ``name`` is ``"cifar10"`` or ``"cifar100"`` (fine labels). Arrays are read-only and cached
    per folder and split.

    Example:
        >>> images, labels = load_cifar("cifar100", "train")  # doctest: +SKIP
        >>> len(images), int(labels.max())  # doctest: +SKIP
        (50000, 99)
    """
    if split not in _source(name).files:
        raise ValueError(f"split must be one of {sorted(SOURCES[name].files)}, got {split!r}")
    return _load(name, cifar_dir(name), split)
