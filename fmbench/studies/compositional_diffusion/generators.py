"""Reference generators (no weights): the renderer itself, renders of a random class, and pixel noise.

Each has ``generate(conditions, seed)``: class ids ``(B,)`` -> float images ``(B, 3, 28, 28)`` in
[0, 1], the same for the same seed (the ``image-generator`` interface).

Example:
    >>> import torch
    >>> from fmbench.studies.compositional_diffusion.concepts import THREE
    >>> RendererGenerator(THREE).generate(torch.tensor([0, 7]), seed=0).shape
    torch.Size([2, 3, 28, 28])
"""

from __future__ import annotations

import numpy as np
import torch

from fmbench.random_access import integers, stream_key
from fmbench.studies.compositional_diffusion.concepts import ConceptSpace
from fmbench.studies.compositional_diffusion.render import render


class RendererGenerator:
    """The ground truth: a fresh render of each asked class (the upper bound)."""

    def __init__(self, space: ConceptSpace) -> None:
        self.space = space

    def _classes(self, conditions: torch.Tensor, key: int) -> np.ndarray:
        return conditions.cpu().numpy()

    def generate(self, conditions: torch.Tensor, seed: int) -> torch.Tensor:
        key = stream_key("compositional_diffusion.generator", type(self).__name__, int(seed))
        self.space.values(conditions.cpu().numpy())  # refuses ids outside the concept space
        classes = self._classes(conditions, key)
        return torch.from_numpy(render(self.space, classes, key, np.arange(len(classes)))).to(conditions.device)


class RandomClassGenerator(RendererGenerator):
    """Renders of a uniformly drawn class, whatever is asked: chance level (1 / classes in expectation)."""

    def _classes(self, conditions: torch.Tensor, key: int) -> np.ndarray:
        return integers(key, np.arange(len(conditions)), 1, high=self.space.n_classes)[:, 0]


class NoiseGenerator:
    """Uniform pixel noise in [0, 1], whatever is asked: what the probes make of images that show nothing."""

    def __init__(self, space: ConceptSpace) -> None:
        self.space = space

    def generate(self, conditions: torch.Tensor, seed: int) -> torch.Tensor:
        self.space.values(conditions.cpu().numpy())
        g = torch.Generator().manual_seed(int(seed))
        return torch.rand((len(conditions), 3, 28, 28), generator=g).to(conditions.device)


GENERATORS = {"renderer": RendererGenerator, "random-class": RandomClassGenerator, "noise": NoiseGenerator}
"""The weightless baselines by name."""
