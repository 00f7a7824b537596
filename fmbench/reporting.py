"""What reproduction scripts share: a resumable run log, mean ± sample std, markdown tables and PNG figures.

* :class:`RunLog`: an append-only ``runs.jsonl``, one JSON object per finished run; a run whose
  key is already recorded is skipped, and a last line cut short by an interrupted write is dropped
  (with a warning) without touching the lines before it.
* :class:`MeanStd`: mean ± **sample** standard deviation (``ddof=1``) and the count ``n``. This is
  the one convention for spread over seeds in fmbench (result records use it too, storing 0.0 for
  one seed since JSON has no NaN). With one value the sample std is undefined: here it is NaN, and
  the formatted cell shows the mean and ``(n=1)``.
* :func:`markdown_table`, :func:`pyplot` and :func:`save_png` (Agg backend, no version stamp in
  the file, so the same figure gives the same bytes).

Example:
    >>> MeanStd.of([0.5, 1.0]).format(3)
    '0.750 ± 0.354'
    >>> print(markdown_table(["encoder", "accuracy"], [["random", MeanStd.of([0.5]).format(2)]]))
    | encoder | accuracy |
    |---|---|
    | random | 0.50 (n=1) |
"""

from __future__ import annotations

import json
import math
import os
import warnings
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np


@dataclass(frozen=True)
class MeanStd:
    """The mean, sample standard deviation (``ddof=1``; NaN for one value) and count of some values.

    Example:
        >>> MeanStd.of([1.0, 2.0, 3.0])
        MeanStd(mean=2.0, std=1.0, n=3)
    """

    mean: float
    std: float
    n: int

    @classmethod
    def of(cls, values: Iterable[float]) -> MeanStd:
        """Summarise ``values`` (at least one; ``ValueError`` otherwise, or for a non-finite value)."""
        array = np.asarray(list(values), dtype=np.float64)
        if array.ndim != 1 or not len(array):
            raise ValueError(f"mean ± std needs a non-empty list of numbers, got shape {array.shape}")
        if not np.isfinite(array).all():
            raise ValueError(f"mean ± std of non-finite values: {array.tolist()}")
        std = float(array.std(ddof=1)) if len(array) > 1 else math.nan
        return cls(float(array.mean()), std, len(array))

    def format(self, digits: int = 3) -> str:
        """``"mean ± std"`` to ``digits`` decimals, or ``"mean (n=1)"`` for a single value.

        Example:
            >>> MeanStd(0.25, math.nan, 1).format(2)
            '0.25 (n=1)'
        """
        if self.n == 1:
            return f"{self.mean:.{digits}f} (n=1)"
        return f"{self.mean:.{digits}f} ± {self.std:.{digits}f}"


def mean_std_cell(values: Sequence[float], digits: int = 3) -> str:
    """A table cell: :meth:`MeanStd.format` of ``values``, or ``"–"`` when there are none.

    Example:
        >>> mean_std_cell([]), mean_std_cell([1, 2], 1)
        ('–', '1.5 ± 0.7')
    """
    return MeanStd.of(values).format(digits) if len(values) else "–"


def markdown_table(header: Sequence[str], rows: Iterable[Sequence[Any]], align: str | None = None) -> str:
    """A GitHub markdown table (no trailing newline); cells are ``str()``-ed and ``|`` escaped.

    Args:
        header: the column titles.
        rows: one sequence of cells per row, each as long as ``header``.
        align: one letter per column, ``l`` (left, the default) or ``r`` (right).

    Example:
        >>> print(markdown_table(["k", "accuracy"], [[10, 0.5]], align="rr"))
        | k | accuracy |
        |---:|---:|
        | 10 | 0.5 |
    """
    align = align or "l" * len(header)
    if len(align) != len(header) or set(align) - {"l", "r"}:
        raise ValueError(f"align must be one of 'l'/'r' per column ({len(header)}), got {align!r}")

    def line(cells: Sequence[Any]) -> str:
        return "| " + " | ".join(str(c).replace("|", "\\|") for c in cells) + " |"

    lines = [line(header), "|" + "|".join("---" if a == "l" else "---:" for a in align) + "|"]
    for i, row in enumerate(rows):
        if len(row) != len(header):
            raise ValueError(f"table row {i} has {len(row)} cells, the header {len(header)}: {list(row)}")
        lines.append(line(row))
    return "\n".join(lines)


def pyplot() -> Any:
    """``matplotlib.pyplot`` on the Agg backend (no display needed)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def save_png(fig: Any, path: str | Path, dpi: int = 120) -> Path:
    """Save ``fig`` as a PNG without matplotlib's version stamp (same figure, same bytes) and close it.

    Example:
        >>> import tempfile
        >>> fig, ax = pyplot().subplots()
        >>> save_png(fig, Path(tempfile.mkdtemp()) / "empty.png").read_bytes()[:4]
        b'\\x89PNG'
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=dpi, format="png", metadata={"Software": None})
    pyplot().close(fig)
    return path


class RunLog:
    """An append-only JSON-lines file of finished runs, each identified by some of its top-level fields.

    Reading keeps every complete line. A last line without its newline that is not valid JSON is
    what an interrupted write leaves: it is dropped with a warning and cut off before the next
    append. Any other unreadable line, or a record missing a key field, raises ``ValueError``
    naming the file and line.

    Args:
        path: the ``runs.jsonl`` file (need not exist yet).
        key: the fields that identify a run, e.g. ``("task", "augment", "seed")``.

    Example:
        >>> import tempfile
        >>> log = RunLog(Path(tempfile.mkdtemp()) / "runs.jsonl", key=("task", "seed"))
        >>> log.append({"task": "t", "seed": 0, "accuracy": 0.5}), log.append({"task": "t", "seed": 0})
        (True, False)
        >>> ("t", 0) in log, len(RunLog(log.path, key=("task", "seed")).records)
        (True, 1)
    """

    def __init__(self, path: str | Path, key: Sequence[str]) -> None:
        if not key:
            raise ValueError("a run log needs at least one key field")
        self.path, self.key = Path(path), tuple(key)
        self.records: list[dict[str, Any]] = []
        self._keys: set[tuple] = set()
        self._size = 0  # bytes of complete lines; anything after them is a torn line
        self._file_size = 0  # bytes in the file when last read or written
        self._newline = False  # the file ends in a complete line without its newline
        if self.path.exists():
            self._read()

    def key_of(self, record: dict[str, Any]) -> tuple:
        """The record's key: the values of the key fields, in order (``KeyError`` if one is missing)."""
        return tuple(record[field] for field in self.key)

    def __contains__(self, key: tuple) -> bool:
        return tuple(key) in self._keys

    def __len__(self) -> int:
        return len(self.records)

    def _read(self) -> None:
        data = self.path.read_bytes()
        self._file_size = len(data)
        lines = data.split(b"\n")
        for number, line in enumerate(lines, 1):
            last = number == len(lines)
            if line.strip():
                try:
                    record = json.loads(line)
                except ValueError as e:
                    if last:  # no newline after it: a write that did not finish
                        warnings.warn(
                            f"{self.path}, line {number}: dropped a partly written last line "
                            f"({len(line)} bytes); the next append overwrites it",
                            stacklevel=3,
                        )
                        return
                    raise ValueError(f"{self.path}, line {number}: not a JSON line ({e})") from None
                if not isinstance(record, dict):
                    raise ValueError(f"{self.path}, line {number}: expected a JSON object, got {line[:60]!r}")
                try:
                    self._keys.add(self.key_of(record))
                except KeyError as e:
                    raise ValueError(
                        f"{self.path}, line {number}: the record has no {e.args[0]!r} "
                        f"(key fields: {', '.join(self.key)})"
                    ) from None
                self.records.append(record)
                self._newline = last
            self._size += len(line) + (not last)

    def append(self, record: dict[str, Any]) -> bool:
        """Write ``record`` as a new last line unless a run with its key is recorded; return whether written."""
        key = self.key_of(record)
        if key in self._keys:
            return False
        line = (b"\n" if self._newline else b"") + json.dumps(record).encode() + b"\n"
        self.path.parent.mkdir(parents=True, exist_ok=True)
        with self.path.open("ab") as f:
            if f.tell() != self._file_size:
                raise ValueError(
                    f"{self.path} changed since it was read ({self._file_size} bytes, now {f.tell()}); not appending"
                )
            if self._size < self._file_size:
                f.truncate(self._size)  # the torn last line
            f.write(line)
            f.flush()
            os.fsync(f.fileno())
        self._size += len(line)
        self._file_size = self._size
        self._newline = False
        self._keys.add(key)
        self.records.append(record)
        return True
