"""Model interfaces, the shared model helpers, and the interface/architecture/scheme registries."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np
import pytest
import torch

import fmbench
from fmbench import checkpoints, interfaces, models
from fmbench.checkpoints import get_architecture, register_architecture, save_checkpoint
from fmbench.errors import ModelError
from fmbench.interfaces import (
    Interface,
    call_model,
    count_parameters,
    device_of,
    get_interface,
    list_interfaces,
    register_interface,
    untrained_twin,
)
from fmbench.models import LoadedModel, from_module, load_model, register_scheme
from fmbench.nn.cnn import CNN, CNNConfig
from fmbench.nn.gin import GIN, GINConfig
from fmbench.nn.gpt import GPT, GPTConfig

torch_geometric = pytest.importorskip("torch_geometric")
from torch_geometric.data import Data  # noqa: E402

VOCAB = [f"t{i}" for i in range(8)]


def _graphs(n: int = 3) -> list[Data]:
    edges = torch.tensor([[0, 1, 1, 2], [1, 0, 2, 1]])
    return [Data(x=torch.ones(3, 1), edge_index=edges) for _ in range(n)]


class Shaped(torch.nn.Module):
    """Returns zeros of the shape ``out(x)``."""

    def __init__(self, out: Callable[[torch.Tensor], tuple[int, ...]]) -> None:
        super().__init__()
        self.out, self.w = out, torch.nn.Parameter(torch.zeros(1))

    def forward(self, x: Any) -> torch.Tensor:
        return torch.zeros(self.out(x))


class Reward:
    needs_frames = False

    def __init__(self, value: float) -> None:
        self.value = value

    def score(self, trajectories: list) -> np.ndarray:
        return np.full(len(trajectories), self.value)


class Generator:
    def __init__(self, seeded: bool) -> None:
        self.seeded = seeded

    def generate(self, conditions: torch.Tensor, seed: int) -> torch.Tensor:
        g = torch.Generator().manual_seed(seed) if self.seeded else None
        return torch.rand((len(conditions), 1, 4, 4), generator=g)


class LM:
    """A uniform model over ``vocab`` tokens; ``bias`` breaks its distributions."""

    def __init__(self, vocab: int = 5, bias: float = 0.0) -> None:
        self.vocab, self.bias = vocab, bias

    def log_likelihoods(self, texts: list[str]) -> np.ndarray:
        return np.array([-len(t) * np.log(self.vocab) for t in texts]) + self.bias

    def next_token_logprobs(self, texts: list[str]) -> np.ndarray:
        return np.full((len(texts), self.vocab), -np.log(self.vocab) + self.bias)


def _bn_classifier(batch_norm: bool) -> torch.nn.Module:
    layers = [
        torch.nn.Conv2d(1, 2, 3, padding=1),
        *([torch.nn.BatchNorm2d(2)] if batch_norm else []),
        torch.nn.Flatten(),
        torch.nn.Linear(2 * 4 * 4, 3),
    ]
    return torch.nn.Sequential(*layers)


def _loaded(model: Any, interface: str) -> LoadedModel:
    if isinstance(model, torch.nn.Module):
        return from_module(model, f"test:{interface}", "m", interface=interface)
    return LoadedModel(
        model=model,
        spec=f"test:{interface}",
        name="m",
        interface=interface,
        n_params=None,
        weights_sha256=None,
        dtype="none",
    )


CASES = {  # interface: (context, a conforming model, a wrong one, what the refusal says)
    "sequence-model": (
        {"vocab": VOCAB, "sequence_length": 6},
        GPT(GPTConfig(vocab_size=8, context_size=8, n_embd=8)),
        Shaped(lambda x: (*x.shape, 4)),
        r"logits of shape \(2, 6, 4\); expected \(2, 6, V\) with V >= 8",
    ),
    "graph-encoder": (
        {"graphs": _graphs()},
        GIN(GINConfig(in_dim=1, hidden=4, n_layers=2)),
        GIN(GINConfig(in_dim=2, hidden=4, n_layers=2)),
        r"batch of graphs 0-2: the encoder failed",
    ),
    "image-encoder": (
        {"images": torch.rand(2, 1, 8, 8)},
        CNN(CNNConfig(width=4, embedding_dim=8)),
        Shaped(lambda x: (len(x) + 1, 4)),
        r"batch of images 0-1: the encoder returned shape \(3, 4\)",
    ),
    "vector-encoder": (
        {"inputs": torch.rand(2, 5)},
        torch.nn.Linear(5, 3),
        Shaped(lambda x: (len(x) + 1, 3)),
        r"a batch of inputs: the encoder returned shape \(3, 3\)",
    ),
    "policy": (
        {"observations": np.zeros((2, 5), np.int64), "n_actions": 3},
        lambda obs: np.ones(len(obs), int),
        lambda obs: np.ones(len(obs)),
        "float64 actions; expected integers",
    ),
    "reward-model": (
        {"trajectories": lambda needs_frames: ["a", "b"]},
        Reward(0.5),
        Reward(float("nan")),
        "2 non-finite",
    ),
    "image-generator": (
        {"n_conditions": 4, "image_shape": (1, 4, 4)},
        Generator(seeded=True),
        Generator(seeded=False),
        "different images for the same seed",
    ),
    "bn-classifier": (
        {"image_shape": (1, 4, 4), "n_classes": 3},
        _bn_classifier(True),
        _bn_classifier(False),
        "holds no BatchNorm layer",
    ),
    "causal-lm": ({}, LM(), LM(bias=100.0), "log-likelihood above 0"),
}


def test_every_interface_has_a_case_and_a_description():
    assert sorted(CASES) == list_interfaces()
    assert all(get_interface(name).description for name in CASES)


@pytest.mark.parametrize("name", sorted(CASES))
def test_check_accepts_a_conforming_model_and_refuses_a_wrong_one(name):
    context, good, bad, message = CASES[name]
    interface = get_interface(name)
    interface.check(_loaded(good, name), **context)
    with pytest.raises(ModelError, match=message) as e:
        interface.check(_loaded(bad, name), **context)
    assert "\n" not in str(e.value)


@pytest.mark.parametrize("name", sorted(CASES))
def test_check_refuses_another_declared_interface_and_a_non_module(name):
    context, good, _, _ = CASES[name]
    other = "policy" if name != "policy" else "reward-model"
    with pytest.raises(ModelError, match=f"has interface '{other}'; this task scores a '{name}'"):
        get_interface(name).check(_loaded(good, other), **context)
    if get_interface(name).module_required:
        with pytest.raises(ModelError, match=f"a {name} must be a torch.nn.Module, got function"):
            get_interface(name).check(_loaded(lambda x: x, name), **context)


@pytest.mark.parametrize(
    "model,message",
    [
        (LM(bias=-0.5), "probabilities sum to"),
        (LM(bias=float("nan")), "non-finite"),
    ],
)
def test_causal_lm_next_token_rows_must_be_distributions(model, message):
    lm = get_interface("causal-lm")
    with pytest.raises(ModelError, match=message):
        lm.next_token_logprobs(_loaded(model, "causal-lm"), ["a"])


def test_image_generator_values_must_lie_in_the_unit_interval():
    class Loud(Generator):
        def generate(self, conditions: torch.Tensor, seed: int) -> torch.Tensor:
            return super().generate(conditions, seed) * 255

    with pytest.raises(ModelError, match=r"expected \[0, 1\]"):
        get_interface("image-generator").check(_loaded(Loud(True), "image-generator"), **CASES["image-generator"][0])


def test_bn_classifier_check_leaves_the_mode_and_statistics_alone():
    loaded = _loaded(_bn_classifier(True), "bn-classifier")
    model = loaded.model.train()
    before = {k: v.clone() for k, v in model.state_dict().items()}
    get_interface("bn-classifier").check(loaded, **CASES["bn-classifier"][0])
    assert model.training  # checked in eval mode, then put back in the mode it was found in
    assert all(torch.equal(before[k], v) for k, v in model.state_dict().items())


def test_tasks_expose_their_interface_and_describe_it():
    task = fmbench.make_task("fmbench/ComposeDirect-v0")
    assert task.interface is get_interface("sequence-model")
    assert task.describe()["interface_description"] == task.interface.description


# ---- helpers -------------------------------------------------------------------------------------
def _raise(error: Exception) -> None:
    raise error


def test_call_model_wraps_what_submitted_code_raises_in_one_line():
    def broken(x: int) -> int:
        raise ValueError("bad input\nsecond line")

    with pytest.raises(ModelError) as e:
        call_model("m on 3 items", broken, 1)
    assert str(e.value) == "m on 3 items (ValueError: bad input)"
    with pytest.raises(ModelError, match=r"^m \(KeyError\)$"):  # no message: the type alone
        call_model("m", _raise, KeyError())
    with pytest.raises(ModelError, match="^already named$"):  # a ModelError passes through
        call_model("m", _raise, ModelError("already named"))


def test_device_and_parameter_count_of_models():
    shared = torch.nn.Linear(2, 2)
    assert count_parameters(shared, torch.nn.Sequential(shared, torch.nn.Linear(2, 1))) == 6 + 3
    assert device_of(torch.nn.BatchNorm1d(2).requires_grad_(False)) == "cpu"
    assert device_of(torch.nn.ReLU()) == device_of(object()) == "cpu"


def test_untrained_twin_is_reproducible_fresh_and_leaves_the_original_alone():
    model = GIN(GINConfig(in_dim=1, hidden=8, n_layers=2))
    with torch.no_grad():
        for p in model.parameters():
            p.add_(1.0)
        model.norms[0].running_mean.fill_(3.0)
    before = {k: v.clone() for k, v in model.state_dict().items()}
    a, b, c = untrained_twin(model, 0), untrained_twin(model, 0), untrained_twin(model, 1)
    assert all(torch.equal(before[k], v) for k, v in model.state_dict().items())
    assert all(torch.equal(x, y) for x, y in zip(a.state_dict().values(), b.state_dict().values()))
    assert not torch.equal(a.mlps[0][0].weight, c.mlps[0][0].weight)
    assert not torch.equal(a.mlps[0][0].weight, model.mlps[0][0].weight)
    assert all(p.device.type == "cpu" for p in a.parameters())  # drawn on the CPU whatever the model's device
    assert float(a.norms[0].running_mean.abs().sum()) == 0.0 and float(a.eps.detach().abs().sum()) == 0.0
    with pytest.raises(ModelError, match="needs a torch.nn.Module"):
        untrained_twin(lambda x: x)


def test_parameters_without_reset_are_reinitialised_too():
    class Custom(torch.nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.scale = torch.nn.Parameter(torch.full((2,), 7.0))
            self.weight = torch.nn.Parameter(torch.full((2,), 7.0))
            self.matrix = torch.nn.Parameter(torch.full((3, 2), 7.0))

    twin = untrained_twin(Custom(), 0)
    assert twin.scale.tolist() == [0.0, 0.0] and twin.weight.tolist() == [1.0, 1.0]
    assert float(twin.matrix.detach().abs().max()) < 2 and len(set(twin.matrix.flatten().tolist())) == 6


# ---- registries ------------------------------------------------------------------------------------
@pytest.fixture
def fresh_registries(monkeypatch):
    """Registrations made by a test go to copies of the registries, dropped afterwards."""
    monkeypatch.setattr(interfaces, "_INTERFACES", dict(interfaces._INTERFACES))
    monkeypatch.setattr(checkpoints, "_ARCHITECTURES", dict(checkpoints._ARCHITECTURES))
    monkeypatch.setattr(models, "_SCHEMES", dict(models._SCHEMES))


def test_registries_refuse_duplicates_and_name_the_known_entries(fresh_registries):
    with pytest.raises(ValueError, match="interface 'policy' is already registered"):
        register_interface(type(get_interface("policy"))())
    with pytest.raises(ModelError, match="unknown interface 'polcy'; known: bn-classifier, causal-lm"):
        get_interface("polcy")
    with pytest.raises(ValueError, match="architecture 'gin' is already registered"):
        register_architecture("gin2", GIN, GINConfig.from_dict, "graph-encoder")
    with pytest.raises(ValueError, match="unknown interface 'no-such'"):
        register_architecture("new", Shaped, dict, "no-such")
    # the known list grows with the studies imported so far in this process: check the core's three in order
    with pytest.raises(ModelError, match=r"unknown architecture 'gnn'; known: \['cnn', (.*, )?'gin', (.*, )?'gpt'"):
        get_architecture("gnn")
    with pytest.raises(ValueError, match="scheme 'hf' is already registered"):
        register_scheme("hf", lambda target, task: None)
    with pytest.raises(ValueError, match="lower-case identifier"):
        register_scheme("My-Scheme", lambda target, task: None)
    with pytest.raises(ModelError, match=r"with scheme in \['baseline', 'hf', 'python'"):
        load_model("zip:model.zip", fmbench.make_task("fmbench/ComposeDirect-v0"))


def test_an_interface_registered_outside_the_core_is_used(fresh_registries):
    class Echo(Interface):
        name = "echo"
        description = "Returns its input."
        module_required = False

    echo = register_interface(Echo())
    assert get_interface("echo") is echo and "echo" in list_interfaces()
    echo.check(_loaded(lambda x: x, "echo"))


@dataclass(frozen=True)
class TinyConfig:
    width: int = 3

    @classmethod
    def from_dict(cls, d: dict) -> TinyConfig:
        return cls(**d)


class Tiny(torch.nn.Module):
    """An image encoder a study might ship: mean pixel through a linear layer."""

    def __init__(self, config: TinyConfig) -> None:
        super().__init__()
        self.config, self.linear = config, torch.nn.Linear(1, config.width)

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        return self.linear(images.mean((1, 2, 3)).unsqueeze(1))


def test_an_architecture_and_a_scheme_registered_outside_the_core_load(fresh_registries, tmp_path):
    register_architecture("tiny", Tiny, TinyConfig.from_dict, "image-encoder")
    path = tmp_path / "tiny.safetensors"
    save_checkpoint(Tiny(TinyConfig(width=5)), path)
    task = fmbench.make_task("fmbench/ComposeDirect-v0")
    loaded = load_model(f"safetensors:{path}", task)
    assert isinstance(loaded.model, Tiny) and loaded.model.config.width == 5 and loaded.interface == "image-encoder"
    get_interface("image-encoder").check(loaded, images=torch.rand(2, 1, 4, 4))

    register_scheme(
        "tiny",
        lambda target, task: from_module(
            Tiny(TinyConfig(int(target))), f"tiny:{target}", "tiny", interface="image-encoder"
        ),
    )
    assert load_model("tiny:7", task).model.config.width == 7
    register_scheme("mine", lambda target, task: load_model("tiny:2", task), runs_code=True)
    with pytest.raises(ModelError, match="mine: model specs run the submission's own code; pass --trust-code"):
        load_model("mine:x", task)
    assert load_model("mine:x", task, trust_code=True).model.config.width == 2
