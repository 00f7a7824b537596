"""Cue data sets of arXiv:2211.08422, seeded and random-access: a box or dominoes cue on Fashion-MNIST or CIFAR-10.

Every image is from the ``source`` (Fashion-MNIST, installed by fmbench's setup, or CIFAR-10 from
the user's own copy, ``$FMBENCH_CIFAR10``: see :mod:`fmbench.cifar`) with a *cue* whose class is
the label on a fraction ``p`` of each class's training images (the authors' ``get_cue_ids``:
exactly ``floor(p * n_c)`` images of class ``c``, here chosen at random from the seed):

* ``box``: a white 3x3 box at one of ten positions, the position naming the class (the authors'
  nine positions on a 3x3 grid, and for class 9 the grid cell between upper left and centre, their
  tenth position for CIFAR-100; their CIFAR-10 code draws no box for class 9). Images ``(1, 28, 28)``
  (Fashion-MNIST) or ``(3, 32, 32)`` RGB (CIFAR-10; the box is white in every channel).
* ``dominoes`` (Fashion-MNIST only): the image on top of a scikit-learn digit (8x8, scaled to 24x24 and
  padded to 28x28) whose value names the class; uncued images have a blank lower half. Images
  ``(1, 56, 28)``. (The authors stack CIFAR-10 over Fashion-MNIST; CPU scale uses this variant.)

Splits of a seed: ``train`` (cued at ``p``, from the source's training images but its last
``min(10,000, n / 5)``: the first 50,000 of Fashion-MNIST, 40,000 of CIFAR-10), ``finetune``
(clean, from those last ones, disjoint from ``train``) and four counterfactual test sets over the
same seeded order of the test images: ``test_clean`` (no cue),
``test_cue`` (cue of the label on every image, p = 1), ``test_random_cue`` (the cue of a random
*other* class, label unchanged: a model using the object is right) and ``test_random_image`` (the
cue of the label on a random test image of another class: a model using the cue is right; the
label is the cue's class). The authors draw the random cue and image uniformly, so that one in ten
agrees by chance; conflicting ones make the two accuracies read as pure cue use and object use.
The split sizes are caps: a source with fewer images (a stand-in copy of CIFAR-10) gives smaller splits.

Example:
    >>> images, labels, cues = split_arrays(CueData("box", p=1.0), 0, "test_cue", np.arange(3))
    >>> images.shape, images.dtype, bool((labels == cues).all())
    ((3, 1, 28, 28), dtype('uint8'), True)
    >>> r, c = BOX_CORNERS[labels[0]]  # the box of the first item's class
    >>> bool((images[0, 0, r : r + BOX, c : c + BOX] == 255).all())
    True
"""

from __future__ import annotations

import functools
import hashlib
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from fmbench.errors import DataError, InputError
from fmbench.image_sources import IMAGE_SOURCES
from fmbench.random_access import check_seed, integers, stream_key

CUES = ("box", "dominoes")
SPLITS = ("train", "finetune", "test_clean", "test_cue", "test_random_cue", "test_random_image")
TEST_SETS = SPLITS[2:]
N_CLASSES = 10
FINETUNE_POOL = 10_000
"""At most this many of the source's last training images (and at most a fifth of them) feed ``finetune``."""


SOURCES = {name: IMAGE_SOURCES[name] for name in ("fashion-mnist", "cifar10")}
"""The sources a cue data set can draw its images from."""
BOX = 3


def box_corners(height: int, width: int) -> list[tuple[int, int]]:
    """Upper-left pixel (row, column) of each class's box in an image of ``height`` x ``width``.

    Example:
        >>> box_corners(28, 28)[:3], box_corners(28, 28)[9], box_corners(32, 32)[4]
        ([(0, 0), (0, 12), (0, 25)], (5, 5), (14, 14))
    """
    rows, cols = (0, (height - BOX) // 2, height - BOX), (0, (width - BOX) // 2, width - BOX)
    return [(rows[k // 3], cols[k % 3]) for k in range(9)] + [(rows[1] - 7, cols[1] - 7)]


BOX_CORNERS = box_corners(28, 28)
"""Upper-left pixel (row, column) of each class's box on Fashion-MNIST."""


@dataclass(frozen=True)
class CueData:
    """A cue data set: the cue (``box`` or ``dominoes``), its fraction ``p`` in [0, 1], the split sizes (caps: a
    smaller source gives fewer) and the image ``source`` (a key of ``SOURCES``)."""

    cue: str
    p: float
    n_train: int = 20_000
    n_finetune: int = 2_000
    n_test: int = 10_000
    source: str = "fashion-mnist"

    def __post_init__(self) -> None:
        if self.cue not in CUES:
            raise InputError(f"unknown cue {self.cue!r}; use one of {CUES}")
        if self.source not in SOURCES:
            raise InputError(f"unknown image source {self.source!r}; use one of {sorted(SOURCES)}")
        if self.cue == "dominoes" and self.source != "fashion-mnist":
            raise InputError(f"the dominoes cue stacks Fashion-MNIST images on digits; source {self.source!r} has none")
        if not 0 <= self.p <= 1:
            raise InputError(f"cue fraction p must be in [0, 1], got {self.p}")
        for name, high in _pools(SOURCES[self.source].sizes).items():
            if not 1 <= getattr(self, name) <= high:
                raise InputError(f"{name} must be in [1, {high}], got {getattr(self, name)}")

    @property
    def image_shape(self) -> tuple[int, int, int]:
        return SOURCES[self.source].shape if self.cue == "box" else (1, 56, 28)

    @property
    def folder(self) -> Path:
        """The folder the images are read from (``DataError`` naming its variable where it is missing)."""
        return SOURCES[self.source].folder()

    def size(self, split: str) -> int:
        """Items in ``split``: its cap, or fewer where the source has fewer images (``DataError`` if it is absent)."""
        return self._size(split, self.pools())

    def published_size(self, split: str) -> int:
        """Items in ``split`` given the source's published sizes (reads no data)."""
        return self._size(split, _pools(SOURCES[self.source].sizes))

    def pools(self) -> dict[str, int]:
        """How many source images the train, finetune and test splits draw from (``n_train``, ``n_finetune``,
        ``n_test``); read from the user's copy where the source is one."""
        if SOURCES[self.source].env_var is None:
            return _pools(SOURCES[self.source].sizes)
        return _source_pools(self.source, self.folder)

    def _size(self, split: str, pools: dict[str, int]) -> int:
        if split not in SPLITS:
            raise InputError(f"no split {split!r}; the splits are {list(SPLITS)}")
        name = {"train": "n_train", "finetune": "n_finetune"}.get(split, "n_test")
        return min(getattr(self, name), pools[name])


def _pools(sizes: dict[str, int]) -> dict[str, int]:
    """How many source images each kind of split draws from, given the source's training and test sizes."""
    finetune = min(FINETUNE_POOL, sizes["train"] // 5)
    return {"n_train": sizes["train"] - finetune, "n_finetune": finetune, "n_test": sizes["test"]}


@functools.cache
def _source_pools(source: str, folder: Path) -> dict[str, int]:
    sizes = {split: len(SOURCES[source].load(split)[1]) for split in ("train", "test")}
    for split, n in sizes.items():
        labels = SOURCES[source].load(split)[1]
        if n < 5 * N_CLASSES or len(np.unique(labels)) < N_CLASSES:
            raise DataError(f"{source} {split} images ({n}) must hold every one of the {N_CLASSES} classes, 50+ images")
    return _pools(sizes)


def _images(source: str, split: str, index: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Images ``index`` of the source's ``split`` as uint8 ``(N, C, H, W)`` (a copy) and their labels."""
    images, labels = SOURCES[source].load(split)
    x = images[index]
    return (x[:, None] if x.ndim == 3 else np.ascontiguousarray(x.transpose(0, 3, 1, 2))), labels[index]


@functools.cache
def _digits() -> dict[str, tuple[np.ndarray, ...]]:
    """scikit-learn's digits as uint8 28x28 images per class: every fourth for test splits, the rest for training."""
    from sklearn.datasets import load_digits

    d = load_digits()
    images = np.zeros((len(d.images), 28, 28), np.uint8)
    images[:, 2:26, 2:26] = np.kron(d.images * (255 / 16), np.ones((3, 3))).round().astype(np.uint8)
    test = np.arange(len(images)) % 4 == 0
    return {
        part: tuple(images[(d.target == c) & (test if part == "test" else ~test)] for c in range(N_CLASSES))
        for part in ("train", "test")
    }


@functools.cache
def _order(seed: int, split: str, pool: int, n: int) -> np.ndarray:
    """The seeded order of a split's source images: the first ``n`` of a permutation of the pool."""
    rng = np.random.default_rng(stream_key("mode_connectivity.order", seed, split, pool))
    return rng.permutation(pool)[:n]


def _source_index(data: CueData, seed: int, split: str) -> np.ndarray:
    """Which of the source's images (of its training or test part) the split's items show, in item order."""
    pools = data.pools()
    if split == "train":
        return _order(seed, "train", pools["n_train"], data.size(split))
    if split == "finetune":
        return pools["n_train"] + _order(seed, "finetune", pools["n_finetune"], data.size(split))
    return _order(seed, "test", pools["n_test"], data.size(split))


@functools.cache
def _cued(data: CueData, seed: int, folder: Path) -> np.ndarray:
    """Which train items carry the cue: exactly ``floor(p * n_c)`` of each class, chosen by the seed."""
    labels = SOURCES[data.source].load("train")[1][_source_index(data, seed, "train")]
    rank = integers(stream_key("mode_connectivity.cued", seed), np.arange(len(labels)), 1, 2**40)[:, 0]
    cued = np.zeros(len(labels), bool)
    for c in range(N_CLASSES):
        members = np.flatnonzero(labels == c)
        cued[members[np.argsort(rank[members], kind="stable")[: int(np.floor(data.p * len(members)))]]] = True
    cued.flags.writeable = False
    return cued


def _add_cue(data: CueData, images: np.ndarray, cue_class: np.ndarray, draw: np.ndarray, part: str) -> np.ndarray:
    """Images ``(N, C, H, W)`` with the cue of ``cue_class`` (-1: none), in place for the box; ``draw`` picks digits."""
    if data.cue == "box":
        corners = box_corners(*images.shape[2:])
        for c in np.unique(cue_class[cue_class >= 0]):
            r, col = corners[c]
            images[cue_class == c, :, r : r + BOX, col : col + BOX] = 255
        return images
    out = np.zeros((len(images), 1, 56, 28), np.uint8)
    out[:, :, :28] = images
    pools = _digits()[part]
    for c in np.unique(cue_class[cue_class >= 0]):
        rows = np.flatnonzero(cue_class == c)
        out[rows, 0, 28:] = pools[c][draw[rows] % len(pools[c])]
    return out


def split_arrays(data: CueData, seed: int, split: str, index: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Images ``(len(index), C, H, W)`` uint8, labels and cue classes (-1: no cue) of items ``index`` of ``split``.

    Item ``i`` depends only on the data set, the seed, the split and ``i`` (and, for ``train``, on
    which images of its class carry the cue, fixed by the seed).
    """
    seed = check_seed(seed)
    n = data.size(split)
    index = np.asarray(index, dtype=np.int64)
    if index.size and (index.min() < 0 or index.max() >= n):
        raise InputError(f"item ids of split {split!r} must be in [0, {n}), got {index.min()}..{index.max()}")
    draws = integers(stream_key("mode_connectivity", data.cue, seed, split), index, 3, 2**40)
    none = np.full(len(index), -1)
    source = _source_index(data, seed, split)[index]
    if split in ("train", "finetune"):
        images, labels = _images(data.source, "train", source)
        cue = np.where(_cued(data, seed, data.folder)[index], labels, -1) if split == "train" else none
        return _add_cue(data, images, cue, draws[:, 0], "train"), labels, cue
    y = SOURCES[data.source].load("test")[1][source]
    other = (y + 1 + draws[:, 1] % (N_CLASSES - 1)) % N_CLASSES  # a uniformly random other class
    if split == "test_random_image":
        by_class = _test_by_class(data.source, data.folder)
        source = np.array([by_class[c][d % len(by_class[c])] for c, d in zip(other, draws[:, 2])], dtype=np.int64)
    cue = {"test_clean": none, "test_random_cue": other}.get(split, y)
    return _add_cue(data, _images(data.source, "test", source)[0], cue, draws[:, 0], "test"), y, cue


def counterfactual_labels(data: CueData, seed: int) -> np.ndarray:
    """The labels of the test sets' items (the same in all four), without making their images."""
    return SOURCES[data.source].load("test")[1][_source_index(data, check_seed(seed), "test_clean")]


@functools.cache
def _test_by_class(source: str, folder: Path) -> tuple[np.ndarray, ...]:
    labels = SOURCES[source].load("test")[1]
    return tuple(np.flatnonzero(labels == c) for c in range(N_CLASSES))


def data_hash(data: CueData, seed: int) -> str:
    """sha256 over every split's images and labels for ``seed`` (split name, then its bytes; once per process and
    copy of the source)."""
    return _data_hash(data, seed, data.folder)


@functools.cache
def _data_hash(data: CueData, seed: int, folder: Path) -> str:
    h = hashlib.sha256()
    for split in SPLITS:
        images, labels, _ = split_arrays(data, seed, split, np.arange(data.size(split)))
        h.update(split.encode())
        h.update(images.tobytes())
        h.update(labels.tobytes())
    return h.hexdigest()
