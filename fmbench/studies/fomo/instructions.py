"""BabyAI instructions: the families fmbench scores, sibling missions and candidate sets.

A *sibling* of an instruction is a similar but different mission on the same layout: another
colour, another object type, another action on the same object (go to it instead of picking
it up or opening it), another target, or swapped arguments. The BabyAI bot pursuing a
sibling is a similar-but-incorrect policy. The *candidates* of an instruction are every
instruction of the same form that the layout admits; the contrastive normalisation scores
an instruction against them.

Example:
    >>> import gymnasium as gym, minigrid
    >>> env = gym.make("BabyAI-PickupDist-v0").unwrapped
    >>> _ = env.reset(seed=0)
    >>> env.instrs.surface(env)
    'pick up the green key'
    >>> sorted({family for family, _ in siblings(env, env.instrs)})
    ['action', 'colour']
"""

from __future__ import annotations

from itertools import product

from minigrid.core.constants import COLOR_NAMES
from minigrid.envs.babyai.core.verifier import (
    AfterInstr,
    AndInstr,
    BeforeInstr,
    GoToInstr,
    ObjDesc,
    OpenInstr,
    PickupInstr,
    PutNextInstr,
    SeqInstr,
)

from fmbench.studies.fomo.scene import COLOURS, DOOR, MOVABLE, TYPES, scene_of

FAMILIES = ("goto", "pickup", "open", "putnext")
COMPOSED_INCORRECT = ("order", "one-part", "swapped-objects", "sibling-object")
"""Near misses of a two-part mission (:func:`composed_siblings`)."""
INCORRECT = ("colour", "type", "action", "target", "swapped", "truncated", "random", *COMPOSED_INCORRECT)
MOVABLE_TYPES = tuple(TYPES[t] for t in sorted(MOVABLE))


def family_of(instr) -> str:
    """``goto``, ``pickup``, ``open`` or ``putnext`` (other instructions are refused).

    Example:
        >>> family_of(GoToInstr(ObjDesc("ball", "red")))
        'goto'
    """
    for cls, name in ((GoToInstr, "goto"), (PickupInstr, "pickup"), (OpenInstr, "open"), (PutNextInstr, "putnext")):
        if isinstance(instr, cls):
            return name
    raise ValueError(f"fmbench scores go to / pick up / open / put next to instructions, not {type(instr).__name__}")


def layout_objects(env) -> list[tuple[str, str]]:
    """The distinct ``(type, colour)`` of the layout's doors, keys, balls and boxes, sorted."""
    grid = scene_of(env).grid.reshape(-1, 3)
    keep = [(TYPES[int(t)], COLOURS[int(c)]) for t, c, _ in grid if int(t) == DOOR or int(t) in MOVABLE]
    return sorted(set(keep))


def _descs(objs, type_: str | None, colour: str | None, allowed_types) -> list[ObjDesc]:
    """Every description of the same form (type and/or colour given) that some object matches."""
    out = []
    for t, c in sorted({(t if type_ else None, c if colour else None) for t, c in objs if t in allowed_types}):
        out.append(ObjDesc(t, c))
    return out


def _matches(objs, desc: ObjDesc) -> bool:
    return any((desc.type in (None, t)) and (desc.color in (None, c)) for t, c in objs)


def _variants(objs, desc: ObjDesc, allowed_types) -> dict[str, list[ObjDesc]]:
    """Descriptions differing from ``desc`` in colour only, or in type only, that match some object."""
    out: dict[str, list[ObjDesc]] = {"colour": [], "type": []}
    if desc.color is not None:
        out["colour"] = [
            ObjDesc(desc.type, c) for c in COLOR_NAMES if c != desc.color and _matches(objs, ObjDesc(desc.type, c))
        ]
    if desc.type is not None:
        out["type"] = [
            ObjDesc(t, desc.color) for t in allowed_types if t != desc.type and _matches(objs, ObjDesc(t, desc.color))
        ]
    return out


def siblings(env, instr) -> list[tuple[str, object]]:
    """``(family, instruction)`` pairs of similar but different missions on ``env``'s layout.

    Families: ``colour``, ``type`` (of an object the instruction names), ``action`` (go to
    the object instead of picking it up / opening it; for put-next, pick up the object
    without putting it down, or go to the target), ``target`` (put-next: another fixed
    object) and ``swapped`` (put-next: the two objects exchanged). A two-part mission has
    the families of :func:`composed_siblings` instead.
    """
    if isinstance(instr, SeqInstr):
        return composed_siblings(env, instr)
    objs = layout_objects(env)
    kind = family_of(instr)
    out: list[tuple[str, object]] = []
    if kind in ("goto", "pickup", "open"):
        allowed = ("door",) if kind == "open" else MOVABLE_TYPES if kind == "pickup" else MOVABLE_TYPES + ("door",)
        for fam, descs in _variants(objs, instr.desc, allowed).items():
            out += [(fam, type(instr)(d)) for d in descs]
        if kind != "goto":
            out.append(("action", GoToInstr(ObjDesc(instr.desc.type, instr.desc.color))))
        return out
    move, fixed = instr.desc_move, instr.desc_fixed
    for fam, descs in _variants(objs, move, MOVABLE_TYPES).items():
        out += [(fam, PutNextInstr(d, ObjDesc(fixed.type, fixed.color))) for d in descs]
    for fam, descs in _variants(objs, fixed, MOVABLE_TYPES + ("door",)).items():
        out += [(fam, PutNextInstr(ObjDesc(move.type, move.color), d)) for d in descs]
    out.append(("action", PickupInstr(ObjDesc(move.type, move.color))))
    out.append(("action", GoToInstr(ObjDesc(fixed.type, fixed.color))))
    same = {(move.type, move.color), (fixed.type, fixed.color)}
    out += [
        ("target", PutNextInstr(ObjDesc(move.type, move.color), ObjDesc(t, c)))
        for t, c in objs
        if (t, c) not in same and t in MOVABLE_TYPES + ("door",)
    ]
    if fixed.type in MOVABLE_TYPES:
        out.append(("swapped", PutNextInstr(ObjDesc(fixed.type, fixed.color), ObjDesc(move.type, move.color))))
    return out


def _main_desc(part) -> ObjDesc:
    """The object a part acts on (for put-next, the object moved)."""
    return part.desc_move if isinstance(part, PutNextInstr) else part.desc


def _can_act(part, desc: ObjDesc) -> bool:
    """Whether ``part``'s action applies to the object ``desc`` (only go to applies to doors)."""
    return isinstance(part, GoToInstr) or desc.type in MOVABLE_TYPES


def _on(part, desc: ObjDesc):
    """The same action as ``part`` on another object (put-next keeps its fixed object)."""
    if isinstance(part, PutNextInstr):
        return PutNextInstr(ObjDesc(desc.type, desc.color), ObjDesc(part.desc_fixed.type, part.desc_fixed.color))
    return type(part)(ObjDesc(desc.type, desc.color))


def composed_siblings(env, instr: SeqInstr) -> list[tuple[str, object]]:
    """Near misses of a two-part mission ``A <connective> B`` (parts are go to / pick up / put next to).

    Families: ``order`` (both parts, in the wrong order: for ``and`` every order is right, so
    none), ``one-part`` (``A`` alone or ``B`` alone), ``swapped-objects`` (each part's action on
    the other part's object) and ``sibling-object`` (one part on an object of another colour or
    type that the layout holds).

    Example:
        >>> from fmbench.studies.fomo.levels import make_level, reset_quietly
        >>> env = make_level("ComposedLocal")
        >>> _ = reset_quietly(env, 0)
        >>> env.mission
        'pick up the green ball, then go to the yellow key'
        >>> near = composed_siblings(env, env.instrs)
        >>> near[0][0], near[0][1].surface(env)
        ('order', 'go to the yellow key, then pick up the green ball')
        >>> sorted({family for family, _ in near})
        ['one-part', 'order', 'sibling-object', 'swapped-objects']
    """
    a, b = instr.instr_a, instr.instr_b
    if not all(isinstance(p, (GoToInstr, PickupInstr, PutNextInstr)) for p in (a, b)):
        raise ValueError("fmbench's two-part missions join two go to / pick up / put next to instructions")
    da, db = _main_desc(a), _main_desc(b)
    out: list[tuple[str, object]] = []
    if isinstance(instr, BeforeInstr):
        out.append(("order", BeforeInstr(_on(b, db), _on(a, da))))
    elif isinstance(instr, AfterInstr):
        out.append(("order", AfterInstr(_on(b, db), _on(a, da))))
    out += [("one-part", _on(a, da)), ("one-part", _on(b, db))]
    fixed = {(p.desc_fixed.type, p.desc_fixed.color) for p in (a, b) if isinstance(p, PutNextInstr)}
    if _can_act(a, db) and _can_act(b, da) and not fixed & {(da.type, da.color), (db.type, db.color)}:
        out.append(("swapped-objects", type(instr)(_on(a, db), _on(b, da))))
    objs = layout_objects(env)
    taken = {(da.type, da.color), (db.type, db.color)} | fixed
    for which, (part, desc) in enumerate(((a, da), (b, db))):
        for variant in [d for ds in _variants(objs, desc, MOVABLE_TYPES + ("door",)).values() for d in ds]:
            if (variant.type, variant.color) in taken or not _can_act(part, variant):
                continue
            parts = (_on(a, variant), _on(b, db)) if which == 0 else (_on(a, da), _on(b, variant))
            out.append(("sibling-object", type(instr)(*parts)))
    return out


def _composed_candidates(env, instr: SeqInstr) -> tuple[str, ...]:
    a, b = instr.instr_a, instr.instr_b
    made = [cls(*pair) for cls in (AndInstr, BeforeInstr, AfterInstr) for pair in ((a, b), (b, a))]
    return tuple(sorted({i.surface(env) for i in made}))


def candidates(env, instr) -> tuple[str, ...]:
    """Every instruction of ``instr``'s form that ``env``'s layout admits, ``instr`` included, sorted.

    For a two-part mission: its two parts joined by each connective, in either order (6).

    Example:
        >>> import gymnasium as gym, minigrid
        >>> env = gym.make("BabyAI-GoToRedBallNoDists-v0").unwrapped
        >>> _ = env.reset(seed=0)
        >>> candidates(env, env.instrs)
        ('go to the red ball',)
    """
    if isinstance(instr, SeqInstr):
        return _composed_candidates(env, instr)
    objs = layout_objects(env)
    kind = family_of(instr)
    if kind == "putnext":
        moves = _descs(objs, instr.desc_move.type, instr.desc_move.color, MOVABLE_TYPES)
        fixeds = _descs(objs, instr.desc_fixed.type, instr.desc_fixed.color, MOVABLE_TYPES + ("door",))
        made = [PutNextInstr(m, f) for m, f in product(moves, fixeds) if (m.type, m.color) != (f.type, f.color)]
    else:
        allowed = ("door",) if kind == "open" else MOVABLE_TYPES if kind == "pickup" else MOVABLE_TYPES + ("door",)
        made = [type(instr)(d) for d in _descs(objs, instr.desc.type, instr.desc.color, allowed)]
    return tuple(sorted({i.surface(env) for i in made} | {instr.surface(env)}))
