"""The composition study: generator semantics, splits, errors, and the evaluator on known answers."""

from __future__ import annotations

import itertools

import numpy as np
import pytest
import torch

import fmbench
from fmbench.errors import ModelError
from fmbench.models import from_module
from fmbench.studies.compositional.generator import CompositionConfig, CompositionWorld

SMALL = dict(depth=3, n_functions=2, n_train_compositions=5, n_train_documents=512, samples_per_composition=4)


def world(world_seed: int = 0, **kw) -> CompositionWorld:
    return CompositionWorld(CompositionConfig(**{**SMALL, **kw}), world_seed=world_seed)


def test_functions_are_bijections_and_identity_first():
    w = world(permutation_positions=(1,))
    c = w.config
    for g in range(w.n_functions_total):
        table = w.permutations[g] if w.is_permutation[g] else w.bijections[g]
        assert sorted(table) == list(range(len(table)))
        if g % c.n_choices == 0:
            assert list(table) == list(range(len(table)))
    for p in range(c.depth):  # distinct functions per position
        rows = {
            tuple(w.permutations[g] if w.is_permutation[g] else w.bijections[g])
            for g in range(p * c.n_choices, (p + 1) * c.n_choices)
        }
        assert len(rows) == c.n_choices


def test_documents_spell_out_the_composition():
    w = world(permutation_positions=(0,))
    docs = w.documents("test", 5)
    comps = w.compositions_of("test", 5, np.arange(len(docs)))
    c = w.config
    for doc, comp in zip(docs[:50], comps[:50]):
        tokens = w.decode(doc)
        assert tokens[0] == "<bos>" and tokens[c.depth + 1] == "<sep>"
        assert [w.vocab.index(t) - c.n_tokens for t in tokens[1 : c.depth + 1]] == list(comp)
        x = doc[c.depth + 2 : c.depth + 2 + c.input_length]
        y = x
        for s, g in enumerate(comp):  # apply by hand
            y = y[w.permutations[g]] if w.is_permutation[g] else w.bijections[g][y]
            start = w.prompt_length + s * (c.input_length + 1)
            assert list(doc[start : start + c.input_length]) == list(y)
        assert list(doc[-c.input_length :]) == list(y)


def test_direct_format_holds_only_the_final_output():
    step, direct = world(), world(step_by_step=False)
    a, b = step.documents("test", 1), direct.documents("test", 1)
    assert b.shape[1] == direct.prompt_length + direct.config.input_length
    assert np.array_equal(a[:, : step.prompt_length], b[:, : direct.prompt_length])
    assert np.array_equal(a[:, -6:], b[:, -6:])


def test_random_access_matches_bulk_generation():
    w = world()
    bulk = w.documents("train", 7)
    idx = np.array([511, 0, 300, 300])
    assert np.array_equal(w.documents("train", 7, idx), bulk[idx])
    assert not np.array_equal(w.documents("train", 8, idx), bulk[idx])


def test_functions_and_splits_come_only_from_the_world_seed():
    a, b, c = world(), world(), world(world_seed=1)
    assert np.array_equal(a.bijections, b.bijections) and np.array_equal(a.train_compositions, b.train_compositions)
    assert not np.array_equal(a.bijections, c.bijections)


def test_random_split_holds_out_the_rest():
    w = world(n_train_compositions=5)
    all_in_order = {tuple(c) for c in w.in_order_compositions().tolist()}
    train = {tuple(c) for c in w.train_compositions.tolist()}
    held = {tuple(c) for c in w.eval_compositions[~w.eval_in_train].tolist()}
    assert len(train) == 5 and train | held == all_in_order and not train & held
    used = {tuple(c) for c in w.compositions_of("train", 0, np.arange(512)).tolist()}
    assert used == train


def test_base_split_is_identity_plus_single_functions():
    w = world(split="base", n_train_compositions=2)
    ids = w.n_identities(w.train_compositions)
    assert (ids == 3).sum() == 1 and (ids == 2).sum() == 3 * 2 and len(ids) == 1 + 6 + 2


def test_random_biased_fixes_identity_count():
    w = world(split="random_biased", n_identity=1, n_train_compositions=4)
    assert (w.n_identities(w.train_compositions) == 1).all()


def test_out_of_order_split_and_displacement():
    w = world(split="out_of_order", n_train_compositions=10, max_eval_compositions=40)
    d_train = w.displacement(w.train_compositions)
    assert (d_train == 0).sum() == 1 + 3 * 2 and (d_train >= 1).sum() == 10
    held = w.eval_compositions[~w.eval_in_train]
    assert set(np.unique(w.displacement(held))) == {0, 1, 2, 3}
    assert len({tuple(c) for c in w.eval_compositions.tolist()}) == len(w.eval_compositions)
    for comp in held[w.displacement(held) > 0]:  # displaced slots never hold an identity
        for s, g in enumerate(comp):
            if g // w.config.n_choices != s:
                assert g % w.config.n_choices != 0


def test_vocab_round_trip_and_export_columns():
    task = fmbench.make_task("fmbench/ComposeDirect-v0")
    doc = task.world.documents("train", 0, np.array([0]))[0]
    assert np.array_equal(task.world.encode(task.world.decode(doc)), doc)
    chunk = next(task.export_chunks("test", 0))
    assert {"ids", "token_ids", "composition_token_ids", "in_train", "prompt_length"} <= set(chunk)


@pytest.mark.parametrize(
    "kw,problem",
    [
        (dict(n_functions=30, n_tokens=4), "distinct functions"),
        (dict(permutation_positions=(0,), input_length=2, n_functions=2), "distinct functions"),
        (dict(input_length=0), "input_length must be a positive integer"),
        (dict(split="zigzag"), "unknown split strategy"),
        (dict(n_train_compositions=27), "impossible for split 'random'"),
        (dict(split="base", include_identity=False), "needs include_identity"),
        (dict(with_replacement=False, input_length=11), "without replacement"),
        (dict(permutation_positions=(7,)), "outside"),
    ],
)
def test_impossible_parameters_are_refused(kw, problem):
    with pytest.raises(ValueError, match=problem):
        world(**kw)


def test_bad_seed_and_index_are_refused():
    w = world()
    with pytest.raises(ValueError, match="seed must be a non-negative integer"):
        w.documents("train", -1, np.arange(2))
    with pytest.raises(IndexError, match="outside"):
        w.documents("train", 0, np.array([512]))
    with pytest.raises(ValueError, match="unknown split"):
        w.split_size("valid")


class Oracle(torch.nn.Module):
    """Reads the prompt, composes the functions and predicts the reference next token.

    ``wrong_on_held_out`` makes it answer from the identity on compositions it was not
    "trained" on; ``break_final`` corrupts only the final output's first token.
    """

    def __init__(self, w: CompositionWorld, wrong_on_held_out: bool = False, break_final: bool = False):
        super().__init__()
        self.w, self.wrong, self.break_final = w, wrong_on_held_out, break_final
        self.vocab_size, self.context_length = len(w.vocab), w.document_length
        self.seen = {tuple(c) for c in w.train_compositions.tolist()}

    def forward(self, ids: torch.Tensor) -> torch.Tensor:
        w, c = self.w, self.w.config
        arr = ids.cpu().numpy()
        comps = (arr[:, 1 : c.depth + 1] - c.n_tokens) % w.n_functions_total  # garbage-proof for probes
        x = arr[:, c.depth + 2 : c.depth + 2 + c.input_length] % c.n_tokens
        held = np.array([tuple(r) not in self.seen for r in comps.tolist()])
        if self.wrong:
            comps = np.where(held[:, None], comps - comps % c.n_choices, comps)  # identities instead
        ref = np.concatenate([arr[:, : w.prompt_length], np.zeros((len(arr), w.answer_length), np.int64)], 1)
        outs = w.apply(comps, x)
        width = c.input_length + 1 if c.step_by_step else c.input_length
        for s in range(c.depth if c.step_by_step else 1):
            start = w.prompt_length + s * width
            ref[:, start : start + c.input_length] = outs[:, s if c.step_by_step else -1]
            if c.step_by_step and s < c.depth - 1:
                ref[:, start + c.input_length] = w.sep_id
        if self.break_final:
            ref[:, -c.input_length] = (ref[:, -c.input_length] + 1) % c.n_tokens
        nxt = ref[:, 1 : ids.shape[1] + 1]
        return torch.nn.functional.one_hot(torch.from_numpy(nxt), len(w.vocab)).float()


@pytest.fixture(scope="module")
def step_task():
    return fmbench.make_task("fmbench/ComposeStepByStep-v0")


def _score(task, module, limit=600):
    m = from_module(module, "test", "test")
    task.check_model(m)
    return task.evaluate(m, 0, limit=limit, batch_size=128)


def test_evaluator_scores_an_oracle_perfectly(step_task):
    r = _score(step_task, Oracle(step_task.world))
    assert r["exact_match"] == r["token_accuracy"] == r["teacher_forced_accuracy"] == r["exact_match_seen"] == 1.0
    assert all(v == 1.0 for k, v in r.items() if k.startswith("exact_match|identities="))


@pytest.mark.slow  # scores the whole 16,384-item test split
def test_evaluator_separates_seen_from_held_out(step_task):
    r = _score(step_task, Oracle(step_task.world, wrong_on_held_out=True), limit=None)
    assert r["exact_match_seen"] == 1.0
    assert r["exact_match|identities=5"] == 1.0  # the identity composition is right either way
    assert r["exact_match|identities=0"] < 0.01
    assert 0.0 < r["exact_match"] < 0.1


def test_one_wrong_final_token_fails_exact_match(step_task):
    r = _score(step_task, Oracle(step_task.world, break_final=True))
    assert r["exact_match"] == 0.0
    assert r["token_accuracy"] == pytest.approx(5 / 6)
    assert r["teacher_forced_accuracy"] == pytest.approx(5 / 6)


def test_out_of_order_breakdown_by_displacement():
    task = fmbench.make_task("fmbench/ComposeOutOfOrder-v0")
    r = _score(task, Oracle(task.world))
    assert {f"exact_match|displacement={d}" for d in range(6)} <= set(r)


class Shaped(torch.nn.Module):
    def __init__(self, vocab: int, context: int | None, out_vocab: int | None = None, nan: bool = False):
        super().__init__()
        self.vocab_size, self.context_length = vocab, context
        self.out_vocab, self.nan = out_vocab or vocab, nan
        self.w = torch.nn.Parameter(torch.zeros(1))

    def forward(self, ids):
        out = torch.zeros(*ids.shape, self.out_vocab)
        return out * float("nan") if self.nan else out


@pytest.mark.parametrize(
    "module,problem",
    [
        (Shaped(10, 64), "has 10 output tokens; the task's vocabulary has 33"),
        (Shaped(33, 16), "accepts 16 tokens; the task needs 47"),
        (Shaped(None, None, out_vocab=5), r"returned logits of shape \(2, 47, 5\)"),
        (Shaped(33, 64, nan=True), "NaN"),
    ],
)
def test_models_that_do_not_fit_are_refused(step_task, module, problem):
    with pytest.raises(ModelError, match=problem):
        step_task.check_model(from_module(module, "m", "m"))


def test_trained_checkpoint_generalises_and_direct_does_not():
    """The shipped checkpoints show the paper's headline on a subset of the test split."""
    step = fmbench.make_task("fmbench/ComposeStepByStep-v0")
    direct = fmbench.make_task("fmbench/ComposeDirect-v0")
    from fmbench.models import load_model

    r_step = step.evaluate(load_model("baseline:trained", step), 0, limit=1024)
    r_direct = direct.evaluate(load_model("baseline:trained", direct), 0, limit=1024)
    assert r_step["exact_match"] > 0.95
    assert r_direct["exact_match"] < 0.05 < 0.5 < r_direct["exact_match_seen"]


def test_stats_list_the_compositions(step_task):
    s = step_task.stats(0)
    assert s["train"]["compositions"] == 50 == len(s["train"]["composition_list"])
    assert s["test"]["held_out_compositions"] == 974 == len(s["test"]["held_out_list"])
    assert sum(s["test"]["held_out_by_identities"].values()) == 974
    assert all(len(name.split()) == 5 for name in itertools.islice(s["train"]["composition_list"], 5))
