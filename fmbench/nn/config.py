"""The base of the shared architectures' configs: built from plain data, sizes checked.

Example:
    >>> from dataclasses import dataclass
    >>> @dataclass(frozen=True)
    ... class TinyConfig(ArchConfig):
    ...     width: int = 4
    ...     def __post_init__(self) -> None:
    ...         self.check_positive("width")
    >>> TinyConfig.from_dict({"width": 8}).width
    8
"""

from __future__ import annotations

import dataclasses
from typing import TypeVar

T = TypeVar("T", bound="ArchConfig")


class ArchConfig:
    """Mixin of the frozen config dataclasses in :mod:`fmbench.nn` (``GPTConfig``, ``GINConfig``, ``CNNConfig``)."""

    def check_positive(self, *names: str) -> None:
        """``ValueError`` naming the first of ``names`` that is not a positive integer."""
        for name in names:
            value = getattr(self, name)
            if not isinstance(value, int) or value < 1:
                raise ValueError(f"{type(self).__name__}.{name} must be a positive integer, got {value!r}")

    @classmethod
    def from_dict(cls: type[T], d: dict) -> T:
        """Build from plain data (a checkpoint header), naming unknown keys."""
        unknown = sorted(set(d) - {f.name for f in dataclasses.fields(cls)})
        if unknown:
            raise ValueError(f"unknown {cls.__name__.removesuffix('Config')} config keys {unknown}")
        return cls(**d)
