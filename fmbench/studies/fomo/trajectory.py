"""What a reward model scores: one episode on a BabyAI layout, and the instruction to score it against.

Example:
    >>> import numpy as np
    >>> from fmbench.studies.fomo.scene import Scene
    >>> s = Scene(np.ones((3, 3, 3), np.uint8), (1, 1), 0)
    >>> Trajectory("go to the red ball", [s, s]).check()
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from fmbench.errors import FmbenchError
from fmbench.studies.fomo.scene import VIEWS, Scene


class TrajectoryError(FmbenchError, ValueError):
    """A trajectory a reward model cannot score."""


@dataclass
class Trajectory:
    """One episode and the instruction it is scored against.

    Attributes:
        instruction: the mission text (for incorrect policies, still the *true* mission).
        scenes: the symbolic state after reset and after every step (``T + 1`` of them).
        frames: ``(T + 1, H, W, 3)`` uint8 frames of the view, or ``None`` when not rendered.
        candidates: every instruction of the same form the layout admits (contrastive scores).
        tile_size: pixels per grid cell in ``frames``.
        view: ``"top-down"`` (scenes and frames of the room) or ``"egocentric"`` (of the agent's
            own view, :func:`~fmbench.studies.fomo.scene.egocentric_scene`).
    """

    instruction: str
    scenes: list[Scene]
    frames: np.ndarray | None = None
    candidates: tuple[str, ...] = ()
    tile_size: int = 32
    view: str = "top-down"

    def __len__(self) -> int:
        return len(self.scenes)

    def check(self, need_frames: bool = False) -> None:
        """Raise ``TrajectoryError`` naming what is wrong (mission, scenes, frames)."""
        if not isinstance(self.instruction, str) or not self.instruction.strip():
            raise TrajectoryError(f"trajectory has no mission (instruction={self.instruction!r})")
        if not self.scenes:
            raise TrajectoryError(f"empty trajectory for {self.instruction!r}: no scenes")
        if self.view not in VIEWS:
            raise TrajectoryError(f"trajectory view must be one of {VIEWS}, got {self.view!r}")
        if any(s.egocentric != (self.view == "egocentric") for s in self.scenes):
            raise TrajectoryError(f"a {self.view} trajectory holds scenes of the other view")
        if self.candidates and self.instruction not in self.candidates:
            raise TrajectoryError(f"mission {self.instruction!r} is not among the trajectory's candidates")
        if self.frames is None:
            if need_frames:
                raise TrajectoryError(
                    f"trajectory for {self.instruction!r} has no frames; this reward model reads frames"
                )
            return
        f = self.frames
        if not isinstance(f, np.ndarray) or f.dtype != np.uint8:
            raise TrajectoryError(f"frames must be a uint8 numpy array, got {getattr(f, 'dtype', type(f).__name__)}")
        if f.ndim != 4 or f.shape[-1] != 3:
            raise TrajectoryError(f"frames must have shape (T, H, W, 3), got {f.shape}")
        if len(f) != len(self.scenes):
            raise TrajectoryError(f"{len(f)} frames but {len(self.scenes)} scenes; expected one frame per scene")
        w, h = self.scenes[0].grid.shape[:2]
        if f.shape[1:3] != (h * self.tile_size, w * self.tile_size):
            raise TrajectoryError(
                f"frames of shape {f.shape[1:3]} do not fit a {w}x{h} grid at "
                f"tile_size {self.tile_size} (expected {(h * self.tile_size, w * self.tile_size)})"
            )
