"""Graph probing tasks: splits, export, baselines, model checks, and seeded GraphCL training."""

from __future__ import annotations

import hashlib
import json

import numpy as np
import pytest
import torch

pytest.importorskip("torch_geometric")

import fmbench  # noqa: E402
from fmbench.checkpoints import save_checkpoint  # noqa: E402
from fmbench.errors import ModelError  # noqa: E402
from fmbench.export import export_split  # noqa: E402
from fmbench.models import LoadedModel, from_module, load_model  # noqa: E402
from fmbench.nn.contrastive import nt_xent  # noqa: E402
from fmbench.nn.gin import GIN, GINConfig  # noqa: E402
from fmbench.studies.graphcl.train import train_graphcl  # noqa: E402
from fmbench.task import stratified_subset  # noqa: E402

MOTIF = "fmbench/GraphMotifsTreeX2-v1"
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
    for split in ("train", "test"):  # a --limit of 2 per class: the same graphs, two of each class
        assert np.array_equal(task.labels(split, 0), [int(g.y) for g in split_graphs[split]])
        rows = stratified_subset(task.labels(split, 0), 2 * task.n_classes)
        picked = task.graphs(split, 0, rows)
        assert [_fingerprint(g) for g in picked] == [_fingerprint(split_graphs[split][r]) for r in rows]
        assert np.bincount([int(g.y) for g in picked]).tolist() == [2] * task.n_classes
    for split in task.splits:
        ids = task.graph_ids(split, 0)
        assert len(ids) == len(split_graphs[split]) == len(np.unique(ids))


def test_superpixel_splits_come_from_the_right_images():
    task = fmbench.make_task(FASHION)
    pre = task._indices("pretrain", 0)
    train = task._indices("train", 0)
    test = task._indices("test", 0)
    assert pre[0] == train[0] == "train" and test[0] == "test"
    assert not set(pre[1].tolist()) & set(train[1].tolist())
    assert not np.array_equal(task._indices("train", 1)[1], train[1])


def test_export_gives_each_graph_at_its_own_size_and_hides_pretrain_labels():
    task = fmbench.make_task(MOTIF)
    cols = next(iter(task.export_chunks("train", 0)))
    graphs = task.graphs("train", 0)
    sizes = {g.num_nodes for g in graphs[: len(cols["ids"])]}
    assert len(sizes) > 1  # so that padding would show
    for k in (0, 5, len(cols["ids"]) - 1):
        g = graphs[k]
        assert cols["x"][k].shape == (g.num_nodes, g.x.shape[1]) == (cols["num_nodes"][k], g.x.shape[1])
        assert np.array_equal(cols["x"][k], g.x.numpy())
        assert np.array_equal(cols["edges"][k], g.edge_index.numpy().T)
        assert cols["num_directed_edges"][k] == len(cols["edges"][k]) == g.edge_index.shape[1]
        assert cols["label"][k] == int(g.y)
    assert "label" not in next(iter(task.export_chunks("pretrain", 0)))


def test_stats_and_export_count_edges_alike():
    task = fmbench.make_task(MOTIF)
    counts = np.concatenate([c["num_directed_edges"] for c in task.export_chunks("test", 0)])
    edges = task.stats(0)["test"]["directed_edges"]
    assert (edges["min"], edges["max"]) == (counts.min(), counts.max())
    assert edges["mean"] == pytest.approx(counts.mean())


def test_jsonl_and_pt_exports_hold_graphs_at_their_own_size(tmp_path):
    task = fmbench.make_task(MOTIF)
    graphs = task.graphs("test", 0)
    assert export_split(task, "test", 0, "jsonl", tmp_path / "t.jsonl") == len(graphs)
    rows = [json.loads(line) for line in (tmp_path / "t.jsonl").read_text().splitlines()]
    assert [len(r["x"]) for r in rows] == [g.num_nodes for g in graphs]
    assert rows[3]["edges"] == graphs[3].edge_index.T.tolist() and rows[3]["ids"] == task.graph_ids("test", 0)[3]
    export_split(task, "test", 0, "pt", tmp_path / "t.pt")
    payload = torch.load(tmp_path / "t.pt", weights_only=True)
    assert torch.equal(payload["x"][3], graphs[3].x) and torch.equal(payload["edges"][3], graphs[3].edge_index.T)


def test_baselines_and_model_checks():
    task = fmbench.make_task(MOTIF)
    untrained = task.load_baseline("untrained")
    assert untrained.interface == "graph-encoder" and untrained.n_params > 10_000
    with pytest.raises(ModelError, match="no baseline 'nope'"):
        task.load_baseline("nope")
    wrong_dim = from_module(GIN(GINConfig(in_dim=3)), "x", "x", interface="graph-encoder")
    with pytest.raises(ModelError, match=r"batch of graphs 0-0: the encoder failed \(RuntimeError: mat1 and mat2"):
        task.check_model(wrong_dim)
    as_sequence = from_module(GIN(GINConfig(in_dim=1)), "y", "y")
    with pytest.raises(ModelError, match="interface 'sequence-model'"):
        task.check_model(as_sequence)
    plain = LoadedModel(
        model=lambda b: b,
        spec="z",
        name="z",
        interface="graph-encoder",
        n_params=None,
        weights_sha256=None,
        dtype="none",
    )
    with pytest.raises(ModelError, match="torch.nn.Module"):
        task.check_model(plain)


@pytest.mark.parametrize("tid", [MOTIF, FASHION])
def test_limit_scores_that_many_graphs_class_balanced(monkeypatch, tid):
    import fmbench.studies.graphcl.task as graph_task

    seen = {}
    monkeypatch.setattr(
        graph_task, "evaluate_encoder", lambda encoder, train, test, **_: seen.update(train=train, test=test) or {}
    )
    task = fmbench.make_task(tid)
    task.evaluate(task.load_baseline("untrained"), 0, limit=task.n_classes + 2)
    for split in ("train", "test"):
        counts = np.bincount([int(g.y) for g in seen[split]], minlength=task.n_classes)
        assert counts.tolist() == [2, 2] + [1] * (task.n_classes - 2), split


def test_safetensors_gin_round_trip(tmp_path):
    task = fmbench.make_task(MOTIF)
    path = tmp_path / "gin.safetensors"
    save_checkpoint(GIN(GINConfig(in_dim=1, hidden=8, n_layers=2)), path)
    model = load_model(f"safetensors:{path}", task)
    assert model.interface == "graph-encoder"
    task.check_model(model)
    scores = task.evaluate(model, 0, limit=task.min_limit)  # two graphs of each class
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
