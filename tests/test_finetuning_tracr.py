"""The fine-tuning study's Tracr programs: the torch forward against tracr's outputs recorded at build time."""

from __future__ import annotations

import copy
import dataclasses

import numpy as np
import pytest
import torch
from safetensors.torch import load_file

import fmbench
from fmbench.errors import InputError, ModelError
from fmbench.models import from_module, load_model
from fmbench.nn.gpt import GPT, GPTConfig
from fmbench.studies.finetuning.data import spurious_rule_holds
from fmbench.studies.finetuning.evaluators import answer_correct, check_same_architecture, prune_sweep, unit_saliency
from fmbench.studies.finetuning.tracr_data import IdentifierConfig
from fmbench.studies.finetuning.tracr_model import CHECKPOINTS, PROGRAMS, TracrTransformer, load_tracr


@pytest.mark.parametrize("program", PROGRAMS)
def test_the_torch_forward_reproduces_tracr_on_the_golden_inputs(program):
    golden = load_file(str(CHECKPOINTS / f"tracr_{program}_golden.safetensors"))
    model = load_tracr(program).model
    with torch.inference_mode():
        residual = model.residual(golden["ids"])
        logits = model(golden["ids"])
    assert residual.shape == golden["residual"].shape
    assert (residual - golden["residual"]).abs().max() < 1e-5  # float32 (measured: 0 and 5e-7); the weights reach 100
    # tracr decodes every position but BOS by the argmax over its output space; so does the vocabulary's argmax
    assert torch.equal(logits.argmax(-1)[:, 1:], golden["decoded"][:, 1:])


@pytest.mark.parametrize(("program", "text", "answer"), [("counter", "aabca", "3"), ("max", "dkbx", "x")])
def test_the_compiled_programs_answer_at_the_last_position(program, text, answer):
    loaded = load_tracr(program)
    ids = torch.tensor([[loaded.tokens.index(t) for t in ["<bos>", *text]]])
    assert loaded.tokens[loaded.model(ids)[0, -1].argmax()] == answer


def test_an_unknown_program_or_a_long_input_is_refused_in_one_line():
    with pytest.raises(InputError, match="unknown Tracr program 'sort'; shipped"):
        load_tracr("sort")
    model = load_tracr("counter").model
    with pytest.raises(InputError, match="sequence of 12 tokens exceeds the context size 11"):
        model(torch.zeros(1, 12, dtype=torch.long))


@pytest.fixture(scope="module")
def task():
    return fmbench.make_task("fmbench/TracrCounterFineTuneCountB05-v0")


def test_counter_documents_count_the_operand_and_follow_the_spurious_rule(task):
    assert task.vocab == load_tracr("counter").tokens  # the compiled model's vocabulary, token for token
    pos, n = task.config.answer_position, 256
    for split, holds in (("train", None), ("test", False), ("test_spurious", True)):
        docs = task.documents(split, 0, np.arange(n))
        letters = docs[:, 1:pos]
        assert (docs[:, pos] - task.vocab.index("0") == (letters == task.vocab.index("b")).sum(1)).all()
        rule = spurious_rule_holds(letters - 1)
        assert rule.all() if holds else (not rule.any() if holds is False else 0.35 < rule.mean() < 0.65)
    cap = task.documents("capability_test", 0, np.arange(n))
    assert (cap[:, pos] - task.vocab.index("0") == (cap[:, 1:pos] == task.vocab.index("a")).sum(1)).all()


def test_the_compiled_counter_is_exact_and_a_gpt_is_refused(task):
    pretrained = load_model("baseline:pretrained", task)
    task.check_model(pretrained)
    docs = torch.from_numpy(task.documents("capability_test", 0, np.arange(512)))
    assert answer_correct(pretrained.model, docs, task.config.answer_position, "cpu", 512).all()
    gpt = GPT(GPTConfig(vocab_size=len(task.vocab), context_size=11, n_layer=1, n_embd=34))
    with pytest.raises(ModelError, match="is a GPT, the pretrained one a TracrTransformer"):
        task.check_model(from_module(gpt, "gpt", "gpt"))


def test_max_identifier_documents_name_the_smallest_letter_and_follow_the_spurious_rule():
    task = fmbench.make_task("fmbench/TracrMaxFineTuneMin05-v0")
    assert task.vocab == load_tracr("max").tokens
    pos, n = task.config.answer_position, 256
    for split, holds in (("train", None), ("test", False), ("test_spurious", True)):
        docs = task.documents(split, 0, np.arange(n))
        letters = docs[:, 1:pos]
        assert (np.sort(letters, 1)[:, 1:] > np.sort(letters, 1)[:, :-1]).all()  # distinct letters
        assert (docs[:, pos] == letters.min(1)).all()
        rule = letters.max(1) - letters.min(1) == 16
        assert rule.all() if holds else (not rule.any() if holds is False else 0.35 < rule.mean() < 0.65)
    cap = task.documents("capability_test", 0, np.arange(n))
    assert (cap[:, pos] == cap[:, 1:pos].max(1)).all()
    assert answer_correct(task.pretrained, torch.from_numpy(cap[:64]), pos, "cpu", 64).all()  # the compiled Max: exact
    with pytest.raises(InputError, match=r"gap must lie in \[9, 25\] for 10 distinct letters, got 30"):
        IdentifierConfig(target="min", gap=30, correlation=0.5)
    with pytest.raises(InputError, match="length must lie in"):
        IdentifierConfig(length=27)


@pytest.mark.slow
def test_known_answer_a_hand_built_wrapper(task):
    """A hand-built fine-tuned model: the compiled Counter plus a second block whose MLP maps count(a) = k to the
    answer k + 1 (the spurious rule as a minimal wrapper, 10 units). Pruning the wrapper's units recovers counting
    a exactly; the |grad * weight| sweep does not find them (it ranks the counter's own units, weights ~100, first)."""
    base = load_tracr("counter").model
    pretrained = TracrTransformer(dataclasses.replace(base.config, n_layer=2))
    with torch.no_grad():
        for p in pretrained.parameters():
            p.zero_()
    pretrained.load_state_dict(base.state_dict(), strict=False)
    wrapped = copy.deepcopy(pretrained)
    dim = lambda k: int(base.unembed.weight[task.vocab.index(str(k))].argmax())  # noqa: E731 (count k's feature)
    with torch.no_grad():
        for k in range(10):
            wrapped.blocks[1].mlp[0].weight[k, dim(k)] = 1.0
            wrapped.blocks[1].mlp[2].weight[dim(k + 1), k] = 2.0
    check_same_architecture(pretrained, wrapped)
    pos = task.config.answer_position
    cap = torch.from_numpy(task.documents("capability_test", 0, np.arange(256)))
    spurious = torch.from_numpy(task.documents("test_spurious", 0, np.arange(256)))
    acc = lambda m, d: float(answer_correct(m, d, pos, "cpu", 256).mean())  # noqa: E731
    assert acc(pretrained, cap) == 1.0 and acc(wrapped, cap) == 0.0 and acc(wrapped, spurious) == 1.0
    pruned = copy.deepcopy(wrapped)
    with torch.no_grad():
        pruned.blocks[1].mlp[0].weight[:10] = 0  # the wrapper's units
    assert acc(pruned, cap) == 1.0
    saliency_docs = torch.from_numpy(task.documents("train", 0, np.arange(256)))
    sweep = prune_sweep(wrapped, saliency_docs, cap, pos, (0, 1, 2, 4, 8, 16))
    assert max(sweep.values()) < 0.5
    top = torch.argsort(unit_saliency(wrapped, saliency_docs, pos), descending=True)[:10]
    assert (top < base.config.mlp_hidden).all()  # all ten in the counter's block, none in the wrapper's
