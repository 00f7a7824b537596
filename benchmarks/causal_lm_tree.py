"""The concept-learning probability tree: the scorer's KV-cache reuse vs each path as its own forward pass.

The ICL study's concept-learning judgment scores every continuation of depth 5 over two
branches (", Heads" / ", Tails") after a concept prompt: 32 paths sharing one context and,
level by level, their prefixes. Same SmolLM2-135M-Instruct, float32, 2 CPU threads:

* fmbench: ``HFScorer.tree_logprobs`` (the context once, then each shared path prefix once,
  from the key/value cache);
* separate: each of the 32 paths as one full forward pass of context + path
  (``HFScorer.token_logprobs_uncached``), one at a time.

It checks that both give every path the same log-probability (to 1e-5 nats)::

    python benchmarks/causal_lm_tree.py [--flips 24] [--depth 5]
"""

from __future__ import annotations

import argparse
import itertools
import os

import numpy as np
import torch
from _common import best_of, emit, note, ratio

from fmbench.causal_lm import HFScorer, load_causal_lm, smollm2_path

GOAL = 5.0
BRANCHES = (", Heads", ", Tails")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--flips", type=int, default=24, help="length of the concept sequence in the prompt")
    parser.add_argument("--depth", type=int, default=5)
    parser.add_argument("--repeats", type=int, default=2)
    args = parser.parse_args()
    os.environ["HF_HUB_OFFLINE"] = "1"
    torch.set_num_threads(2)
    model, tokenizer = load_causal_lm(str(smollm2_path()))
    scorer = HFScorer(model, tokenizer, "smollm2", batch_size=32)
    concept = itertools.islice(itertools.cycle(["Heads", "Tails", "Tails"]), args.flips)  # the concept 011
    context = "Generate a sequence of coin flips.\n" + ", ".join(concept)
    paths = ["".join(p) for p in itertools.product(BRANCHES, repeat=args.depth)]
    note(f"{len(paths)} paths of depth {args.depth} after a {len(scorer.encode(context))}-token context")

    tree_s, tree = best_of(lambda: scorer.tree_logprobs(context, list(BRANCHES), args.depth), args.repeats)
    note(f"fmbench tree_logprobs: {tree_s:.3f} s")
    requests = [scorer.encode_pair(context, p) for p in paths]
    sep_s, separate = best_of(lambda: [scorer.token_logprobs_uncached(*r).sum() for r in requests], args.repeats)
    note(f"separate forward passes: {sep_s:.3f} s")
    diff = float(np.abs(tree - np.array(separate)).max())
    note(f"max |tree - separate| log-probability: {diff:.2e} nats")
    if diff > 1e-5:
        raise SystemExit("the tree and the separate passes disagree by more than 1e-5 nats")
    result = ratio(1 / tree_s, 1 / sep_s)
    emit(
        {
            "benchmark": "causal_lm_tree",
            "ratio": result,
            "goal": f">= {GOAL}x faster than separate forward passes, same probabilities to 1e-5",
            "goal_met": bool(result >= GOAL),
            "paths": len(paths),
            "fmbench_seconds": round(tree_s, 4),
            "separate_seconds": round(sep_s, 4),
            "max_abs_diff_nats": diff,
        }
    )


if __name__ == "__main__":
    main()
