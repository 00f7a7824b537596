"""Graph probing tasks: splits, export, baselines, model checks, and seeded GraphCL training."""

from __future__ import annotations

import hashlib

import numpy as np
import pytest
import torch

pytest.importorskip("torch_geometric")

import fmbench  # noqa: E402
from fmbench.checkpoints import save_checkpoint  # noqa: E402
from fmbench.errors import ModelError  # noqa: E402
from fmbench.models import LoadedModel, from_module, load_model  # noqa: E402
from fmbench.nn.gin import GIN, GINConfig  # noqa: E402
from fmbench.nn.contrastive import nt_xent  # noqa: E402
from fmbench.studies.graphcl.train import train_graphcl  # noqa: E402

MOTIF = "fmbench/GraphMotifsTreeX2-v0"
FASHION = "fmbench/GraphFashionSuperpixels-v0"


def _fingerprint(g) -> str:
    return hashlib.sha256(g.x.numpy().tobytes() + g.edge_index.numpy().tobytes()).hexdigest()


@pytest.mark.parametrize("tid", [MOTIF, FASHION])
def test_splits_sizes_balance_and_disjointness(tid):
    task = fmbench.make_task(tid)
    split_graphs = {s: task.graphs(s, 0) for s in task.splits}
    for split, graphs in split_graphs.items():
        assert len(graphs) == task.split_size(split)
    for split in ("train", "test"):
        counts = np.bincount([int(g.y) for g in split_graphs[split]])
        assert len(counts) == task.n_classes and (counts == counts[0]).all()
    prints = {s: {_fingerprint(g) for g in gs} for s, gs in split_graphs.items()}
    assert not prints["pretrain"] & prints["test"] and not prints["train"] & prints["test"]
    assert not prints["pretrain"] & prints["train"]
    assert len(task.graphs("test", 0, limit=3)) == 3 * task.n_classes
    for split in task.splits:
        ids = task.graph_ids(split, 0)
        assert len(ids) == len(split_graphs[split]) == len(np.unique(ids))


def test_superpixel_splits_come_from_the_right_images():
    task = fmbench.make_task(FASHION)
    pre = task._indices("pretrain", 0, None)
    train = task._indices("train", 0, None)
    test = task._indices("test", 0, None)
    assert pre[0] == train[0] == "train" and test[0] == "test"
    assert not set(pre[1].tolist()) & set(train[1].tolist())
    assert not np.array_equal(task._indices("train", 1, None)[1], train[1])


def test_export_pads_graphs_and_hides_pretrain_labels():
    task = fmbench.make_task(MOTIF)
    cols = next(iter(task.export_chunks("train", 0)))
    graphs = task.graphs("train", 0)
    k = 5
    n, e = int(cols["num_nodes"][k]), int(cols["num_edges"][k])
    assert np.array_equal(cols["x"][k, :n], graphs[k].x.numpy()) and not cols["x"][k, n:].any()
    assert np.array_equal(cols["edge_index"][k, :, :e], graphs[k].edge_index.numpy())
    assert (cols["edge_index"][k, :, e:] == -1).all() and cols["label"][k] == int(graphs[k].y)
    assert "label" not in next(iter(task.export_chunks("pretrain", 0)))


def test_baselines_and_model_checks():
    task = fmbench.make_task(MOTIF)
    untrained = task.load_baseline("untrained")
    assert untrained.interface == "graph-encoder" and untrained.n_params > 10_000
    with pytest.raises(ModelError, match="no baseline 'nope'"):
        task.load_baseline("nope")
    wrong_dim = from_module(GIN(GINConfig(in_dim=3)), "x", "x", interface="graph-encoder")
    with pytest.raises(ModelError, match=r"batch of graphs 0-5: the encoder failed \(RuntimeError: mat1 and mat2"):
        task.check_model(wrong_dim)
    as_sequence = from_module(GIN(GINConfig(in_dim=1)), "y", "y")
    with pytest.raises(ModelError, match="interface 'sequence-model'"):
        task.check_model(as_sequence)
    plain = LoadedModel(model=lambda b: b, spec="z", name="z", interface="graph-encoder", n_params=None,
                        weights_sha256=None, dtype="none")
    with pytest.raises(ModelError, match="torch.nn.Module"):
        task.check_model(plain)


def test_safetensors_gin_round_trip(tmp_path):
    task = fmbench.make_task(MOTIF)
    path = tmp_path / "gin.safetensors"
    save_checkpoint(GIN(GINConfig(in_dim=1, hidden=8, n_layers=2)), path)
    model = load_model(f"safetensors:{path}", task)
    assert model.interface == "graph-encoder"
    task.check_model(model)
    scores = task.evaluate(model, 0, limit=3)
    assert set(task.spec.metrics) <= set(scores)


@pytest.mark.slow  # GraphCL training
def test_graphcl_training_is_seeded():
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # bit-reproducible on one thread (threaded scatter-adds sum in varying order)
    task = fmbench.make_task(MOTIF)
    try:
        runs = [train_graphcl(task, "relevant", seed=0, epochs=2, limit=64, log=lambda _: None) for _ in range(2)]
    finally:
        torch.set_num_threads(threads)
    (a, losses), (b, _) = runs
    assert all(torch.equal(x, y) for x, y in zip(a.state_dict().values(), b.state_dict().values()))
    assert np.isfinite(losses).all() and len(losses) == 2
    other, _ = train_graphcl(task, "relevant", seed=1, epochs=1, limit=64, log=lambda _: None)
    assert not torch.equal(other.mlps[0][0].weight, a.mlps[0][0].weight)
    with pytest.raises(ValueError, match="'generic' or 'relevant'"):
        train_graphcl(task, "colour", seed=0, epochs=1, limit=8)


def test_nt_xent_prefers_aligned_views():
    z = torch.randn(8, 4, generator=torch.Generator().manual_seed(0))
    assert nt_xent(z, z) < nt_xent(z, z.roll(1, 0))
