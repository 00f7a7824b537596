"""CIFAR from the user's own copy: layout, md5 checks, the arrays-only unpickler, and errors that say what to do."""

from __future__ import annotations

import hashlib
import os
import pickle

import numpy as np
import pytest

from conftest import write_cifar
from fmbench import cifar
from fmbench.cifar import SOURCES, cifar_dir, load_cifar
from fmbench.errors import DataError


@pytest.fixture
def copy(tmp_path, monkeypatch):
    """A stand-in CIFAR-10 copy under ``tmp_path`` (a torchvision-style root), its md5s expected."""
    monkeypatch.setitem(cifar.MD5, "cifar10", write_cifar(tmp_path, "cifar10", n_train=50, n_test=20))
    monkeypatch.setenv("FMBENCH_CIFAR10", str(tmp_path))
    return tmp_path / SOURCES["cifar10"].folder


@pytest.mark.skipif(not os.environ.get("FMBENCH_CIFAR10"), reason="no CIFAR-10 copy here: set FMBENCH_CIFAR10")
def test_the_users_real_cifar10():
    images, labels = load_cifar("cifar10", "train")
    assert images.shape == (50_000, 32, 32, 3) and np.bincount(labels).tolist() == [5000] * 10


def test_images_are_rgb_rows_unpacked_in_the_published_order(copy):
    with open(copy / "data_batch_2", "rb") as f:
        raw = pickle.loads(f.read().replace(b"numpy.core.multiarray", b"numpy._core.multiarray"))
    images, labels = load_cifar("cifar10", "train")
    assert images.shape == (50, 32, 32, 3) and images.dtype == np.uint8 and labels.dtype == np.int64
    first = raw["data"][0]  # 1024 red, then 1024 green, then 1024 blue values, row-major
    assert np.array_equal(images[10, :, :, 0], first[:1024].reshape(32, 32))
    assert np.array_equal(images[10, 3, 5], first[[3 * 32 + 5, 1024 + 3 * 32 + 5, 2048 + 3 * 32 + 5]])
    assert labels[10:20].tolist() == raw["labels"]
    assert not images.flags.writeable and load_cifar("cifar10", "train")[0] is images
    assert load_cifar("cifar10", "test")[0].shape == (20, 32, 32, 3)


def test_the_folder_itself_or_its_parent(copy, monkeypatch):
    assert cifar_dir("cifar10") == copy
    monkeypatch.setenv("FMBENCH_CIFAR10", str(copy))
    assert cifar_dir("cifar10") == copy


def test_cifar100_reads_the_fine_labels(tmp_path, monkeypatch):
    monkeypatch.setitem(cifar.MD5, "cifar100", write_cifar(tmp_path, "cifar100", n_train=300, n_test=100))
    monkeypatch.setenv("FMBENCH_CIFAR100", str(tmp_path))
    images, labels = load_cifar("cifar100", "train")
    assert images.shape == (300, 32, 32, 3) and labels.max() == 99


def test_missing_copy_says_how_to_get_one(monkeypatch, tmp_path):
    monkeypatch.delenv("FMBENCH_CIFAR10", raising=False)
    with pytest.raises(DataError, match="never downloads.*cs.toronto.edu.*FMBENCH_CIFAR10"):
        load_cifar("cifar10", "test")
    monkeypatch.setenv("FMBENCH_CIFAR10", str(tmp_path))
    with pytest.raises(DataError, match="missing from .*data_batch_1, .*test_batch"):
        cifar_dir("cifar10")


def test_a_different_copy_is_refused_by_md5(copy):
    (copy / "test_batch").write_bytes((copy / "test_batch").read_bytes() + b"\0")
    with pytest.raises(DataError, match="test_batch: md5 .* published CIFAR-10 file has"):
        load_cifar("cifar10", "test")


def _install(copy, monkeypatch, payload: bytes) -> None:
    """Replace the test batch by ``payload`` and expect its md5 (to reach the parser)."""
    (copy / "test_batch").write_bytes(payload)
    monkeypatch.setitem(cifar.MD5, "cifar10", {**cifar.MD5["cifar10"], "test_batch": hashlib.md5(payload).hexdigest()})


class _Runs:
    def __reduce__(self):
        return (os.system, ("echo pwned",))


class _RawPointers:
    """``numpy.ndarray((1,), object, 8 bytes)``: an object array whose element is a forged pointer."""

    def __reduce__(self):
        return (np.ndarray, ((1,), np.dtype("O"), b"AAAAAAAA"))


class _ObjectState:
    """An array rebuilt through numpy's own pickle path, with an object dtype in its state."""

    def __reduce__(self):
        from fmbench.cifar import _reconstruct

        return (_reconstruct, (np.ndarray, (0,), b"b"), (1, (1,), np.dtype("O"), False, [1]))


@pytest.mark.parametrize(
    "payload,message",
    [
        (pickle.dumps({"data": _Runs()}, protocol=2), r"refusing to load (posix|os)\.system"),
        (
            pickle.dumps({"data": np.zeros((2, 3072), np.uint8), "labels": _RawPointers()}, protocol=2),
            "'object' object is not callable",
        ),
        (pickle.dumps({"data": _ObjectState(), "labels": [0]}, protocol=2), r"refusing an array of dtype dtype\('O'\)"),
        (
            pickle.dumps({"data": np.zeros((2, 3072), np.uint8), "labels": np.zeros(2)}, protocol=2),
            "must be a list of integer labels",
        ),
        (b"not a pickle", "not a readable CIFAR batch"),
        (
            pickle.dumps({"data": np.zeros((2, 3071), np.uint8), "labels": [0, 1]}, protocol=2),
            r"uint8 array \(N, 3072\)",
        ),
        (
            pickle.dumps({"data": np.zeros((2, 3072), np.uint8), "labels": [0]}, protocol=2),
            "must hold 2 labels in 0..9",
        ),
        (pickle.dumps({"data": np.zeros((2, 3072), np.uint8), "labels": [0, 10]}, protocol=2), "must hold 2 labels"),
    ],
)
def test_bad_files_are_named_and_never_run_code(copy, monkeypatch, payload, message):
    _install(copy, monkeypatch, payload)
    with pytest.raises(DataError, match=message):
        load_cifar("cifar10", "test")


def test_bad_names_are_refused(copy):
    with pytest.raises(ValueError, match="CIFAR variant must be one of"):
        load_cifar("cifar1000", "test")
    with pytest.raises(ValueError, match="split must be one of"):
        load_cifar("cifar10", "valid")
