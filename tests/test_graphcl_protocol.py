"""The graph-encoder evaluation protocol: known answers, the untrained twin, bad encoders and graphs."""

from __future__ import annotations

import numpy as np
import pytest
import torch

pytest.importorskip("torch_geometric")

from torch_geometric.data import Data  # noqa: E402

from fmbench.errors import ModelError  # noqa: E402
from fmbench.nn.gin import GIN, GINConfig  # noqa: E402
from fmbench.studies.graphcl.augment import drop_style_edges  # noqa: E402
from fmbench.studies.graphcl.checks import GraphError, check_graph  # noqa: E402
from fmbench.studies.graphcl.generator import GraphConfig, synthetic_graph  # noqa: E402
from fmbench.studies.graphcl.protocol import (  # noqa: E402
    embed,
    evaluate_encoder,
    probe_accuracies,
    separability,
    stratified_split,
)


def _graphs(first: int, n: int) -> list[Data]:
    return [synthetic_graph(GraphConfig(multiplier=2), 0, c, first + i) for c in range(6) for i in range(n)]


TRAIN, TEST = _graphs(0, 6), _graphs(6, 6)


class LabelOracle(torch.nn.Module):
    """Reads the answer off the batch: one-hot labels (plus a learnable scale so it has a parameter)."""

    def __init__(self) -> None:
        super().__init__()
        self.scale = torch.nn.Parameter(torch.ones(1))

    def forward(self, batch):
        return torch.nn.functional.one_hot(batch.y, 6).float() * self.scale


class Constant(torch.nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.w = torch.nn.Linear(1, 4)

    def forward(self, batch):
        return self.w(torch.ones(batch.num_graphs, 1))


class Broken(torch.nn.Module):
    def __init__(self, mode: str) -> None:
        super().__init__()
        self.mode, self.w = mode, torch.nn.Linear(1, 1)

    def forward(self, batch):
        if self.mode == "shape":
            return torch.zeros(batch.num_graphs + 1, 3)
        if self.mode == "nan":
            return torch.full((batch.num_graphs, 3), float("nan"))
        if self.mode == "tuple":
            return (torch.zeros(batch.num_graphs, 3),)
        raise RuntimeError("boom")


def test_label_oracle_scores_perfectly_and_its_twin_is_stored_beside_it():
    m = evaluate_encoder(LabelOracle(), TRAIN, TEST, seed=0, relevant=lambda b, g: drop_style_edges(b, 0.2, g))
    assert m["probe_accuracy"] == m["svm_accuracy"] == 1.0
    assert m["invariance_relevant"] == pytest.approx(1.0) and m["invariance_generic"] == pytest.approx(1.0)
    assert m["separability"] > 1.9  # same class: similarity 1; other class: (1 + 0) / 2
    assert m["probe_accuracy_untrained"] == pytest.approx(1 / 6)  # the twin's scale is re-initialised to 0
    assert m["probe_gain"] == m["probe_accuracy"] - m["probe_accuracy_untrained"]


@pytest.mark.parametrize("relevant", [None, lambda b, g: drop_style_edges(b, 0.2, g)])
def test_progress_bar_counts_every_batch_of_every_stage(monkeypatch, capfd, relevant):
    import fmbench.studies.graphcl.protocol as protocol

    bars = []

    class Recorder(protocol.tqdm):
        def __init__(self, *args, **kwargs):
            super().__init__(*args, **kwargs)
            self.stages = []
            bars.append(self)

        def set_postfix_str(self, s="", refresh=True):
            self.stages.append(s)
            super().set_postfix_str(s, refresh)

    monkeypatch.setattr(protocol, "tqdm", Recorder)
    evaluate_encoder(Constant(), TRAIN, TEST, seed=0, relevant=relevant, batch_size=8, progress=True)
    (bar,) = bars
    views = 2 if relevant else 1  # 36 graphs: 5 batches of 8 per pass over train or test
    assert bar.n == bar.total == 2 * (5 + 5) + views * 3 * 5 and bar.desc.startswith("seed 0")
    assert bar.stages[0] == "encoder: embedding" and "untrained twin: fitting probes" in bar.stages
    assert "seed 0" in capfd.readouterr().err
    evaluate_encoder(Constant(), TRAIN, TEST, seed=0, batch_size=8)
    assert capfd.readouterr().err == ""  # no bar unless asked


def test_constant_encoder_is_at_chance_and_not_separable():
    m = evaluate_encoder(Constant(), TRAIN, TEST, seed=0)
    assert m["probe_accuracy"] == pytest.approx(1 / 6) and m["separability"] == pytest.approx(1.0)
    assert "invariance_relevant" not in m


def test_probe_accuracies_on_separable_and_shuffled_labels():
    rng = np.random.default_rng(0)
    y = np.repeat(np.arange(3), 30)
    z = np.eye(3)[y] * 5 + rng.normal(0, 0.1, (90, 3))
    assert probe_accuracies(z, y, z, y, seed=0) == {"probe_accuracy": 1.0, "svm_accuracy": 1.0}
    with pytest.raises(ValueError, match="two classes"):
        probe_accuracies(z, np.zeros(90, dtype=np.int64), z, y, seed=0)


def test_separability_known_values():
    z = torch.tensor([[1.0, 0.0], [1.0, 0.0], [0.0, 1.0], [0.0, 1.0]])
    assert separability(z, np.array([0, 0, 1, 1])) == pytest.approx(2.0)
    assert separability(z, np.array([0, 1, 0, 1])) == pytest.approx(0.5)


@pytest.mark.parametrize(
    "mode,message",
    [
        ("shape", r"shape \(13, 3\), expected \(12, d\)"),
        ("nan", "NaN"),
        ("tuple", "returned tuple"),
        ("raise", "RuntimeError: boom"),
    ],
)
def test_broken_encoders_name_the_batch(mode, message):
    with pytest.raises(ModelError, match=message) as e:
        embed(Broken(mode), TEST[:12], batch_size=12)
    assert "batch of graphs 0-11" in str(e.value)


def test_width_must_not_change_between_batches():
    class Growing(torch.nn.Module):
        def forward(self, batch):
            return torch.zeros(batch.num_graphs, batch.num_graphs)

    with pytest.raises(ModelError, match="batch of graphs 4-5.*width 2 after 4"):
        embed(Growing(), TEST[:6], batch_size=4)


def test_non_module_encoder_is_refused():
    with pytest.raises(ModelError, match="torch.nn.Module"):
        evaluate_encoder(lambda b: torch.zeros(b.num_graphs, 2), TRAIN, TEST, seed=0)


@pytest.mark.parametrize(
    "graph,message",
    [
        (Data(x=torch.ones(3, 1), edge_index=torch.tensor([[0, 1], [1, 3]])), "refers to node 3 but the graph has 3"),
        (Data(x=torch.ones(3, 1), edge_index=torch.tensor([[0, -1], [1, 0]])), "refers to node -1"),
        (Data(x=torch.ones(0, 1), edge_index=torch.zeros(2, 0, dtype=torch.long)), "empty graph"),
        (Data(edge_index=torch.tensor([[0], [1]]), num_nodes=2), "missing node features"),
        (Data(x=torch.ones(2), edge_index=torch.tensor([[0], [1]])), "2-D float tensor"),
        (Data(x=torch.tensor([[1.0], [float("nan")]]), edge_index=torch.tensor([[0], [1]])), "NaN"),
        (Data(x=torch.ones(2, 1), edge_index=torch.tensor([[0.0], [1.0]])), "int64"),
    ],
)
def test_malformed_graphs_are_named(graph, message):
    with pytest.raises(GraphError, match=message):
        check_graph(graph, "graph 7")
    with pytest.raises(GraphError, match="graph 3: "):
        embed(GIN(GINConfig(in_dim=1)), TEST[:3] + [graph], batch_size=2)


def test_stratified_split_is_seeded_disjoint_and_balanced():
    graphs = _graphs(0, 10)
    train, test = stratified_split(graphs, 0.3, seed=0)
    assert len(train) + len(test) == 60 and np.bincount([int(g.y) for g in test]).tolist() == [3] * 6
    assert not {id(g) for g in train} & {id(g) for g in test}
    again, other = stratified_split(graphs, 0.3, seed=0)[1], stratified_split(graphs, 0.3, seed=1)[1]
    assert [id(g) for g in again] == [id(g) for g in test] != [id(g) for g in other]
    with pytest.raises(ValueError, match="test_fraction"):
        stratified_split(graphs, 1.0, seed=0)
