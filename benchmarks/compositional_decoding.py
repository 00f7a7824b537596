"""Evaluation throughput: fmbench's batched greedy decoding vs one-sequence-at-a-time greedy decoding.

Both sides decode the same test documents of ``fmbench/ComposeStepByStep-v0`` greedily from the
prompt with the same model, on one CPU thread under ``torch.inference_mode()`` (fair on a shared
machine): fmbench with ``fmbench.decoding.greedy_answers`` at batch 256 (what the evaluator
runs), the naive loop with ``fmbench.decoding.greedy_generate`` on one sequence at a time, a full
forward pass over the prefix per token. It runs the shipped trained checkpoint and the untrained
model (wrong everywhere: every row must be decoded, the worst case) and checks that both sides
generate the same tokens on the sequences they share::

    python benchmarks/compositional_decoding.py [--sequences 512] [--naive-sequences 64]
"""

from __future__ import annotations

import argparse

import numpy as np
import torch
from _common import best_of, emit, note, ratio

import fmbench
from fmbench.decoding import greedy_answers, greedy_generate
from fmbench.errors import FmbenchError
from fmbench.models import LoadedModel, load_model
from fmbench.task import Task

TASK = "fmbench/ComposeStepByStep-v0"
GOAL = 10.0
BATCH = 256


def trained_model(task: Task) -> tuple[str, LoadedModel]:
    """The shipped trained checkpoint, or the untrained model (said on stderr) if it is missing."""
    try:
        return "trained", load_model("baseline:trained", task)
    except (FmbenchError, OSError) as e:
        note(f"trained checkpoint unavailable ({e}); using baseline:untrained in its place")
        return "untrained (no checkpoint)", load_model("baseline:untrained", task)


def batched(model: torch.nn.Module, docs: torch.Tensor, prompt_length: int, vocab_size: int) -> torch.Tensor:
    """fmbench's evaluator path: ``greedy_answers`` over batches of ``BATCH`` rows."""
    return torch.cat(
        [greedy_answers(model, docs[i : i + BATCH], prompt_length, vocab_size)[0] for i in range(0, len(docs), BATCH)]
    )


def one_at_a_time(model: torch.nn.Module, docs: torch.Tensor, prompt_length: int, vocab_size: int) -> torch.Tensor:
    """The naive loop: ``greedy_generate`` from each prompt alone."""
    n_new = docs.shape[1] - prompt_length
    return torch.cat([greedy_generate(model, doc[None, :prompt_length], n_new, vocab_size) for doc in docs])


def compare(
    label: str,
    model: torch.nn.Module,
    docs: torch.Tensor,
    naive_rows: np.ndarray,
    prompt_length: int,
    vocab_size: int,
    repeats: int,
) -> dict:
    """Time both sides on one model; check they agree on ``naive_rows``."""
    seconds, generated = best_of(lambda: batched(model, docs, prompt_length, vocab_size), repeats)
    naive_seconds, naive = best_of(lambda: one_at_a_time(model, docs[naive_rows], prompt_length, vocab_size), repeats)
    mismatched = int((generated[naive_rows] != naive).any(1).sum())
    if mismatched:
        raise SystemExit(
            f"{label}: batched and one-at-a-time decoding differ on {mismatched} of {len(naive_rows)} sequences"
        )
    target = docs[:, prompt_length:]
    row = {
        "model": label,
        "fmbench_sequences": len(docs),
        "fmbench_seconds": round(seconds, 4),
        "fmbench_sequences_per_s": round(len(docs) / seconds, 1),
        "naive_sequences": len(naive_rows),
        "naive_seconds": round(naive_seconds, 4),
        "naive_sequences_per_s": round(len(naive_rows) / naive_seconds, 1),
        "rows_fully_right": round(float((generated == target).all(1).float().mean()), 4),
    }
    row["ratio"] = ratio(row["fmbench_sequences_per_s"], row["naive_sequences_per_s"])
    note(
        f"{label}: batched {row['fmbench_sequences_per_s']:.0f} seq/s, one at a time "
        f"{row['naive_sequences_per_s']:.1f} seq/s, x{row['ratio']}"
    )
    return row


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--sequences", type=int, default=512, help="test sequences decoded by fmbench")
    p.add_argument("--naive-sequences", type=int, default=64, help="of those, decoded one at a time")
    p.add_argument("--repeats", type=int, default=3, help="runs per side; the fastest counts")
    args = p.parse_args()
    torch.set_num_threads(1)

    task = fmbench.make_task(TASK)
    world = task.world
    n = min(args.sequences, world.split_size("test"))
    index = np.linspace(0, world.split_size("test") - 1, n).astype(np.int64)  # spread over compositions
    docs = torch.from_numpy(world.documents("test", 0, index))
    naive_rows = np.linspace(0, n - 1, min(args.naive_sequences, n)).astype(np.int64)
    trained_label, trained = trained_model(task)
    models = [(trained_label, trained), ("untrained", load_model("baseline:untrained", task))]
    with torch.inference_mode():
        rows = [
            compare(label, m.model, docs, naive_rows, world.prompt_length, len(world.vocab), args.repeats)
            for label, m in models
        ]
    worst = min(r["ratio"] for r in rows)
    emit(
        {
            "benchmark": "compositional_decoding",
            "task": TASK,
            "batch_size": BATCH,
            "torch_threads": 1,
            "goal": f"fmbench >= {GOAL:g}x one-at-a-time sequences/s for every model",
            "ratio": worst,
            "goal_met": worst >= GOAL,
            "models": rows,
        }
    )


if __name__ == "__main__":
    main()
