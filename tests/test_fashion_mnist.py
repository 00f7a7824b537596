"""Offline Fashion-MNIST: the Debian package's files, their parsing, and errors for bad folders or files."""

from __future__ import annotations

import doctest
import gzip
import hashlib
import shutil

import numpy as np
import pytest

from fmbench import fashion_mnist
from fmbench.errors import DataError
from fmbench.fashion_mnist import CLASSES, ENV_VAR, FILES, VERIFY_ENV_VAR, fashion_mnist_dir, load_fashion_mnist

SHA256 = {
    "train-images-idx3-ubyte.gz": "b0564c3eedabfbf835052cff8503ea422014ce006caf5b757f851416ee8300c7",
    "train-labels-idx1-ubyte.gz": "0ae29f65d86684f32d1b9c85147786c547b9c6aebcaf235f0400a0cce308b056",
    "t10k-images-idx3-ubyte.gz": "cc1d090a38ace84dfa1aa66e3ada7c336ef481a96936906477e6dd344da56eaa",
    "t10k-labels-idx1-ubyte.gz": "8d3605d196f4be44669e46906da9733c8131fef761fdbfec72c424d5222f1a05",
}


def _installed() -> bool:
    try:
        fashion_mnist_dir()
    except DataError:
        return False
    return True


needs_data = pytest.mark.skipif(not _installed(), reason="apt-get install dataset-fashion-mnist")


def _write_idx(path, magic: int, array: np.ndarray) -> None:
    header = np.array([magic, *array.shape], ">u4").tobytes()
    path.write_bytes(gzip.compress(header + array.astype(np.uint8).tobytes()))


@pytest.fixture
def fake_dir(tmp_path, monkeypatch):
    """A folder of valid tiny files (3 test images, 2 train images), set as ``$FMBENCH_FASHION_MNIST``, unverified."""
    for split, n in (("train", 2), ("test", 3)):
        images, labels = FILES[split]
        _write_idx(tmp_path / images, 2051, np.full((n, 28, 28), 7))
        _write_idx(tmp_path / labels, 2049, np.arange(n))
    monkeypatch.setenv(ENV_VAR, str(tmp_path))
    monkeypatch.setenv(VERIFY_ENV_VAR, "0")
    return tmp_path


@needs_data
@pytest.mark.parametrize("split, n", [("train", 60000), ("test", 10000)])
def test_shapes_dtypes_and_class_balance(split, n):
    images, labels = load_fashion_mnist(split)
    assert images.shape == (n, 28, 28) and images.dtype == np.uint8
    assert labels.shape == (n,) and labels.dtype == np.int64
    assert np.bincount(labels).tolist() == [n // 10] * 10
    assert not images.flags.writeable and not labels.flags.writeable
    assert load_fashion_mnist(split)[0] is images  # cached
    assert 0 < images.mean() < 255


@needs_data
@pytest.mark.parametrize("name", sorted(SHA256))
def test_files_match_pinned_sha256(name):
    assert hashlib.sha256((fashion_mnist_dir() / name).read_bytes()).hexdigest() == SHA256[name]
    assert fashion_mnist.SHA256[name] == SHA256[name]


@needs_data
def test_docstring_examples():
    assert doctest.testmod(fashion_mnist).failed == 0


def test_classes_and_bad_split():
    assert len(CLASSES) == 10 and CLASSES[9] == "Ankle boot"
    with pytest.raises(ValueError, match="split must be one of"):
        load_fashion_mnist("validation")


def test_env_var_overrides_folder(fake_dir):
    images, labels = load_fashion_mnist("test")
    assert fashion_mnist_dir() == fake_dir
    assert images.shape == (3, 28, 28) and labels.tolist() == [0, 1, 2] and images[0, 0, 0] == 7


def test_missing_files_say_how_to_get_them(tmp_path, monkeypatch):
    monkeypatch.setenv(ENV_VAR, str(tmp_path / "nowhere"))
    with pytest.raises(DataError, match="apt-get install dataset-fashion-mnist") as info:
        load_fashion_mnist("train")
    assert ENV_VAR in str(info.value) and "train-images-idx3-ubyte.gz" in str(info.value)


def test_corrupted_gzip_names_the_file(fake_dir):
    (fake_dir / "t10k-images-idx3-ubyte.gz").write_bytes(b"this is not gzip")
    with pytest.raises(DataError, match="t10k-images-idx3-ubyte.gz: not a readable gzip file"):
        load_fashion_mnist("test")


def test_truncated_gzip_names_the_file(fake_dir):
    path = fake_dir / "t10k-labels-idx1-ubyte.gz"
    path.write_bytes(path.read_bytes()[:-6])
    with pytest.raises(DataError, match="t10k-labels-idx1-ubyte.gz: not a readable gzip file"):
        load_fashion_mnist("test")


@pytest.mark.parametrize(
    "magic, shape, match",
    [
        (2049, (3, 28, 28), "magic number 2049, expected 2051"),
        (2051, (3, 28, 27), "images are 28x27, expected 28x28"),
    ],
)
def test_bad_image_header(fake_dir, magic, shape, match):
    _write_idx(fake_dir / "t10k-images-idx3-ubyte.gz", magic, np.zeros(shape))
    with pytest.raises(DataError, match=match):
        load_fashion_mnist("test")


def test_size_disagreeing_with_header(fake_dir):
    path = fake_dir / "t10k-images-idx3-ubyte.gz"
    path.write_bytes(gzip.compress(gzip.decompress(path.read_bytes())[:-5]))
    with pytest.raises(DataError, match=r"t10k-images-idx3-ubyte.gz: 2347 data bytes, but .* need 2352"):
        load_fashion_mnist("test")


def test_image_and_label_counts_must_agree(fake_dir):
    shutil.copy(fake_dir / "train-labels-idx1-ubyte.gz", fake_dir / "t10k-labels-idx1-ubyte.gz")
    with pytest.raises(DataError, match="holds 3 images but .*t10k-labels-idx1-ubyte.gz 2 labels"):
        load_fashion_mnist("test")


def test_labels_must_name_a_class(fake_dir):
    _write_idx(fake_dir / "t10k-labels-idx1-ubyte.gz", 2049, np.array([0, 10, 2]))
    with pytest.raises(DataError, match="label 10 is not one of the 10 classes"):
        load_fashion_mnist("test")


def test_files_that_are_not_the_published_ones_are_refused_unless_asked(fake_dir, monkeypatch):
    monkeypatch.delenv(VERIFY_ENV_VAR)
    with pytest.raises(
        DataError, match=f"t10k-images-idx3-ubyte.gz: sha256 .* is not the published .*{VERIFY_ENV_VAR}=0"
    ):
        load_fashion_mnist("test")
    assert len(load_fashion_mnist("test", verify=False)[0]) == 3


def test_more_images_than_published_are_refused_before_decompressing(fake_dir):
    path = fake_dir / "t10k-images-idx3-ubyte.gz"
    path.write_bytes(gzip.compress(np.array([2051, 700_000, 28, 28], ">u4").tobytes()))  # and no pixels
    with pytest.raises(DataError, match="the header says 700000 images; the published split has 10000 .*fewer"):
        load_fashion_mnist("test")


def test_more_data_than_the_header_needs_is_refused(fake_dir):
    path = fake_dir / "t10k-labels-idx1-ubyte.gz"
    path.write_bytes(gzip.compress(gzip.decompress(path.read_bytes()) + bytes(1000)))
    with pytest.raises(DataError, match=r"t10k-labels-idx1-ubyte.gz: more data bytes, but .* \[3\] need 3"):
        load_fashion_mnist("test")


@needs_data
def test_published_files_load_with_and_without_verification():
    assert load_fashion_mnist("test", verify=True)[0].shape == (10000, 28, 28)
    assert load_fashion_mnist("test", verify=False)[1].tolist() == load_fashion_mnist("test")[1].tolist()
