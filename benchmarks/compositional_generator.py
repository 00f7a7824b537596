"""Generator throughput: fmbench's composition documents vs the authors' generator (arXiv:2311.12997).

Both sides build the training documents of the authors' default configuration
(config/gen/conf.yaml: 10 data tokens, inputs of 6, depth 5, 3 functions per position plus the
identity, step-by-step, 50 random training compositions) and the timing covers document
generation only, as the (documents, 48) int64 array each side produces; functions and splits are
built before the clock starts. The reference is rahul13ramesh/compositional_capabilities
(``SyntheticData.generate_document``, stacked with ``np.array`` as their ``generate_corpus`` does)::

    python benchmarks/compositional_generator.py --reference /tmp/cc_ref [--docs 100000]
"""

from __future__ import annotations

import argparse
import contextlib
import os
import random
import sys
from collections.abc import Callable, Iterator

import numpy as np
from _common import best_of, emit, note, ratio, reference_checkout

from fmbench.studies.compositional.generator import CompositionConfig, CompositionWorld

GOAL = 20.0
PARAMS = {
    "n_tokens": 10,
    "input_length": 6,
    "depth": 5,
    "n_functions": 3,
    "step_by_step": True,
    "split": "random",
    "n_train_compositions": 50,
    "with_replacement": True,
}
HOW = (
    "git clone https://github.com/rahul13ramesh/compositional_capabilities and pass its path; "
    "it needs `pip install omegaconf`"
)


def fmbench_generator(n_docs: int) -> Callable[[], np.ndarray]:
    """A call that generates fmbench's ``n_docs`` training documents."""
    world = CompositionWorld(CompositionConfig(**PARAMS, n_train_documents=n_docs), world_seed=0)
    return lambda: world.documents("train", seed=0)


@contextlib.contextmanager
def _sample_accepting_sets() -> Iterator[None]:
    """Let ``random.sample`` take a set as on Python < 3.11 (as a sorted tuple)."""
    sample = random.sample
    random.sample = lambda population, k, **kw: sample(
        tuple(sorted(population)) if isinstance(population, (set, frozenset)) else population, k, **kw
    )
    try:
        yield
    finally:
        random.sample = sample


def reference_generator(root: str, n_docs: int) -> Callable[[], np.ndarray]:
    """A call that generates ``n_docs`` training documents with the authors' code at ``root``."""
    sys.path.insert(0, root)
    from omegaconf import OmegaConf
    from synthetic.functions import CreateFunctions
    from synthetic.generator import SyntheticData
    from synthetic.init import set_seed

    cfg = OmegaConf.load(f"{root}/config/gen/conf.yaml")
    cfg.n_alphabets, cfg.seq_len = PARAMS["n_tokens"], PARAMS["input_length"]
    cfg.direct, cfg.with_replacement, cfg.ndocuments = not PARAMS["step_by_step"], PARAMS["with_replacement"], n_docs
    cfg.function.depth, cfg.function.n_functions = PARAMS["depth"], PARAMS["n_functions"]
    cfg.function.permute, cfg.function.repeat = False, False
    cfg.function.split.strategy = PARAMS["split"]
    cfg.function.split.n_compositions = PARAMS["n_train_compositions"]
    set_seed(cfg.seed)
    with _sample_accepting_sets(), contextlib.redirect_stdout(sys.stderr):
        composed, info = CreateFunctions(cfg).compose()
    data = SyntheticData(cfg, composed, info)
    data.init_tokens()
    return lambda: np.array([data.generate_document("train") for _ in range(n_docs)])


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument(
        "--reference",
        default=os.environ.get("FMBENCH_REF_COMPOSITIONAL_CAPABILITIES"),
        help="checkout of rahul13ramesh/compositional_capabilities (default: $FMBENCH_REF_COMPOSITIONAL_CAPABILITIES)",
    )
    p.add_argument("--docs", type=int, default=100_000, help="documents generated per run")
    p.add_argument("--repeats", type=int, default=3, help="runs per side; the fastest counts")
    args = p.parse_args()

    seconds, docs = best_of(fmbench_generator(args.docs), args.repeats)
    result = {
        "benchmark": "compositional_generator",
        "goal": f"fmbench >= {GOAL:g}x reference documents/s",
        "documents": args.docs,
        "document_length": docs.shape[1],
        "repeats": args.repeats,
        "fmbench_seconds": round(seconds, 4),
        "fmbench_docs_per_s": round(args.docs / seconds),
        "fmbench_tokens_per_s": round(docs.size / seconds),
    }
    note(f"fmbench:   {args.docs} documents in {seconds:.3f} s")

    root = reference_checkout(args.reference, "synthetic/generator.py", HOW)
    ref_rate = None
    if root is not None:
        try:
            generate = reference_generator(str(root), args.docs)
        except ImportError as e:
            note(f"reference: absent (cannot import its dependencies: {e}; {HOW})")
            root = None
    if root is None:
        result["reference"] = "absent"
    else:
        ref_seconds, ref_docs = best_of(generate, args.repeats)
        if ref_docs.shape != docs.shape:
            raise SystemExit(f"reference documents are {ref_docs.shape}, fmbench's {docs.shape}: not the same work")
        ref_rate = args.docs / ref_seconds
        note(f"reference: {args.docs} documents in {ref_seconds:.3f} s")
        result.update(
            {
                "reference": str(root),
                "reference_seconds": round(ref_seconds, 4),
                "reference_docs_per_s": round(ref_rate),
                "reference_tokens_per_s": round(ref_docs.size / ref_seconds),
            }
        )
    result["ratio"] = ratio(args.docs / seconds, ref_rate)
    result["goal_met"] = None if result["ratio"] is None else result["ratio"] >= GOAL
    emit(result)


if __name__ == "__main__":
    main()
