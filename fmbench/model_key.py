"""The key that names a model on a leaderboard: two entries of a task with the same key and seeds are duplicates.

A result record's ``model.key`` is ``{"sha256": <hex>, "of": <what was hashed>}``, never empty:

* ``weights``: the model's weights hash (``model.weights_sha256``): the file's sha256 for a
  safetensors file, an SB3 zip or a GGUF file; the state dict's for a module built in code;
* ``files``: when there are no weights to hash, the sha256 of the model's artefacts (a Hugging
  Face folder's files, a ``python:`` model's module source), named by relative path, never by
  where they lie;
* ``spec``: when there are neither, the sha256 of its canonical spec (a reward model built by
  name hashes ``{"reward": <name>}``, so ``baseline:random`` of a reward task and
  ``reward:random`` share a key).

Example:
    >>> identity_key({"spec": "baseline:random"})["of"]
    'spec'
    >>> identity_key({"scheme": "hf", "files": {"config.json": "ab" * 32}})["of"]
    'files'
"""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path
from typing import Any

from fmbench.checkpoints import file_sha256
from fmbench.errors import ModelError

MAX_FILES = 10_000  # a model folder with more files than this is refused rather than hashed


def weights_key(sha256: str) -> dict[str, str]:
    """The key of a model with a weights hash.

    Example:
        >>> weights_key("ab" * 32)["of"]
        'weights'
    """
    return {"sha256": sha256, "of": "weights"}


def identity_key(identity: dict[str, Any]) -> dict[str, str]:
    """The key of a model without weights: the sha256 of its identity's canonical JSON.

    ``identity`` holds no paths: files appear under ``"files"`` as ``{relative path: sha256}``.
    """
    text = json.dumps(identity, sort_keys=True, separators=(",", ":"), ensure_ascii=True)
    return {"sha256": hashlib.sha256(text.encode()).hexdigest(), "of": "files" if "files" in identity else "spec"}


def files_digest(folder: str | os.PathLike) -> dict[str, str]:
    """``{relative path: sha256}`` of every regular file under ``folder`` (symlinks and hidden files skipped).

    Example:
        >>> import tempfile
        >>> d = Path(tempfile.mkdtemp()); _ = (d / "a.txt").write_text("x")
        >>> files_digest(d)
        {'a.txt': '2d711642b726b04401627ca9fbac32f5c8530fb1903cc4db02258717921a4881'}
    """
    root, found = Path(folder), {}
    for here, dirs, files in os.walk(root):  # never follows symlinked folders
        dirs[:] = sorted(d for d in dirs if not d.startswith("."))
        for name in sorted(files):
            path = Path(here) / name
            if name.startswith(".") or path.is_symlink() or not path.is_file():
                continue
            if len(found) >= MAX_FILES:
                raise ModelError(f"{root} holds more than {MAX_FILES:,} files; not a model folder")
            found[path.relative_to(root).as_posix()] = file_sha256(path)
    return found
