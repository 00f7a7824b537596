"""Helpers shared by the benchmark scripts: timing, reference checkouts and the result line.

Every script prints, as its last stdout line, one JSON object with at least ``benchmark``,
``ratio`` (how many times faster fmbench is; ``None`` when there is nothing to compare with)
and ``goal``.
"""

from __future__ import annotations

import json
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

T = TypeVar("T")


def best_of(fn: Callable[[], T], repeats: int) -> tuple[float, T]:
    """Run ``fn`` ``repeats`` times; return the fastest wall time in seconds and the last result."""
    best, result = float("inf"), None
    for _ in range(max(1, repeats)):
        start = time.perf_counter()
        result = fn()
        best = min(best, time.perf_counter() - start)
    return best, result


def note(message: str) -> None:
    """One line on stderr (stdout ends with the JSON result)."""
    print(message, file=sys.stderr, flush=True)


def reference_checkout(path: str | None, marker: str, how: str) -> Path | None:
    """The reference checkout at ``path`` if it holds ``marker``, else ``None`` (said on stderr).

    Args:
        path: the ``--reference`` argument (``None`` when not given).
        marker: a file the checkout must contain, relative to its root.
        how: how to obtain the checkout, quoted in the message.
    """
    if path is None:
        note(f"reference: absent (no --reference given; {how})")
        return None
    root = Path(path)
    if not (root / marker).is_file():
        note(f"reference: absent ({root / marker} not found; {how})")
        return None
    return root


def ratio(fmbench_rate: float, reference_rate: float | None) -> float | None:
    """How many times faster fmbench is (``None`` without a reference figure)."""
    return None if not reference_rate else round(fmbench_rate / reference_rate, 2)


def emit(result: dict[str, Any]) -> None:
    """Print the result object as the last stdout line."""
    missing = {"benchmark", "ratio", "goal"} - result.keys()
    if missing:
        raise ValueError(f"result lacks {sorted(missing)}")
    print(json.dumps(result), flush=True)
