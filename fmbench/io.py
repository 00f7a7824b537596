"""Atomic file writes: a reader never sees a partial file and a failure leaves none behind.

Example:
    >>> import tempfile, os
    >>> path = os.path.join(tempfile.mkdtemp(), "a.json")
    >>> write_json_atomic(path, {"x": 1})
    >>> open(path).read()
    '{\\n  "x": 1\\n}\\n'
"""

from __future__ import annotations

import json
import os
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import IO, Any


@contextmanager
def atomic_path(path: str | os.PathLike, exclusive: bool = False) -> Iterator[Path]:
    """Yield a temporary path beside ``path``; when the block succeeds, move it into place.

    With ``exclusive=True`` an existing ``path`` is never replaced (``FileExistsError``),
    which is safe against concurrent writers (it uses a hard link). The file gets the
    usual permissions (0666 less the umask).
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    os.close(fd)
    try:
        yield Path(tmp)
        umask = os.umask(0)
        os.umask(umask)
        os.chmod(tmp, 0o666 & ~umask)
        if exclusive:
            os.link(tmp, path)
        else:
            os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)


@contextmanager
def atomic_open(path: str | os.PathLike, mode: str = "w", exclusive: bool = False) -> Iterator[IO]:
    """Open a file for writing whose content appears at ``path`` only when complete (see ``atomic_path``)."""
    with atomic_path(path, exclusive) as tmp, open(tmp, mode) as f:
        yield f
        f.flush()
        os.fsync(f.fileno())


def write_json_atomic(path: str | os.PathLike, obj: Any, exclusive: bool = False) -> None:
    """Write ``obj`` as indented, strict JSON atomically (see ``atomic_open``; NaN or infinity: ``ValueError``)."""
    with atomic_open(path, "w", exclusive=exclusive) as f:
        json.dump(obj, f, indent=2, sort_keys=False, allow_nan=False)
        f.write("\n")
