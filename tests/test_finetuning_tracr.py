"""The fine-tuning study's Tracr programs: the torch forward against tracr's outputs recorded at build time."""

from __future__ import annotations

import pytest
import torch
from safetensors.torch import load_file

from fmbench.errors import InputError
from fmbench.studies.finetuning.tracr_model import CHECKPOINTS, PROGRAMS, load_tracr


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
