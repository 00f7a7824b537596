"""Phase diagrams: the rank of the optimum over a grid of weight decay and augmentation strength.

Example:
    >>> from fmbench.studies.ssl_landscape.problems import Setting
    >>> base = Setting(dim=4, width=4, loss="noncontrastive", mu=0.5)
    >>> theory_ranks(base, [0.05, 2.0], [0.0, 1.0]).tolist()
    [[4, 0], [0, 0]]
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence

import numpy as np

from fmbench.studies.ssl_landscape.problems import Setting
from fmbench.studies.ssl_landscape.train import train

RANK_TOL = 1e-3
"""A trained encoder's singular value counts towards its rank above this (the optimum's are 0 or far above)."""


def theory_ranks(
    base: Setting, gammas: Sequence[float], strengths: Sequence[float], field: str = "weight_decay"
) -> np.ndarray:
    """``(len(gammas), len(strengths))`` predicted ranks of ``base`` with those values of ``field`` (weight decay
    unless said) and strengths."""
    return np.array(
        [[dataclasses.replace(base, **{field: g, "strength": s}).predict().rank for s in strengths] for g in gammas]
    )


def trained_rank(
    setting: Setting, seed: int = 0, max_steps: int = 50_000, init_scale: float = 1.0, momentum: float = 0.0
) -> int:
    """The rank gradient descent reaches: singular values of ``W`` above :data:`RANK_TOL`."""
    fit = train(setting, seed, tol=1e-9, max_steps=max_steps, init_scale=init_scale, momentum=momentum)
    return int((fit.singular_values > RANK_TOL).sum())


def trained_ranks(
    base: Setting,
    gammas: Sequence[float],
    strengths: Sequence[float],
    cells: Sequence[tuple[int, int]],
    field: str = "weight_decay",
    **kw: float,
) -> dict[tuple[int, int], int]:
    """Trained ranks at the grid ``cells`` ``(i, j)`` (``field`` = ``gammas[i]``, strength ``strengths[j]``)."""
    return {
        (i, j): trained_rank(dataclasses.replace(base, **{field: gammas[i], "strength": strengths[j]}), **kw)
        for i, j in cells
    }
