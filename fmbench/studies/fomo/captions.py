"""Trajectory text from scenes: an ordered list of events and a description of the final state.

Events are read off successive scenes, so the same code serves the oracle (scenes from the
env's symbolic state) and the learned captioner (scenes parsed from frames):

* ``went to X``: the agent comes to face object ``X`` (by moving or turning);
* ``picked up X``: ``X`` vanishes from the cell the agent faced;
* ``put X next to Y``: ``X`` reappears, next to ``Y`` (``put down X`` when nothing is near);
* ``opened X`` / ``closed X``: a door's state changes.

Egocentric scenes (the agent's own view, :func:`~fmbench.studies.fomo.scene.egocentric_scene`)
move with the agent, so there a step that changes only the cell in front (and the agent's
own cell, which shows what it carries, and cells a door's opening shows or hides) is an
interaction, and any other change of view is a move or turn, after which facing an object
is ``went to X``. Objects are named from the view they are seen in (``the`` unless it shows
two alike).

The final state says what the agent faces and carries, which doors it opened, and what
the objects it moved now lie next to. ``content="final"`` describes the last frame alone
(what the agent faces and what that lies next to, which doors are open: a frame does not
show what the agent carries); it loses actions such as picking up. ``content="faced"`` is
that description less what the faced object lies next to: what the agent faces (and, in an
egocentric view, carries) and which doors are open. ``content`` picks either part or both.

Example:
    >>> import gymnasium as gym, minigrid
    >>> from fmbench.studies.fomo.scene import scene_of
    >>> env = gym.make("BabyAI-GoToRedBallNoDists-v0").unwrapped
    >>> _ = env.reset(seed=1)
    >>> scenes = [scene_of(env)]
    >>> for a in (1, 1, 2):
    ...     _ = env.step(a); scenes.append(scene_of(env))
    >>> caption(scenes, "final")
    'At the end, the agent faces nothing.'
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from fmbench.studies.fomo.scene import DOOR, MOVABLE, OPEN, UNSEEN, Scene, object_name

CONTENTS = ("events+final", "events", "final", "faced")


@dataclass(frozen=True)
class Event:
    """Something the agent did between step ``step - 1`` and ``step``."""

    step: int
    text: str
    put_at: tuple[int, int] | None = None


def _door_verb(before: int, after: int) -> str | None:
    """``opened`` / ``closed`` for a door state change (``None``: locked to closed or back)."""
    return "opened" if after == OPEN else "closed" if before == OPEN else None


def _events_between(before: Scene, after: Scene, step: int, counts, carrying: list) -> list[Event]:
    """Events between two successive scenes; ``carrying`` (a one-item list) is updated in place."""
    out: list[Event] = []
    changed = [(int(x), int(y)) for x, y in zip(*(before.grid != after.grid).any(axis=2).nonzero())]
    appeared = None
    for x, y in changed:
        t0, c0, s0 = before.cell(x, y)
        t1, c1, s1 = after.cell(x, y)
        if t0 == t1 == DOOR and s0 != s1:
            verb = _door_verb(s0, s1)
            if verb:
                out.append(Event(step, f"{verb} {object_name(t0, c0, counts[(t0, c0)])}"))
        elif t0 in MOVABLE and t1 not in MOVABLE and (x, y) == before.front:
            carrying[0] = (t0, c0)
            out.append(Event(step, f"picked up {object_name(t0, c0, counts[(t0, c0)])}"))
        elif t1 in MOVABLE and t0 not in MOVABLE:
            carrying[0] = None
            appeared = (x, y)
            name = object_name(t1, c1, counts[(t1, c1)])
            near = " and ".join(after.name(*p) for p in after.neighbours(x, y))
            out.append(Event(step, f"put {name} next to {near}" if near else f"put down {name}", put_at=(x, y)))
    facing = after.front
    moved = facing != before.front or (not before.is_object(*facing))
    if after.is_object(*facing) and moved and facing != appeared:
        out.append(Event(step, f"went to {after.name(*facing)}"))
    return out


def _egocentric_events_between(before: Scene, after: Scene, step: int) -> list[Event]:
    """Events between two successive egocentric scenes (the agent at a fixed cell of its own view)."""
    front, agent = before.front, before.agent_pos
    changed = {(int(x), int(y)) for x, y in zip(*(before.grid != after.grid).any(axis=2).nonzero())}
    # opening or closing a door shows or hides what lies behind it; any other change of view is a move
    hidden = {p for p in changed - {front, agent} if UNSEEN in (before.cell(*p)[0], after.cell(*p)[0])}
    if not changed <= {front, agent} | hidden:  # the view moved: a step or a turn
        return [Event(step, f"went to {after.name(*front)}")] if after.is_object(*front) else []
    t0, c0, s0 = before.cell(*front)
    t1, c1, s1 = after.cell(*front)
    if t0 == t1 == DOOR and s0 != s1:
        verb = _door_verb(s0, s1)
        return [Event(step, f"{verb} {before.name(*front)}")] if verb else []
    if t0 in MOVABLE and t1 not in MOVABLE:
        return [Event(step, f"picked up {before.name(*front)}")]
    if t1 in MOVABLE and t0 not in MOVABLE:
        near = " and ".join(after.name(*p) for p in after.neighbours(*front))
        name = after.name(*front)
        return [Event(step, f"put {name} next to {near}" if near else f"put down {name}", put_at=front)]
    return []


def events(scenes: Sequence[Scene]) -> list[Event]:
    """The ordered events of a trajectory of scenes.

    Example:
        >>> events([])
        []
    """
    if not scenes:
        return []
    # a scene that is the previous one itself (a parser's memo returns one object per distinct frame) adds nothing
    steps = [step for step in range(1, len(scenes)) if scenes[step] is not scenes[step - 1]]
    if scenes[0].egocentric:
        return [e for step in steps for e in _egocentric_events_between(scenes[step - 1], scenes[step], step)]
    counts, carrying = scenes[0].counts(), [None]
    out: list[Event] = []
    for step in steps:
        out += _events_between(scenes[step - 1], scenes[step], step, counts, carrying)
    return out


def final_state(last: Scene, first: Scene | None = None, evs: Sequence[Event] = (), near: bool = True) -> str:
    """A few sentences on the last scene.

    With the trajectory's ``first`` scene and events up to the last, it also says what the
    agent carries (inferred from the events: a frame does not show it), which doors it
    opened, and what the objects it moved lie next to. Without them (``first=None``) it says
    only what the last frame shows: what the agent faces and what that lies next to, and
    which doors are open. An egocentric last scene always says it this way, plus what the
    agent carries (its view shows it); earlier views do not locate anything in the last one.
    ``near=False`` leaves out what objects lie next to.

    Example:
        >>> import numpy as np
        >>> s = Scene(np.ones((3, 3, 3), np.uint8), (1, 1), 0)
        >>> final_state(s)
        'At the end, the agent faces nothing.'
    """
    if last.egocentric:
        first, evs = None, ()
    counts = (first or last).counts()
    carried = object_name(*last.carried, counts[last.carried]) if last.carried else None
    for ev in evs:
        if ev.text.startswith("picked up "):
            carried = ev.text.removeprefix("picked up ")
        elif ev.text.startswith("put "):
            carried = None
    parts = [f"At the end, the agent faces {last.name(*last.front)}" + (f" and carries {carried}." if carried else ".")]
    opened = (last.grid[..., 0] == DOOR) & (last.grid[..., 2] == OPEN)
    if first is not None:
        opened &= first.grid[..., 2] != OPEN
    for x, y in zip(*opened.nonzero()):
        colour = int(last.grid[x, y, 1])
        parts.append(f"{object_name(DOOR, colour, counts[(DOOR, colour)]).capitalize()} is open.")
    placed = [ev.put_at for ev in evs if ev.put_at is not None] if first is not None else [last.front]
    for x, y in dict.fromkeys(placed) if near else ():
        beside = [last.name(*p) for p in last.neighbours(x, y)]
        if last.cell(x, y)[0] in MOVABLE and beside:
            parts.append(f"{last.name(x, y).capitalize()} is next to {' and '.join(beside)}.")
    return " ".join(parts)


def caption(scenes: Sequence[Scene], content: str = "events+final") -> str:
    """The trajectory text the language model reads.

    Args:
        scenes: one scene per step, the reset scene first.
        content: ``"events+final"``, ``"events"``, ``"final"`` or ``"faced"``.

    Example:
        >>> caption([], "events")
        'The agent did nothing.'
    """
    _check_content(content)
    return _text(scenes[0], scenes[-1], events(scenes), content) if scenes else _text(None, None, [], content)


def prefix_captions(scenes: Sequence[Scene], content: str = "events+final") -> list[str]:
    """``caption(scenes[:k + 1])`` for every ``k`` (dense rewards score each prefix).

    Example:
        >>> prefix_captions([])
        []
    """
    _check_content(content)
    evs = events(scenes)
    return [_text(scenes[0], scenes[k], [e for e in evs if e.step <= k], content) for k in range(len(scenes))]


def _check_content(content: str) -> None:
    if content not in CONTENTS:
        raise ValueError(f"caption content must be one of {CONTENTS}, got {content!r}")


def _text(first: Scene | None, last: Scene | None, evs: Sequence[Event], content: str) -> str:
    said = []
    if content in ("events+final", "events"):
        said.append("The agent " + ", then ".join(e.text for e in evs) + "." if evs else "The agent did nothing.")
    if content in ("final", "faced") and last is not None:
        said.append(final_state(last, near=content == "final"))
    elif content != "events" and first is not None and last is not None:
        said.append(final_state(last, first, evs))
    return " ".join(said)
