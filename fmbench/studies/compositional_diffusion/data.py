"""The data of a split: rendered training images and the evaluation items (class, sample), random-access.

Training item ``i`` of a split is training class ``i mod k`` (``k`` training classes, in id order),
rendered with jitter draw ``i`` of the stream ``(seed, split)``: any slice renders alone. Evaluation
items ask the generator for ``per_class`` images of every class of the concept space (the training
ones included, as the authors' learning curves do), in an order drawn from the seed (so batches mix
classes, and each seed draws other batches).

Example:
    >>> import numpy as np
    >>> train_classes("H32-train1", np.arange(6)).tolist()
    [0, 1, 2, 4, 0, 1]
    >>> train_images("H32-train1", 0, np.arange(2)).shape
    (2, 3, 28, 28)
"""

from __future__ import annotations

import numpy as np

from fmbench.random_access import bits, check_seed, stream_key
from fmbench.studies.compositional_diffusion.concepts import space_of, train_ids
from fmbench.studies.compositional_diffusion.render import render


def train_classes(split: str, index: np.ndarray) -> np.ndarray:
    """Class ids of training items ``index`` of a split (its training classes in turn)."""
    ids = train_ids(split)
    return ids[np.asarray(index, dtype=np.int64) % len(ids)]


def train_images(split: str, seed: int, index: np.ndarray) -> np.ndarray:
    """Float32 renders ``(N, 3, 28, 28)`` in [0, 1] of training items ``index`` of a split for ``seed``."""
    key = stream_key("compositional_diffusion", check_seed(seed), split, "train")
    return render(space_of(split), train_classes(split, index), key, np.asarray(index))


def eval_classes(split: str, per_class: int, seed: int, index: np.ndarray) -> np.ndarray:
    """Class ids of evaluation items ``index`` for ``seed``: ``per_class`` items of each class, in a seeded order."""
    n = eval_size(split, per_class)
    keys = bits(stream_key("compositional_diffusion", check_seed(seed), split, "eval"), np.arange(n), 1)[:, 0]
    return np.argsort(keys, kind="stable")[np.asarray(index, dtype=np.int64)] // per_class


def eval_size(split: str, per_class: int) -> int:
    """Evaluation items of a split: ``per_class`` for each class of its concept space."""
    return space_of(split).n_classes * per_class
