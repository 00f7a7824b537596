"""Federated self-supervised training on Flower's simulation engine (Ray): Orchestra and SimCLR.

Each round the server picks ``round(participation * n_clients)`` clients from the task's
partition with a generator seeded by ``(seed, round)`` and sends every picked client, on its
own virtual node, the global weights and its partition id; the client trains the method for
the task's local epochs on its images (at most ``samples_per_client`` of them, a CPU budget)
and returns its weights, its method extras (Orchestra's local centroids) and metrics. The
server averages the weights by sample count in partition order, applies the method's server
step (Orchestra: global clustering), and logs the round. Clients run one torch thread and
seed every draw from ``(seed, round, partition)``, so a run is reproducible.

Run::

    python -m fmbench.studies.federated.flower --task fmbench/FedFashionA0p1C10-v0 --method orchestra \\
        --rounds 20 --out runs/orchestra.safetensors

Example:
    >>> cfg = RunConfig(task="fmbench/FedFashionA0p1C10-v0", method="simclr", rounds=1, samples_per_client=64)
    >>> cfg.participants(n_clients=10, participation=0.5, server_round=1).tolist()  # doctest: +SKIP
    [0, 2, 3, 6, 8]
"""

from __future__ import annotations

import argparse
import dataclasses
import logging
import os
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from functools import lru_cache
from typing import Any

import numpy as np
import torch

from fmbench.interfaces import seeded
from fmbench.random_access import stream_key
from fmbench.registry import make_task
from fmbench.studies.federated.methods import MethodConfig, make_method, server_update
from fmbench.studies.federated.task import FederatedTask, images_to_tensor


@dataclass(frozen=True)
class RunConfig:
    """One federated training run: task (partition, participation, local epochs), method and budget."""

    task: str
    method: str
    seed: int = 0
    rounds: int = 10
    batch_size: int = 32
    lr: float = 1e-3
    samples_per_client: int | None = None
    width: int = 32
    embedding_dim: int = 128

    def method_config(self) -> MethodConfig:
        """The method's backbone for the task's images."""
        return MethodConfig(
            in_channels=_task(self.task).source.shape[0], width=self.width, embedding_dim=self.embedding_dim
        )

    def participants(self, n_clients: int, participation: float, server_round: int) -> np.ndarray:
        """The sorted partition ids taking part in ``server_round``."""
        k = max(1, round(participation * n_clients))
        rng = np.random.default_rng([stream_key("federated-round"), self.seed, server_round])
        return np.sort(rng.choice(n_clients, size=k, replace=False))


def initial_model(cfg: RunConfig) -> torch.nn.Module:
    """The method's model at the run's initialisation."""
    return seeded(lambda: make_method(cfg.method, cfg.method_config()), stream_key("federated-init", cfg.seed))


@lru_cache(maxsize=4)
def _task(task_id: str) -> FederatedTask:
    task = make_task(task_id)
    if not isinstance(task, FederatedTask):
        raise ValueError(f"{task_id} is not a federated task")
    return task


def client_images(cfg: RunConfig, partition: int, server_round: int) -> torch.Tensor:
    """The client's training images for a round, (N, C, H, W) floats (a seeded sample if capped)."""
    task = _task(cfg.task)
    indices = task.partitions(cfg.seed)[0].indices(partition)
    if cfg.samples_per_client is not None and len(indices) > cfg.samples_per_client:
        rng = np.random.default_rng([stream_key("federated-sample"), cfg.seed, server_round, partition])
        indices = np.sort(rng.choice(indices, size=cfg.samples_per_client, replace=False))
    return images_to_tensor(task.source.load("train")[0][indices])


def local_training(
    model: torch.nn.Module, images: torch.Tensor, cfg: RunConfig, epochs: int, key: tuple
) -> dict[str, Any]:
    """Train ``model`` on ``images`` for ``epochs``; return its extras and metrics (loss, samples, seconds)."""
    generator = torch.Generator().manual_seed(stream_key("federated-client", *key))
    optimiser = torch.optim.Adam([p for p in model.parameters() if p.requires_grad], lr=cfg.lr)
    model.train()
    model.begin_client()
    start, losses, seen = time.perf_counter(), [], 0
    for _ in range(epochs):
        order = torch.randperm(len(images), generator=generator)
        for i in range(0, len(order) - 1, cfg.batch_size):
            batch = images[order[i : i + cfg.batch_size]]
            if len(batch) < 2:
                continue
            loss = model.loss(batch, generator)
            optimiser.zero_grad()
            loss.backward()
            optimiser.step()
            model.after_step()
            losses.append(loss.item())
            seen += len(batch)
    extras = model.end_client(generator)
    return {
        "extras": extras,
        "loss": float(np.mean(losses)) if losses else float("nan"),
        "samples": seen,
        "seconds": time.perf_counter() - start,
    }


def average_states(states: list[dict[str, torch.Tensor]], weights: list[float]) -> dict[str, torch.Tensor]:
    """Weighted average of state dicts (float64 accumulation, original dtypes kept), in the given order.

    Example:
        >>> average_states([{"w": torch.ones(2)}, {"w": torch.zeros(2)}], [3, 1])["w"].tolist()
        [0.75, 0.75]
    """
    total = float(sum(weights))
    out = {}
    for key, first in states[0].items():
        acc = sum(s[key].double() * (w / total) for s, w in zip(states, weights))
        out[key] = acc.round().to(first.dtype) if not first.is_floating_point() else acc.to(first.dtype)
    return out


def _to_record(tensors: dict[str, torch.Tensor]):
    from flwr.app import Array, ArrayRecord

    return ArrayRecord({k: Array(v.detach().cpu().contiguous().numpy()) for k, v in tensors.items()})


def _from_record(record) -> dict[str, torch.Tensor]:
    return {k: torch.from_numpy(np.array(v.numpy())) for k, v in record.items()}


def _client_app():
    from flwr.app import ConfigRecord, Context, Message, MetricRecord, RecordDict
    from flwr.clientapp import ClientApp

    app = ClientApp()

    @app.train()
    def train(msg: Message, context: Context) -> Message:
        torch.set_num_threads(1)
        config = msg.content["config"]
        cfg = RunConfig(
            **{
                f.name: config[f.name]
                for f in dataclasses.fields(RunConfig)
                if f.name in config and config[f.name] != ""
            }
        )
        partition, server_round = int(config["partition"]), int(config["server-round"])
        model = make_method(cfg.method, cfg.method_config())
        model.load_state_dict(_from_record(msg.content["arrays"]))
        result = local_training(
            model,
            client_images(cfg, partition, server_round),
            cfg,
            int(config["local_epochs"]),
            (cfg.seed, server_round, partition),
        )
        metrics = {
            "num-examples": result["samples"],
            "loss": result["loss"],
            "seconds": result["seconds"],
            "partition": partition,
        }
        content = RecordDict(
            {
                "arrays": _to_record(model.state_dict()),
                "extras": _to_record(result["extras"]),
                "metrics": MetricRecord(metrics),
                "config": ConfigRecord({}),
            }
        )
        return Message(content=content, reply_to=msg)

    return app


def _server_app(cfg: RunConfig, model: torch.nn.Module, history: list[dict[str, Any]], log: Callable[[str], None]):
    from flwr.app import ConfigRecord, Message, MessageType, RecordDict
    from flwr.serverapp import Grid, ServerApp

    task = _task(cfg.task)
    p = task.spec.params
    app = ServerApp()

    @app.main()
    def main(grid: Grid, context) -> None:
        for server_round in range(1, cfg.rounds + 1):
            start = time.perf_counter()
            picked = cfg.participants(int(p["n_clients"]), float(p["participation"]), server_round)
            nodes = _wait_for_nodes(grid, len(picked))
            arrays = _to_record(model.state_dict())
            messages: Iterable[Message] = []
            for node, partition in zip(nodes, picked):
                config = {
                    f.name: ("" if getattr(cfg, f.name) is None else getattr(cfg, f.name))
                    for f in dataclasses.fields(cfg)
                }
                config |= {
                    "partition": int(partition),
                    "server-round": server_round,
                    "local_epochs": int(p["local_epochs"]),
                }
                messages.append(
                    Message(
                        content=RecordDict({"arrays": arrays, "config": ConfigRecord(config)}),
                        message_type=MessageType.TRAIN,
                        dst_node_id=node,
                    )
                )
            replies = list(grid.send_and_receive(messages))
            failed = [r.error.reason for r in replies if r.has_error()]
            if failed or len(replies) != len(picked):
                reason = failed[0] if failed else "no reply"
                raise RuntimeError(
                    f"round {server_round}: {len(failed) or len(picked) - len(replies)} of "
                    f"{len(picked)} clients failed ({reason})"
                )
            replies.sort(key=lambda r: int(r.content["metrics"]["partition"]))
            metrics = [r.content["metrics"] for r in replies]
            samples = [int(m["num-examples"]) for m in metrics]
            model.load_state_dict(average_states([_from_record(r.content["arrays"]) for r in replies], samples))
            server_update(model, [_from_record(r.content["extras"]) for r in replies])
            seconds = time.perf_counter() - start
            row = {
                "round": server_round,
                "clients": [int(m["partition"]) for m in metrics],
                "loss": float(np.average([m["loss"] for m in metrics], weights=samples)),
                "samples": int(sum(samples)),
                "seconds": round(seconds, 3),
                "samples_per_s": round(sum(samples) / seconds, 1),
            }
            history.append(row)
            log(
                f"round {server_round}/{cfg.rounds}: {len(picked)} clients, loss {row['loss']:.4f}, "
                f"{row['samples']} samples in {seconds:.1f} s ({row['samples_per_s']:.0f}/s)"
            )

    return app


def _wait_for_nodes(grid, n: int, timeout: float = 120.0) -> list[int]:
    """The ids of ``n`` connected virtual nodes (they register asynchronously at start-up)."""
    deadline = time.monotonic() + timeout
    while len(nodes := sorted(grid.get_node_ids())) < n:
        if time.monotonic() > deadline:
            raise RuntimeError(f"only {len(nodes)} of {n} simulated clients connected within {timeout:.0f} s")
        time.sleep(0.1)
    return nodes[:n]


def run_federated(
    cfg: RunConfig, cpus: int = 2, log: Callable[[str], None] = print
) -> tuple[torch.nn.Module, list[dict[str, Any]]]:
    """Train ``cfg.method`` federatedly on Flower's simulation engine; return the model and per-round history."""
    from flwr.simulation import run_simulation

    task = _task(cfg.task)
    p = task.spec.params
    if cfg.rounds < 1:
        raise ValueError(f"rounds must be >= 1, got {cfg.rounds}")
    model, history = initial_model(cfg), []
    os.environ.setdefault("RAY_ACCEL_ENV_VAR_OVERRIDE_ON_ZERO", "0")
    per_round = max(1, round(float(p["participation"]) * int(p["n_clients"])))
    run_simulation(
        server_app=_server_app(cfg, model, history, log),
        client_app=_client_app(),
        num_supernodes=per_round,
        backend_config={
            "client_resources": {"num_cpus": 1, "num_gpus": 0.0},
            "init_args": {
                "num_cpus": cpus,
                "include_dashboard": False,
                "log_to_driver": False,
                "logging_level": logging.ERROR,
            },
        },
    )
    if len(history) != cfg.rounds:
        raise RuntimeError(f"the simulation stopped after {len(history)} of {cfg.rounds} rounds")
    return model.eval(), history


def main(argv: list[str] | None = None) -> None:
    from fmbench.checkpoints import save_checkpoint

    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--task", required=True)
    parser.add_argument("--method", choices=("orchestra", "simclr"), required=True)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--rounds", type=int, default=10)
    parser.add_argument("--samples-per-client", type=int)
    parser.add_argument("--cpus", type=int, default=2)
    parser.add_argument("--out", required=True, help="where to write the trained backbone (safetensors)")
    args = parser.parse_args(argv)
    cfg = RunConfig(
        task=args.task,
        method=args.method,
        seed=args.seed,
        rounds=args.rounds,
        samples_per_client=args.samples_per_client,
    )
    model, history = run_federated(cfg, cpus=args.cpus)
    save_checkpoint(
        model.backbone,
        args.out,
        {
            "task": args.task,
            "method": args.method,
            "seed": args.seed,
            "rounds": args.rounds,
            "samples_per_client": args.samples_per_client,
            "history": history,
        },
    )
    print(f"wrote {args.out}")


if __name__ == "__main__":  # run the package's copy: Ray workers unpickle the client app by module name
    from fmbench.studies.federated.flower import main as package_main

    package_main()
