"""fmbench's own small captioner: a per-tile scene parser for rendered BabyAI frames.

A frame from ``env.get_frame(tile_size=ts)`` (or ``render_mode="rgb_array"``, ``ts = 32``)
is a grid of ``ts x ts`` tiles, one per cell. :class:`TileParser`, a small MLP, reads each
tile area-averaged to ``8 x 8`` and predicts the cell's object type, colour and door state
(minigrid's encoding, so the object under the agent too) and whether the agent stands there
facing which way. :class:`LearnedCaptioner` turns whole frames into :class:`Scene` objects,
which :func:`fmbench.studies.fomo.captions.caption` turns into text. The shipped weights
are trained by :mod:`fmbench.studies.fomo.train_captioner` on frames at tile sizes 8, 16 and
32, with labels read from the env state (held-out accuracy: ``docs/fomo/captioner.json``).
A second parser, :data:`EGOCENTRIC_WEIGHTS`, reads the agent's own view
(:func:`fmbench.studies.fomo.frames.egocentric_frame`; ``docs/fomo/captioner_egocentric.json``).

Example:
    >>> import gymnasium as gym, minigrid
    >>> from fmbench.studies.fomo.scene import scene_of
    >>> env = gym.make("BabyAI-GoToLocal-v0").unwrapped
    >>> _ = env.reset(seed=2_000_000)
    >>> frames = env.get_frame(tile_size=16)[None]
    >>> LearnedCaptioner.default().scenes(frames, tile_size=16)[0].same(scene_of(env))
    True
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from minigrid.core.constants import COLOR_TO_IDX, OBJECT_TO_IDX, STATE_TO_IDX
from safetensors import SafetensorError, safe_open
from safetensors.torch import load_model, save_file

from fmbench.checkpoints import build_for_file
from fmbench.errors import ModelError, first_line
from fmbench.io import atomic_path
from fmbench.studies.fomo.frames import frame_digest
from fmbench.studies.fomo.scene import Scene, egocentric_scene

TILE = 8  # the parser reads every tile area-averaged to TILE x TILE pixels
MINIGRID_TILE_SIZE = 32  # minigrid's default, used by render_mode="rgb_array"
# head -> number of classes; "agent" is 0 for no agent, else 1 + direction
HEADS = {"type": len(OBJECT_TO_IDX), "colour": len(COLOR_TO_IDX), "state": len(STATE_TO_IDX), "agent": 5}
DEFAULT_WEIGHTS = Path(__file__).resolve().parent / "checkpoints" / "tile_parser.safetensors"
EGOCENTRIC_WEIGHTS = DEFAULT_WEIGHTS.with_name("egocentric_parser.safetensors")
WEIGHTS = {"top-down": DEFAULT_WEIGHTS, "egocentric": EGOCENTRIC_WEIGHTS}
"""The shipped parser of each view (:data:`fmbench.studies.fomo.scene.VIEWS`)."""
MAX_TILES_PER_PASS = 1 << 15  # bounds memory on long trajectories of large grids
MEMO_FRAMES = 100_000  # parsed frames a captioner remembers (a scene of a 22 x 22 grid holds 1.5 KB)


class TileParser(torch.nn.Module):
    """An MLP from one ``(3, 8, 8)`` tile to logits for each of :data:`HEADS`.

    Example:
        >>> out = TileParser()(torch.zeros(2, 3, TILE, TILE))
        >>> {k: tuple(v.shape) for k, v in out.items()}
        {'type': (2, 11), 'colour': (2, 6), 'state': (2, 3), 'agent': (2, 5)}
    """

    def __init__(self, hidden: int = 64, layers: int = 2):
        super().__init__()
        self.config = {"hidden": hidden, "layers": layers}
        sizes = [3 * TILE * TILE] + [hidden] * layers
        body: list[torch.nn.Module] = []
        for n_in, n_out in zip(sizes, sizes[1:]):
            body += [torch.nn.Linear(n_in, n_out), torch.nn.ReLU()]
        self.body = torch.nn.Sequential(*body, torch.nn.Linear(sizes[-1], sum(HEADS.values())))

    def forward(self, tiles: torch.Tensor) -> dict[str, torch.Tensor]:
        """Logits per head for ``(N, 3, 8, 8)`` tiles with values in ``[0, 1]``."""
        return dict(zip(HEADS, self.body(tiles.flatten(1)).split(list(HEADS.values()), dim=1)))


def tiles_of(
    frames: np.ndarray, grid_size: tuple[int, int] | None = None, tile_size: int | None = None
) -> torch.Tensor:
    """Cut frames into one tile per cell, each area-averaged to ``8 x 8`` and scaled to ``[0, 1]``.

    Args:
        frames: ``(T, H, W, 3)`` uint8 top-down frames.
        grid_size: ``(width, height)`` of the grid in cells; gives the tile size if that is not given.
        tile_size: pixels per cell side (at least 8); minigrid's 32 when neither argument is given.

    Returns:
        ``(T, width, height, 3, 8, 8)`` float32; ``[t, x, y]`` is the tile of cell ``(x, y)``.

    Example:
        >>> tuple(tiles_of(np.zeros((2, 64, 48, 3), np.uint8), tile_size=16).shape)
        (2, 3, 4, 3, 8, 8)
    """
    tile_size, gw, gh = _layout(frames, grid_size, tile_size)
    n, h, w, _ = frames.shape
    x = torch.from_numpy(np.ascontiguousarray(frames))
    if tile_size % TILE:
        x = x.view(n, gh, tile_size, gw, tile_size, 3).permute(0, 3, 1, 5, 2, 4).reshape(-1, 3, tile_size, tile_size)
        return F.adaptive_avg_pool2d(x.float(), TILE).div_(255).view(n, gw, gh, 3, TILE, TILE)
    k = tile_size // TILE
    x = _block_sums(x, k) if k > 1 else x
    return x.view(n, gh, TILE, gw, TILE, 3).permute(0, 3, 1, 5, 2, 4).float().div_(k * k * 255).contiguous()


def _block_sums(frames: torch.Tensor, k: int) -> torch.Tensor:
    """Sums of ``(T, H, W, 3)`` uint8 pixels over ``k x k`` blocks, ``(T, H / k, W / k, 3)``.

    Adding strided slices in small integers is several times faster than pooling floats.
    """
    n, h, w, _ = frames.shape
    rows = frames.view(n, h // k, k, w * 3)
    out = rows[:, :, 0].to(torch.int16 if k * k * 255 < 2**15 else torch.int32)
    for i in range(1, k):
        out += rows[:, :, i]
    cols = out.view(n, h // k, w // k, k, 3)
    out = cols[:, :, :, 0].clone()
    for i in range(1, k):
        out += cols[:, :, :, i]
    return out


def _layout(frames: np.ndarray, grid_size: tuple[int, int] | None, tile_size: int | None) -> tuple[int, int, int]:
    """``(tile_size, width, height)`` of valid frames; ``ValueError`` naming what is wrong otherwise."""
    if not isinstance(frames, np.ndarray) or frames.dtype != np.uint8:
        raise ValueError(f"frames must be a uint8 numpy array, got {getattr(frames, 'dtype', type(frames))}")
    if frames.ndim != 4 or frames.shape[-1] != 3:
        raise ValueError(f"frames must have shape (T, H, W, 3), got {frames.shape}")
    h, w = frames.shape[1:3]
    if tile_size is None:
        tile_size = w // grid_size[0] if grid_size is not None else MINIGRID_TILE_SIZE
    if tile_size < TILE:
        raise ValueError(f"tile size must be at least {TILE} pixels, got {tile_size}")
    if h % tile_size or w % tile_size:
        raise ValueError(f"frames of {h}x{w} pixels do not divide into {tile_size}-pixel tiles")
    if grid_size is not None and tuple(grid_size) != (w // tile_size, h // tile_size):
        raise ValueError(
            f"frames of {h}x{w} pixels at tile size {tile_size} hold a "
            f"{w // tile_size}x{h // tile_size} grid, not {grid_size[0]}x{grid_size[1]}"
        )
    return tile_size, w // tile_size, h // tile_size


def save_parser(model: TileParser, path: str | os.PathLike, extra: dict | None = None) -> None:
    """Write ``model``'s weights as safetensors, with its config (and ``extra``) in the header.

    The header's one ``fmbench`` entry is JSON, as in :mod:`fmbench.checkpoints`, so that
    the same weights always give the same bytes.
    """
    meta = {"architecture": "tile_parser", "config": model.config, **(extra or {})}
    with atomic_path(path) as tmp:
        save_file(
            {k: v.contiguous() for k, v in model.state_dict().items()},
            str(tmp),
            metadata={"fmbench": json.dumps(meta, sort_keys=True)},
        )


def load_parser(path: str | os.PathLike) -> TileParser:
    """Build the :class:`TileParser` a file written by :func:`save_parser` describes (nothing is unpickled).

    The config is checked against the stored tensors before the model is allocated
    (:func:`fmbench.checkpoints.build_for_file`).
    """
    try:
        with safe_open(str(path), framework="pt") as f:
            meta = json.loads((f.metadata() or {}).get("fmbench", "{}"))
    except (SafetensorError, OSError, ValueError, RecursionError) as e:
        raise ModelError(f"{path} is not a readable safetensors file ({first_line(e)})") from None
    if not isinstance(meta, dict) or meta.get("architecture") != "tile_parser":
        found = meta.get("architecture") if isinstance(meta, dict) else meta
        raise ModelError(f"{path} does not hold a tile parser (architecture {found!r})")
    config = meta.get("config")
    if not isinstance(config, dict):
        raise ModelError(f"{path}: the tile parser config is {config!r}, expected a JSON object")
    try:
        model = build_for_file(path, lambda: TileParser(**config), "the tile parser config")
        load_model(model, str(path))
    except (TypeError, ValueError, RuntimeError, SafetensorError) as e:
        raise ModelError(f"{path}: weights do not fit the tile parser config ({first_line(e)})") from None
    return model.eval()


class LearnedCaptioner:
    """Parses frames into scenes with a :class:`TileParser`.

    Parsed frames are remembered by a digest of their pixels (up to :data:`MEMO_FRAMES`; the
    model must not change after the first parse): an env's frames repeat within and across
    episodes, and a dense reward reads every prefix of a trajectory again at each step.
    """

    def __init__(self, model: TileParser):
        self.model = model.eval()
        self._memo: dict[bytes, Scene] = {}

    @classmethod
    def from_file(cls, path: str | os.PathLike) -> LearnedCaptioner:
        """A captioner with the weights in ``path`` (written by :func:`save_parser`)."""
        return cls(load_parser(path))

    @classmethod
    def default(cls, view: str = "top-down") -> LearnedCaptioner:
        """A captioner with the shipped weights of a view (:data:`WEIGHTS`)."""
        if view not in WEIGHTS:
            raise ValueError(f"view must be one of {tuple(WEIGHTS)}, got {view!r}")
        return cls.from_file(WEIGHTS[view])

    def scenes(self, frames: np.ndarray, tile_size: int, egocentric: bool = False) -> list[Scene]:
        """One :class:`Scene` per frame of ``(T, H, W, 3)`` uint8 ``frames``.

        Every cell takes the most likely type, colour and state; the agent stands on the one
        cell most likely to hold it, facing its most likely direction there. ``egocentric``
        frames show the agent's own view: the agent is where it always is in that view
        (:func:`~fmbench.studies.fomo.scene.egocentric_scene`), on what it carries.
        """
        _, w, h = _layout(frames, None, tile_size)
        if egocentric and w != h:
            raise ValueError(f"an egocentric view is square; frames of {w}x{h} tiles are not")
        header = f"{tile_size}|{egocentric}".encode()  # how the frame is read (its shape is in the digest)
        keys = [frame_digest(frame, header) for frame in frames]
        new = list({key: i for i, key in enumerate(keys) if key not in self._memo}.values())  # one frame per unseen key
        if len(self._memo) + len(new) > MEMO_FRAMES:
            self._memo.clear()
        step = max(1, MAX_TILES_PER_PASS // (w * h))
        for start in range(0, len(new), step):
            chunk = new[start : start + step]
            for i, scene in zip(chunk, self._parse(tiles_of(frames[chunk], tile_size=tile_size), egocentric)):
                self._memo[keys[i]] = scene
        return [self._memo[k] for k in keys]

    def _parse(self, tiles: torch.Tensor, egocentric: bool) -> list[Scene]:
        n, w, h = tiles.shape[:3]
        with torch.inference_mode():
            out = self.model(tiles.view(-1, 3, TILE, TILE))
        grid = torch.stack([out[k].argmax(1) for k in ("type", "colour", "state")], 1).view(n, w, h, 3)
        grid = grid.to(torch.uint8).numpy()
        if egocentric:
            return [egocentric_scene(g) for g in grid]
        agent = out["agent"].view(n, w * h, HEADS["agent"])
        cell = agent.log_softmax(-1)[..., 0].argmin(1)  # least likely to be agent-free
        direction = agent[torch.arange(n), cell, 1:].argmax(-1)
        return [
            Scene(grid=grid[i], agent_pos=(int(c) // h, int(c) % h), agent_dir=int(d))
            for i, (c, d) in enumerate(zip(cell, direction))
        ]
