"""The vision stage: a trajectory's frames (or symbolic state) -> the text a language model reads.

* :class:`OracleVision` reads the env's symbolic state (an upper bound for any captioner);
* :class:`LearnedVision` parses the rendered frames with fmbench's own tile parser
  (:mod:`fmbench.studies.fomo.captioner`), then writes the same captions.

Both describe the trajectory as events plus the final state (``content`` picks either or
both, see :mod:`fmbench.studies.fomo.captions`).

Example:
    >>> from fmbench.studies.fomo.rollouts import run_policy
    >>> from fmbench.studies.fomo.trajectory import Trajectory
    >>> run = run_policy("GoToRedBall", seed=0)
    >>> OracleVision().text(Trajectory(run.mission, run.scenes))
    'The agent went to the red ball. At the end, the agent faces the red ball.'
"""

from __future__ import annotations

from functools import cached_property

from fmbench.studies.fomo.captions import CONTENTS, caption, prefix_captions
from fmbench.studies.fomo.scene import Scene
from fmbench.studies.fomo.trajectory import Trajectory


class OracleVision:
    """Captions from the env's symbolic state (no frames needed)."""

    needs_frames = False

    def __init__(self, content: str = "events+final") -> None:
        if content not in CONTENTS:
            raise ValueError(f"caption content must be one of {CONTENTS}, got {content!r}")
        self.content = content

    @property
    def name(self) -> str:
        return "oracle" if self.content == "events+final" else f"oracle-{self.content}"

    def scenes(self, trajectory: Trajectory) -> list[Scene]:
        return trajectory.scenes

    def text(self, trajectory: Trajectory) -> str:
        """The trajectory text."""
        return caption(self.scenes(trajectory), self.content)

    def prefix_texts(self, trajectory: Trajectory) -> list[str]:
        """The text of every prefix of the trajectory (reset scene first)."""
        return prefix_captions(self.scenes(trajectory), self.content)


class LearnedVision(OracleVision):
    """Captions from scenes that fmbench's learned tile parser reads off the frames.

    Top-down frames go to the shipped room parser, a trajectory's egocentric frames
    (``trajectory.view``) to the shipped egocentric one.
    """

    needs_frames = True

    @property
    def name(self) -> str:
        return "learned" if self.content == "events+final" else f"learned-{self.content}"

    @cached_property
    def _parsers(self) -> dict:
        return {}

    @property
    def parser(self):
        """The top-down parser (loaded on first use)."""
        return self.parser_for("top-down")

    def parser_for(self, view: str):
        """The shipped parser of ``view`` (:data:`fmbench.studies.fomo.captioner.WEIGHTS`), loaded once."""
        from fmbench.studies.fomo.captioner import LearnedCaptioner

        if view not in self._parsers:
            self._parsers[view] = LearnedCaptioner.default(view)
        return self._parsers[view]

    def scenes(self, trajectory: Trajectory) -> list[Scene]:
        trajectory.check(need_frames=True)
        egocentric = trajectory.view == "egocentric"
        return self.parser_for(trajectory.view).scenes(trajectory.frames, trajectory.tile_size, egocentric)
