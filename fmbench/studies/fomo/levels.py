"""The BabyAI levels fmbench builds on, as plain data (name -> minigrid env id and family).

Example:
    >>> LEVELS["GoToLocal"]["family"]
    'goto'
"""

from __future__ import annotations

import contextlib
import io

import gymnasium as gym
import minigrid  # noqa: F401  (registers the BabyAI ids)

LEVELS: dict[str, dict[str, str]] = {
    "GoToRedBall": {
        "babyai": "BabyAI-GoToRedBallNoDists-v0",
        "family": "goto",
        "about": "one room, the red ball and no distractors",
    },
    "GoToLocal": {
        "babyai": "BabyAI-GoToLocal-v0",
        "family": "goto",
        "about": "one room, 8 distractors; go to an object named by colour and type",
    },
    "PickupDist": {
        "babyai": "BabyAI-PickupDist-v0",
        "family": "pickup",
        "about": "one 7x7 room, 5 objects; the object may be named by colour, type or both",
    },
    "OpenDoorColor": {
        "babyai": "BabyAI-OpenDoorColor-v0",
        "family": "open",
        "about": "3x3 rooms; open one of the four doors of the agent's room, named by colour",
    },
    "PutNextLocal": {
        "babyai": "BabyAI-PutNextLocal-v0",
        "family": "putnext",
        "about": "one room, 8 objects; put one object next to another",
    },
}


def make_level(name: str):
    """A fresh unwrapped minigrid env of a level in :data:`LEVELS`.

    Example:
        >>> make_level("PutNextLocal").room_size
        8
    """
    if name not in LEVELS:
        raise ValueError(f"unknown BabyAI level {name!r}; fmbench knows {sorted(LEVELS)}")
    return gym.make(LEVELS[name]["babyai"], disable_env_checker=True).unwrapped


def reset_quietly(env, seed: int) -> None:
    """``env.reset(seed=seed)`` without minigrid's rejection-sampling prints."""
    with contextlib.redirect_stdout(io.StringIO()):
        env.reset(seed=int(seed))
