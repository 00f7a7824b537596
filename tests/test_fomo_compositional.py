"""FoMo compositional reward-quality task: two-part missions and their near-miss families."""

from __future__ import annotations

import pytest
from minigrid.envs.babyai.core.verifier import AfterInstr, AndInstr, BeforeInstr, PutNextInstr

from fmbench.errors import ModelError
from fmbench.studies.fomo.instructions import COMPOSED_INCORRECT, candidates, composed_siblings
from fmbench.studies.fomo.levels import make_level, reset_quietly
from fmbench.studies.fomo.rewards import check_reward_name
from fmbench.studies.fomo.rollouts import replay
from fmbench.studies.fomo.task import _collect

SEEDS = range(6)


def _layout(seed: int):
    env = make_level("ComposedLocal")
    reset_quietly(env, seed)
    return env


def _objects(part) -> tuple:
    desc = part.desc_move if isinstance(part, PutNextInstr) else part.desc
    return desc.type, desc.color


@pytest.mark.parametrize("seed", SEEDS)
def test_missions_are_two_parts_on_distinct_uniquely_named_objects(seed):
    env = _layout(seed)
    instr = env.instrs
    assert isinstance(instr, (AndInstr, BeforeInstr, AfterInstr))
    a, b = instr.instr_a, instr.instr_b
    assert type(a) is not type(b) and _objects(a) != _objects(b)
    assert " a " not in f" {env.mission} "  # every object is unique in the room: "the", never "a"
    sep = {AndInstr: " and ", BeforeInstr: ", then ", AfterInstr: " after you "}[type(instr)]
    assert env.mission == a.surface(env) + sep + b.surface(env)


@pytest.mark.parametrize("seed", SEEDS)
def test_near_miss_families(seed):
    env = _layout(seed)
    instr = env.instrs
    a, b = instr.instr_a.surface(env), instr.instr_b.surface(env)
    near = composed_siblings(env, instr)
    by_family: dict[str, list[str]] = {}
    for family, sibling in near:
        by_family.setdefault(family, []).append(sibling.surface(env))
    assert set(by_family) <= set(COMPOSED_INCORRECT)
    assert all(s != env.mission for ss in by_family.values() for s in ss)
    assert sorted(by_family["one-part"]) == sorted([a, b])
    if isinstance(instr, AndInstr):
        assert "order" not in by_family  # "X and Y" is satisfied in either order
    elif isinstance(instr, BeforeInstr):
        assert by_family["order"] == [f"{b}, then {a}"]
    else:  # "A after you B" done as "A, then B"
        assert by_family["order"] == [f"{b} after you {a}"]
    for sibling in (s for f, s in near if f == "swapped-objects"):
        assert _objects(sibling.instr_a) == _objects(instr.instr_b)
        assert _objects(sibling.instr_b) == _objects(instr.instr_a)
        assert type(sibling.instr_a) is type(instr.instr_a) and type(sibling) is type(instr)
    for sibling in (s for f, s in near if f == "sibling-object"):
        kept = [
            p
            for p, q in ((sibling.instr_a, instr.instr_a), (sibling.instr_b, instr.instr_b))
            if _objects(p) == _objects(q)
        ]
        assert len(kept) == 1  # exactly one part moved to another object
    cands = candidates(env, instr)
    assert env.mission in cands and len(cands) == 6


def test_a_known_answer_layout():
    lay = _collect("ComposedLocal", 0, 0.5, COMPOSED_INCORRECT)
    assert lay.mission == "pick up the green ball, then go to the yellow key"
    assert [r.policy for r in lay.runs] == ["expert", *COMPOSED_INCORRECT]
    pursued = {r.policy: r.extra.get("pursued") for r in lay.runs}
    assert pursued["order"] == "go to the yellow key, then pick up the green ball"
    assert pursued["swapped-objects"] == "pick up the yellow key, then go to the green ball"
    assert pursued["one-part"] in ("pick up the green ball", "go to the yellow key")
    assert lay.runs[0].success and not any(lay.dropped(r) for r in lay.runs)


def test_a_near_miss_that_satisfies_the_mission_is_dropped():
    # "B after you A" done as "B, then A": carrying the red key to the grey ball, the bot passes the green key
    lay = _collect("ComposedLocal", 1, 0.5, COMPOSED_INCORRECT)
    assert lay.mission == "put the red key next to the grey ball after you go to the green key"
    order = next(r for r in lay.runs if r.policy == "order")
    assert order.extra["pursued"] == "go to the green key after you put the red key next to the grey ball"
    assert order.success == replay("ComposedLocal", 1, order.actions)[0] is True
    assert lay.dropped(order) and [r.policy for r in lay.runs if lay.dropped(r)] == ["order"]


def test_gemma_is_a_reward_language_model():
    check_reward_name("oracle+gemma3+pmi")
    with pytest.raises(ModelError, match="use smollm2, gemma3, hf:<path> or minilm"):
        check_reward_name("oracle+gemma4+pmi")
