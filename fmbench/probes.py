"""Linear probes on frozen embeddings, shared by the studies that score representation learners.

Example:
    >>> import numpy as np
    >>> z = np.array([[0.0], [0.1], [1.0], [1.1]]); y = np.array([0, 0, 1, 1])
    >>> linear_probe(z, y, z).tolist()
    [0, 0, 1, 1]
"""

from __future__ import annotations

import warnings

import numpy as np
from sklearn.linear_model import LogisticRegression
from sklearn.preprocessing import StandardScaler
from threadpoolctl import threadpool_limits


def standardise(train_z: np.ndarray, *others: np.ndarray) -> list[np.ndarray]:
    """``train_z`` and ``others`` scaled by the train embeddings' mean and standard deviation."""
    scaler = StandardScaler().fit(train_z)
    return [scaler.transform(z) for z in (train_z, *others)]


def linear_probe(train_z: np.ndarray, train_y: np.ndarray, test_z: np.ndarray, per_feature: bool = True) -> np.ndarray:
    """Predicted classes of ``test_z`` from a logistic-regression probe fitted on standardised train embeddings.

    ``per_feature=False`` centres the embeddings and divides them by one scale (their root-mean-square
    norm over features) instead of standardising each feature, so a (nearly) collapsed feature stays
    small rather than being blown up to unit variance.

    Deterministic (L-BFGS, no random initialisation) and the same for any thread count: the fit
    runs on one BLAS thread, whose sums do not depend on how work is split. Raises ``ValueError``
    with fewer than two classes. Labels are classes even when there are few samples per class
    (scikit-learn's warning that they might be regression targets is silenced).
    """
    if len(np.unique(train_y)) < 2:
        raise ValueError("the probe's train split needs at least two classes")
    if per_feature:
        a, b = standardise(train_z, test_z)
    else:
        centre = train_z.mean(axis=0)
        scale = float(np.sqrt(((train_z - centre) ** 2).mean())) or 1.0
        a, b = (train_z - centre) / scale, (test_z - centre) / scale
    with warnings.catch_warnings(), threadpool_limits(limits=1, user_api="blas"):
        warnings.filterwarnings("ignore", message="The number of unique classes is greater than 50%")
        return LogisticRegression(max_iter=2000).fit(a, train_y).predict(b)
