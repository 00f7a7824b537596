"""The symbolic state of one BabyAI frame, and how to read it from an env.

A :class:`Scene` holds what a top-down frame shows: every grid cell's object (minigrid's
``(type, colour, state)`` encoding) and the agent's position and direction. The object
the agent carries is not drawn in a top-down frame, so it is not in such a scene either;
captions infer it from objects disappearing in front of the agent. An *egocentric* scene
(:func:`egocentric_scene`) holds what the agent sees instead: its ``7 x 7`` view, the agent
at the bottom middle facing up, cells it cannot see as ``unseen`` and the object it carries
on its own cell, as minigrid's observation encodes them.

Example:
    >>> import gymnasium as gym, minigrid
    >>> env = gym.make("BabyAI-GoToRedBallNoDists-v0").unwrapped
    >>> _ = env.reset(seed=0)
    >>> s = scene_of(env)
    >>> s.grid.shape, s.name(*s.front)
    ((8, 8, 3), 'nothing')
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass

import numpy as np
from minigrid.core.constants import COLOR_TO_IDX, DIR_TO_VEC, OBJECT_TO_IDX, STATE_TO_IDX

TYPES = {i: t for t, i in OBJECT_TO_IDX.items()}
COLOURS = {i: c for c, i in COLOR_TO_IDX.items()}
EMPTY, WALL, DOOR = OBJECT_TO_IDX["empty"], OBJECT_TO_IDX["wall"], OBJECT_TO_IDX["door"]
UNSEEN = OBJECT_TO_IDX["unseen"]
VIEWS = ("top-down", "egocentric")
"""What scenes and frames show: the whole room, or the agent's own ``7 x 7`` view."""
MOVABLE = frozenset(OBJECT_TO_IDX[t] for t in ("key", "ball", "box"))
OPEN = STATE_TO_IDX["open"]
_EMPTY_CODE = (EMPTY, 0, 0)


@dataclass(frozen=True)
class Scene:
    """What one frame shows.

    Attributes:
        grid: ``(width, height, 3)`` uint8, minigrid's ``Grid.encode()`` without the agent.
        agent_pos: ``(x, y)`` cell of the agent.
        agent_dir: 0 right, 1 down, 2 left, 3 up (minigrid's convention).
        egocentric: the grid is the agent's view (:func:`egocentric_scene`), not the room.
    """

    grid: np.ndarray
    agent_pos: tuple[int, int]
    agent_dir: int
    egocentric: bool = False

    @property
    def front(self) -> tuple[int, int]:
        """The cell the agent faces."""
        dx, dy = DIR_TO_VEC[self.agent_dir]
        return self.agent_pos[0] + int(dx), self.agent_pos[1] + int(dy)

    def cell(self, x: int, y: int) -> tuple[int, int, int]:
        """``(type, colour, state)`` at ``(x, y)``; outside the grid reads as a wall."""
        w, h = self.grid.shape[:2]
        if not (0 <= x < w and 0 <= y < h):
            return WALL, 0, 0
        t, c, s = self.grid[x, y]
        return int(t), int(c), int(s)

    def is_object(self, x: int, y: int) -> bool:
        """Whether ``(x, y)`` holds a nameable object (a door, key, ball or box)."""
        t = self.cell(x, y)[0]
        return t == DOOR or t in MOVABLE

    def name(self, x: int, y: int) -> str:
        """``"the red ball"``, ``"a red ball"`` (if the scene has several), ``"a wall"``, ``"nothing"``."""
        t, c, _ = self.cell(x, y)
        if t == WALL:
            return "a wall"
        if not self.is_object(x, y):
            return "nothing"
        return object_name(t, c, self.counts()[(t, c)])

    def counts(self) -> Counter:
        """How many objects of each ``(type, colour)`` the scene holds."""
        flat = self.grid.reshape(-1, 3)
        keep = np.isin(flat[:, 0], [DOOR, *MOVABLE])
        return Counter(map(tuple, flat[keep, :2].astype(int).tolist()))

    def neighbours(self, x: int, y: int) -> list[tuple[int, int]]:
        """The 4-neighbour cells of ``(x, y)`` that hold objects, in a fixed order (not what the agent carries)."""
        cells = [(x + 1, y), (x, y + 1), (x - 1, y), (x, y - 1)]
        return [p for p in cells if self.is_object(*p) and not (self.egocentric and p == self.agent_pos)]

    @property
    def carried(self) -> tuple[int, int] | None:
        """``(type, colour)`` of what an egocentric scene shows the agent carrying (``None``: nothing, or top-down)."""
        t, c, _ = self.cell(*self.agent_pos)
        return (t, c) if self.egocentric and t in MOVABLE else None

    def same(self, other: Scene) -> bool:
        """Whether two scenes are identical."""
        return (
            self.agent_pos == other.agent_pos
            and self.agent_dir == other.agent_dir
            and self.egocentric == other.egocentric
            and np.array_equal(self.grid, other.grid)
        )


def object_name(type_idx: int, colour_idx: int, count: int = 1) -> str:
    """Name an object as BabyAI does: ``the`` if unique, ``a`` if not.

    Example:
        >>> object_name(OBJECT_TO_IDX["ball"], COLOR_TO_IDX["red"], 2)
        'a red ball'
    """
    return f"{'the' if count <= 1 else 'a'} {COLOURS[colour_idx]} {TYPES[type_idx]}"


def encode_grid(grid) -> np.ndarray:
    """Minigrid's ``Grid.encode()`` (``(width, height, 3)`` uint8), a few times faster.

    One pass over the grid's cell list instead of a ``get(i, j)`` and three element writes per
    cell: every step of a FoMo env records a scene.

    Example:
        >>> import gymnasium as gym, minigrid
        >>> env = gym.make("BabyAI-GoToLocal-v0").unwrapped
        >>> _ = env.reset(seed=0)
        >>> bool((encode_grid(env.grid) == env.grid.encode()).all())
        True
    """
    codes = [_EMPTY_CODE if obj is None else obj.encode() for obj in grid.grid]
    return np.array(codes, dtype=np.uint8).reshape(grid.height, grid.width, 3).transpose(1, 0, 2).copy()


def scene_of(env) -> Scene:
    """The scene of a minigrid env's current state (``env`` unwrapped or not)."""
    env = env.unwrapped
    position = (int(env.agent_pos[0]), int(env.agent_pos[1]))
    return Scene(grid=encode_grid(env.grid), agent_pos=position, agent_dir=int(env.agent_dir))


def egocentric_scene(view: np.ndarray) -> Scene:
    """The egocentric scene of the agent's ``(v, v, 3)`` view encoding (``obs["image"]``).

    The agent stands at the bottom middle cell ``(v // 2, v - 1)`` facing up, as in minigrid's
    observation; that cell holds what it carries.

    Example:
        >>> import gymnasium as gym, minigrid
        >>> env = gym.make("BabyAI-GoToRedBallNoDists-v0")
        >>> obs, _ = env.reset(seed=0)
        >>> s = egocentric_scene(obs["image"])
        >>> s.grid.shape, s.agent_pos, s.front, s.carried
        ((7, 7, 3), (3, 6), (3, 5), None)
    """
    view = np.asarray(view)
    if view.ndim != 3 or view.shape[0] != view.shape[1] or view.shape[2] != 3:
        raise ValueError(f"an agent's view encoding has shape (v, v, 3), got {view.shape}")
    v = view.shape[0]
    return Scene(grid=view.astype(np.uint8), agent_pos=(v // 2, v - 1), agent_dir=3, egocentric=True)
