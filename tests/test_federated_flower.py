"""Federated training on Flower's simulation engine (Ray): a tiny seeded run equals the same run in process."""

from __future__ import annotations

import numpy as np
import pytest
import torch

pytest.importorskip("flwr")

from fmbench.registry import make_task  # noqa: E402
from fmbench.studies.federated.flower import (  # noqa: E402
    RunConfig,
    average_states,
    client_images,
    initial_model,
    local_training,
    run_federated,
)
from fmbench.studies.federated.methods import make_method, server_update  # noqa: E402

TINY = dict(
    task="fmbench/FedFashionA0p1C10-v0", rounds=2, samples_per_client=24, batch_size=8, width=4, embedding_dim=8
)


def _replay(cfg: RunConfig) -> tuple[torch.nn.Module, list[float]]:
    """The same federated run as a plain in-process loop: clients one after another, no Flower, no Ray."""
    params = make_task(cfg.task).spec.params
    model, losses = initial_model(cfg), []
    for server_round in range(1, cfg.rounds + 1):
        states, extras, samples, round_losses = [], [], [], []
        for partition in cfg.participants(int(params["n_clients"]), float(params["participation"]), server_round):
            client = make_method(cfg.method, cfg.method_config())
            client.load_state_dict(model.state_dict())
            images = client_images(cfg, int(partition), server_round)
            threads = torch.get_num_threads()
            torch.set_num_threads(1)  # as each simulated client runs; the server step runs as the server's does
            try:
                key = (cfg.seed, server_round, int(partition))
                out = local_training(client, images, cfg, int(params["local_epochs"]), key)
            finally:
                torch.set_num_threads(threads)
            states.append({k: v.clone() for k, v in client.state_dict().items()})
            extras.append(out["extras"])
            samples.append(out["samples"])
            round_losses.append(out["loss"])
        model.load_state_dict(average_states(states, samples))
        server_update(model, extras)
        losses.append(float(np.average(round_losses, weights=samples)))
    return model, losses


@pytest.mark.slow  # Ray: starts the simulation engine
def test_two_rounds_on_the_simulation_engine_equal_the_same_run_in_process():
    """Orchestra (weights, local centroids and the server's clustering step) over Flower equals a plain loop."""
    lines: list[str] = []
    cfg = RunConfig(method="orchestra", **TINY)
    model, history = run_federated(cfg, cpus=2, log=lines.append)
    assert [h["round"] for h in history] == [1, 2] and len(lines) == 2 and "round 2/2" in lines[1]
    assert all(h["clients"] == list(range(10)) and h["samples"] == 10 * 24 for h in history)
    again, losses = _replay(cfg)
    assert [h["loss"] for h in history] == losses
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
