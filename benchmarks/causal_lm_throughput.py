"""Continuation log-likelihood throughput: fmbench's causal-LM scorer vs lm-evaluation-harness's HFLM.

Both sides score the same requests with the same SmolLM2-135M-Instruct (float32, 2 CPU
threads): ``--contexts`` coin-flip prompts of 8 to 30 flips in the ICL study's style, each
followed by the same four candidates (", Heads", ", Tails", ", Heads, Heads", ", Tails, Tails"),
so every context is shared by four requests, as in multiple-choice scoring:

* fmbench: ``HFScorer.continuation_logprobs`` (one token-trie walk: each context runs once and
  its key/value cache serves its candidates; only the logits of scored positions computed);
* lm_eval: ``HFLM.loglikelihood`` given the already-loaded model and tokenizer (no hub access),
  which runs context + continuation for every request.

Each side runs at each of ``--batch-sizes`` and is reported at its best. The script checks that
both give the same log-likelihood to every request (to 1e-4 nats). It also times a bare batched
forward loop over the same token sequences (right-padded, length-sorted batches of 32, logits
only): on a GPU (``--device cuda``, bfloat16 for both) the goal there is the scorer's throughput
within 2x of that loop::

    python benchmarks/causal_lm_throughput.py [--contexts 24] [--batch-sizes 8,32,64] [--device cpu]
"""

from __future__ import annotations

import argparse
import os

import numpy as np
import torch
from _common import best_of, emit, note, ratio

from fmbench.causal_lm import HFScorer, default_dtype, load_causal_lm, smollm2_path

GOAL = 2.0
CANDIDATES = (", Heads", ", Tails", ", Heads, Heads", ", Tails, Tails")
PROMPT = "Generate a sequence of 1000 random samples from a weighted coin with 50% Heads and 50% Tails.\n"


def requests(n_contexts: int) -> list[tuple[str, str]]:
    """``n_contexts`` seeded coin-flip prompts, each with every candidate."""
    rng = np.random.default_rng(0)
    contexts = []
    for i in range(n_contexts):
        flips = rng.choice(["Heads", "Tails"], size=8 + i % 23)
        contexts.append(PROMPT + ", ".join(flips))
    return [(c, k) for c in contexts for k in CANDIDATES]


def bare_loop(model: torch.nn.Module, sequences: list[list[int]], device: str, batch_size: int = 32) -> None:
    """Logits of every sequence, in right-padded batches sorted by length; nothing else."""
    order = sorted(sequences, key=len)
    with torch.inference_mode():
        for start in range(0, len(order), batch_size):
            batch = order[start : start + batch_size]
            width = max(map(len, batch))
            ids = torch.zeros((len(batch), width), dtype=torch.long)
            mask = torch.zeros_like(ids)
            for r, s in enumerate(batch):
                ids[r, : len(s)], mask[r, : len(s)] = torch.tensor(s), 1
            model(input_ids=ids.to(device), attention_mask=mask.to(device), use_cache=False).logits.float()
        if device.startswith("cuda"):
            torch.cuda.synchronize()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--contexts", type=int, default=24, help="coin-flip prompts (4 requests each)")
    parser.add_argument("--batch-sizes", default="8,32,64", help="batch sizes tried on each side")
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--repeats", type=int, default=1)
    args = parser.parse_args()
    os.environ["HF_HUB_OFFLINE"] = "1"
    torch.set_num_threads(2)
    sizes = [int(b) for b in args.batch_sizes.split(",")]
    model, tokenizer = load_causal_lm(str(smollm2_path()))
    model = model.to(device=args.device, dtype=default_dtype(args.device))
    pairs = requests(args.contexts)
    note(f"{len(pairs)} requests ({args.contexts} contexts x {len(CANDIDATES)} candidates), device {args.device}")

    ours: dict[int, float] = {}
    for b in sizes:
        scorer = HFScorer(model, tokenizer, "smollm2", batch_size=b)
        ours[b], values = best_of(lambda s=scorer: s.continuation_logprobs(pairs), args.repeats)
        note(f"fmbench HFScorer, batch {b}: {len(pairs) / ours[b]:.1f} requests/s")
    mine = np.array([v.sum() for v in values])
    tokens = [sum(map(len, scorer.encode_pair(c, x))) for c, x in pairs]
    sequences = [c + x for c, x in (scorer.encode_pair(*p) for p in pairs)]

    theirs: dict[int, float] = {}
    try:
        from lm_eval.api.instance import Instance
        from lm_eval.models.huggingface import HFLM
    except ImportError:
        note("reference: absent (lm_eval is not installed: pip install 'lm_eval>=0.4.13,<0.5')")
        ref = None
    else:
        instances = [Instance("loglikelihood", {}, p, i) for i, p in enumerate(pairs)]
        for b in sizes:
            lm = HFLM(pretrained=model, tokenizer=tokenizer, backend="causal", device=args.device, batch_size=b)
            theirs[b], out = best_of(lambda lm=lm: lm.loglikelihood(instances, disable_tqdm=True), args.repeats)
            note(f"lm_eval HFLM, batch {b}: {len(pairs) / theirs[b]:.1f} requests/s")
        ref = np.array([r[0] for r in out])
        note(f"max |fmbench - lm_eval| log-likelihood: {np.abs(mine - ref).max():.2e} nats")
        if np.abs(mine - ref).max() > 1e-4:
            raise SystemExit("fmbench and lm_eval disagree by more than 1e-4 nats")

    bare, _ = best_of(lambda: bare_loop(model, sequences, args.device), args.repeats)
    note(f"bare batched forward loop (batch 32): {len(pairs) / bare:.1f} requests/s")
    best_ours = min(ours.values())
    best_theirs = min(theirs.values()) if theirs else None
    result = ratio(len(pairs) / best_ours, len(pairs) / best_theirs if best_theirs else None)
    vs_bare = round(bare / best_ours, 2)
    gpu = args.device.startswith("cuda")
    emit(
        {
            "benchmark": "causal_lm_throughput",
            "ratio": result,
            "goal": f">= {GOAL}x lm_eval's requests/s" + (", >= 0.5x a bare batched forward loop" if gpu else ""),
            "goal_met": None if result is None else bool(result >= GOAL and (vs_bare >= 0.5 or not gpu)),
            "device": args.device,
            "requests": len(pairs),
            "tokens": int(sum(tokens)),
            "fmbench_seconds": {b: round(s, 3) for b, s in ours.items()},
            "lm_eval_seconds": {b: round(s, 3) for b, s in theirs.items()},
            "bare_loop_seconds": round(bare, 3),
            "ratio_vs_bare_loop": vs_bare,
            "reference": "lm_eval" if ref is not None else "absent",
        }
    )


if __name__ == "__main__":
    main()
