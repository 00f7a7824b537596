"""Tokens/s of the vectorised PCFG sampler vs a straightforward sampler over nltk-style productions.

Both sample the study's cfg3-shaped grammar (fmbench.studies.finetuning.data.PCFGConfig's default) on one
thread: fmbench's ``expand`` (whole strings) and ``sample_texts`` (the first 32 terminals, what the tasks
use), against a recursive sampler over ``nltk.PCFG.productions()`` drawing rules with ``random.Random`` and ``bisect``
over cumulative probabilities (whole strings; for 32-terminal texts it has to derive the whole string and crop it).

    python benchmarks/finetuning_sampler.py [--strings 20000]
"""

from __future__ import annotations

import argparse
import bisect
import random

import numpy as np
from _common import best_of, emit, note, ratio

from fmbench.studies.finetuning.data import PCFGConfig
from fmbench.studies.finetuning.grammar import cfg3
from fmbench.studies.finetuning.sampler import expand, sample_texts

GOAL = 5.0


def nltk_sampler(config: PCFGConfig):  # noqa: ANN201 - returns a closure
    """A recursive sampler over nltk PCFG productions (the reference)."""
    import nltk

    g = cfg3(config.level_sizes, config.terminals, seed=config.grammar_seed)
    text = "\n".join(
        f"{lhs} -> {' '.join(s if s in g.rules else repr(s) for s in rhs)} [{p}]"
        for lhs, options in g.rules.items()
        for rhs, p in options
    )
    pcfg = nltk.PCFG.fromstring(text)
    table: dict = {}
    for prod in pcfg.productions():  # per non-terminal: cumulative probabilities and reversed right-hand sides
        cum, rhs = table.setdefault(prod.lhs(), ([], []))
        cum.append((cum[-1] if cum else 0.0) + prod.prob())
        rhs.append(tuple(reversed(prod.rhs())))

    def sample(rng: random.Random) -> list[str]:
        out, stack = [], [pcfg.start()]
        while stack:
            sym = stack.pop()
            if sym.__class__ is not nltk.Nonterminal:
                out.append(sym)
                continue
            cum, rhs = table[sym]
            stack.extend(rhs[min(bisect.bisect(cum, rng.random()), len(rhs) - 1)])
        return out

    return sample


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--strings", type=int, default=20000)
    p.add_argument("--repeats", type=int, default=3)
    args = p.parse_args()
    config = PCFGConfig(task="count")
    g = config.grammar
    n = args.strings
    t_full, (ids, _) = best_of(lambda: expand(g, 1, np.arange(n)), args.repeats)
    t_crop, texts = best_of(lambda: sample_texts(g, 1, np.arange(n), config.text_length), args.repeats)
    full_rate, crop_rate = len(ids) / t_full, texts.size / t_crop
    note(f"fmbench whole strings {full_rate / 1e6:.2f}M tokens/s; 32-token texts {crop_rate / 1e6:.2f}M tokens/s")
    ref_n = max(1, n // 10)
    try:
        sample = nltk_sampler(config)
    except ImportError:
        note("reference: absent (nltk is not installed; pip install nltk)")
        ref_rate = ref_crop_rate = None
    else:
        t_ref, ref_tokens = best_of(lambda: sum(len(sample(random.Random(i))) for i in range(ref_n)), 1)
        ref_rate, ref_crop_rate = ref_tokens / t_ref, ref_n * config.text_length / t_ref
        note(f"nltk-style whole strings {ref_rate / 1e6:.2f}M tokens/s; 32-token texts {ref_crop_rate / 1e6:.3f}M/s")
    full_ratio = ratio(full_rate, ref_rate)
    emit(
        {
            "benchmark": "finetuning_sampler",
            "ratio": full_ratio,
            "ratio_texts": ratio(crop_rate, ref_crop_rate),
            "goal": f">= {GOAL}x tokens/s on whole strings (and >= 5M tokens/s)",
            "goal_met": full_ratio is not None and full_ratio >= GOAL and full_rate >= 5e6,
            "fmbench_tokens_per_s": round(full_rate),
            "fmbench_text_tokens_per_s": round(crop_rate),
            "reference": "nltk" if ref_rate else "absent",
            "reference_tokens_per_s": round(ref_rate) if ref_rate else None,
            "reference_text_tokens_per_s": round(ref_crop_rate) if ref_crop_rate else None,
            "strings": n,
            "reference_strings": ref_n,
        }
    )


if __name__ == "__main__":
    main()
