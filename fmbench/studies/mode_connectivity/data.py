"""Cue data sets of arXiv:2211.08422, seeded and random-access: a box cue or a dominoes cue on Fashion-MNIST.

Every image is Fashion-MNIST with a *cue* whose class is the label on a fraction ``p`` of each
class's training images (the authors' ``get_cue_ids``: exactly ``floor(p * n_c)`` images of class
``c``, here chosen at random from the seed):

* ``box``: a white 3x3 box at one of ten positions, the position naming the class (the authors'
  nine positions on a 3x3 grid, and for class 9 the grid cell between upper left and centre, their
  tenth position for CIFAR-100; their CIFAR-10 code draws no box for class 9). Images ``(1, 28, 28)``.
* ``dominoes``: the Fashion-MNIST image on top of a scikit-learn digit (8x8, scaled to 24x24 and
  padded to 28x28) whose value names the class; uncued images have a blank lower half. Images
  ``(1, 56, 28)``. (The authors stack CIFAR-10 over Fashion-MNIST; CPU scale uses this variant.)

Splits of a seed: ``train`` (cued at ``p``, from the first 50,000 Fashion-MNIST training images),
``finetune`` (clean, from the last 10,000, disjoint from ``train``) and four counterfactual test
sets over the same seeded order of the 10,000 test images: ``test_clean`` (no cue),
``test_cue`` (cue of the label on every image, p = 1), ``test_random_cue`` (the cue of a random
*other* class, label unchanged: a model using the object is right) and ``test_random_image`` (the
cue of the label on a random test image of another class: a model using the cue is right; the
label is the cue's class). The authors draw the random cue and image uniformly, so that one in ten
agrees by chance; conflicting ones make the two accuracies read as pure cue use and object use.

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

import numpy as np

from fmbench.errors import InputError
from fmbench.fashion_mnist import load_fashion_mnist
from fmbench.random_access import check_seed, integers, stream_key

CUES = ("box", "dominoes")
SPLITS = ("train", "finetune", "test_clean", "test_cue", "test_random_cue", "test_random_image")
TEST_SETS = SPLITS[2:]
N_CLASSES = 10
TRAIN_POOL = 50_000
"""Fashion-MNIST training images ``[0, TRAIN_POOL)`` feed ``train``; the rest feed ``finetune``."""
BOX = 3
_CORNERS = {0: 0, 1: (28 - BOX) // 2, 2: 28 - BOX}
BOX_CORNERS = [(_CORNERS[k // 3], _CORNERS[k % 3]) for k in range(9)] + [((28 - BOX) // 2 - 7, (28 - BOX) // 2 - 7)]
"""Upper-left pixel (row, column) of each class's box."""


@dataclass(frozen=True)
class CueData:
    """A cue data set: the cue (``box`` or ``dominoes``), its fraction ``p`` in [0, 1] and the split sizes."""

    cue: str
    p: float
    n_train: int = 20_000
    n_finetune: int = 2_000
    n_test: int = 10_000

    def __post_init__(self) -> None:
        if self.cue not in CUES:
            raise InputError(f"unknown cue {self.cue!r}; use one of {CUES}")
        if not 0 <= self.p <= 1:
            raise InputError(f"cue fraction p must be in [0, 1], got {self.p}")
        limits = {"n_train": TRAIN_POOL, "n_finetune": 60_000 - TRAIN_POOL, "n_test": 10_000}
        for name, high in limits.items():
            if not 1 <= getattr(self, name) <= high:
                raise InputError(f"{name} must be in [1, {high}], got {getattr(self, name)}")

    @property
    def image_shape(self) -> tuple[int, int, int]:
        return (1, 28, 28) if self.cue == "box" else (1, 56, 28)

    def size(self, split: str) -> int:
        if split not in SPLITS:
            raise InputError(f"no split {split!r}; the splits are {list(SPLITS)}")
        return {"train": self.n_train, "finetune": self.n_finetune}.get(split, self.n_test)


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


@functools.cache
def _cued(data: CueData, seed: int) -> np.ndarray:
    """Which train items carry the cue: exactly ``floor(p * n_c)`` of each class, chosen by the seed."""
    labels = load_fashion_mnist("train")[1][_order(seed, "train", TRAIN_POOL, data.n_train)]
    rank = integers(stream_key("mode_connectivity.cued", seed), np.arange(data.n_train), 1, 2**40)[:, 0]
    cued = np.zeros(data.n_train, bool)
    for c in range(N_CLASSES):
        members = np.flatnonzero(labels == c)
        cued[members[np.argsort(rank[members], kind="stable")[: int(np.floor(data.p * len(members)))]]] = True
    cued.flags.writeable = False
    return cued


def _add_cue(data: CueData, images: np.ndarray, cue_class: np.ndarray, draw: np.ndarray, part: str) -> np.ndarray:
    """Images ``(N, 28, 28)`` with the cue of ``cue_class`` (-1: none) -> ``(N, 1, H, W)``; ``draw`` picks digits."""
    if data.cue == "box":
        out = images.copy()
        for c in np.unique(cue_class[cue_class >= 0]):
            r, col = BOX_CORNERS[c]
            out[cue_class == c, r : r + BOX, col : col + BOX] = 255
        return out[:, None]
    out = np.zeros((len(images), 56, 28), np.uint8)
    out[:, :28] = images
    pools = _digits()[part]
    for c in np.unique(cue_class[cue_class >= 0]):
        rows = np.flatnonzero(cue_class == c)
        out[rows, 28:] = pools[c][draw[rows] % len(pools[c])]
    return out[:, None]


def split_arrays(data: CueData, seed: int, split: str, index: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Images ``(len(index), 1, H, W)`` uint8, labels and cue classes (-1: no cue) of items ``index`` of ``split``.

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
    if split in ("train", "finetune"):
        images, labels = load_fashion_mnist("train")
        if split == "train":
            source = _order(seed, "train", TRAIN_POOL, data.n_train)[index]
            cue = np.where(_cued(data, seed)[index], labels[source], -1)
        else:
            source = TRAIN_POOL + _order(seed, "finetune", 60_000 - TRAIN_POOL, data.n_finetune)[index]
            cue = none
        return _add_cue(data, images[source], cue, draws[:, 0], "train"), labels[source], cue
    images, labels = load_fashion_mnist("test")
    source = _order(seed, "test", 10_000, data.n_test)[index]
    y = labels[source]
    other = (y + 1 + draws[:, 1] % (N_CLASSES - 1)) % N_CLASSES  # a uniformly random other class
    if split == "test_random_image":
        by_class = _test_by_class()
        source = np.array([by_class[c][d % len(by_class[c])] for c, d in zip(other, draws[:, 2])], dtype=np.int64)
    cue = {"test_clean": none, "test_random_cue": other}.get(split, y)
    return _add_cue(data, images[source], cue, draws[:, 0], "test"), y, cue


def counterfactual_labels(data: CueData, seed: int) -> np.ndarray:
    """The labels of the test sets' items (the same in all four), without making their images."""
    return load_fashion_mnist("test")[1][_order(check_seed(seed), "test", 10_000, data.n_test)]


@functools.cache
def _test_by_class() -> tuple[np.ndarray, ...]:
    labels = load_fashion_mnist("test")[1]
    return tuple(np.flatnonzero(labels == c) for c in range(N_CLASSES))


@functools.cache
def data_hash(data: CueData, seed: int) -> str:
    """sha256 over every split's images and labels for ``seed`` (split name, then its bytes; once per process)."""
    h = hashlib.sha256()
    for split in SPLITS:
        images, labels, _ = split_arrays(data, seed, split, np.arange(data.size(split)))
        h.update(split.encode())
        h.update(images.tobytes())
        h.update(labels.tobytes())
    return h.hexdigest()
