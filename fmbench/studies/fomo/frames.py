"""Top-down frames drawn from a scene with whole-array indexing, equal to minigrid's ``get_frame``.

minigrid's ``get_frame(highlight=True)`` recomputes the agent's view and then draws the grid
cell by cell in Python (about 1.2 ms for an 8x8 room on this CPU, more than a PPO step). A
FoMo env that feeds a learned captioner needs one per step. Here each distinct tile
(object type, colour, state, agent direction, highlight) is drawn once, by minigrid's own
``Grid.render_tile``, into a bank; a frame is then one gather from the bank. The highlight
(the cells the agent sees) is read off the observation the env computed anyway: the
agent's view encodes unseen cells as 0. :func:`top_down_frames` draws many recorded states
in one pass (a FoMo env draws an episode's frames when its reward is scored, not at every
step). Frames are equal to ``get_frame``'s, byte for byte (tests/test_fomo_frames.py).
:func:`egocentric_frame` draws the agent's own view the same way, and :func:`frame_digest` keys
the frame memos of the reward models that read pixels.

Example:
    >>> import gymnasium as gym, minigrid
    >>> from fmbench.studies.fomo.scene import scene_of
    >>> env = gym.make("BabyAI-GoToLocal-v0").unwrapped
    >>> obs, _ = env.reset(seed=0)
    >>> frame = render_frame(scene_of(env), highlight_mask(env, obs["image"]), tile_size=32)
    >>> bool((frame == env.get_frame(highlight=True, tile_size=32)).all())
    True
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import xxhash
from minigrid.core.constants import COLOR_TO_IDX, DIR_TO_VEC, OBJECT_TO_IDX, STATE_TO_IDX
from minigrid.core.grid import Grid
from minigrid.core.world_object import WorldObj

from fmbench.studies.fomo.scene import EMPTY, UNSEEN, Scene

NO_AGENT = 4
"""The direction code of a cell the agent is not on."""
_SHAPE = (len(OBJECT_TO_IDX), len(COLOR_TO_IDX), len(STATE_TO_IDX), NO_AGENT + 1, 2)
_DIR_VEC = np.array(DIR_TO_VEC)


def frame_digest(frame: np.ndarray, header: bytes = b"") -> bytes:
    """A 16-byte digest of a frame's shape and pixels (after ``header``): the key of the frame memos.

    XXH3-128: not cryptographic, but a chance collision among ``n`` memoised frames is about
    ``n**2 / 2**129``; ten times faster than BLAKE2b on these frames, and a reward model that
    reads pixels digests every frame it is given.

    Example:
        >>> a = np.zeros((8, 8, 3), np.uint8)
        >>> frame_digest(a) == frame_digest(a.copy()), frame_digest(a) == frame_digest(a.reshape(8, 24, 1))
        (True, False)
    """
    h = xxhash.xxh3_128(header)
    h.update(repr(frame.shape).encode())
    h.update(np.ascontiguousarray(frame).data)
    return h.digest()


class _TileBank:
    """Every tile drawn so far at one tile size, and where each ``(type, colour, state, dir, highlight)`` is."""

    def __init__(self, tile_size: int) -> None:
        self.tile_size = tile_size
        self.index = np.full(_SHAPE, -1, dtype=np.int64)
        self.tiles = np.zeros((0, tile_size, tile_size, 3), dtype=np.uint8)

    def add(self, codes: np.ndarray) -> None:
        """Draw the tiles of the ``(n, 5)`` codes not in the bank yet."""
        new = [c for c in np.unique(codes, axis=0) if self.index[tuple(c)] < 0]
        drawn = []
        for t, c, s, d, h in new:
            obj = None if t == EMPTY else WorldObj.decode(int(t), int(c), int(s))
            agent_dir = None if d == NO_AGENT else int(d)
            drawn.append(Grid.render_tile(obj, agent_dir=agent_dir, highlight=bool(h), tile_size=self.tile_size))
        for i, c in enumerate(new):
            self.index[tuple(c)] = len(self.tiles) + i
        if drawn:
            # minigrid's tiles are float (averaged subpixels); its frames keep them as uint8 casts
            self.tiles = np.concatenate([self.tiles, np.stack(drawn).astype(np.uint8)])


_BANKS: dict[int, _TileBank] = {}


def highlight_masks(
    agent_pos: np.ndarray, agent_dir: np.ndarray, seen: np.ndarray, size: tuple[int, int]
) -> np.ndarray:
    """The ``(T, width, height)`` cells ``get_frame(highlight=True)`` lightens in ``T`` states.

    Args:
        agent_pos: ``(T, 2)`` the agent's ``(x, y)`` cell in each state.
        agent_dir: ``(T,)`` its direction (minigrid's 0 right, 1 down, 2 left, 3 up).
        seen: ``(T, v, v)`` bool, the cells of the agent's view it sees (:func:`seen_cells`).
        size: the room's ``(width, height)``.

    Example:
        >>> seen = np.zeros((1, 7, 7), bool); seen[0, 3, 6] = True     # only its own cell
        >>> np.argwhere(highlight_masks(np.array([[2, 3]]), np.array([0]), seen, (8, 8))[0]).tolist()
        [[2, 3]]
    """
    f = _DIR_VEC[agent_dir]
    r = np.stack([-f[:, 1], f[:, 0]], axis=1)  # minigrid's right_vec
    v = seen.shape[1]
    top_left = agent_pos + f * (v - 1) - r * (v // 2)
    t, i, j = np.nonzero(seen)
    cells = top_left[t] - j[:, None] * f[t] + i[:, None] * r[t]
    inside = (cells[:, 0] >= 0) & (cells[:, 0] < size[0]) & (cells[:, 1] >= 0) & (cells[:, 1] < size[1])
    mask = np.zeros((len(agent_pos), *size), dtype=bool)
    mask[t[inside], cells[inside, 0], cells[inside, 1]] = True
    return mask


def seen_cells(view: np.ndarray) -> np.ndarray:
    """The ``(v, v)`` bool cells of an agent's view encoding (``obs["image"]``) that it sees."""
    return view[:, :, 0] != OBJECT_TO_IDX["unseen"]


def highlight_mask(env, view: np.ndarray) -> np.ndarray:
    """The ``(width, height)`` cells ``get_frame(highlight=True)`` lightens: those the agent sees.

    Args:
        env: the minigrid env (unwrapped or not), in the state ``view`` was observed in.
        view: the agent's ``(v, v, 3)`` view encoding from that state (``obs["image"]``).
    """
    env = env.unwrapped
    pos, direction = np.array([env.agent_pos]), np.array([env.agent_dir])
    return highlight_masks(pos, direction, seen_cells(view)[None], (env.width, env.height))[0]


def render_frames(scenes: Sequence[Scene], highlights: np.ndarray, tile_size: int) -> np.ndarray:
    """The ``(T, height * tile_size, width * tile_size, 3)`` uint8 top-down frames of ``T`` scenes.

    One gather from the tile bank for all of them.

    Args:
        scenes: scenes of one room (:func:`~fmbench.studies.fomo.scene.scene_of`).
        highlights: ``(T, width, height)`` bool, the cells to lighten (:func:`highlight_masks`).
        tile_size: pixels per cell.
    """
    n, (w, h) = len(scenes), scenes[0].grid.shape[:2]
    agent = np.full((n, w, h), NO_AGENT, dtype=np.int64)
    pos = np.array([s.agent_pos for s in scenes]).reshape(n, 2)
    agent[np.arange(n), pos[:, 0], pos[:, 1]] = [s.agent_dir for s in scenes]
    grids = np.stack([s.grid for s in scenes]).astype(np.int64)
    codes = np.concatenate([grids, agent[..., None], highlights[..., None]], axis=-1)
    bank = _BANKS.setdefault(tile_size, _TileBank(tile_size))
    where = bank.index[tuple(np.moveaxis(codes, -1, 0))]
    if (where < 0).any():
        bank.add(codes[where < 0])
        where = bank.index[tuple(np.moveaxis(codes, -1, 0))]
    tiles = bank.tiles[where.transpose(0, 2, 1)]  # (T, height, width, tile, tile, 3)
    return tiles.transpose(0, 1, 3, 2, 4, 5).reshape(n, h * tile_size, w * tile_size, 3)


def render_frame(scene: Scene, highlight: np.ndarray, tile_size: int) -> np.ndarray:
    """The ``(height * tile_size, width * tile_size, 3)`` uint8 top-down frame of ``scene``.

    Args:
        scene: the grid and the agent (:func:`~fmbench.studies.fomo.scene.scene_of`).
        highlight: ``(width, height)`` bool, the cells to lighten (:func:`highlight_mask`).
        tile_size: pixels per cell.
    """
    return render_frames([scene], highlight[None], tile_size)[0]


def top_down_frames(scenes: Sequence[Scene], seen: Sequence[np.ndarray], tile_size: int) -> np.ndarray:
    """The frames ``get_frame(highlight=True)`` draws of recorded top-down scenes, all in one pass.

    Args:
        scenes: the scenes of one room's states.
        seen: for each, the ``(v, v)`` cells of the agent's view it saw (:func:`seen_cells`).
        tile_size: pixels per cell.

    Example:
        >>> import gymnasium as gym, minigrid
        >>> from fmbench.studies.fomo.scene import scene_of
        >>> env = gym.make("BabyAI-GoToLocal-v0").unwrapped
        >>> obs, _ = env.reset(seed=0)
        >>> frames = top_down_frames([scene_of(env)], [seen_cells(obs["image"])], tile_size=8)
        >>> bool((frames[0] == env.get_frame(highlight=True, tile_size=8)).all())
        True
    """
    pos = np.array([s.agent_pos for s in scenes]).reshape(len(scenes), 2)
    direction = np.array([s.agent_dir for s in scenes], dtype=np.int64)
    highlights = highlight_masks(pos, direction, np.stack(seen), scenes[0].grid.shape[:2])
    return render_frames(scenes, highlights, tile_size)


def egocentric_frame(scene: Scene, tile_size: int) -> np.ndarray:
    """The agent's view as pixels: an egocentric scene drawn with minigrid's tiles.

    Cells the agent sees are lightened, as in minigrid's ``get_pov_render``, and the agent is
    drawn over what it carries; cells it cannot see are drawn empty and unlit
    (``get_pov_render`` draws what lies behind walls there, unlit: a camera would not see it).

    Args:
        scene: an egocentric scene (:func:`~fmbench.studies.fomo.scene.egocentric_scene`).
        tile_size: pixels per cell.

    Example:
        >>> import gymnasium as gym, minigrid
        >>> from fmbench.studies.fomo.scene import egocentric_scene
        >>> obs, _ = gym.make("BabyAI-GoToLocal-v0").reset(seed=0)
        >>> egocentric_frame(egocentric_scene(obs["image"]), tile_size=8).shape
        (56, 56, 3)
    """
    if not scene.egocentric:
        raise ValueError("egocentric_frame draws an egocentric scene; use render_frame for the room")
    return render_frame(scene, scene.grid[..., 0] != UNSEEN, tile_size)
