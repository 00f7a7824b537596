"""The concept space: shape, colour, size (and optionally background), classes as digit strings, the splits.

A class is a string of one digit per concept (``"011"``: sphere, blue, small), as in the authors'
file names. Every concept of a space takes two values, so a class id is a binary number: bit ``j``
(most significant first) says which of concept ``j``'s two values the class has. The shape digit
is the authors' shape index (0 sphere, 1 cone, 2 cube); a space holds two shapes, sphere and cone
(``"011"`` is id 3) or sphere and cube (the ``H23`` splits: ``"211"`` is id 7). The concept
distance of a class is its Hamming distance to the nearest training class of a split. The splits
are the authors' ``config_category.json`` entries whose classes lie in such a space (``H32-*``:
3 concepts, ``H23-*``: 3 with the cube, ``H42-*``: 4).

Example:
    >>> space = space_of("H32-train1")
    >>> space.names, space.class_name(3)
    (('shape', 'colour', 'size'), '011')
    >>> distances("H32-train1")
    {'000': 0, '001': 0, '010': 0, '011': 1, '100': 0, '101': 1, '110': 1, '111': 2}
    >>> space_of("H23-train1").class_name(4), distances("H23-train1")["200"]
    ('200', 1)
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from fmbench.errors import InputError

SHAPES = ("circle", "triangle", "square")
"""Flat stand-ins (silhouettes) for the paper's sphere (0), cone (1) and cube (2)."""
COLOURS = ((0.9, 0.1, 0.1), (0.1, 0.1, 0.9))
"""The paper's RGB values: red (0) and blue (1)."""
SIZES = (2.7, 1.6)
"""The paper's object sizes: large (0) and small (1); the renderer keeps their ratio."""
BACKGROUNDS = ((0.0, 0.0, 0.0), (0.3, 0.3, 0.3))
"""Background colours: black (0, the only one with 3 concepts) and dark grey (1, the 4th concept)."""


@dataclass(frozen=True)
class ConceptSpace:
    """The concepts a class string spells, one digit each, in order; every concept takes two values."""

    names: tuple[str, ...]
    shapes: tuple[int, int] = (0, 1)
    """The shape digit (index into ``SHAPES``) of shape value 0 and 1: sphere and cone, or sphere and cube."""

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

    def class_name(self, class_id: int) -> str:
        """The class string of a class id (the authors' digits: the shape digit is its ``SHAPES`` index).

        Example:
            >>> ConceptSpace(("shape", "colour", "size"), shapes=(0, 2)).class_name(5)
            '201'
        """
        bits = format(int(class_id), f"0{self.n_concepts}b")
        return str(self.shapes[int(bits[0])]) + bits[1:]

    def class_id(self, name: str) -> int:
        """The class id of a class string (``InputError`` for one outside the space).

        Example:
            >>> ConceptSpace(("shape", "colour", "size"), shapes=(0, 2)).class_id("201")
            5
        """
        shape = name[:1]
        if (
            len(name) != self.n_concepts
            or not shape.isdigit()
            or int(shape) not in self.shapes
            or set(name[1:]) - {"0", "1"}
        ):
            raise InputError(
                f"class {name!r} is not in the space of {self.n_concepts} concepts with shapes {self.shapes}"
            )
        return int(str(self.shapes.index(int(shape))) + name[1:], 2)


THREE = ConceptSpace(("shape", "colour", "size"))
FOUR = ConceptSpace(("shape", "colour", "size", "background"))
THREE_CUBE = ConceptSpace(("shape", "colour", "size"), shapes=(0, 2))
"""The ``H23`` splits' space: sphere and cube."""

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
    # all classes but 111 (the authors' test list repeats three training classes: they are watched, not held out)
    "H32-train10": ("000", "001", "100", "010", "011", "110", "101"),
    # sphere and cube (shape digit 2); the authors' test class is 200
    "H23-train1": ("011", "211", "201", "210"),
    "H23-train2": ("011", "211", "201", "210", "010"),
    # four concepts (the 4th: background colour here; a position in the authors' 2-D renders)
    "H42-train1": ("0000", "1000", "0100", "0001", "0010"),
}
"""Training classes of each split, from the authors' ``config_category.json``; every other class is held out."""


def space_of(split: str) -> ConceptSpace:
    """The concept space of a split (``InputError`` naming the known splits for an unknown one)."""
    if split not in SPLITS:
        raise InputError(f"unknown split {split!r}; known: {', '.join(SPLITS)}")
    if len(SPLITS[split][0]) == 4:
        return FOUR
    return THREE_CUBE if any(c[0] == "2" for c in SPLITS[split]) else THREE


def distances(split: str) -> dict[str, int]:
    """Every class of the split's space mapped to its Hamming distance to the nearest training class."""
    space = space_of(split)
    train = space.values(train_ids(split))
    every = space.values(np.arange(space.n_classes))
    hamming = (every[:, None, :] != train[None, :, :]).sum(axis=2).min(axis=1)
    return {space.class_name(i): int(d) for i, d in enumerate(hamming)}


def train_ids(split: str) -> np.ndarray:
    """Sorted class ids of the split's training classes."""
    space = space_of(split)
    return np.sort(np.array([space.class_id(c) for c in SPLITS[split]], dtype=np.int64))
