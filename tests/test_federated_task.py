"""Federated split tasks: partition-backed data, stats and export, the probe evaluator, bad encoders."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest
import torch

import fmbench
from fmbench.errors import ModelError, SpecError
from fmbench.fashion_mnist import load_fashion_mnist
from fmbench.models import LoadedModel, from_module
from fmbench.studies.federated.task import FederatedTask, labelled_subset
from fmbench.task import stratified_subset

TID = "fmbench/FedFashionA0p1C10-v0"


@pytest.fixture(scope="module")
def task() -> FederatedTask:
    return fmbench.make_task(TID)


def test_partition_stats_and_export_agree(task):
    stats = task.stats(0)
    train, test = task.partitions(0)
    for split, part in (("train", train), ("test", test)):
        s = stats[split]
        assert len(s["client_sizes"]) == 10 and sum(s["client_sizes"]) + s["unassigned"] == s["samples"]
        hist = np.array(s["class_histograms"])
        assert hist.shape == (10, 10) and (hist.sum(1) == s["client_sizes"]).all()
        clients = np.concatenate([c["client"] for c in task.export_chunks(split, 0)])
        assert np.array_equal(clients, part.client_of)
    assert stats["train"]["classes_per_client"] < 9  # alpha 0.1: clients see few classes
    assert not np.array_equal(task.partitions(1)[0].client_of, train.client_of)


def test_export_rows_are_the_dataset(task):
    chunk = next(iter(task.export_chunks("test", 0)))
    images, labels = load_fashion_mnist("test")
    assert np.array_equal(chunk["image"], images[:10_000]) and np.array_equal(chunk["label"], labels[:10_000])


def test_labelled_subset_is_balanced_and_seeded():
    _, labels = load_fashion_mnist("train")
    a = labelled_subset(labels, 0.01, 0)
    assert len(a) == 600 and (np.bincount(labels[a]) == 60).all()
    assert np.array_equal(a, labelled_subset(labels, 0.01, 0))
    assert not np.array_equal(a, labelled_subset(labels, 0.01, 1))


def test_random_baseline_scores_are_consistent(task):
    scores = task.evaluate(task.load_baseline("random"), seed=0, limit=300)
    assert set(task.spec.metrics) == set(scores)
    assert 0.1 < scores["probe_accuracy"] <= 1 and scores["client_accuracy_min"] <= scores["client_accuracy_mean"]
    assert scores["probe_accuracy_1pct"] <= 1


class PixelMean(torch.nn.Module):
    """A known encoder: the mean intensity of each image's four quadrants."""

    def __init__(self) -> None:
        super().__init__()
        self.w = torch.nn.Parameter(torch.ones(1))

    def forward(self, x):
        q = x.unflatten(2, (2, 14)).unflatten(4, (2, 14)).mean((3, 5))
        return q.flatten(1) * self.w


def test_per_client_accuracy_is_the_probe_grouped_by_client(task):
    from fmbench.probes import linear_probe

    model = from_module(PixelMean(), "pixel-mean", "pixel-mean", interface="image-encoder")
    scores = task.evaluate(model, seed=0, limit=400)
    (train_x, train_y), (test_x, test_y) = load_fashion_mnist("train"), load_fashion_mnist("test")
    rows = [stratified_subset(y, 400) for y in (train_y, test_y)]
    assert [np.bincount(y[r]).tolist() for y, r in zip((train_y, test_y), rows)] == [[40] * 10] * 2
    z = [task.embed(model, x[r], "cpu", 64) for x, r in zip((train_x, test_x), rows)]
    predicted = linear_probe(z[0], train_y[rows[0]], z[1])
    client = task.partitions(0)[1].client_of[rows[1]]
    per_client = [np.mean(predicted[client == c] == test_y[rows[1]][client == c]) for c in np.unique(client)]
    assert scores["probe_accuracy"] == pytest.approx(np.mean(predicted == test_y[rows[1]]))
    assert scores["client_accuracy_mean"] == pytest.approx(np.mean(per_client))
    assert scores["client_accuracy_min"] == pytest.approx(np.min(per_client))


@pytest.mark.parametrize(
    "output,message",
    [
        (lambda x: torch.zeros(len(x) + 1, 4), r"shape \(3, 4\), expected \(2, d\)"),
        (lambda x: torch.full((len(x), 4), float("nan")), "NaN"),
        (lambda x: x.sum(), "shape \\(\\)"),
    ],
)
def test_bad_encoders_are_named(task, output, message):
    class Bad(torch.nn.Module):
        def forward(self, x):
            return output(x)

    with pytest.raises(ModelError, match=message) as e:
        task.check_model(from_module(Bad(), "bad", "bad", interface="image-encoder"))
    assert "batch of images 0-1" in str(e.value)


def test_wrong_interface_and_non_module_are_refused(task):
    with pytest.raises(ModelError, match="interface 'sequence-model'"):
        task.check_model(from_module(PixelMean(), "x", "x"))
    plain = LoadedModel(
        model=lambda x: x,
        spec="p",
        name="p",
        interface="image-encoder",
        n_params=None,
        weights_sha256=None,
        dtype="none",
    )
    with pytest.raises(ModelError, match="torch.nn.Module"):
        task.check_model(plain)


@pytest.mark.parametrize(
    "change,message",
    [
        ({"participation": 0.0}, "params: key 'participation': 0.0 is less than or equal to the minimum of 0"),
        ({"participation": 1.5}, "params: key 'participation': 1.5 is greater than the maximum of 1"),
        ({"local_epochs": 0}, "params: key 'local_epochs'"),
        ({"dataset": "imagenet"}, "params: key 'dataset': 'imagenet' is not one of"),
        ({"partition": "iid"}, "params: key 'partition'"),
        ({"rounds": 3}, "params: unknown key 'rounds'"),
    ],
)
def test_bad_task_parameters_are_refused(task, change, message):
    """The task's params schema names the file, the entry and the key."""
    spec = dataclasses.replace(task.spec, params={**task.spec.params, **change})
    with pytest.raises(SpecError, match=f"federated.toml {task.spec.id}: {message}"):
        FederatedTask(spec)


def test_cifar_tasks_split_the_users_copy_and_score_rgb_encoders(user_data):
    from fmbench.studies.federated.flower import RunConfig, client_images, initial_model, local_training

    task = fmbench.make_task("fmbench/FedCIFAR100A0p1C10-v0")
    assert task.user_data() == "FMBENCH_CIFAR100" and "(B, 3, 32, 32) (RGB)" in task.input_format()
    images, labels = task.source.load("train")
    stats = task.stats(0)
    assert sum(stats["train"]["client_sizes"]) == len(labels) and len(stats["train"]["class_histograms"][0]) == 100
    chunk = next(iter(task.export_chunks("train", 0)))
    assert chunk["image"].shape[1:] == (32, 32, 3) and np.array_equal(chunk["client"], task.partitions(0)[0].client_of)
    scores = task.evaluate(task.load_baseline("random"), seed=0, limit=3)
    assert set(scores) == set(task.spec.metrics) and 0 <= scores["probe_accuracy"] <= 1
    cfg = RunConfig(task=task.id, method="orchestra", samples_per_client=16, batch_size=8, width=4, embedding_dim=8)
    x = client_images(cfg, partition=3, server_round=1)
    assert x.shape == (16, 3, 32, 32) and 0 <= float(x.min()) <= float(x.max()) <= 1
    model = initial_model(cfg)
    result = local_training(model, x, cfg, epochs=1, key=(0, 1, 3))
    assert result["samples"] == 16 and np.isfinite(result["loss"])


def test_seeds_share_the_full_probe_until_the_weights_change(task):
    encoder = PixelMean()
    calls = []
    encoder.register_forward_hook(lambda *_: calls.append(1))
    model = from_module(encoder, "pixel-mean", "pixel-mean", interface="image-encoder")
    first = task.evaluate(model, seed=0, limit=200)
    n = len(calls)
    second = task.evaluate(model, seed=1, limit=200)
    assert len(calls) == n and second["probe_accuracy"] == first["probe_accuracy"]  # embeddings reused
    assert second["client_accuracy_mean"] != first["client_accuracy_mean"]  # the seed's partition still applies
    with torch.no_grad():
        encoder.w.mul_(2)
    task.evaluate(model, seed=1, limit=200)
    assert len(calls) == 2 * n  # new weights: embedded again
