"""The collapse evaluator: eigenspectrum, rank, collapse kind, agreement with a prediction, linear-probe accuracy.

It reads only an encoder's embeddings, so it scores any SSL encoder.

Example:
    >>> import numpy as np
    >>> z = np.random.default_rng(0).normal(size=(500, 4)) * [1.0, 1.0, 0.0, 0.0]
    >>> eig = covariance_spectrum(z)
    >>> numerical_rank(eig), collapse_kind(numerical_rank(eig), 4), round(effective_rank(eig), 1)
    (2, 'dimensional', 2.0)
"""

from __future__ import annotations

import numpy as np

from fmbench.probes import linear_probe

RELATIVE_TOL = 1e-3
"""An eigenvalue of the representation covariance counts towards the rank above this fraction of the largest..."""
ABSOLUTE_TOL = 1e-8
"""...and above this absolute value (inputs have unit-order variance), so a collapsed encoder has rank 0."""


def covariance_spectrum(z: np.ndarray) -> np.ndarray:
    """Eigenvalues of the (centred) covariance of embeddings ``z`` ``(n, k)``, descending, clipped at 0."""
    z = np.asarray(z, dtype=np.float64)
    zc = z - z.mean(axis=0)
    return np.clip(np.linalg.eigvalsh(zc.T @ zc / max(len(z) - 1, 1))[::-1], 0, None)


def numerical_rank(eig: np.ndarray) -> int:
    """How many eigenvalues exceed ``max(RELATIVE_TOL * largest, ABSOLUTE_TOL)``."""
    if len(eig) == 0:
        return 0
    return int((eig > max(RELATIVE_TOL * float(eig.max()), ABSOLUTE_TOL)).sum())


def effective_rank(eig: np.ndarray) -> float:
    """``exp`` of the entropy of the normalised eigenvalues (Roy and Vetterli 2007); 0 for a collapsed encoder."""
    total = float(eig.sum())
    if total <= ABSOLUTE_TOL:
        return 0.0
    p = eig[eig > 0] / total
    return float(np.exp(-(p * np.log(p)).sum()))


def collapse_kind(rank: int, full: int) -> str:
    """``complete`` (rank 0), ``dimensional`` (0 < rank < ``full``) or ``none``."""
    return "complete" if rank == 0 else ("dimensional" if rank < full else "none")


def spectrum_error(eig: np.ndarray, predicted: np.ndarray) -> float:
    """``|eig - predicted| / |predicted|`` (sorted, zero-padded); the absolute norm when ``predicted`` is 0."""
    n = max(len(eig), len(predicted))
    a, b = np.zeros(n), np.zeros(n)
    a[: len(eig)], b[: len(predicted)] = np.sort(eig)[::-1], np.sort(predicted)[::-1]
    scale = float(np.linalg.norm(b))
    return float(np.linalg.norm(a - b) / (scale if scale > ABSOLUTE_TOL else 1.0))


def collapse_metrics(z: np.ndarray, full: int) -> dict[str, float]:
    """Rank, effective rank and collapse flags of embeddings ``z``; ``full``: the rank without collapse."""
    eig = covariance_spectrum(z)
    rank = numerical_rank(eig)
    kind = collapse_kind(rank, full)
    return {
        "rank": float(rank),
        "effective_rank": effective_rank(eig),
        "complete_collapse": float(kind == "complete"),
        "dimensional_collapse": float(kind == "dimensional"),
    }


def agreement_metrics(z: np.ndarray, z_predicted: np.ndarray, predicted_rank: int) -> dict[str, float]:
    """How close embeddings ``z`` are to the predicted encoder's ``z_predicted`` on the same inputs."""
    eig = covariance_spectrum(z)
    return {
        "rank_agreement": float(numerical_rank(eig) == predicted_rank),
        "spectrum_error": spectrum_error(eig, covariance_spectrum(z_predicted)),
    }


def probe_metrics(
    train_z: np.ndarray, train_y: np.ndarray, test_z: np.ndarray, test_y: np.ndarray, minority: int
) -> dict[str, float]:
    """A logistic-regression probe's test accuracy, overall and on class ``minority`` (the rarest in pretraining).

    The embeddings are centred and scaled by one number, not per feature: standardising each feature
    would blow a collapsed (near-zero) direction up to unit variance and hide the collapse from the probe.
    """
    pred = linear_probe(train_z, train_y, test_z, per_feature=False)
    rare = test_y == minority
    return {
        "probe_accuracy": float((pred == test_y).mean()),
        "probe_minority_accuracy": float((pred[rare] == minority).mean()),
    }
