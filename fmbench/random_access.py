"""Counter-based random numbers for random-access, seeded data generation.

Item ``i`` of a stream depends only on the stream key and ``i``, so any slice of a
data set can be generated without generating what comes before it, and generation
vectorises over items. The generator is splitmix64 evaluated at arbitrary counters.

Example:
    >>> key = stream_key("compositional", 0, "train")
    >>> a = integers(key, np.arange(5), 3, high=10)
    >>> b = integers(key, np.array([3]), 3, high=10)
    >>> bool((a[3] == b[0]).all())
    True
"""

from __future__ import annotations

import hashlib

import numpy as np

from fmbench.errors import InputError

_GOLDEN = np.uint64(0x9E3779B97F4A7C15)
_M1 = np.uint64(0xBF58476D1CE4E5B9)
_M2 = np.uint64(0x94D049BB133111EB)


def check_seed(seed: object, name: str = "seed") -> int:
    """``seed`` as an int, or ``ValueError`` unless it is a non-negative integer (bools refused).

    Example:
        >>> check_seed(np.int64(3))
        3
    """
    if not isinstance(seed, (int, np.integer)) or isinstance(seed, bool) or seed < 0:
        raise InputError(f"{name} must be a non-negative integer, got {seed!r}")
    return int(seed)


def stream_key(*parts: object) -> int:
    """Derive a 64-bit stream key from any printable parts (names, seeds, versions).

    Example:
        >>> stream_key("task", 1) == stream_key("task", 1)
        True
    """
    digest = hashlib.blake2b(repr(parts).encode(), digest_size=8).digest()
    return int.from_bytes(digest, "little")


def _mix(z: np.ndarray) -> None:
    """splitmix64's output function, applied in place."""
    t = np.empty_like(z)
    for shift, multiplier in ((30, _M1), (27, _M2)):
        np.right_shift(z, shift, out=t)
        z ^= t
        z *= multiplier
    np.right_shift(z, 31, out=t)
    z ^= t


def bits(key: int, index: np.ndarray, n: int) -> np.ndarray:
    """Return ``(len(index), n)`` uniform 64-bit words; row ``r`` depends only on ``key, index[r]``.

    Example:
        >>> bits(1, np.arange(2), 4).shape
        (2, 4)
    """
    index = np.asarray(index, dtype=np.uint64).reshape(-1, 1)
    with np.errstate(over="ignore"):
        # key + counter * golden with counter = index * n + j + 1, split into row and column terms
        column = np.arange(1, n + 1, dtype=np.uint64) * _GOLDEN + np.uint64(key)
        z = index * (np.uint64(n) * _GOLDEN) + column
    _mix(z)
    return z


def integers(key: int, index: np.ndarray, n: int, high: int) -> np.ndarray:
    """Return ``(len(index), n)`` int64 values uniform in ``[0, high)`` (bias below 2**-40).

    Example:
        >>> int(integers(7, np.arange(100), 1, high=3).max()) < 3
        True
    """
    if high < 1:
        raise ValueError(f"high must be >= 1, got {high}")
    z = bits(key, index, n)
    z >>= np.uint64(11)
    u = z.view(np.int64).astype(np.float64)  # 53-bit values: exact, and the signed conversion is fast
    u *= high * 2.0**-53  # exactly (z * 2**-53) * high: scaling by a power of two does not round
    return u.astype(np.int64)


def normals(key: int, index: np.ndarray, n: int) -> np.ndarray:
    """Return ``(len(index), n)`` float64 standard normal values (Box-Muller on two 53-bit uniforms per value).

    Example:
        >>> z = normals(3, np.arange(4000), 2)
        >>> z.shape, bool(abs(z.mean()) < 0.05), bool(abs(z.std() - 1) < 0.05)
        ((4000, 2), True, True)
        >>> bool((normals(3, np.array([7]), 2)[0] == z[7]).all())
        True
    """
    z = bits(key, index, 2 * n) >> np.uint64(11)
    u = (z.view(np.int64).astype(np.float64) + 0.5) * 2.0**-53  # in (0, 1): the logarithm stays finite
    return np.sqrt(-2.0 * np.log(u[:, :n])) * np.cos(2.0 * np.pi * u[:, n:])
