"""Evaluation memory: peak RSS of ``fmbench eval`` vs a process holding the task's whole corpus.

The evaluator streams test documents in batches, so scoring a model must not cost the memory
of the corpus. Three child processes of the same interpreter, each measured by a fresh wrapper
process (``getrusage(RUSAGE_CHILDREN).ru_maxrss``, so no child's peak leaks into another's):

1. ``fmbench eval --task fmbench/ComposeStepByStep-v0 --model baseline:trained --seeds 0 --out R``;
2. the same imports, the whole train and test corpus as int64 arrays (``world.documents("train",
   0)`` and ``("test", 0)``), then one evaluator batch (the trained model's ``greedy_answers`` on
   256 test documents) while holding it;
3. the same as 2 without the corpus: the floor both stand on.

The batch matters: running torch at all costs more memory than this task's corpus (~45 MB), so
a child that never runs the model would sit below any evaluation. Each child ends with
``os._exit`` once its work is done (the CLI's exit status kept): the interpreter's teardown
makes torch touch about 125 MB more of its libraries in every process alike, which would hide
the peaks being compared. ``ratio`` is peak 2 / peak 1; the goal is that the evaluation stays
below the corpus holder::

    python benchmarks/compositional_eval_memory.py [--limit N]
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import tempfile
from pathlib import Path

from _common import emit, note

import fmbench

TASK = "fmbench/ComposeStepByStep-v0"
EXIT = "sys.stdout.flush(); os._exit(status)"  # skip the interpreter's teardown (see above)
CLI = "import os, sys; from fmbench.cli import main; status = main(sys.argv[1:]); " + EXIT
# argv: task id, then "corpus" to hold the whole corpus during the batch
BATCH = (
    """
import os, sys
import numpy as np, torch
import fmbench, fmbench.cli, fmbench.runner
from fmbench.decoding import greedy_answers
from fmbench.models import load_model
task = fmbench.make_task(sys.argv[1])
world = task.world
corpus = [world.documents(split, 0) for split in ("train", "test")] if sys.argv[2:] == ["corpus"] else []
model = load_model("baseline:trained", task).model
with torch.inference_mode():
    greedy_answers(model, torch.from_numpy(world.documents("test", 0, np.arange(256))),
                   world.prompt_length, len(world.vocab))
status = 0
"""
    + EXIT
)
# runs its arguments as a child (its stdout to stderr) and prints the child's peak RSS
WRAPPER = (
    "import resource, subprocess, sys; rc = subprocess.call(sys.argv[1:], stdout=sys.stderr); "
    "print(resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss); sys.exit(rc)"
)
RSS_UNIT = 1 if sys.platform == "darwin" else 1024  # ru_maxrss is bytes on macOS, KiB elsewhere
MB = 1e6


def peak_rss_mb(label: str, command: list[str]) -> float:
    """Peak resident memory of ``command`` run as a fresh process, in MB."""
    note(f"measuring: {label}")
    out = subprocess.run([sys.executable, "-c", WRAPPER, *command], stdout=subprocess.PIPE, text=True)
    if out.returncode:
        raise SystemExit(f"{label}: exit status {out.returncode}")
    return int(out.stdout.split()[-1]) * RSS_UNIT / MB


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--limit", type=int, help="pass --limit to fmbench eval (score fewer test items)")
    args = p.parse_args()

    world = fmbench.make_task(TASK).world
    corpus_mb = sum(world.split_size(s) for s in ("train", "test")) * world.document_length * 8 / MB
    with tempfile.TemporaryDirectory() as tmp:
        evaluate = [
            "eval",
            "--task",
            TASK,
            "--model",
            "baseline:trained",
            "--seeds",
            "0",
            "--out",
            str(Path(tmp) / "r.json"),
            "--no-progress",
        ]
        evaluate += [] if args.limit is None else ["--limit", str(args.limit)]
        eval_mb = peak_rss_mb("fmbench " + " ".join(evaluate), [sys.executable, "-c", CLI, *evaluate])
    corpus_peak_mb = peak_rss_mb("whole corpus + one batch", [sys.executable, "-c", BATCH, TASK, "corpus"])
    floor_mb = peak_rss_mb("one batch", [sys.executable, "-c", BATCH, TASK])
    result = {
        "benchmark": "compositional_eval_memory",
        "task": TASK,
        "goal": "fmbench eval peak RSS below that of a process holding the whole corpus (ratio > 1)",
        "ratio": round(corpus_peak_mb / eval_mb, 3),
        "eval_peak_mb": round(eval_mb, 1),
        "corpus_holder_peak_mb": round(corpus_peak_mb, 1),
        "one_batch_peak_mb": round(floor_mb, 1),
        "corpus_mb": round(corpus_mb, 1),
        "eval_over_one_batch_mb": round(eval_mb - floor_mb, 1),
        "eval_limit": args.limit,
    }
    result["goal_met"] = result["ratio"] > 1
    emit(result)


if __name__ == "__main__":
    main()
