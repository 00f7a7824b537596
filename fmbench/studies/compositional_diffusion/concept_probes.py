"""Per-concept linear probes on flattened 28x28 RGB images, fitted on renders of every class and shipped.

As in the authors' evaluator, one linear head per concept reads the raw pixels (3 x 28 x 28 = 2352
values in [0, 1]) and says which of the concept's two values the image shows. Each head is a
logistic regression (scikit-learn, L-BFGS, one BLAS thread: deterministic) on standardised pixels
of ``N_FIT`` renders of uniformly drawn classes of the whole concept space; the scaler is folded into
the shipped weights, so scoring is one matrix product. Their accuracy on ``N_HELD_OUT`` other
renders is stored with them and on the study page.

Run (rewrites the shipped ``checkpoints/probes-3.safetensors``, ``probes-4`` and ``probes-3-shapes02``, the
sphere-and-cube space)::

    python -m fmbench.studies.compositional_diffusion.concept_probes

Example:
    >>> import numpy as np
    >>> from fmbench.studies.compositional_diffusion.concepts import THREE
    >>> from fmbench.studies.compositional_diffusion.render import render
    >>> probes = load_probes(THREE)
    >>> predict(probes, render(THREE, np.array([3, 4]), key=5, index=np.arange(2))).tolist()
    [[0, 1, 1], [1, 0, 0]]
"""

from __future__ import annotations

import json
import warnings
from dataclasses import dataclass
from functools import cache
from pathlib import Path

import numpy as np
from safetensors.numpy import load_file, save_file
from sklearn.linear_model import LogisticRegression
from threadpoolctl import threadpool_limits

from fmbench.errors import InputError
from fmbench.io import atomic_path
from fmbench.random_access import integers, stream_key
from fmbench.studies.compositional_diffusion.concepts import FOUR, THREE, THREE_CUBE, ConceptSpace
from fmbench.studies.compositional_diffusion.render import render

HERE = Path(__file__).parent
N_FIT = 4096
N_HELD_OUT = 4096
IMAGE_SHAPE = (3, 28, 28)


@dataclass(frozen=True)
class Probes:
    """One linear head per concept: ``weight`` ``(n_concepts, 2352)``, ``bias`` ``(n_concepts,)``; value 1 where
    ``weight @ pixels + bias > 0``. ``held_out`` is each head's accuracy on held-out renders."""

    space: ConceptSpace
    weight: np.ndarray
    bias: np.ndarray
    held_out: dict[str, float]


def probe_path(space: ConceptSpace) -> Path:
    """The shipped probes of a concept space."""
    shapes = "" if space.shapes == (0, 1) else "-shapes" + "".join(map(str, space.shapes))
    return HERE / "checkpoints" / f"probes-{space.n_concepts}{shapes}.safetensors"


def renders(space: ConceptSpace, purpose: str, n: int) -> tuple[np.ndarray, np.ndarray]:
    """``n`` renders of uniform random classes of ``space`` for ``purpose`` (``fit``, ``held-out``); their classes."""
    key = stream_key("compositional_diffusion.probes", space.n_concepts, purpose)
    classes = integers(key, np.arange(n), 1, high=space.n_classes)[:, 0]
    return render(space, classes, key, np.arange(n)), classes


def fit_probes(space: ConceptSpace, n_fit: int = N_FIT, n_held_out: int = N_HELD_OUT) -> Probes:
    """Fit the heads of ``space`` on ``n_fit`` renders and score them on ``n_held_out`` others."""
    images, classes = renders(space, "fit", n_fit)
    x = images.reshape(n_fit, -1).astype(np.float64)
    y = space.values(classes)
    mean, std = x.mean(0), x.std(0)
    std[std == 0] = 1.0
    weight, bias = np.zeros((space.n_concepts, x.shape[1])), np.zeros(space.n_concepts)
    with warnings.catch_warnings(), threadpool_limits(limits=1, user_api="blas"):
        for j in range(space.n_concepts):
            head = LogisticRegression(max_iter=2000).fit((x - mean) / std, y[:, j])
            weight[j] = head.coef_[0] / std
            bias[j] = head.intercept_[0] - (head.coef_[0] * mean / std).sum()
    probes = Probes(space, weight.astype(np.float32), bias.astype(np.float32), {})
    held, held_classes = renders(space, "held-out", n_held_out)
    right = predict(probes, held) == space.values(held_classes)
    return Probes(space, probes.weight, probes.bias, dict(zip(space.names, right.mean(0).round(5).tolist())))


def save_probes(probes: Probes, path: Path) -> None:
    """Write ``probes`` as safetensors, held-out accuracies in the header."""
    meta = {"concepts": json.dumps(list(probes.space.names)), "held_out_accuracy": json.dumps(probes.held_out),
            "n_fit": str(N_FIT), "n_held_out": str(N_HELD_OUT)}  # fmt: skip
    with atomic_path(path) as tmp:
        save_file({"weight": probes.weight, "bias": probes.bias}, str(tmp), metadata=meta)


@cache
def load_probes(space: ConceptSpace) -> Probes:
    """The shipped probes of ``space``."""
    from safetensors import safe_open

    path = probe_path(space)
    tensors = load_file(str(path))
    with safe_open(str(path), framework="numpy") as f:
        held_out = json.loads(f.metadata()["held_out_accuracy"])
    return Probes(space, tensors["weight"], tensors["bias"], held_out)


def check_images(images: np.ndarray, what: str = "images") -> np.ndarray:
    """``images`` if a float array ``(N, 3, 28, 28)`` of finite values in [0, 1], else ``InputError`` naming why.

    Example:
        >>> check_images(np.zeros((2, 1, 28, 28), np.float32))
        Traceback (most recent call last):
        fmbench.errors.InputError: images have shape (2, 1, 28, 28); expected (N, 3, 28, 28) RGB
    """
    if not isinstance(images, np.ndarray):
        raise InputError(f"{what} are a {type(images).__name__}; expected a numpy array (N, 3, 28, 28)")
    if images.ndim != 4 or images.shape[1:] != IMAGE_SHAPE:
        raise InputError(f"{what} have shape {images.shape}; expected (N, 3, 28, 28) RGB")
    if not np.issubdtype(images.dtype, np.floating):
        raise InputError(f"{what} have dtype {images.dtype}; expected floating point in [0, 1]")
    if not np.isfinite(images).all():
        raise InputError(f"{what} hold {int((~np.isfinite(images)).sum())} NaN or infinite value(s)")
    if images.size and (images.min() < 0 or images.max() > 1):
        raise InputError(f"{what} have values in [{images.min():.3g}, {images.max():.3g}]; expected [0, 1]")
    return images


def predict(probes: Probes, images: np.ndarray) -> np.ndarray:
    """``(N, n_concepts)`` predicted concept values (0 or 1) of float images ``(N, 3, 28, 28)`` in [0, 1]."""
    x = check_images(images).reshape(len(images), -1).astype(np.float32)
    return (x @ probes.weight.T + probes.bias > 0).astype(np.int64)


def main() -> None:
    for space in (THREE, FOUR, THREE_CUBE):
        probes = fit_probes(space)
        save_probes(probes, probe_path(space))
        print(f"{probe_path(space).name}: held-out accuracy {probes.held_out}")


if __name__ == "__main__":
    main()
