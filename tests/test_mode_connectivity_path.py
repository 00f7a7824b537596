"""The loss-path evaluator (fmbench.loss_path, `fmbench connect`): known answers and bad input."""

from __future__ import annotations

import copy
import json

import numpy as np
import pytest
import torch

import fmbench
from fmbench.errors import InputError, ModelError
from fmbench.loss_path import barrier, loss_path, permute_units, train_bezier, weight_matching
from fmbench.studies.mode_connectivity.model import ConvNet, ConvNetConfig

TASK = "fmbench/MMCFashionBoxFT-v0"


@pytest.fixture(scope="module")
def cue_model_and_data():
    task = fmbench.make_task(TASK)
    sets, bn = task.path_data(0, limit=100)
    return task.cue_model().model, {"test_cue": sets["test_cue"]}, bn


def _permuted(model: torch.nn.Module, seed: int = 1) -> torch.nn.Module:
    twin, rng = copy.deepcopy(model), np.random.default_rng(seed)
    permute_units(twin, [rng.permutation(n) for n in (8, 16, 64)])
    return twin


def test_a_model_with_itself_has_no_barrier(cue_model_and_data):
    model, sets, bn = cue_model_and_data
    result = loss_path(model, model, sets, bn, alphas=[0, 0.5, 1])
    assert result.barrier == {"test_cue": 0.0} and result.accuracy_barrier == {"test_cue": 0.0}
    assert result.bn_images == 100 and result.bn_batches == 1 and len(set(result.loss["test_cue"])) == 1


def test_a_permuted_copy_has_a_barrier_that_weight_matching_removes(cue_model_and_data):
    model, sets, bn = cue_model_and_data
    twin = _permuted(model)
    with torch.no_grad():
        assert torch.allclose(
            model(sets["test_cue"][0][:8].float() / 255), twin(sets["test_cue"][0][:8].float() / 255), atol=1e-5
        )
    linear = loss_path(model, twin, sets, bn, alphas=[0, 0.25, 0.5, 0.75, 1])
    matched = loss_path(model, twin, sets, bn, alphas=[0, 0.25, 0.5, 0.75, 1], match=True)
    assert linear.barrier["test_cue"] > 0.05 and matched.barrier["test_cue"] < 1e-4
    recovered = weight_matching(model, twin, sets["test_cue"][0][:2].float() / 255)
    assert all(torch.allclose(a, b) for a, b in zip(model.state_dict().values(), recovered.state_dict().values()))


def test_barrier_is_the_excess_over_the_line_between_the_ends_and_ignores_extrapolation():
    assert barrier([0, 0.5, 1], [1.0, 2.0, 3.0]) == 0.0
    assert barrier([0, 0.5, 1], [1.0, 4.0, 3.0]) == 2.0
    assert barrier([-0.5, 0, 0.5, 1, 1.5], [9.0, 1.0, 2.5, 1.0, 9.0]) == 1.5
    assert barrier([0, 0.5, 1], [0.9, 0.5, 0.9], higher_is_worse=False) == pytest.approx(0.4)
    grid = np.linspace(0, 1, 11)  # the task's grid: 0.7 L + 0.3 L exceeds L by an ulp for L = 1.7829000905990904
    for flat in np.random.default_rng(0).uniform(0, 3, 200):
        assert barrier(grid, [flat] * 11) == 0.0 and barrier(grid, [flat] * 11, higher_is_worse=False) == 0.0
    rising = 1.0 + 2.0 * grid  # a straight line sits on its own chord: no barrier either way
    assert barrier(grid, rising) == barrier(grid, rising, higher_is_worse=False) == 0.0


def test_extrapolation_only_when_asked(cue_model_and_data):
    model, sets, bn = cue_model_and_data
    with pytest.raises(InputError, match=r"alpha 1.5 is outside \[0, 1\]; allow it with extrapolation"):
        loss_path(model, model, sets, bn, alphas=[0, 1, 1.5])
    result = loss_path(model, model, sets, bn, alphas=[-0.5, 0, 1, 1.5], extrapolate=True)
    assert result.alphas == [-0.5, 0.0, 1.0, 1.5] and result.barrier["test_cue"] == 0.0


@pytest.mark.slow  # trains the curve (10 SGD steps): seconds on a busy CPU
def test_a_bezier_curve_from_a_model_to_itself_has_no_barrier_and_lowers_the_training_loss(cue_model_and_data):
    model, sets, bn = cue_model_and_data
    train = fmbench.make_task(TASK).curve_data(0, limit=128)
    result = loss_path(model, model, {"train": train}, bn, alphas=[0, 0.5, 1], bezier=train, bezier_steps=10)
    loss = result.loss["train"]
    assert result.path == "bezier" and result.bezier_steps == 10 and result.barrier == {"train": 0.0}
    assert loss[0] == loss[2] and loss[1] < loss[0]  # the trained control point fits the curve's data better
    assert loss_path(model, model, {"train": train}, bn, alphas=[0, 0.5, 1]).loss["train"] == [loss[0]] * 3
    with pytest.raises(InputError, match="needs at least one training step, got 0"):
        train_bezier(model, model, train, steps=0)
    with pytest.raises(InputError, match="images of different shapes"):
        loss_path(model, model, sets, bn, bezier=(torch.zeros(4, 1, 28, 32), train[1][:4]))


def _no_bn() -> torch.nn.Module:
    return torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(784, 10))


@pytest.mark.parametrize(
    "make_b,message",
    [
        (lambda m: _no_bn(), "differ in architecture: ConvNet and Sequential"),
        (lambda m: ConvNet(ConvNetConfig(channels=4)), r"differ in layer shapes: body.0.weight is \(8, 1, 3, 3\)"),
    ],
)
def test_pairs_of_different_architectures_are_refused(cue_model_and_data, make_b, message):
    model, sets, bn = cue_model_and_data
    with pytest.raises(ModelError, match=message):
        loss_path(model, make_b(model), sets, bn)


def test_nan_weights_missing_batchnorm_and_wrong_images_are_refused(cue_model_and_data):
    model, sets, bn = cue_model_and_data
    broken = copy.deepcopy(model)
    with torch.no_grad():
        broken.linear.weight[0, 0] = float("nan")
    with pytest.raises(ModelError, match="model b has NaN or infinite values in linear.weight"):
        loss_path(model, broken, sets, bn)
    with pytest.raises(ModelError, match="hold no BatchNorm layer, so BatchNorm statistics cannot be recomputed"):
        loss_path(_no_bn(), _no_bn(), sets, bn)
    assert loss_path(_no_bn(), _no_bn(), sets, None, alphas=[0, 1], recompute_bn=False).barrier["test_cue"] == 0.0
    x, y = sets["test_cue"]
    with pytest.raises(InputError, match=r"images of different shapes"):
        loss_path(model, model, {"wide": (torch.zeros(4, 1, 28, 32, dtype=torch.uint8), y[:4])}, bn)
    with pytest.raises(InputError, match=r"set flat: images must be \(N, C, H, W\) with N labels, got \(4, 784\)"):
        loss_path(model, model, {"flat": (x[:4].reshape(4, -1), y[:4])}, bn)
    with pytest.raises(ModelError, match=r"model a on \(2, 1, 32, 32\) images \(RuntimeError"):
        loss_path(model, model, {"big": (torch.zeros(4, 1, 32, 32), y[:4])}, torch.zeros(4, 1, 32, 32))
    with pytest.raises(InputError, match="strictly increasing"):
        loss_path(model, model, sets, bn, alphas=[0, 0.5, 0.5, 1])


def test_weight_matching_refuses_a_model_that_is_not_a_plain_chain():
    class Skip(torch.nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.a, self.bn, self.b = torch.nn.Linear(4, 4), torch.nn.BatchNorm1d(4), torch.nn.Linear(4, 3)

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            x = x.flatten(1)
            return self.b(self.bn(self.a(x)) + x)

    m = Skip().eval()
    with pytest.raises(ModelError, match="weight matching needs a plain chain of conv / linear layers"):
        weight_matching(m, m, torch.rand(2, 1, 2, 2))


@pytest.mark.slow
def test_connect_cli_writes_json_and_png_and_errors_are_one_line(fmbench_cli, tmp_path):
    out = tmp_path / "self"
    r = fmbench_cli(
        "connect",
        "--task",
        TASK,
        "--a",
        "baseline:cue-reliant",
        "--b",
        "baseline:cue-reliant",
        "--limit",
        "20",
        "--alphas",
        "3",
        "--out",
        out,
    )
    assert r.returncode == 0, r.stderr
    assert "test_cue: loss barrier 0.0000 nats" in r.stdout
    record = json.loads(out.with_suffix(".json").read_text())
    assert record["alphas"] == [0.0, 0.5, 1.0] and set(record["loss"]) == {
        "test_clean",
        "test_cue",
        "test_random_cue",
        "test_random_image",
    }
    assert out.with_suffix(".png").read_bytes()[:4] == b"\x89PNG"
    r = fmbench_cli(
        "connect",
        "--task",
        TASK,
        "--a",
        "baseline:cue-reliant",
        "--b",
        "baseline:cue-reliant",
        "--limit",
        "20",
        "--alphas",
        "3",
        "--bezier",
        "--bezier-steps",
        "3",
        "--out",
        out,
    )
    assert r.returncode == 0 and "test_cue: loss barrier" in r.stdout, r.stderr
    assert json.loads(out.with_suffix(".json").read_text())["path"] == "bezier"
    for args, message in [
        (("--alphas", "0,1,1.2"), "alpha 1.2 is outside [0, 1]; allow it with extrapolation"),
        (("--alphas", "x"), "alphas must be a count >= 2 or a comma-separated list, got 'x'"),
        (("--task", "fmbench/ComposeDirect-v0"), "has no data sets for a loss path"),
        (("--bezier-steps", "0"), "--bezier-steps must be a positive integer, got 0"),
    ]:
        base = {"--task": TASK, "--limit": "10", "--out": str(tmp_path / "bad")}
        base.update(dict(zip(args[::2], args[1::2])))
        argv = [x for kv in base.items() for x in kv]
        r = fmbench_cli("connect", *argv, "--a", "baseline:cue-reliant", "--b", "baseline:cue-reliant")
        assert r.returncode != 0 and message in r.stderr and len(r.stderr.strip().splitlines()) == 1, r.stderr
