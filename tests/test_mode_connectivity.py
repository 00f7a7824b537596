"""Mode connectivity study (arXiv:2211.08422): cue data, the fine-tuning task, its baselines and methods."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

import fmbench
from fmbench.errors import InputError, ModelError
from fmbench.models import from_module
from fmbench.studies.mode_connectivity.data import BOX, BOX_CORNERS, CueData, split_arrays
from fmbench.studies.mode_connectivity.finetune import fine_tune
from fmbench.studies.mode_connectivity.model import ConvNet, ConvNetConfig

TASK = "fmbench/MMCFashionBoxFT-v0"
P_SWEEP = {
    0.6: "fmbench/MMCFashionBoxP60FT-v0",
    0.7: "fmbench/MMCFashionBoxP70FT-v0",
    0.8: "fmbench/MMCFashionBoxP80FT-v0",
}
P_SWEEP |= {0.9: "fmbench/MMCFashionBoxP90FT-v0", 1.0: TASK}
DOMINOES = "fmbench/MMCFashionDominoesFT-v0"
BOX_DATA = CueData("box", p=1.0)


def test_items_are_random_access_and_depend_on_the_seed():
    index = np.array([5, 17, 1999])
    for split in ("train", "finetune", "test_random_image"):
        whole = split_arrays(BOX_DATA, 0, split, np.arange(2000))
        alone = split_arrays(BOX_DATA, 0, split, index)
        assert all(np.array_equal(w[index], a) for w, a in zip(whole, alone)), split
        assert not np.array_equal(split_arrays(BOX_DATA, 1, split, index)[0], alone[0]), split


def test_exactly_a_fraction_p_of_each_class_is_cued_with_its_own_box():
    data = CueData("box", p=0.6, n_train=3000)
    images, labels, cues = split_arrays(data, 0, "train", np.arange(3000))
    for c in range(10):
        assert (cues[labels == c] >= 0).sum() == int(np.floor(0.6 * (labels == c).sum()))
    assert ((cues == labels) | (cues == -1)).all()
    for image, cue in zip(images[cues >= 0][:100], cues[cues >= 0][:100]):
        r, col = BOX_CORNERS[cue]
        assert (image[0, r : r + BOX, col : col + BOX] == 255).all()


def test_counterfactual_sets_share_images_and_conflict_where_randomised():
    index = np.arange(300)
    clean, y, no_cue = split_arrays(BOX_DATA, 0, "test_clean", index)
    cued, y_cued, cue = split_arrays(BOX_DATA, 0, "test_cue", index)
    moved, y_moved, moved_cue = split_arrays(BOX_DATA, 0, "test_random_cue", index)
    other, y_other, other_cue = split_arrays(BOX_DATA, 0, "test_random_image", index)
    assert (no_cue == -1).all() and (cue == y).all() and (other_cue == y).all()
    assert np.array_equal(y, y_cued) and np.array_equal(y, y_moved) and np.array_equal(y, y_other)
    assert (moved_cue != y).all() and len(np.unique(moved_cue)) == 10
    changed = (clean != cued).reshape(len(index), -1).sum(1)
    assert changed.max() <= BOX * BOX and (clean != other).reshape(len(index), -1).sum(1).min() > BOX * BOX


def test_the_p_sweep_tasks_differ_only_in_which_training_images_carry_the_box():
    index = np.arange(0, 20_000, 97)
    reference = {split: split_arrays(BOX_DATA, 0, split, index[:20]) for split in ("finetune", "test_random_image")}
    for p, tid in P_SWEEP.items():
        data = fmbench.make_task(tid).data
        assert (data.cue, data.p) == ("box", p)
        for split, arrays in reference.items():
            assert all(np.array_equal(a, b) for a, b in zip(split_arrays(data, 0, split, index[:20]), arrays)), tid
        images, labels, cues = split_arrays(data, 0, "train", index)
        whole, same_labels, _ = split_arrays(BOX_DATA, 0, "train", index)
        assert np.array_equal(labels, same_labels) and np.array_equal(images[cues >= 0], whole[cues >= 0])
        assert abs((cues >= 0).mean() - p) < 0.06 and ((cues == labels) | (cues == -1)).all()


@pytest.mark.slow
def test_dominoes_stack_a_digit_under_the_image():
    data = CueData("dominoes", p=1.0)
    clean = split_arrays(data, 0, "test_clean", np.arange(20))[0]
    cued = split_arrays(data, 0, "test_cue", np.arange(20))[0]
    assert clean.shape == (20, 1, 56, 28) and (clean[:, :, 28:] == 0).all()
    assert np.array_equal(clean[:, :, :28], cued[:, :, :28]) and (cued[:, :, 28:].reshape(20, -1).max(1) > 200).all()


@pytest.mark.parametrize(
    "kwargs,message",
    [
        ({"cue": "stripe", "p": 1.0}, "unknown cue 'stripe'"),
        ({"cue": "box", "p": 1.5}, "p must be in"),
        ({"cue": "box", "p": 1.0, "n_test": 0}, "n_test must be in"),
    ],
)
def test_bad_data_parameters_are_one_line_errors(kwargs, message):
    with pytest.raises(InputError, match=message):
        CueData(**kwargs)
    with pytest.raises(InputError, match=r"item ids of split 'test_cue' must be in \[0, 10000\)"):
        split_arrays(BOX_DATA, 0, "test_cue", np.array([10_000]))


@pytest.mark.slow
@pytest.mark.parametrize("tid", [*P_SWEEP.values(), DOMINOES])
def test_shipped_cue_model_relies_on_the_cue_and_has_no_barrier_to_itself(tid):
    task = fmbench.make_task(tid)
    scores = task.evaluate(task.load_baseline("cue-reliant"), seed=0, limit=100)
    assert scores["barrier"] == 0.0 and scores["accuracy_cue"] > 0.95
    # it uses the cue: the box of the label helps, a box of another class pulls a fifth or more of the answers to it
    assert scores["accuracy_cue"] > scores["accuracy_clean"] + 0.1 and scores["cue_reliance"] > 0.2
    if task.data.p == 1.0:  # every training image cued: it reads the cue more than the object
        assert scores["cue_reliance"] > 0.5 and scores["accuracy_random_cue"] < 0.4


def test_a_submission_must_be_a_copy_of_the_shipped_architecture():
    task = fmbench.make_task(TASK)
    other = from_module(ConvNet(ConvNetConfig(hidden=32)), "x", "x", interface="bn-classifier")
    with pytest.raises(ModelError, match="differ in layer shapes: body.9.weight is"):
        task.check_model(other)
    plain = from_module(torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(784, 10)), "y", "y", "bn-classifier")
    with pytest.raises(ModelError, match="holds no BatchNorm layer"):
        task.check_model(plain)


@pytest.mark.slow
def test_export_and_stats(fmbench_cli, tmp_path):
    out = tmp_path / "ft.pt"
    r = fmbench_cli("data", "export", TASK, "--split", "finetune", "--seed", "0", "--format", "pt", "--out", out)
    assert r.returncode == 0, r.stderr
    data = torch.load(out, weights_only=True)
    assert data["images"].shape == (2000, 1, 28, 28) and (data["cue_class"] == -1).all()
    r = fmbench_cli("data", "stats", TASK, "--seed", "0", "--json")
    stats = json.loads(r.stdout)
    assert stats["train"]["cued_fraction"] == 1.0 and stats["test_random_cue"]["cue_is_label_fraction"] == 0.0
    assert stats["finetune"]["cued_fraction"] == 0.0 and sum(stats["test_cue"]["class_counts"]) == 10_000
    r = fmbench_cli("data", "export", DOMINOES, "--split", "test_cue", "--seed", "0", "--format", "pt", "--out", out)
    assert r.returncode == 0, r.stderr
    data = torch.load(out, weights_only=True)
    assert data["images"].shape == (10_000, 1, 56, 28) and torch.equal(data["cue_class"], data["labels"])
    stats = json.loads(fmbench_cli("data", "stats", P_SWEEP[0.7], "--seed", "1", "--json").stdout)
    assert stats["p"] == 0.7 and stats["train"]["cue_is_label_fraction"] == stats["train"]["cued_fraction"]
    assert 0.69 < stats["train"]["cued_fraction"] <= 0.7 and stats["train"]["image_shape"] == [1, 28, 28]


@pytest.mark.slow
def test_fine_tuning_methods_run_seeded_and_change_what_they_should():
    task = fmbench.make_task(TASK)
    start = task.cue_model().model
    llr = fine_tune(task, "llr", seed=0, epochs=1, limit=128)
    assert torch.equal(llr.body[0].weight, start.body[0].weight) and not torch.equal(
        llr.linear.weight, start.linear.weight
    )
    cbft = fine_tune(task, "cbft", seed=0, epochs=2, limit=128)
    again = fine_tune(task, "cbft", seed=0, epochs=2, limit=128)
    assert not torch.equal(cbft.body[0].weight, start.body[0].weight)
    assert all(torch.equal(a, b) for a, b in zip(cbft.state_dict().values(), again.state_dict().values()))
    with pytest.raises(InputError, match="unknown fine-tuning method 'sgd'"):
        fine_tune(task, "sgd")


def test_seed_spread_resumes_what_is_missing_and_tabulates_mean_and_std(tmp_path, monkeypatch):
    from fmbench.studies.mode_connectivity import reproduce

    task = fmbench.make_task(P_SWEEP[0.6])
    path = tmp_path / "seed_spread-MMCFashionBoxP60FT.json"
    done = {name: {m: 0.5 for m in reproduce.METRICS} for name in ("cue-reliant", "naive-ft")}
    path.write_text(json.dumps({"task": task.id, "seeds": {"1": done}}))
    trained = []
    monkeypatch.setattr(reproduce, "pretrain", lambda t, seed: trained.append(("pretrain", seed)) or "anchor")
    monkeypatch.setattr(reproduce, "fine_tune", lambda t, m, seed, start: trained.append((m, seed, start)) or m)
    monkeypatch.setattr(type(task), "scores", lambda self, model, seed, anchor: {k: 0.7 for k in reproduce.METRICS})
    result = reproduce.seed_spread(task, tmp_path, [1], log=lambda _: None)
    assert trained == [("pretrain", 1), ("llr", 1, "anchor"), ("lp-ft", 1, "anchor"), ("cbft", 1, "anchor")]
    assert json.loads(path.read_text()) == result and result["seeds"]["1"]["naive-ft"]["barrier"] == 0.5
    assert result["seeds"]["1"]["cbft"]["barrier"] == 0.7
    trained.clear()
    reproduce.seed_spread(task, tmp_path, [1], log=lambda _: None)
    assert trained == []  # a finished seed is not redone
    result["seeds"]["2"] = {name: {m: 0.3 for m in reproduce.METRICS} for name in result["seeds"]["1"]}
    path.write_text(json.dumps(result))
    table = reproduce.seed_spread_table(tmp_path)
    assert "| p = 0.6 | 0.400 ± 0.141 (n=2) | 0.400 ± 0.141 (n=2) | 0.500 ± 0.283 (n=2) |" in table
    assert "| p = 0.7 | – | – | – | – | – |" in table
