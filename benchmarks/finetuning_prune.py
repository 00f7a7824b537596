"""Seconds for a pruning sweep over K: one gradient pass for all K (``prune_sweep``) vs one pass per K.

Both rank the MLP units of the shipped ``finetuned_c0`` checkpoint by ``|grad * weight|`` of the count-b
answer loss on the task's saliency documents and score count-a accuracy with the top-K units zeroed, on
one CPU thread. The reference (``prune_sweep_one_pass_per_k``) recomputes the ranking and copies the model
for every K; fmbench computes the ranking once and scores every K in one pass over the documents
(``GPT.masked_last_logits``: the K share each block's work while their masks agree, a K's MLP output is
the unmasked one less its pruned units' part, and the last block runs at the answer's position only).
The two are checked to give the same accuracies.

    python benchmarks/finetuning_prune.py [--ks 16] [--saliency 1024] [--eval 512]
"""

from __future__ import annotations

import argparse

import numpy as np
import torch
from _common import best_of, emit, note

import fmbench
from fmbench.models import load_model
from fmbench.studies.finetuning.evaluators import prune_sweep, prune_sweep_one_pass_per_k

TASK = "fmbench/PCFGFineTuneCountB0-v0"
GOAL = 10.0


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--ks", type=int, default=16, help="number of K values (0, 2, 4, ...)")
    p.add_argument("--saliency", type=int, default=1024, help="documents of the gradient pass")
    p.add_argument("--eval", type=int, default=512, help="count-a documents scored per K")
    p.add_argument("--repeats", type=int, default=2)
    args = p.parse_args()
    torch.set_num_threads(1)
    task = fmbench.make_task(TASK)
    model = load_model("baseline:finetuned", task).model
    pos = task.config.answer_position
    sal = torch.from_numpy(task.documents("train", 0, np.arange(args.saliency)))
    ev = torch.from_numpy(task.documents("capability_test", 0, np.arange(args.eval)))
    ks = tuple(range(0, 2 * args.ks, 2))
    t_fast, fast = best_of(lambda: prune_sweep(model, sal, ev, pos, ks), args.repeats)
    t_ref, ref = best_of(lambda: prune_sweep_one_pass_per_k(model, sal, ev, pos, ks), 1)
    if fast != ref:
        raise SystemExit(f"the sweeps disagree: {fast} vs {ref}")
    note(f"one gradient pass: {t_fast:.2f} s; one pass per K: {t_ref:.2f} s ({len(ks)} K values)")
    ratio = round(t_ref / t_fast, 2)
    emit(
        {
            "benchmark": "finetuning_prune",
            "ratio": ratio,
            "goal": f">= {GOAL}x",
            "goal_met": ratio >= GOAL,
            "fmbench_seconds": round(t_fast, 3),
            "reference_seconds": round(t_ref, 3),
            "ks": len(ks),
            "saliency_documents": args.saliency,
            "eval_documents": args.eval,
        }
    )


if __name__ == "__main__":
    main()
