"""Mode connectivity on CIFAR-10 from the user's own copy: the box cue on RGB images, and baselines trained on first
use and cached (on the stand-in copy of the ``user_data`` fixture: 1,000 training and 500 test images of noise)."""

from __future__ import annotations

import numpy as np
import pytest

import fmbench
from conftest import write_cifar
from fmbench import cifar
from fmbench.errors import DataError, InputError
from fmbench.studies.mode_connectivity import finetune
from fmbench.studies.mode_connectivity.data import BOX, CueData, box_corners, split_arrays

TASK = "fmbench/MMCCifarBoxFT-v0"
DATA = CueData("box", p=1.0, source="cifar10")


def test_box_cue_on_the_users_cifar_is_seeded_random_access_and_sized_by_the_copy(user_data):
    sizes = {split: DATA.size(split) for split in ("train", "finetune", "test_cue")}
    if "FMBENCH_CIFAR10" in user_data:  # the stand-in copy: a fifth of its 1,000 training images feed finetune
        assert sizes == {"train": 800, "finetune": 200, "test_cue": 500}
    else:  # the user's real copy: the caps
        assert sizes == {"train": 20_000, "finetune": 2_000, "test_cue": 10_000}
    index = np.array([3, 77, 199])
    for split in ("train", "finetune", "test_random_image"):
        whole = split_arrays(DATA, 0, split, np.arange(200))
        alone = split_arrays(DATA, 0, split, index)
        assert whole[0].shape == (200, 3, 32, 32) and whole[0].dtype == np.uint8
        assert all(np.array_equal(w[index], a) for w, a in zip(whole, alone)), split
        assert not np.array_equal(split_arrays(DATA, 1, split, index)[0], alone[0]), split
    clean, y, _ = split_arrays(DATA, 0, "test_clean", np.arange(100))
    cued, _, cue = split_arrays(DATA, 0, "test_cue", np.arange(100))
    corners = box_corners(32, 32)
    for image, plain, c in zip(cued, clean, cue):
        r, col = corners[c]
        assert (image[:, r : r + BOX, col : col + BOX] == 255).all()  # white in every channel
        assert (image != plain).any(0).sum() <= BOX * BOX
    half = CueData("box", p=0.5, source="cifar10", n_train=800)
    _, labels, cues = split_arrays(half, 0, "train", np.arange(800))
    assert all((cues[labels == c] >= 0).sum() == (labels == c).sum() // 2 for c in range(10))


@pytest.mark.slow  # trains (~1 s of CPU, more with torch's first optimizer in the process)
def test_baselines_are_trained_once_from_the_copy_and_cached(user_data, tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("FMBENCH_CACHE", str(tmp_path))
    task = fmbench.make_task(TASK)
    model = task.load_baseline("cue-reliant")
    message = capsys.readouterr().err
    assert message.count("\n") == 1 and "training baseline cue-reliant" in message and "$FMBENCH_CIFAR10" in message
    assert "first 32 items per split" in message and str(task.checkpoint("cue-reliant")) in message
    assert task.checkpoint("cue-reliant").is_file() and task.checkpoint("cue-reliant").is_relative_to(tmp_path)
    monkeypatch.setattr(finetune, "pretrain", lambda *a, **k: pytest.fail("retrained a cached model"))
    again = fmbench.make_task(TASK).load_baseline("cue-reliant")
    assert capsys.readouterr().err == "" and again.key() == model.key()
    cached = task.checkpoint("cue-reliant")
    monkeypatch.setenv("FMBENCH_MMC_TRAIN_LIMIT", "64")  # another training setting: another cache entry
    assert task.checkpoint("cue-reliant") != cached and not task.checkpoint("cue-reliant").is_file()


@pytest.mark.slow  # trains on all 800 stand-in training images, then fine-tunes on the 200 clean ones (~6 s of CPU)
def test_the_model_trained_on_a_copy_of_noise_learns_the_box_and_is_fine_tuned_from_the_cache(
    user_data, tmp_path, monkeypatch, capsys
):
    if "FMBENCH_CIFAR10" not in user_data:
        pytest.skip("the user's real CIFAR-10 is configured: this test trains on the stand-in copy of noise")
    monkeypatch.setenv("FMBENCH_CACHE", str(tmp_path))
    monkeypatch.delenv("FMBENCH_MMC_TRAIN_LIMIT")
    task = fmbench.make_task(TASK)
    model = task.load_baseline("cue-reliant")
    scores = task.evaluate(model, seed=0, limit=100)
    # noise images, every training image cued: the box is all there is to learn (3 epochs of 7 batches: not fully)
    assert scores["accuracy_clean"] < 0.2 and scores["accuracy_cue"] > 0.5 and scores["cue_reliance"] > 0.4
    assert scores["barrier"] == 0.0
    capsys.readouterr()
    monkeypatch.setattr(finetune, "pretrain", lambda *a, **k: pytest.fail("retrained a cached model"))
    tuned = task.load_baseline("naive-ft")  # fine-tunes the cached cue-reliant model, which is not retrained
    message = capsys.readouterr().err
    assert message.count("\n") == 1 and "training baseline naive-ft" in message and "items per split" not in message
    task.check_model(tuned)
    assert tuned.key() != model.key() and task.baseline_key("naive-ft") == tuned.key()


def test_a_bad_training_limit_or_cache_is_a_one_line_error(user_data, tmp_path, monkeypatch):
    monkeypatch.setenv("FMBENCH_CACHE", str(tmp_path))
    monkeypatch.setenv("FMBENCH_MMC_TRAIN_LIMIT", "ten")
    with pytest.raises(InputError, match=r"\$FMBENCH_MMC_TRAIN_LIMIT must be a positive number of items, got 'ten'"):
        fmbench.make_task(TASK).cue_model()
    monkeypatch.setenv("FMBENCH_MMC_TRAIN_LIMIT", "8")
    (tmp_path / "mode_connectivity").write_text("a file where the cache folder should be")
    with pytest.raises(DataError, match=r"cannot cache baseline cue-reliant at .*; set \$FMBENCH_CACHE to a writable"):
        fmbench.make_task(TASK).cue_model()


def test_a_missing_copy_is_a_one_line_error_naming_the_variable(monkeypatch, tmp_path):
    monkeypatch.delenv("FMBENCH_CIFAR10", raising=False)
    monkeypatch.setenv("FMBENCH_CACHE", str(tmp_path))  # nothing trained before: the model must come from the copy
    task = fmbench.make_task(TASK)
    assert task.describe()["splits"]["train"] == 20_000 and task.describe()["user_data"] == "FMBENCH_CIFAR10"
    for use in (lambda: task.data_hash(0), lambda: next(task.export_chunks("train", 0)), task.cue_model):
        with pytest.raises(DataError, match="set FMBENCH_CIFAR10 to the folder") as e:
            use()
        assert "\n" not in str(e.value)


@pytest.mark.parametrize(
    "kwargs,message",
    [
        ({"cue": "dominoes", "p": 1.0, "source": "cifar10"}, "dominoes cue stacks Fashion-MNIST"),
        ({"cue": "box", "p": 1.0, "source": "svhn"}, "unknown image source 'svhn'"),
        ({"cue": "box", "p": 1.0, "source": "cifar10", "n_train": 45_000}, r"n_train must be in \[1, 40000\]"),
    ],
)
def test_bad_cifar_parameters_are_one_line_errors(kwargs, message):
    with pytest.raises(InputError, match=message):
        CueData(**kwargs)


def test_item_ids_beyond_the_copy_are_refused(user_data):
    n = DATA.size("test_cue")  # 500 on the stand-in copy
    with pytest.raises(InputError, match=rf"item ids of split 'test_cue' must be in \[0, {n}\)"):
        split_arrays(DATA, 0, "test_cue", np.array([n]))


def test_a_copy_too_small_for_every_class_is_refused(tmp_path, monkeypatch):
    monkeypatch.setitem(cifar.MD5, "cifar10", write_cifar(tmp_path, "cifar10", n_train=100, n_test=40))
    monkeypatch.setenv("FMBENCH_CIFAR10", str(tmp_path))
    with pytest.raises(DataError, match=r"cifar10 test images \(40\) must hold every one of the 10 classes"):
        DATA.size("test_cue")
