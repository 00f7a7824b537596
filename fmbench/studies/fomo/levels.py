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
from minigrid.envs.babyai.core.roomgrid_level import RoomGridLevel
from minigrid.envs.babyai.core.verifier import (
    AfterInstr,
    AndInstr,
    BeforeInstr,
    GoToInstr,
    ObjDesc,
    PickupInstr,
    PutNextInstr,
)

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
    "ComposedLocal": {
        "babyai": "fmbench ComposedLocal (BabyAI Synth/SynthSeq-style missions in GoToLocal's room)",
        "family": "composed",
        "about": "one room, 8 objects; two actions on two objects joined by 'and', ', then' or 'after you'",
    },
}

CONNECTIVES = {"and": AndInstr, "then": BeforeInstr, "after": AfterInstr}
"""How :class:`ComposedLocal` joins a mission's two parts (BabyAI's own sequencing instructions)."""


class ComposedLocal(RoomGridLevel):
    """GoToLocal's room (8x8, 8 objects) with a two-part mission as in BabyAI's Synth/SynthSeq levels.

    Each part is *go to*, *pick up* or *put next to* (two different actions) on a different
    object, every object named by colour and type and unique in the room; the parts are
    joined by ``and`` (any order), ``, then`` (in order) or ``after you`` (reversed order).
    BabyAI's own levels mix these with locations, doors and several rooms; this one keeps
    a single room so episodes stay short (about 20 steps) and every near miss is visible.

    Example:
        >>> env = make_level("ComposedLocal")
        >>> _ = reset_quietly(env, 0)
        >>> env.mission
        'pick up the green ball, then go to the yellow key'
    """

    def __init__(self, **kwargs) -> None:
        super().__init__(num_rows=1, num_cols=1, room_size=8, **kwargs)

    def gen_mission(self) -> None:
        self.place_agent()
        objs = self.add_distractors(num_distractors=8, all_unique=False)
        self.check_objs_reachable()
        kinds = [(o.type, o.color) for o in objs]
        unique = [o for o in objs if kinds.count((o.type, o.color)) == 1]
        if len(unique) < 3:
            raise RecursionError("fewer than three uniquely named objects")  # minigrid regenerates the grid
        first, second, fixed = (ObjDesc(o.type, o.color) for o in self._rand_subset(unique, 3))
        actions = self._rand_subset(["goto", "pickup", "putnext"], 2)
        part = {"goto": GoToInstr, "pickup": PickupInstr}
        a, b = (
            PutNextInstr(d, fixed) if act == "putnext" else part[act](d) for act, d in zip(actions, (first, second))
        )
        self.instrs = CONNECTIVES[self._rand_elem(sorted(CONNECTIVES))](a, b)


def make_level(name: str):
    """A fresh unwrapped minigrid env of a level in :data:`LEVELS`.

    Example:
        >>> make_level("PutNextLocal").room_size
        8
    """
    if name not in LEVELS:
        raise ValueError(f"unknown BabyAI level {name!r}; fmbench knows {sorted(LEVELS)}")
    if name == "ComposedLocal":
        return ComposedLocal()
    return gym.make(LEVELS[name]["babyai"], disable_env_checker=True).unwrapped


def reset_quietly(env, seed: int) -> dict:
    """``env.reset(seed=seed)`` without minigrid's rejection-sampling prints; returns the observation."""
    with contextlib.redirect_stdout(io.StringIO()):
        return env.reset(seed=int(seed))[0]
