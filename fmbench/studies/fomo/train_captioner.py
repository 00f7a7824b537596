"""Train the learned captioner's tile parser on rendered BabyAI frames labelled from the env state.

Run from the repository root (about 80 s on one CPU thread)::

    python -m fmbench.studies.fomo.train_captioner --seed 0 --frames 6000
    python -m fmbench.studies.fomo.train_captioner --view egocentric --seed 0 --frames 6000

Episodes on :data:`LEVELS` mix the BabyAI bot with random actions (so frames show carried,
dropped and opened things and the agent on open doors); every visited state is rendered at
tile sizes 8, 16 and 32 with highlighting on and off, and labelled from ``scene_of(env)``
(``--view egocentric``: the agent's own view, drawn by
:func:`~fmbench.studies.fomo.frames.egocentric_frame` and labelled from its encoding).
Rendering is deterministic, so the training set is the set of distinct (tile, label) pairs.
Env seeds at or above :data:`HELD_OUT_SEED` are never trained on; the held-out report
(printed and written to ``docs/fomo/captioner.json``) scores fresh episodes on them.

Example:
    >>> import gymnasium as gym, minigrid
    >>> env = gym.make("BabyAI-GoToRedBallNoDists-v0")
    >>> sum(1 for _ in states(env, 0, 0.0, np.random.default_rng(0)))  # the bot's 7 steps and the reset
    8
"""

from __future__ import annotations

import argparse
import contextlib
import io
import itertools
import json
import time
from collections import defaultdict
from collections.abc import Iterator
from pathlib import Path

import gymnasium as gym
import minigrid  # noqa: F401  (registers the BabyAI ids)
import numpy as np
import torch
import torch.nn.functional as F
from minigrid.utils.baby_ai_bot import BabyAIBot, DisappearedBoxError

from fmbench.interfaces import seeded
from fmbench.io import write_json_atomic
from fmbench.studies.fomo.appearance import shift_appearance
from fmbench.studies.fomo.captioner import HEADS, TILE, WEIGHTS, LearnedCaptioner, TileParser, save_parser, tiles_of
from fmbench.studies.fomo.captions import caption
from fmbench.studies.fomo.frames import egocentric_frame
from fmbench.studies.fomo.scene import Scene, egocentric_scene, scene_of

LEVELS = (
    "BabyAI-GoToRedBallNoDists-v0",
    "BabyAI-GoToLocal-v0",
    "BabyAI-PickupDist-v0",
    "BabyAI-OpenDoorColor-v0",
    "BabyAI-PutNextLocal-v0",
    "BabyAI-KeyCorridorS3R1-v0",  # tiny: locked doors, keys, the agent on doors facing every way
    "BabyAI-KeyCorridorS3R2-v0",
    "BabyAI-BlockedUnlockPickup-v0",  # boxes, moving a ball out of a locked door's way
    "MiniGrid-LavaGapS7-v0",  # goal and lava (random actions only: the bot is for BabyAI)
)
TILE_SIZES = (8, 16, 32)
HELD_OUT_SEED = 1_000_000  # env seeds at or above this are never trained on
RANDOM_MIX = (0.0, 0.25, 1.0)  # per episode, the chance of a random action instead of the bot's
MAX_STEPS = 64


def states(
    env: gym.Env, seed: int, p_random: float, rng: np.random.Generator, max_steps: int = MAX_STEPS
) -> Iterator[None]:
    """Run one episode, yielding with ``env`` at each state: after reset and after every step.

    Each action is the bot's, or a uniformly random one with probability ``p_random``
    (always, where there is no bot or it gives up).
    """
    with contextlib.redirect_stdout(io.StringIO()):  # minigrid prints rejected samples
        env.reset(seed=int(seed))
    bot = BabyAIBot(env) if p_random < 1 and has_bot(env.spec.id) else None
    action = None
    yield
    for _ in range(max_steps):
        try:
            suggested = bot.replan(action) if bot else None
        except DisappearedBoxError:  # a random toggle opened a box
            bot, suggested = None, None
        random = suggested is None or rng.random() < p_random
        action = int(rng.integers(env.action_space.n)) if random else int(suggested)
        _, _, terminated, truncated, _ = env.step(action)
        yield
        if terminated or truncated:
            return


def has_bot(level: str) -> bool:
    """Whether the BabyAI bot can drive a level (BabyAI levels, not plain MiniGrid ones)."""
    return level.startswith("BabyAI-")


REPORTS = {"top-down": "docs/fomo/captioner.json", "egocentric": "docs/fomo/captioner_egocentric.json"}


def scene_for(env: gym.Env, view: str) -> Scene:
    """The env's current scene: the room (``"top-down"``) or the agent's own view (``"egocentric"``)."""
    return egocentric_scene(env.unwrapped.gen_obs()["image"]) if view == "egocentric" else scene_of(env)


def frames_of(
    env: gym.Env, scene: Scene, tile_sizes=TILE_SIZES, highlights=(True, False)
) -> dict[tuple[int, bool], np.ndarray]:
    """The current frame at every tile size: ``{(tile_size, highlight): frame}``.

    Top-down frames are drawn with each of ``highlights``; an egocentric view is always
    highlighted (the cells the agent sees).
    """
    if scene.egocentric:
        return {(ts, True): egocentric_frame(scene, ts) for ts in tile_sizes}
    return {(ts, h): env.unwrapped.get_frame(highlight=h, tile_size=ts) for ts in tile_sizes for h in highlights}


def labels_of(scene: Scene) -> np.ndarray:
    """``(width * height, 4)`` per-cell targets (type, colour, state, agent) in :func:`tiles_of` order."""
    w, h = scene.grid.shape[:2]
    agent = np.zeros(w * h, np.int64)
    agent[scene.agent_pos[0] * h + scene.agent_pos[1]] = 1 + scene.agent_dir
    return np.column_stack([scene.grid.reshape(-1, 3).astype(np.int64), agent])


def training_set(
    n_states: int, rng: np.random.Generator, view: str = "top-down"
) -> tuple[torch.Tensor, torch.Tensor, dict]:
    """The distinct ``(tile, label)`` pairs of ``n_states`` states on training seeds, and counts."""
    distinct: dict[bytes, None] = {}
    count = 0
    for env in itertools.cycle([gym.make(level) for level in LEVELS]):
        if count >= n_states:
            break
        for _ in states(env, rng.integers(HELD_OUT_SEED), rng.choice(RANDOM_MIX), rng):
            scene = scene_for(env, view)
            labels = labels_of(scene).astype(np.float32)
            for (ts, _), frame in frames_of(env, scene).items():
                rows = np.column_stack([tiles_of(frame[None], tile_size=ts).view(len(labels), -1).numpy(), labels])
                distinct.update(dict.fromkeys(r.tobytes() for r in rows))
            count += 1
    rows = np.unique(np.frombuffer(b"".join(distinct), np.float32).reshape(len(distinct), -1), axis=0)
    tiles = torch.from_numpy(np.ascontiguousarray(rows[:, :-4])).view(-1, 3, TILE, TILE)
    labels = torch.from_numpy(rows[:, -4:]).long()
    ambiguous = len(rows) - len(np.unique(rows[:, :-4], axis=0))
    return tiles, labels, {"states": count, "distinct_tiles": len(rows), "ambiguous_tiles": ambiguous}


def train(tiles: torch.Tensor, labels: torch.Tensor, seed: int, steps: int = 1500, lr: float = 3e-3) -> TileParser:
    """Fit a fresh :class:`TileParser` (initialised from ``seed``) full-batch with Adam."""
    model = seeded(TileParser, seed)
    opt = torch.optim.Adam(model.parameters(), lr=lr)
    for _ in range(steps):
        out = model(tiles)
        loss = sum(F.cross_entropy(out[head], labels[:, i]) for i, head in enumerate(HEADS))
        opt.zero_grad()
        loss.backward()
        opt.step()
    return model.eval()


def evaluate(
    captioner: LearnedCaptioner, seen: set[bytes], episodes: int, rng: np.random.Generator, view: str = "top-down"
) -> dict:
    """Held-out accuracies per tile size: ``episodes`` bot and ``episodes`` mixed episodes per level.

    Per-tile accuracy of each head, the fraction of frames parsed to exactly the true scene,
    and (bot episodes) the fraction of episodes whose caption from parsed scenes is the true one.
    Every episode is rendered at every tile size, highlighted and not.
    """
    tally: dict = defaultdict(lambda: defaultdict(int))
    for level in LEVELS:
        env = gym.make(level)
        for i in range(2 * episodes):
            bot = i < episodes and has_bot(level)
            truth, frames = [], defaultdict(list)
            for _ in states(env, HELD_OUT_SEED + i, 0.0 if i < episodes else RANDOM_MIX[1 + i % 2], rng):
                truth.append(scene_for(env, view))
                for key, frame in frames_of(env, truth[-1]).items():
                    frames[key].append(frame)
            labels = torch.from_numpy(np.concatenate([labels_of(s) for s in truth]))
            for (ts, _), stack in frames.items():
                t, stack = tally[ts], np.stack(stack)
                tiles = tiles_of(stack, tile_size=ts).view(-1, 3, TILE, TILE)
                with torch.inference_mode():
                    out = captioner.model(tiles)
                for j, head in enumerate(HEADS):
                    t[head] += int((out[head].argmax(1) == labels[:, j]).sum())
                t["tiles"] += len(tiles)
                t["unseen_tiles"] += sum(r.numpy().tobytes() not in seen for r in tiles.view(len(tiles), -1))
                parsed = captioner.scenes(stack, ts, egocentric=view == "egocentric")
                right = sum(p.same(s) for p, s in zip(parsed, truth))
                for key in (ts, level):
                    tally[key]["frames"] += len(parsed)
                    tally[key]["scenes"] += right
                if bot:
                    t["episodes"] += 1
                    t["captions"] += caption(parsed) == caption(truth)
    report = {}
    for ts in TILE_SIZES:
        t = tally[ts]
        report[f"tile_size_{ts}"] = {
            "tile_accuracy": {head: t[head] / t["tiles"] for head in HEADS},
            "scene_accuracy": t["scenes"] / t["frames"],
            "caption_accuracy": t["captions"] / t["episodes"],
            "frames": t["frames"],
            "tiles": t["tiles"],
            "bot_episodes": t["episodes"],
            "tiles_unseen_in_training": t["unseen_tiles"],
        }
    report["scene_accuracy_by_level"] = {lv: tally[lv]["scenes"] / tally[lv]["frames"] for lv in LEVELS}
    return report


SHIFTS: dict[str, tuple[int, dict | None]] = {
    "tile_size_12": (12, None),
    "tile_size_20": (20, None),
    "tile_size_24": (24, None),
    "tile_size_32_jitter_0.2_noise_0.03": (32, {"jitter": 0.2, "noise": 0.03}),
}
"""Appearances never trained on: ``name -> (tile size, shift_appearance arguments or None)``."""


def shifted_accuracy(captioner: LearnedCaptioner, episodes: int, rng: np.random.Generator, view: str) -> dict:
    """Held-out accuracy under :data:`SHIFTS`: ``episodes`` bot episodes per BabyAI level, highlighted frames.

    Per shift: the fraction of cells whose object (type, colour, state) is read right, of
    frames parsed to exactly the true scene, and of episodes whose caption is the true one.
    Recoloured episodes take one colour balance each (seeded by level and episode).
    """
    tally: dict = defaultdict(lambda: defaultdict(int))
    sizes = sorted({ts for ts, _ in SHIFTS.values()})
    for k, level in enumerate(lv for lv in LEVELS if has_bot(lv)):
        env = gym.make(level)
        for i in range(episodes):
            truth, by_size = [], defaultdict(list)
            for _ in states(env, HELD_OUT_SEED + i, 0.0, rng):
                truth.append(scene_for(env, view))
                for (ts, _), frame in frames_of(env, truth[-1], sizes, highlights=(True,)).items():
                    by_size[ts].append(frame)
            for name, (ts, shift) in SHIFTS.items():
                frames = np.stack(by_size[ts])
                if shift:
                    frames = shift_appearance(frames, **shift, seed=[k, i])
                parsed = captioner.scenes(frames, ts, egocentric=view == "egocentric")
                t = tally[name]
                t["cells"] += sum(int((p.grid == s.grid).all(-1).sum()) for p, s in zip(parsed, truth))
                t["all_cells"] += sum(s.grid[..., 0].size for s in truth)
                t["scenes"] += sum(p.same(s) for p, s in zip(parsed, truth))
                t["frames"] += len(truth)
                t["captions"] += caption(parsed) == caption(truth)
                t["episodes"] += 1
    return {
        name: {
            "cell_accuracy": t["cells"] / t["all_cells"],
            "scene_accuracy": t["scenes"] / t["frames"],
            "caption_accuracy": t["captions"] / t["episodes"],
            "frames": t["frames"],
            "bot_episodes": t["episodes"],
        }
        for name, t in tally.items()
    }


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--view", choices=tuple(WEIGHTS), default="top-down", help="frames of the room or the agent's view")
    p.add_argument("--out", help="output .safetensors path (default: the shipped weights of the view)")
    p.add_argument(
        "--report", help="output JSON of the held-out accuracies (default: docs/fomo/captioner[_egocentric].json)"
    )
    p.add_argument("--seed", type=int, default=0, help="seed for training env seeds, actions and initialisation")
    p.add_argument(
        "--frames",
        type=int,
        default=6000,
        help="training states to render (each at 3 tile sizes, highlight on and off)",
    )
    p.add_argument("--eval-episodes", type=int, default=8, help="held-out bot (and mixed) episodes per level")
    p.add_argument("--threads", type=int, default=1, help="torch CPU threads")
    args = p.parse_args(argv)
    args.out, args.report = args.out or str(WEIGHTS[args.view]), args.report or REPORTS[args.view]
    torch.set_num_threads(args.threads)
    start = time.perf_counter()
    tiles, labels, data = training_set(args.frames, np.random.default_rng([args.seed, 0]), args.view)
    print(f"training set: {data} ({time.perf_counter() - start:.0f} s)")
    model = train(tiles, labels, args.seed)
    with torch.inference_mode():
        out = model(tiles)
    data["train_accuracy"] = float((torch.stack([out[h].argmax(1) for h in HEADS], 1) == labels).all(1).float().mean())
    config = {
        "view": args.view,
        "seed": args.seed,
        "frames": args.frames,
        "levels": list(LEVELS),
        "tile_sizes": list(TILE_SIZES),
        "held_out_seeds": f">= {HELD_OUT_SEED}",
        **data,
    }
    save_parser(model, args.out, {"trained": config})
    print(f"saved {args.out}: training accuracy {data['train_accuracy']:.4f} ({time.perf_counter() - start:.0f} s)")
    seen = {r.numpy().tobytes() for r in tiles.view(len(tiles), -1)}
    held_out = evaluate(
        LearnedCaptioner(model), seen, args.eval_episodes, np.random.default_rng([args.seed, 1]), args.view
    )
    held_out["appearance_shift"] = shifted_accuracy(
        LearnedCaptioner(model), args.eval_episodes, np.random.default_rng([args.seed, 2]), args.view
    )
    report = {
        "command": "python -m fmbench.studies.fomo.train_captioner "
        + ("--view egocentric " if args.view == "egocentric" else "")
        + f"--seed {args.seed} --frames {args.frames} --eval-episodes {args.eval_episodes} --threads {args.threads}",
        "weights": Path(args.out).name,
        "training": config,
        "held_out": {"seeds": f"{HELD_OUT_SEED} + i", "episodes_per_level": 2 * args.eval_episodes, **held_out},
    }
    write_json_atomic(args.report, report)
    print(json.dumps(held_out, indent=1))
    print(f"wrote {args.report} ({time.perf_counter() - start:.0f} s)")


if __name__ == "__main__":
    main()
