"""Federated training on Flower's simulation engine (Ray): a tiny seeded run, reproducible, with progress."""

from __future__ import annotations

import pytest
import torch

pytest.importorskip("flwr")

from fmbench.studies.federated.flower import RunConfig, average_states, run_federated  # noqa: E402

TINY = dict(
    task="fmbench/FedFashionA0p1C10-v0", rounds=2, samples_per_client=24, batch_size=8, width=4, embedding_dim=8
)


@pytest.mark.slow  # Ray: starts the simulation engine
@pytest.mark.parametrize("method", ["orchestra", "simclr"])
def test_two_rounds_on_the_simulation_engine_are_reproducible(method):
    lines: list[str] = []
    cfg = RunConfig(method=method, **TINY)
    model, history = run_federated(cfg, cpus=2, log=lines.append)
    assert [h["round"] for h in history] == [1, 2] and len(lines) == 2 and "round 2/2" in lines[1]
    assert all(h["clients"] == list(range(10)) and h["samples"] == 10 * 24 for h in history)
    again, history2 = run_federated(cfg, cpus=2, log=lambda _: None)
    assert [h["loss"] for h in history] == [h["loss"] for h in history2]
    assert all(torch.equal(a, b) for a, b in zip(model.state_dict().values(), again.state_dict().values()))


def test_participants_follow_the_fraction_and_the_seed():
    cfg = RunConfig(method="orchestra", **TINY)
    picked = [cfg.participants(100, 0.5, r) for r in (1, 2)]
    assert all(len(p) == 50 and len(set(p.tolist())) == 50 for p in picked)
    assert not (picked[0] == picked[1]).all()
    assert (cfg.participants(100, 0.5, 1) == picked[0]).all()


def test_average_states_weights_by_samples_and_keeps_dtypes():
    a = {"w": torch.tensor([1.0, 2.0]), "n": torch.tensor(4)}
    b = {"w": torch.tensor([3.0, 6.0]), "n": torch.tensor(8)}
    out = average_states([a, b], [1, 3])
    assert out["w"].tolist() == [2.5, 5.0] and out["n"].dtype == torch.int64 and int(out["n"]) == 7
