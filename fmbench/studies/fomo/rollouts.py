"""Policies on a BabyAI layout, recorded as scenes (and frames): the desired and incorrect runs.

* ``expert``: the BabyAI bot on the true mission (the desired behaviour);
* a sibling family (``colour``, ``type``, ``action``, ``target``, ``swapped``): the bot on a
  similar but different mission (:func:`fmbench.studies.fomo.instructions.siblings`);
* ``truncated``: the expert's run cut short;
* ``random``: uniform random actions, as many as the expert took.

Every run is replayed on a fresh copy of the layout under the true mission, so whether it
satisfies the true instruction is decided by the level's own verifier.

Example:
    >>> run = run_policy("GoToRedBall", seed=0)
    >>> run.success, len(run.scenes) == len(run.actions) + 1
    (True, True)
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
from minigrid.utils.baby_ai_bot import BabyAIBot

from fmbench.studies.fomo.frames import egocentric_frame
from fmbench.studies.fomo.levels import make_level, reset_quietly
from fmbench.studies.fomo.scene import VIEWS, Scene, egocentric_scene, scene_of


class BotFailure(RuntimeError):
    """The BabyAI bot cannot pursue a mission on this layout (it asserts, or finds no path)."""


@dataclass
class Run:
    """One recorded episode on a layout (``level``, ``seed``)."""

    level: str
    seed: int
    policy: str
    mission: str
    actions: list[int]
    scenes: list[Scene]
    frames: np.ndarray | None = None
    success: bool = False
    true_return: float = 0.0
    extra: dict = field(default_factory=dict)


def _record(env, obs: dict, frames: bool, tile_size: int, view: str) -> tuple[Scene, np.ndarray | None]:
    if view == "egocentric":
        scene = egocentric_scene(obs["image"])
        return scene, (egocentric_frame(scene, tile_size) if frames else None)
    return scene_of(env), (env.get_frame(highlight=True, tile_size=tile_size) if frames else None)


def run_policy(
    level: str,
    seed: int,
    *,
    instr=None,
    policy: str = "expert",
    actions: list[int] | None = None,
    max_steps: int | None = None,
    frames: bool = False,
    tile_size: int = 32,
    view: str = "top-down",
) -> Run:
    """Roll out the bot (on ``instr``, default the true mission) or replay fixed ``actions``.

    Args:
        level: a name in :data:`fmbench.studies.fomo.levels.LEVELS`.
        seed: the layout's reset seed.
        instr: a minigrid instruction to pursue instead of the true one.
        policy: the label the run carries.
        actions: play these actions instead of the bot's, all of them (a replay of another
            mission's run must not stop where the true mission happens to be done).
        max_steps: stop after this many steps (default: the level's limit).
        frames: also render a frame per step.
        tile_size: pixels per cell of the frames.
        view: ``"top-down"`` (scenes and frames of the room) or ``"egocentric"`` (of the
            agent's own view, :func:`~fmbench.studies.fomo.scene.egocentric_scene`).
    """
    if view not in VIEWS:
        raise ValueError(f"view must be one of {VIEWS}, got {view!r}")
    env = make_level(level)
    obs = reset_quietly(env, seed)
    true_mission = env.mission
    if instr is not None:
        env.instrs = instr
        instr.reset_verifier(env)
        env.mission = instr.surface(env)
    limit = env.max_steps if max_steps is None else min(max_steps, env.max_steps)
    bot = BabyAIBot(env) if actions is None else None
    scene, frame = _record(env, obs, frames, tile_size, view)
    scenes, shots, taken = [scene], [frame], []
    for step in range(limit if actions is None else min(limit, len(actions))):
        action = _bot_action(bot) if bot is not None else int(actions[step])
        obs, _, terminated, truncated, _ = env.step(action)
        taken.append(action)
        scene, frame = _record(env, obs, frames, tile_size, view)
        scenes.append(scene)
        shots.append(frame)
        if bot is not None and (terminated or truncated):
            break
    success, true_return = replay(level, seed, taken)
    return Run(
        level=level,
        seed=int(seed),
        policy=policy,
        mission=true_mission,
        actions=taken,
        scenes=scenes,
        frames=np.stack(shots) if frames else None,
        success=success,
        true_return=true_return,
    )


def _bot_action(bot: BabyAIBot) -> int:
    try:
        return int(bot.replan())
    except (AssertionError, IndexError, TypeError, ValueError) as e:
        raise BotFailure(f"the BabyAI bot failed: {e}") from None


def replay(level: str, seed: int, actions: list[int]) -> tuple[bool, float]:
    """Whether ``actions`` satisfy the layout's true mission, and the level's return for them."""
    env = make_level(level)
    reset_quietly(env, seed)
    for action in actions:
        _, reward, terminated, truncated, _ = env.step(action)
        if terminated or truncated:
            return bool(terminated and reward > 0), float(reward)
    return False, 0.0


def random_actions(n: int, seed: int, n_actions: int = 6) -> list[int]:
    """``n`` uniform actions in ``[0, n_actions)`` (minigrid's ``done`` is left out), seeded."""
    return np.random.default_rng(seed).integers(0, n_actions, n).tolist()
