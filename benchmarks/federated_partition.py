"""Partition time: fmbench's client partitioners vs flwr-datasets and the authors' sampler (arXiv:2205.11506).

Both comparisons split the 60,000 Fashion-MNIST training labels among 100 clients at alpha 0.1 and
1.0; each figure is the fastest of ``--repeats`` runs.

(a) ``dirichlet(labels, 100, alpha, seed=42, min_size=10)`` against flwr-datasets'
``DirichletPartitioner(num_partitions=100, partition_by="label", alpha=alpha, min_partition_size=10,
self_balancing=False, seed=42)`` (the same guarantees: per-class Dirichlet split, every sample
assigned, redrawn until every client has 10 samples), a fresh one per run, assigned an in-memory
``datasets.Dataset`` of the labels (built once, off the clock) and timed over its first
``load_partition(0)``, which computes the whole partition; most of that time is its conversion
of the label column to a list. fmbench's ``FmbenchPartitioner("dirichlet", ...)`` adapter is timed
the same way (first ``load_partition(0)`` on the same data set) and reported too.

(b) ``balanced_dirichlet(labels, 100, alpha, seed=0, test_labels=<the 10,000 test labels>)``
against the authors' partition code, akhilmathurs/orchestra's ``sampler.py``. That file is a
script without functions (argparse, torchvision downloads, pickle writes), so the benchmark parses
it (``ast``) and runs, in-process, its top-level statements from ``all_ids_train = ...`` on,
leaving out every statement that prints or opens a file (its sanity-check prints and pickle
dumps): the class index lists, the Dirichlet draw, its 100 balancing sweeps, the per-class
counts and both splits' per-client index lists. It gets ``train_data``/``test_data`` objects whose
``targets`` are the label arrays, ``args`` (100 clients, alpha, ``use_IID`` false,
``use_balance`` true), the class and sample counts, and ``np.random.seed(0)`` before each run, as
the script seeds. No file is written and the checkout is not modified. Its split drops each
(client, class) remainder; both sides' assigned samples and client size ranges are reported.

The JSON line's ``ratio`` is the smaller over the alphas of flwr-datasets' time over
``dirichlet``'s (goal 5), ``reference_ratio`` the smaller of the authors' time over
``balanced_dirichlet``'s (goal 1; ``null`` without ``--reference``); each alpha's figures are under
``alpha_0.1`` and ``alpha_1``::

    python benchmarks/federated_partition.py --reference /tmp/orchestra [--repeats 5]
"""

from __future__ import annotations

import argparse
import ast
import os
import types
import warnings
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
from _common import best_of, emit, note, ratio, reference_checkout

from fmbench.fashion_mnist import load_fashion_mnist
from fmbench.studies.federated.partition import balanced_dirichlet, dirichlet

GOAL_FLWR = 5.0
GOAL_REFERENCE = 1.0
ALPHAS = (0.1, 1.0)
CLIENTS = 100
HOW = "git clone https://github.com/akhilmathurs/orchestra and pass its path"


def _size_range(sizes: np.ndarray) -> list[int]:
    """``[min, max]`` of client sizes."""
    return [int(sizes.min()), int(sizes.max())]


def flwr_first_load(labels: np.ndarray, alpha: float, repeats: int) -> dict[str, Any] | None:
    """Best times of flwr-datasets' and fmbench's partitioners over a first ``load_partition(0)``, or
    ``None`` (said on stderr) when flwr-datasets is not installed.

    Example:
        >>> flwr_first_load(np.repeat(np.arange(10), 100), 1.0, 1)["flwr_s"] > 0  # doctest: +SKIP
        True
    """
    try:
        import datasets
        from flwr_datasets.partitioner import DirichletPartitioner

        from fmbench.studies.federated.flwr import FmbenchPartitioner
    except ImportError as e:
        note(f"flwr-datasets: absent ({e}; pip install 'fmbench[fl]')")
        return None
    rows = datasets.Dataset.from_dict({"label": labels})

    def first_load(make: Callable[[], Any]) -> Callable[[], Any]:
        partitioner = make()
        partitioner.dataset = rows
        return lambda: partitioner.load_partition(0)

    def run(make: Callable[[], Any]) -> float:
        best = float("inf")
        for _ in range(max(1, repeats)):  # a fresh partitioner per run, built off the clock
            seconds, _ = best_of(first_load(make), 1)
            best = min(best, seconds)
        return best

    with warnings.catch_warnings():  # flwr-datasets warns at every redraw for min_partition_size
        warnings.simplefilter("ignore")
        flwr_s = run(
            lambda: DirichletPartitioner(
                num_partitions=CLIENTS,
                partition_by="label",
                alpha=alpha,
                min_partition_size=10,
                self_balancing=False,
                seed=42,
            )
        )
    adapter_s = run(lambda: FmbenchPartitioner("dirichlet", CLIENTS, seed=42, alpha=alpha, min_size=10))
    return {"flwr_s": flwr_s, "adapter_s": adapter_s}


def reference_partition(root: Path) -> Callable[[np.ndarray, np.ndarray, float], dict[str, Any]]:
    """A call running the partition statements of the authors' ``sampler.py`` at ``root`` on given labels.

    Example:
        >>> run = reference_partition(Path("/tmp/orchestra"))  # doctest: +SKIP
        >>> run(np.repeat(np.arange(10), 600), np.repeat(np.arange(10), 100), 1.0)["n_clients"]  # doctest: +SKIP
        100
    """
    source = (root / "sampler.py").read_text()
    body = ast.parse(source).body
    start = next(
        i
        for i, node in enumerate(body)
        if isinstance(node, ast.Assign) and any(getattr(t, "id", None) == "all_ids_train" for t in node.targets)
    )
    kept = [
        node
        for node in body[start:]
        if not any(call in ast.get_source_segment(source, node) for call in ("print(", "open("))
    ]
    code = compile(ast.Module(body=kept, type_ignores=[]), str(root / "sampler.py"), "exec")

    def run(train: np.ndarray, test: np.ndarray, alpha: float) -> dict[str, Any]:
        namespace = {
            "np": np,
            "n_classes": int(train.max()) + 1,
            "args": argparse.Namespace(n_clients=CLIENTS, alpha=alpha, use_IID=False, use_balance=True),
            "train_data": types.SimpleNamespace(targets=train),
            "n_samples_train": len(train),
            "test_data": types.SimpleNamespace(targets=test),
            "n_samples_test": len(test),
        }
        np.random.seed(0)
        exec(code, namespace)
        return namespace

    return run


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument(
        "--reference",
        default=os.environ.get("FMBENCH_REF_ORCHESTRA"),
        help="checkout of akhilmathurs/orchestra (default: $FMBENCH_REF_ORCHESTRA)",
    )
    p.add_argument("--repeats", type=int, default=5, help="runs per side; the fastest counts")
    args = p.parse_args()
    _, train = load_fashion_mnist("train")
    _, test = load_fashion_mnist("test")
    root = reference_checkout(args.reference, "sampler.py", HOW)
    run_reference = None if root is None else reference_partition(root)
    result: dict[str, Any] = {
        "benchmark": "federated_partition",
        "samples": len(train),
        "test_samples": len(test),
        "clients": CLIENTS,
        "repeats": args.repeats,
        "reference": "absent" if root is None else str(root),
        "goal": f"dirichlet >= {GOAL_FLWR:g}x flwr-datasets DirichletPartitioner (first load_partition); "
        f"balanced_dirichlet >= {GOAL_REFERENCE:g}x the authors' sampler.py partition; both alphas",
    }
    flwr_ratios, reference_ratios = [], []
    for alpha in ALPHAS:
        row: dict[str, Any] = {}
        seconds, part = best_of(
            lambda alpha=alpha: dirichlet(train, CLIENTS, alpha, seed=42, min_size=10), args.repeats
        )
        row.update(dirichlet_s=round(seconds, 5), dirichlet_client_sizes=_size_range(part.sizes))
        peer = flwr_first_load(train, alpha, args.repeats)
        if peer is not None:
            flwr_ratios.append(ratio(1 / seconds, 1 / peer["flwr_s"]))
            row.update(
                flwr_s=round(peer["flwr_s"], 4),
                adapter_s=round(peer["adapter_s"], 4),
                ratio_flwr=flwr_ratios[-1],
                ratio_flwr_adapter=ratio(1 / peer["adapter_s"], 1 / peer["flwr_s"]),
            )
            note(
                f"alpha {alpha}: dirichlet {seconds * 1e3:.2f} ms, adapter {peer['adapter_s'] * 1e3:.1f} ms, "
                f"flwr-datasets {peer['flwr_s'] * 1e3:.1f} ms"
            )
        seconds, (part, test_part) = best_of(
            lambda alpha=alpha: balanced_dirichlet(train, CLIENTS, alpha, seed=0, test_labels=test), args.repeats
        )
        row.update(
            balanced_s=round(seconds, 5),
            balanced_assigned=[len(train) - part.unassigned, len(test) - test_part.unassigned],
            balanced_client_sizes=_size_range(part.sizes),
        )
        if run_reference is not None:
            ref_seconds, ns = best_of(lambda alpha=alpha: run_reference(train, test, alpha), args.repeats)
            planned = ns["samples_per_class_train"].sum(1)
            reference_ratios.append(ratio(1 / seconds, 1 / ref_seconds))
            row.update(
                reference_s=round(ref_seconds, 5),
                ratio_reference=reference_ratios[-1],
                reference_assigned=[int(planned.sum()), int(ns["samples_per_class_test"].sum())],
                reference_client_sizes=_size_range(planned),
            )
            note(
                f"alpha {alpha}: balanced_dirichlet {seconds * 1e3:.2f} ms, authors' sampler {ref_seconds * 1e3:.2f} ms"
            )
        result[f"alpha_{alpha:g}"] = row
    result["ratio"] = min(flwr_ratios) if flwr_ratios else None
    result["reference_ratio"] = min(reference_ratios) if reference_ratios else None
    checks = [r >= GOAL_FLWR for r in flwr_ratios] + [r >= GOAL_REFERENCE for r in reference_ratios]
    result["goal_met"] = all(checks) if checks else None
    emit(result)


if __name__ == "__main__":
    main()
