"""The fine-tuning study's evaluators: the one-pass pruning sweep, probes, reverse fine-tuning, known answers."""

from __future__ import annotations

import numpy as np
import pytest
import torch

import fmbench
from fmbench.checkpoints import weights_sha256
from fmbench.errors import ModelError
from fmbench.models import from_module, load_model
from fmbench.nn.gpt import GPT, GPTConfig
from fmbench.studies.finetuning.data import PCFGConfig, documents
from fmbench.studies.finetuning.evaluators import (
    MajorityAnswer,
    check_same_architecture,
    prune_sweep,
    prune_sweep_one_pass_per_k,
    reverse_finetune_steps,
    unit_saliency,
)
from fmbench.studies.finetuning.train import make_model

TASK = "fmbench/PCFGFineTuneCountB0-v0"


@pytest.fixture(scope="module")
def task():
    return fmbench.make_task(TASK)


@pytest.fixture(scope="module")
def small():
    """A small random GPT and count documents (8 text tokens)."""
    c = PCFGConfig(task="count", text_length=8, level_sizes=(1, 3, 3, 3))
    torch.manual_seed(0)
    model = GPT(GPTConfig(vocab_size=len(c.vocab), context_size=c.document_length, n_layer=2, n_head=1, n_embd=16))
    with torch.no_grad():  # spread the weights so that pruning moves answers
        for p in model.parameters():
            p.mul_(20)
    return c, model.eval(), torch.from_numpy(documents(c, 0, "test", np.arange(64)))


@pytest.mark.slow
def test_the_one_pass_sweep_equals_a_gradient_pass_per_k(task):
    docs = torch.from_numpy(task.documents("capability_test", 0, np.arange(64)))
    pos, ks = task.config.answer_position, (0, 1, 2, 8, 40, 512)
    fast = prune_sweep(task.pretrained, docs[:32], docs, pos, ks, batch_size=40)
    slow = prune_sweep_one_pass_per_k(task.pretrained, docs[:32], docs, pos, ks)
    assert fast == slow and fast[0] > 0.8 and fast[512] < 0.5  # pruning the units that count a removes counting


@pytest.mark.slow
def test_the_shared_work_sweep_of_a_gpt_equals_a_masked_forward_and_a_pruned_copy_per_k(small):
    c, model, docs = small
    pos, ks = c.answer_position, (0, 3, 8, 128)
    docs = docs.clone()
    docs[:, pos] = model(docs[:, :pos])[:, -1].argmax(-1)  # the model's own answers: accuracy 1 unpruned
    fast = prune_sweep(model, docs[:32], docs, pos, ks)
    assert fast == prune_sweep_one_pass_per_k(model, docs[:32], docs, pos, ks)
    assert fast[0] == 1 and len(set(fast.values())) > 2  # pruning moves answers
    masks = [torch.ones(3, 64), torch.ones(3, 64)]
    masks[0][1, :5] = masks[1][2, 7:9] = 0  # one variant masks block 0, another block 1 only
    got = model.masked_last_logits(docs[:, :pos], masks)
    for variant in range(3):
        hooks = [
            block.mlp[0].register_forward_hook(lambda _m, _i, out, m=m[variant]: out * m)
            for block, m in zip(model.blocks, masks)
        ]
        assert torch.allclose(got[variant], model(docs[:, :pos])[:, -1], atol=1e-4)
        for h in hooks:
            h.remove()


def test_saliency_is_grad_times_weight_summed_per_unit(small):
    c, model, docs = small
    scores = unit_saliency(model, docs, c.answer_position)
    layer = model.blocks[1].mlp[0]
    logits = model(docs[:, : c.answer_position])[:, -1]
    torch.nn.functional.cross_entropy(logits, docs[:, c.answer_position]).backward()
    expected = (layer.weight.grad * layer.weight).abs().sum(1)
    assert torch.allclose(scores[layer.out_features :], expected, rtol=1e-4)


def test_a_pair_of_different_architectures_is_refused_in_one_line(small):
    c, model, _ = small
    other = GPT(GPTConfig(vocab_size=len(c.vocab), context_size=c.document_length, n_layer=2, n_head=1, n_embd=32))
    with pytest.raises(ModelError, match="architecture differs from the pretrained one: .* has shape") as e:
        check_same_architecture(model, other)
    assert "\n" not in str(e.value)
    with pytest.raises(ModelError, match="is a MajorityAnswer, the pretrained one a GPT"):
        check_same_architecture(model, MajorityAnswer(torch.zeros(2, 2, 2)))


def test_the_task_refuses_a_model_of_another_architecture_or_a_short_context(task):
    wider = GPT(GPTConfig(vocab_size=len(task.vocab), context_size=task.config.document_length - 1, n_embd=32))
    with pytest.raises(ModelError, match="architecture differs"):
        task.check_model(from_module(wider, "wider", "wider"))
    short = GPT(GPTConfig(vocab_size=len(task.vocab), context_size=16, n_layer=2, n_head=2, n_embd=64))
    with pytest.raises(ModelError, match="accepts 16 tokens; the task needs 40"):
        task.check_model(from_module(short, "short", "short"))


@pytest.mark.slow
def test_reverse_fine_tuning_of_a_model_already_there_takes_no_step(small):
    c, model, docs = small
    n = reverse_finetune_steps(model, lambda i: documents(c, 0, "test", i), 64, docs, c.answer_position, 0.0, 5, 1)
    assert n == 0
    never = reverse_finetune_steps(model, lambda i: documents(c, 0, "test", i), 64, docs, c.answer_position, 1.01, 3, 1)
    assert never == 4  # censored: max_steps + every


def test_majority_baseline_answers_from_the_operands_only():
    task = fmbench.make_task("fmbench/PCFGCount-v0")
    model = load_model("baseline:majority", task).model
    docs = torch.from_numpy(task.documents("test", 0, np.arange(8)))
    shuffled = docs.clone()
    shuffled[:, 5:37] = shuffled[torch.arange(7, -1, -1), 5:37]  # other texts, same operands
    pos = task.config.answer_position
    assert torch.equal(model(docs[:, :pos]).argmax(-1), model(shuffled[:, :pos]).argmax(-1))


@pytest.mark.slow
def test_known_answer_the_untouched_model_has_nothing_to_recover(task):
    """The pretrained model submitted as its own fine-tuned model: pruning finds nothing, reverse FT 0 steps."""
    model = load_model("baseline:pretrained", task)
    before = weights_sha256(model.model)
    m = task.evaluate(model, seed=0, limit=64)
    assert m["reft_steps"] == 0 and m["capability_accuracy"] >= 0.85
    assert m["recovered_accuracy"] == m["capability_accuracy"]  # K = 0 is the best of the sweep
    assert weights_sha256(model.model) == before  # evaluation left the weights alone


@pytest.mark.slow
def test_known_answer_a_deleted_capability_is_not_revived(task):
    """The scratch + fine-tune control never learnt to count a: no K of the sweep revives it, reFT is not instant."""
    m = task.evaluate(load_model("baseline:scratch", task), seed=0, limit=64)
    assert m["recovered_accuracy"] < 0.3 and m["reft_steps"] > 0


def test_the_pretrained_baseline_is_the_pairs_pretrained_model(task):
    assert torch.equal(
        load_model("baseline:pretrained", task).model.tok_emb.weight, task.pretrained.tok_emb.weight
    ) and isinstance(make_model(task.config, 0), type(task.pretrained))
