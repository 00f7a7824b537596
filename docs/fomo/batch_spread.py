"""How far SmolLM2's float32 scores move with the shape of the batch they are computed in.

The vector-env wrappers score the episodes that end at one vector step in one call; the per-env
path scores each alone. Their rewards agree to a few 1e-5 nats on SmolLM2, not to 1e-5. This
script measures, on eight caption / instruction pairs in the reward's prompt format, the sum of
``log p(instruction | caption)`` computed in different ways, against the same sequence in one
full forward pass alone:

- ``stacked_2`` / ``stacked_8``: the same sequence as every row of a batch of 2 or 8;
- ``padded``: beside a longer sequence, right-padded, with an attention mask;
- ``cached_prefix``: the context in one pass, the instruction in a second one on its key/value cache;
- ``scorer_alone`` / ``scorer_batch_of_8``: :class:`LMScorer` (the reward's scorer: token trie,
  shared prefix cached, batched edges) on the pair alone, and on all eight pairs in one call.

Prints and writes ``batch_spread.json`` beside this file (the largest absolute difference per
method, in nats, which are bitwise equal, and the scorer's batch of 8 against the scorer alone:
the vector wrappers' two paths)::

    python docs/fomo/batch_spread.py
"""

from __future__ import annotations

import json
from pathlib import Path

import torch

from fmbench.studies.fomo.lm import LMScorer

PAIRS = [
    ("The agent went to a blue box. At the end, the agent faces a blue box.", "go to the blue box"),
    ("The agent did nothing. At the end, the agent faces a wall.", "go to the red ball"),
    (
        "The agent went to a green box, then went to the yellow key. At the end, the agent faces the yellow key.",
        "go to the yellow key",
    ),
    ("The agent went to a blue key. At the end, the agent faces a blue key.", "pick up the blue key"),
    (
        "The agent went to a green box, then picked up a green box, then went to the purple key, then went to "
        "the grey key. At the end, the agent faces the grey key and carries a green box.",
        "pick up a green box",
    ),
    (
        "The agent picked up the red ball. At the end, the agent faces nothing and carries the red ball.",
        "pick up the red ball",
    ),
    ("The agent went to the grey door. At the end, the agent faces the grey door.", "open the grey door"),
    (
        "The agent went to a green box, then went to the grey box, then picked up the grey box, then went to the "
        "grey key. At the end, the agent faces the grey key and carries the grey box.",
        "put the grey box next to the grey key",
    ),
]


def answer_logprob(logits: torch.Tensor, ids: list[int], n_context: int) -> float:
    """Sum of the answer tokens' log-probabilities from one row's logits (row position i predicts token i + 1)."""
    logp = torch.log_softmax(logits.float(), -1).double()
    rows = torch.arange(n_context - 1, len(ids) - 1)
    return float(logp[rows, torch.tensor(ids[n_context:])].sum())


@torch.inference_mode()
def raw_scores(model: torch.nn.Module, context: list[int], answer: list[int], longer: list[int]) -> dict[str, float]:
    """One sequence's answer log-probability, computed alone and in the batch shapes above."""
    ids = context + answer
    n = len(context)
    row = torch.tensor([ids])
    out = {"alone": answer_logprob(model(input_ids=row).logits[0], ids, n)}
    for k in (2, 8):
        out[f"stacked_{k}"] = answer_logprob(model(input_ids=row.repeat(k, 1)).logits[0], ids, n)
    width = max(len(ids), len(longer))
    batch = torch.zeros((2, width), dtype=torch.long)
    mask = torch.zeros((2, width), dtype=torch.long)
    for r, seq in enumerate((ids, longer)):
        batch[r, : len(seq)], mask[r, : len(seq)] = torch.tensor(seq), 1
    out["padded"] = answer_logprob(model(input_ids=batch, attention_mask=mask).logits[0], ids, n)
    first = model(input_ids=torch.tensor([context]), use_cache=True)
    rest = model(input_ids=torch.tensor([answer[:-1]]), cache=first.past_key_values) if len(answer) > 1 else None
    logits = first.logits[0, -1:] if rest is None else torch.cat([first.logits[0, -1:], rest.logits[0]])
    out["cached_prefix"] = answer_logprob(torch.cat([first.logits[0, :-1], logits]), ids, n)
    return out


def main() -> None:
    torch.set_num_threads(1)
    scorer = LMScorer.default()
    model = scorer.model.eval()
    requests = [(scorer.prefix_ids + scorer.tokens(scorer.context_piece(c)), scorer.tokens(" " + i)) for c, i in PAIRS]
    longest = max((c + a for c, a in requests), key=len)
    batch = LMScorer.default().logprobs(PAIRS)
    methods: dict[str, list[float]] = {}
    for k, ((context, answer), pair) in enumerate(zip(requests, PAIRS)):
        longer = longest if len(context + answer) < len(longest) else longest + longest[-4:]
        scores = raw_scores(model, context, answer, longer)
        scores["scorer_alone"] = float(LMScorer.default().logprobs([pair])[0])
        scores["scorer_batch_of_8"] = float(batch[k])
        for name, value in scores.items():
            methods.setdefault(name, []).append(value - scores["alone"])
    result = {
        "lm": scorer.name,
        "pairs": len(PAIRS),
        "torch": torch.__version__,
        "threads": 1,
        "max_abs_difference_from_alone": {
            m: max(abs(d) for d in diffs) for m, diffs in methods.items() if m != "alone"
        },
        "bitwise_equal_to_alone": {m: all(d == 0.0 for d in diffs) for m, diffs in methods.items() if m != "alone"},
        "max_abs_scorer_batch_of_8_minus_scorer_alone": max(
            abs(b - a) for a, b in zip(methods["scorer_alone"], methods["scorer_batch_of_8"])
        ),
    }
    print(json.dumps(result, indent=2))
    (Path(__file__).parent / "batch_spread.json").write_text(json.dumps(result, indent=2) + "\n")


if __name__ == "__main__":
    main()
