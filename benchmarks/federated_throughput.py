"""Federated training throughput: a round of Orchestra on Flower's simulation engine vs centralised training.

fmbench's Flower run (``fmbench.studies.federated.flower``) trains Orchestra on
``fmbench/FedFashionA0p1C10-v0`` (10 clients, all taking part, 1 local epoch, ``--samples``
images per client per round) on Ray with ``--cpus`` one-thread workers; after a warm-up round,
its samples/s over the timed rounds are compared with training the same model on the same
images (the union of the clients' samples of a round) in one process with ``--cpus`` torch
threads — the limit, with no federation at all. Ratio = federated / centralised (goal ≥ 0.5)::

    python benchmarks/federated_throughput.py [--samples 600] [--rounds 3] [--cpus 2]
"""

from __future__ import annotations

import argparse
import time

import torch
from _common import emit, note

from fmbench.studies.federated.flower import RunConfig, client_images, initial_model, local_training, run_federated

GOAL = 0.5


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--samples", type=int, default=600, help="images per client per round")
    parser.add_argument("--rounds", type=int, default=3, help="rounds, the first being a warm-up")
    parser.add_argument("--cpus", type=int, default=2)
    args = parser.parse_args()
    cfg = RunConfig(
        task="fmbench/FedFashionA0p1C10-v0", method="orchestra", rounds=args.rounds, samples_per_client=args.samples
    )
    start = time.perf_counter()
    _, history = run_federated(cfg, cpus=args.cpus, log=note)
    total = time.perf_counter() - start
    timed = history[1:]
    fed_rate = sum(h["samples"] for h in timed) / sum(h["seconds"] for h in timed)
    torch.set_num_threads(args.cpus)
    images = torch.cat([client_images(cfg, c, 2) for c in history[1]["clients"]])
    model = initial_model(cfg)
    result = local_training(model, images, cfg, epochs=1, key=("central",))
    central_rate = result["samples"] / result["seconds"]
    note(
        f"federated: {fed_rate:,.0f} samples/s ({len(timed) / sum(h['seconds'] for h in timed):.3f} rounds/s); "
        f"centralised: {central_rate:,.0f} samples/s on {args.cpus} threads"
    )
    emit(
        {
            "benchmark": "federated_throughput",
            "goal": GOAL,
            "method": "orchestra",
            "clients_per_round": 10,
            "samples_per_client": args.samples,
            "cpus": args.cpus,
            "federated_samples_per_s": round(fed_rate, 1),
            "rounds_per_s": round(len(timed) / sum(h["seconds"] for h in timed), 4),
            "first_round_s": history[0]["seconds"],
            "whole_run_s": round(total, 1),
            "centralised_samples_per_s": round(central_rate, 1),
            "ratio": round(fed_rate / central_rate, 3),
            "goal_met": fed_rate / central_rate >= GOAL,
        }
    )


if __name__ == "__main__":
    main()
