"""The concept space: shape, colour, size (and optionally background), classes as digit strings, the splits.

A class is a string of one binary digit per concept (``"011"``: circle, blue, small), as in the
authors' file names; its id is that string read as a binary number, so ``"011"`` is id 3. The
concept distance of a class is its Hamming distance to the nearest training class of a split.
The splits are the authors' ``config_category.json`` entries whose classes lie in this binary
concept space (``H32-*``: 3 concepts, ``H42-*``: 4).

Example:
    >>> space = space_of("H32-train1")
    >>> space.names, class_name(3, space.n_concepts)
    (('shape', 'colour', 'size'), '011')
    >>> distances("H32-train1")
    {'000': 0, '001': 0, '010': 0, '011': 1, '100': 0, '101': 1, '110': 1, '111': 2}
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from fmbench.errors import InputError

SHAPES = ("circle", "triangle")
"""Flat stand-ins for the paper's sphere (0) and cone (1)."""
COLOURS = ((0.9, 0.1, 0.1), (0.1, 0.1, 0.9))
"""The paper's RGB values: red (0) and blue (1)."""
SIZES = (2.7, 1.6)
"""The paper's object sizes: large (0) and small (1); the renderer keeps their ratio."""
BACKGROUNDS = ((0.0, 0.0, 0.0), (0.3, 0.3, 0.3))
"""Background colours: black (0, the only one with 3 concepts) and dark grey (1, the 4th concept)."""


@dataclass(frozen=True)
class ConceptSpace:
    """The concepts a class string spells, one binary digit each, in order."""

    names: tuple[str, ...]

    @property
    def n_concepts(self) -> int:
        return len(self.names)

    @property
    def n_classes(self) -> int:
        return 2**self.n_concepts

    def values(self, class_ids: np.ndarray) -> np.ndarray:
        """``(N, n_concepts)`` int64 concept values (0 or 1) of class ids; ``InputError`` outside the space.

        Example:
            >>> ConceptSpace(("shape", "colour", "size")).values(np.array([3, 4])).tolist()
            [[0, 1, 1], [1, 0, 0]]
        """
        ids = np.asarray(class_ids)
        if ids.ndim != 1 or not np.issubdtype(ids.dtype, np.integer):
            raise InputError(f"class ids must be a 1-D integer array, got {ids.dtype} of shape {ids.shape}")
        if ids.size and (ids.min() < 0 or ids.max() >= self.n_classes):
            raise InputError(
                f"class ids outside the concept space: {int(ids.min())}..{int(ids.max())}, "
                f"expected 0..{self.n_classes - 1} ({self.n_concepts} binary concepts)"
            )
        shifts = np.arange(self.n_concepts - 1, -1, -1)
        return (ids.astype(np.int64)[:, None] >> shifts) & 1


THREE = ConceptSpace(("shape", "colour", "size"))
FOUR = ConceptSpace(("shape", "colour", "size", "background"))

SPLITS: dict[str, tuple[str, ...]] = {
    # the main split and its variants (4 training classes each)
    "H32-train1": ("000", "001", "100", "010"),
    "H32-train2": ("000", "001", "011", "101"),
    "H32-train3": ("000", "010", "011", "110"),
    "H32-train4": ("000", "100", "110", "101"),
    "H32-train6": ("001", "011", "101", "110"),
    "H32-train7": ("000", "010", "110", "101"),
    "H32-train8": ("000", "100", "110", "011"),
    "H32-train9": ("000", "011", "110", "101"),
    # the adversarial split ("fail1", the same classes as "train5"): 111 is trained, 000's neighbours not all
    "H32-fail1": ("000", "100", "010", "111"),
    # four concepts (the 4th: background colour here; a position in the authors' 2-D renders)
    "H42-train1": ("0000", "1000", "0100", "0001", "0010"),
}
"""Training classes of each split, from the authors' ``config_category.json``; every other class is held out."""


def space_of(split: str) -> ConceptSpace:
    """The concept space of a split (``InputError`` naming the known splits for an unknown one)."""
    if split not in SPLITS:
        raise InputError(f"unknown split {split!r}; known: {', '.join(SPLITS)}")
    return THREE if len(SPLITS[split][0]) == 3 else FOUR


def class_name(class_id: int, n_concepts: int) -> str:
    """The class string of a class id: its binary digits, most significant first."""
    return format(int(class_id), f"0{n_concepts}b")


def class_id(name: str) -> int:
    """The class id of a class string (``"011"`` -> 3)."""
    return int(name, 2)


def distances(split: str) -> dict[str, int]:
    """Every class of the split's space mapped to its Hamming distance to the nearest training class."""
    space = space_of(split)
    train = space.values(np.array([class_id(c) for c in SPLITS[split]]))
    every = space.values(np.arange(space.n_classes))
    hamming = (every[:, None, :] != train[None, :, :]).sum(axis=2).min(axis=1)
    return {class_name(i, space.n_concepts): int(d) for i, d in enumerate(hamming)}


def train_ids(split: str) -> np.ndarray:
    """Sorted class ids of the split's training classes."""
    return np.sort(np.array([class_id(c) for c in SPLITS[split]], dtype=np.int64))
