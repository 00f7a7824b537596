"""Writing a task's split to disk for training any model: JSONL rows or a tensor file.

Every export has an ``ids`` column of item ids (one per item; what an id means is the task's
``export_chunks`` docstring). JSONL: one object per item with every column; token-id columns
(``token_ids`` and ``*_token_ids``) also appear as token strings (``tokens``, ``*_tokens``).
``pt``: a dict of tensors (text columns as lists of strings, a :func:`ragged` column as a list
of tensors) plus ``vocab``, loadable with ``torch.load(path, weights_only=True)``.

Example:
    >>> import tempfile, os, fmbench
    >>> path = os.path.join(tempfile.mkdtemp(), "test.pt")
    >>> n = export_split(fmbench.make_task("fmbench/ComposeDirect-v0"), "test", 0, "pt", path)
    >>> n
    16384
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import torch

from fmbench.errors import FmbenchError
from fmbench.io import atomic_open
from fmbench.task import Task

FORMATS = ("jsonl", "pt")


def ragged(arrays: list[np.ndarray]) -> np.ndarray:
    """A column of per-item arrays of different shapes (e.g. each graph at its own size).

    Example:
        >>> column = ragged([np.zeros((2, 3)), np.zeros((1, 3))])
        >>> column.shape, column[1].shape
        ((2,), (1, 3))
    """
    column = np.empty(len(arrays), dtype=object)
    column[:] = [np.asarray(a) for a in arrays]
    return column


def _token_column(name: str) -> str | None:
    if name == "token_ids":
        return "tokens"
    return name[: -len("_token_ids")] + "_tokens" if name.endswith("_token_ids") else None


def _tensors(column: np.ndarray) -> torch.Tensor | list:
    if column.dtype.kind in "biuf":
        return torch.from_numpy(column)
    if len(column) and isinstance(column[0], np.ndarray):  # a ragged column
        return [torch.from_numpy(a) for a in column]
    return column.tolist()


def export_split(task: Task, split: str, seed: int, fmt: str, out: str | Path) -> int:
    """Write ``split`` of ``seed`` to ``out`` atomically; return the number of items."""
    if split not in task.splits:
        raise FmbenchError(f"{task.id} has no split {split!r}; its splits are {list(task.splits)}")
    if fmt not in FORMATS:
        raise FmbenchError(f"unknown format {fmt!r}; use one of {FORMATS}")
    vocab = np.array(task.vocab, dtype=object) if task.vocab else None
    count = 0
    if fmt == "jsonl":
        with atomic_open(out, "w") as f:
            for cols in task.export_chunks(split, seed):
                names = list(cols)
                for i in range(len(cols["ids"])):
                    row = {k: cols[k][i].tolist() for k in names}
                    if vocab is not None:
                        row.update({_token_column(k): vocab[cols[k][i]].tolist() for k in names if _token_column(k)})
                    f.write(json.dumps(row) + "\n")
                count += len(cols["ids"])
        return count
    chunks = list(task.export_chunks(split, seed))
    columns = {k: np.concatenate([c[k] for c in chunks]) for k in chunks[0]}
    tensors = {k: _tensors(v) for k, v in columns.items()}
    payload = {**tensors, "vocab": list(task.vocab or []), "task": task.id, "split": split, "seed": seed}
    with atomic_open(out, "wb") as f:
        torch.save(payload, f)
    return len(tensors["ids"])
