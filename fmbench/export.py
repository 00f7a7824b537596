"""Writing a task's split to disk for training any model: JSONL rows or a tensor file.

JSONL: one object per item with every column; id columns (``ids`` and ``*_ids``) also
appear as token strings (``tokens``, ``*_tokens``). ``pt``: a dict of tensors (text
columns as lists of strings) plus ``vocab``, loadable with ``torch.load(path, weights_only=True)``.

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


def _token_column(name: str) -> str | None:
    if name == "ids":
        return "tokens"
    return name[: -len("_ids")] + "_tokens" if name.endswith("_ids") else None


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
    tensors = {k: torch.from_numpy(v) if v.dtype.kind in "biuf" else v.tolist() for k, v in columns.items()}
    payload = {**tensors, "vocab": list(task.vocab or []), "task": task.id, "split": split, "seed": seed}
    with atomic_open(out, "wb") as f:
        torch.save(payload, f)
    return len(tensors["ids"])
