"""Data hashes remembered on disk, so ``validate`` and ``submit`` regenerate a seed's data once per machine.

A task's spec pins the hashes of seeds 0 and 1; any other seed's hash is the slow part of
checking a result (the data is regenerated, and the study's libraries imported). Once
computed it is kept in ``$FMBENCH_CACHE`` (default ``$XDG_CACHE_HOME/fmbench``, else
``~/.cache/fmbench``) at ``data_hashes/<task id>-v<version>-<key>/<seed>``, where ``<key>``
fingerprints the fmbench version and the spec's pinned hashes: a new fmbench version, or
data that changed (and so pins that changed), starts afresh. Tasks read from the user's own
data (``user_data``) are never cached: their hash checks the user's copy. An unreadable
cache counts as empty and an unwritable one is skipped.

Example:
    >>> import tempfile, fmbench
    >>> spec, root = fmbench.make_task("fmbench/ComposeDirect-v0").spec, Path(tempfile.mkdtemp())
    >>> cached_hash(spec, 2, root) is None
    True
    >>> remember_hash(spec, 2, "ab" * 32, root)
    >>> cached_hash(spec, 2, root) == "ab" * 32
    True
"""

from __future__ import annotations

import hashlib
import os
import re
from pathlib import Path

from fmbench.io import atomic_open
from fmbench.task import TaskSpec

CACHE_ENV = "FMBENCH_CACHE"
_HEX64 = re.compile(r"[0-9a-f]{64}")


def cache_dir() -> Path:
    """``$FMBENCH_CACHE``, else ``$XDG_CACHE_HOME/fmbench``, else ``~/.cache/fmbench``."""
    if os.environ.get(CACHE_ENV):
        return Path(os.environ[CACHE_ENV]).expanduser()
    return Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "fmbench"


def _path(spec: TaskSpec, seed: int, root: Path | None) -> Path | None:
    if spec.user_data:
        return None
    from fmbench import __version__

    key = hashlib.sha256(repr((__version__, sorted(spec.data_hashes.items()))).encode()).hexdigest()[:12]
    return (root or cache_dir()) / "data_hashes" / f"{spec.id.replace('/', '__')}-v{spec.version}-{key}" / str(seed)


def cached_hash(spec: TaskSpec, seed: int, root: Path | None = None) -> str | None:
    """The remembered data hash of ``seed`` (in ``root``, default :func:`cache_dir`), or ``None`` (never computed
    here, or not cacheable)."""
    path = _path(spec, seed, root)
    try:
        text = path.read_text().strip() if path is not None else ""
    except (OSError, UnicodeDecodeError):
        return None
    return text if _HEX64.fullmatch(text) else None


def remember_hash(spec: TaskSpec, seed: int, digest: str, root: Path | None = None) -> None:
    """Keep ``digest`` as ``seed``'s data hash (nothing happens if the task is not cacheable or the disk refuses)."""
    path = _path(spec, seed, root)
    if path is None:
        return
    try:
        with atomic_open(path) as f:
            f.write(digest + "\n")
    except OSError:
        pass
