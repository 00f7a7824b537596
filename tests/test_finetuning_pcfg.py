"""The fine-tuning study's PCFG: grammar validation, the sampler's distribution and random access, task answers."""

from __future__ import annotations

import random

import numpy as np
import pytest

import fmbench
from fmbench.errors import InputError
from fmbench.studies.finetuning.data import PCFGConfig, answers, documents, operands, spurious_rule_holds, texts
from fmbench.studies.finetuning.grammar import Grammar, cfg3
from fmbench.studies.finetuning.sampler import MAX_ROUNDS, expand, sample_texts

R = lambda *rhs: tuple((tuple(r), 1 / len(rhs)) for r in rhs)  # noqa: E731 - equally likely rules


@pytest.mark.parametrize(
    "start,rules,message",
    [
        ("S", {"S": R("a"), "X": R("b")}, r"\['X'\] unreachable from 'S'"),
        ("S", {"S": R("a", "L"), "L": R(("L", "a"))}, r"\['L'\] never terminate"),
        ("S", {"S": R(("A", "a")), "A": R(("A", "B")), "B": R(("B", "A"))}, r"never terminate"),
        ("T", {"S": R("a")}, "the start symbol 'T' has no rules"),
        ("S", {"S": ((("a",), 0.5), (("b",), 0.4))}, "sum to 1"),
        ("S", {"S": R((), "a")}, "empty rule"),
    ],
)
def test_a_bad_grammar_is_refused_in_one_line_before_sampling(start, rules, message):
    with pytest.raises(InputError, match=message) as e:
        Grammar(start, rules)
    assert "\n" not in str(e.value)


def test_cfg3_strings_have_the_lengths_its_levels_allow():
    g = cfg3((1, 3, 3), terminals="abc", seed=1).compile()
    ids, starts = expand(g, key=0, index=np.arange(500))
    lengths = np.diff(starts)
    assert lengths.min() >= 2**3 and lengths.max() <= 3**3 and ids.max() < 3
    assert g.min_yield[g.start] == lengths.min() or lengths.min() > g.min_yield[g.start]


def test_sampling_is_random_access_and_cropping_keeps_the_prefix():
    g = cfg3(seed=5).compile()
    full, starts = expand(g, key=7, index=np.arange(40))
    cropped = sample_texts(g, key=7, index=np.arange(40), length=32)
    assert all((full[starts[i] : starts[i] + 32] == cropped[i]).all() for i in range(40))
    assert (sample_texts(g, 7, np.array([33, 5]), 32) == cropped[[33, 5]]).all()
    assert not (sample_texts(g, 8, np.arange(40), 32) == cropped).all()


def _reference_sample(grammar: Grammar, rng: random.Random) -> list[str]:
    out, stack = [], [grammar.start]
    while stack:
        sym = stack.pop()
        if sym not in grammar.rules:
            out.append(sym)
            continue
        rhs = rng.choices([r for r, _ in grammar.rules[sym]], [p for _, p in grammar.rules[sym]])[0]
        stack.extend(reversed(rhs))
    return out


@pytest.mark.slow
def test_the_sampler_draws_the_grammars_distribution():
    """Length and first-terminal distributions match a plain recursive sampler (recursive grammar, unequal rules)."""
    g = Grammar("S", {"S": ((("A", "S"), 0.3), (("A",), 0.7)), "A": ((("a",), 0.6), (("b", "c"), 0.4))})
    ids, starts = expand(g.compile(), key=3, index=np.arange(20000))
    lengths = np.diff(starts)
    rng = random.Random(0)
    ref = [_reference_sample(g, rng) for _ in range(20000)]
    ref_lengths = np.array([len(s) for s in ref])
    assert abs(lengths.mean() - ref_lengths.mean()) < 0.05 * ref_lengths.mean()
    first = np.bincount(ids[starts[:-1]], minlength=3) / 20000
    ref_first = np.array([sum(s[0] == t for s in ref) for t in "abc"]) / 20000
    assert np.abs(first - ref_first).max() < 0.02 and first[0] == pytest.approx(0.6, abs=0.02)


def test_a_derivation_that_never_ends_is_refused():
    g = Grammar("S", {"S": ((("S", "a"), 0.99), (("a",), 0.01))})  # terminates, but rarely within 64 rounds
    with pytest.raises(InputError, match=f"did not terminate within {MAX_ROUNDS} rounds"):
        expand(g.compile(), key=0, index=np.arange(64))


def test_texts_longer_than_the_grammars_shortest_string_are_refused():
    g = cfg3((1, 3, 3), seed=5).compile()
    shortest = int(g.min_yield[g.start])
    with pytest.raises(InputError, match=f"shortest string has {shortest} terminals; text_length is {shortest + 1}"):
        PCFGConfig(task="count", text_length=shortest + 1, level_sizes=(1, 3, 3))


@pytest.mark.parametrize("task", ["count", "count_pair", "index", "pair_index", "token_at"])
def test_answers_match_a_direct_reading_of_each_document(task):
    c = PCFGConfig(task=task, operand_prior=(0.4, 0.3, 0.3))
    docs = documents(c, 0, "test", np.arange(200))
    v = c.vocab
    for d in docs:
        words = [v[t] for t in d]
        assert words[:2] == ["<sos>", task] and words[4] == "<sot>" and words[-4:-2] == ["<eot>", "<art>"]
        text, o, o2, ans = words[5 : 5 + c.text_length], words[2], words[3], words[-2]
        pairs = [i for i in range(len(text) - 1) if text[i] == o and text[i + 1] == o2]
        if task == "count":
            expected = str(text.count(o))
        elif task == "count_pair":
            expected = str(len(pairs))
        elif task == "index":
            expected = str(text.index(o)) if o in text else "none"
        elif task == "pair_index":
            expected = str(pairs[0]) if pairs else "none"
        else:
            expected = text[int(o)]
        assert ans == expected


def test_operands_follow_the_prior():
    c = PCFGConfig(task="count", operand_prior=(0.9, 0.1, 0.0))
    ops = operands(c, 0, "train", np.arange(5000))[:, 0]
    share = np.bincount(ops - c.token("a"), minlength=3) / 5000
    assert share[0] == pytest.approx(0.9, abs=0.02) and share[2] == 0


@pytest.mark.parametrize("correlation", [0.0, 0.5, 0.8, 1.0])
def test_the_spurious_rule_holds_at_the_configured_rate(correlation):
    c = PCFGConfig(task="count", operand_prior=(0.0, 1.0), correlation=correlation, splits={"train": 600})
    t = texts(c, 0, "train", np.arange(600))
    assert spurious_rule_holds(t).mean() == pytest.approx(correlation, abs=0.06)
    if correlation in (0.0, 1.0):
        assert spurious_rule_holds(t).mean() == correlation
    ans = answers(c, t, operands(c, 0, "train", np.arange(600)))
    assert ((ans - c.token("0")) == (t == 1).sum(1)).all()  # the answer is still count(b)


@pytest.mark.slow
def test_fine_tuning_task_splits_have_their_correlations():
    task = fmbench.make_task("fmbench/PCFGFineTuneCountB05-v0")
    c = task.config
    strip = lambda docs: docs[:, 5 : 5 + c.text_length] - c.token("a")  # noqa: E731
    assert spurious_rule_holds(strip(task.documents("test", 0, np.arange(100)))).mean() == 0
    assert spurious_rule_holds(strip(task.documents("test_spurious", 0, np.arange(100)))).mean() == 1
    cap = task.documents("capability_test", 0, np.arange(50))
    assert (cap[:, 2] == c.token("a")).all() and (task.documents("train", 0, np.arange(50))[:, 2] == c.token("b")).all()


def test_strings_that_outgrow_the_sampler_are_refused_quickly():
    g = Grammar("S", {"S": ((("S", "S"), 0.9), (("a",), 0.1))})  # supercritical: strings grow without end
    with pytest.raises(InputError, match=r"more than 2\*\*16 symbols per item"):
        expand(g.compile(), key=0, index=np.arange(4))
