"""The ICL study: the authors' statistics on known answers, the reference models, the tasks' definitions, bad input."""

from __future__ import annotations

from dataclasses import replace
from itertools import product

import numpy as np
import pytest

import fmbench
from fmbench.errors import InputError, ModelError
from fmbench.models import LoadedModel
from fmbench.studies.icl import prompts
from fmbench.studies.icl import statistics as st
from fmbench.studies.icl.references import REFERENCES, ModelSelection, build_reference, load_reference
from fmbench.studies.icl.tasks import ConceptTask, generation_metrics

GENERATION, JUDGMENT, CONCEPTS = (
    "fmbench/ICLRandomGeneration-v0",
    "fmbench/ICLRandomnessJudgment-v0",
    "fmbench/ICLConceptLearning-v0",
)


# ---- statistics --------------------------------------------------------------------------------
def test_sequence_statistics_on_known_sequences():
    assert st.alternation_rate([0, 1] * 10) == 1.0 and st.alternation_rate([1] * 9) == 0.0
    assert st.longest_run([0, 0, 1, 1, 1, 0]) == 3 and st.longest_run([]) == 0
    assert st.gzip_length([0, 1] * 50) < st.gzip_length(np.random.default_rng(0).integers(0, 2, 100))
    assert st.gzip_length([0, 1, 1]) == st.gzip_length([0, 1, 1])  # no timestamp in the header
    assert st.running_average_std([1, 0] * 20) < st.running_average_std([1] * 20 + [0] * 20)


def test_levenshtein_ratio_is_the_indel_similarity():
    assert st.levenshtein_ratio("0101", "0101") == 1.0
    assert st.levenshtein_ratio("000", "111") == 0.0
    assert st.levenshtein_ratio("", "") == 1.0 and st.levenshtein_ratio("01", "") == 0.0
    assert st.levenshtein_ratio("kitten", "sitting") == pytest.approx(2 * 4 / 13)  # LCS "ittn"
    rng = np.random.default_rng(1)
    for _ in range(20):
        a, b = (st.as_text(rng.integers(0, 2, rng.integers(1, 70))) for _ in range(2))
        assert st.levenshtein_ratio(a, b) == pytest.approx(2 * _lcs(a, b) / (len(a) + len(b)))


def _lcs(a: str, b: str) -> int:
    """The longest common subsequence by the textbook dynamic programme."""
    table = np.zeros((len(a) + 1, len(b) + 1), dtype=int)
    for i, x in enumerate(a):
        for j, y in enumerate(b):
            table[i + 1, j + 1] = table[i, j] + 1 if x == y else max(table[i, j + 1], table[i + 1, j])
    return int(table[-1, -1])


def test_substring_counts_follow_the_authors_window_range():
    counts = st.substring_counts([[0, 0, 0, 0]], 2)
    assert dict(counts) == {"00": 2}  # windows start at 0 .. len - window - 1
    assert st.distinct_fraction([[0, 1] * 10], 5) == pytest.approx(2 / 15)


def test_markov_fit_recovers_alternation_and_reduces_to_bernoulli():
    rng = np.random.default_rng(0)
    seqs = []
    for _ in range(20):
        x = [int(rng.random() < 0.5)]
        for _ in range(99):
            x.append(int(rng.random() < st.markov_p_tails(x[-1], 0.5, 0.8)))
        seqs.append(x)
    p0, alt = st.fit_markov(seqs)
    assert abs(alt - 0.8) < 0.05 and abs(p0 - 0.5) < 0.1
    assert st.markov_p_tails(1, 0.3, 0.5) == pytest.approx(0.7)


def test_window_model_pulls_toward_the_target():
    assert st.window_p_tails([], 0.3) == pytest.approx(0.3)
    assert st.window_p_tails([1] * 5, 0.5) == 0.0 and st.window_p_tails([0] * 5, 0.5) == 1.0


def test_rotations_and_transition_point_definition():
    assert st.rotations((0, 1), 3) == {(0, 1, 0), (1, 0, 1)}
    assert st.transition_point([1, 2, 3], [0.2, 0.5, 0.9]) == 2  # reaching 0.5 counts
    assert st.transition_point([1, 2, 3], [0.2, 0.4, 0.49]) is None


def test_sigmoid_fit_recovers_midpoint_and_slope_and_refuses_bad_curves():
    x = np.arange(1, 41)
    m, k = st.fit_sigmoid(x, 1 / (1 + np.exp(-2.0 * (x - 20.5))), 80)
    assert m == pytest.approx(20.5, abs=1e-3) and k == pytest.approx(2.0, rel=1e-3)
    with pytest.raises(InputError, match="two or more finite points"):
        st.fit_sigmoid([1], [0.5], 80)
    with pytest.raises(InputError, match="two or more finite points"):
        st.fit_sigmoid([1, 2], [0.5, np.nan], 80)


def test_bad_flips_and_concepts_are_refused_in_one_line():
    with pytest.raises(InputError, match="0 and 1"):
        st.alternation_rate([0, 2])
    with pytest.raises(InputError, match="concept"):
        prompts.parse_concept("012")
    with pytest.raises(InputError, match="percentage"):
        prompts.generation_prompt(101)


def test_flips_are_parsed_the_authors_way():
    assert prompts.parse_flips(" Tails, Heads, tails, Coin, Heads]", limit=2) == [1, 0]
    assert prompts.parse_flips("Tails, Heads] Tails,") == [1]  # the item holding "]" ends the list
    assert prompts.parse_flips("no flips here") == []


# ---- reference models --------------------------------------------------------------------------
def test_bernoulli_reference_is_calibrated_on_generation():
    """Known answer: flips drawn at the stated p(Tails) give a calibration error near 0."""
    model = build_reference("bernoulli")
    flips, targets = {}, {}
    for t in prompts.P_TAILS:
        texts = [model.sample([prompts.generation_prompt(t)], 100, 1.0, s)[0] for s in range(25)]
        flips[f"p_tails={t}"] = [prompts.parse_flips(x, limit=50) for x in texts]
        targets[f"p_tails={t}"] = t / 100
    m = generation_metrics(flips, targets, 50)
    assert m["calibration_error"] < 0.02 and m["valid_fraction"] == 1.0
    assert m["alternation_error"] < 0.03 and abs(m["markov_alternation"] - 0.5) < 0.05


def test_model_selection_toy_crosses_over_at_51_flips_for_alternation():
    """The paper's toy: p(random | (01)^n) falls below 1/2 first at |x| = 51 (the paper's Figure 2)."""
    toy = ModelSelection()
    p = [toy.p_random(prompts.repeat_concept("01", n)) for n in range(1, 101)]
    assert next(n for n, v in enumerate(p, 1) if v < 0.5) == 51
    assert toy.p_random(list(np.random.default_rng(0).integers(0, 2, 60))) > 0.99


@pytest.mark.parametrize("name", sorted(REFERENCES))
def test_reference_tree_matches_scoring_each_path(name):
    model = build_reference(name)
    context = prompts.concept_context(prompts.repeat_concept("101", 7))
    paths = ["".join(p) for p in product(prompts.BRANCHES, repeat=3)]
    tree = model.tree_logprobs(context, list(prompts.BRANCHES), 3)
    np.testing.assert_allclose(tree, model.candidate_logprobs([context], paths)[0], atol=1e-12)
    each = [lp.sum() for lp in model.continuation_logprobs([(context, p) for p in paths])]
    np.testing.assert_allclose(tree, each, atol=1e-12)
    assert np.exp(tree).sum() == pytest.approx(1.0)


def test_reference_next_token_distributions_and_masses():
    toy = build_reference("model-selection")
    judged = prompts.judgment_prompt(prompts.repeat_concept("01", 80))
    logp = toy.next_token_logprobs([judged, "the cat sat"])
    np.testing.assert_allclose(np.exp(logp).sum(1), 1.0)
    mass = toy.next_token_mass([judged], ["r", "n", "H"])[0]
    assert mass[1] > mass[0] and mass[2] < 1e-6
    assert toy.sample([judged], 2, 1.0, 0) == toy.sample([judged], 2, 1.0, 0)
    with pytest.raises(InputError, match="temperature"):
        toy.sample([judged], 2, 0.0, 0)
    with pytest.raises(ModelError, match="unknown ICL reference"):
        build_reference("oracle")


# ---- tasks -------------------------------------------------------------------------------------
def test_concept_seeds_keep_the_papers_concepts_on_seed_0():
    task = fmbench.make_task(CONCEPTS)
    assert task.concepts(0) == ["001", "101", "100", "110"]
    other = task.concepts(1)
    assert len(set(other)) == 4 and other != task.concepts(0) and all(len(set(c)) == 2 for c in other)
    with pytest.raises(InputError, match="share one length"):
        ConceptTask(replace(task.spec, params={**task.spec.params, "concepts": ["01", "001"]}))


def test_concept_task_known_answers():
    """Bernoulli(0.5) continues a 3-flip concept with 3/32 at every |x| and never transitions; the toy does."""
    task = fmbench.make_task(CONCEPTS)
    bern = task.evaluate(load_reference("bernoulli"), 0)
    assert bern["p_continue_mean"] == pytest.approx(3 / 32) and bern["transition_point"] == 41.0
    toy = task.evaluate(load_reference("model-selection"), 0)
    assert toy["transition_point"] < 30 and toy["p_continue_final"] > 0.7 and toy["flip_mass"] == pytest.approx(1)


def test_concept_curve_scores_one_context_length_per_call_and_the_split_changes_nothing():
    """A concept's short contexts are prefixes of its long ones: a call never mixes lengths (one trie as deep
    as the longest context would keep a key/value cache alive per level)."""
    task = fmbench.make_task(CONCEPTS)
    toy = load_reference("model-selection")
    calls = []

    class Recording:
        def candidate_logprobs(self, contexts, candidates):
            calls.append([task_items[c] for c in contexts])
            return toy.model.candidate_logprobs(contexts, candidates)

    items = [it for it in task.items(0) if it.length <= 8]
    task_items = {it.prompt: it.length for it in items}
    model = LoadedModel(Recording(), "python:recording", "recording", "causal-lm", None, None, "none")
    wide = task.curve(model, items, batch_size=256)
    assert len(calls) == 8 and all(len(set(lengths)) == 1 and len(lengths) == 4 for lengths in calls)
    calls.clear()
    narrow = task.curve(model, items, batch_size=3)
    assert len(calls) == 16 and max(map(len, calls)) == 3
    np.testing.assert_array_equal(wide[0], narrow[0])
    np.testing.assert_array_equal(wide[1], narrow[1])


def test_judgment_gap_separates_the_toy_from_a_model_that_calls_everything_random():
    task = fmbench.make_task(JUDGMENT)
    assert task.evaluate(load_reference("bernoulli"), 0, limit=60)["randomness_gap"] == 0.0
    toy = task.evaluate(load_reference("model-selection"), 0)
    assert toy["randomness_gap"] > 0.3 and toy["randomness_gap|length=100"] > toy["randomness_gap|length=8"]


def test_generation_metrics_stay_finite_when_nothing_parses():
    m = generation_metrics({"p_tails=50": [[], []]}, {"p_tails=50": 0.5}, 30)
    assert m["calibration_error"] == 1.0 and m["valid_fraction"] == 0.0
    assert all(np.isfinite(v) for v in m.values())


def test_describe_states_the_prompt_formats_and_the_transition_definition():
    for tid, piece in ((GENERATION, "weighted coin"), (JUDGMENT, "non-random algorithm"), (CONCEPTS, "no numeric")):
        assert piece in fmbench.make_task(tid).describe()["input_format"]


class _Broken:
    """A python: model whose masses are NaN."""

    def next_token_mass(self, contexts, prefixes):
        return np.full((len(contexts), len(prefixes)), np.nan)


def test_a_model_returning_nan_is_named_not_scored():
    task = fmbench.make_task(JUDGMENT)
    model = LoadedModel(_Broken(), "python:broken", "broken", "causal-lm", None, None, "none")
    with pytest.raises(ModelError, match="python:broken"):
        task.evaluate(model, 0, limit=2)


@pytest.mark.slow
def test_smollm2_scores_the_concept_and_judgment_tasks():
    """SmolLM2 through the core scorer: finite metrics in range, and the paths as candidates are tree_logprobs."""
    from fmbench.interfaces import CAUSAL_LM
    from fmbench.studies.icl.references import load_lm

    model = load_lm("smollm2")
    concepts, judgment = fmbench.make_task(CONCEPTS), fmbench.make_task(JUDGMENT)
    context = prompts.concept_context(prompts.repeat_concept("001", 6))
    paths = ["".join(p) for p in product(prompts.BRANCHES, repeat=2)]
    np.testing.assert_allclose(
        CAUSAL_LM.tree_logprobs(model, context, list(prompts.BRANCHES), 2),
        CAUSAL_LM.candidate_logprobs(model, [context], paths)[0],
        atol=1e-6,
    )
    scores = concepts.evaluate(model, 0, limit=8) | judgment.evaluate(model, 0, limit=2)
    for name in ("transition_point", "flip_mass", "randomness_gap", "answer_mass"):
        low, high = (concepts.spec.metrics | judgment.spec.metrics)[name].range
        assert low <= scores[name] <= high, name
    # it continues a flip list with flips far more than chance (a uniform next token: ~1e-4); measured 0.29
    assert scores["flip_mass"] > 0.05
