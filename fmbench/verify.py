"""Verifying a record: fmbench re-runs the model it names on one of its seeds and compares every metric.

Per-seed values can be made up and still agree with their means and stds, so no check of the
file alone catches them. :func:`verify` loads the model the record's spec names, checks that it
has the record's key, scores it on one seed chosen from the record (:func:`verification_seed`)
with the record's batch size, and compares every metric of that seed with the record's value.
They match when ``|stated - recomputed| <= ABS_TOL + REL_TOL * |recomputed|`` (1e-6 each):
evaluation is deterministic on one device; a record made on a GPU may differ on a CPU by more,
so the record's device is used when this machine has it.

Example:
    >>> record = {"model": {"key": {"sha256": "ab" * 32, "of": "spec"}}, "seeds": [0, 1, 2],
    ...           "per_seed": {s: {"metrics": {"acc": 0.5}} for s in ("0", "1", "2")}}
    >>> verification_seed(record) in (0, 1, 2)
    True
    >>> matches(0.25, 0.25 + 1e-7), matches(0.25, 0.2501)
    (True, False)
"""

from __future__ import annotations

import hashlib
import json
import time
from collections.abc import Callable
from typing import Any

from fmbench.errors import ResultError

ABS_TOL = 1e-6
REL_TOL = 1e-6


def matches(stated: float, recomputed: float) -> bool:
    """Whether a stated metric agrees with the recomputed one (``ABS_TOL + REL_TOL * |recomputed|``)."""
    return abs(stated - recomputed) <= ABS_TOL + REL_TOL * abs(recomputed)


def verification_seed(record: dict[str, Any]) -> int:
    """The finished seed to re-run, picked by the sha256 of the record's model key and per-seed metrics.

    The same record always gets the same seed; which one cannot be chosen without changing its numbers.
    """
    seeds = sorted(int(s) for s in record["per_seed"])
    if not seeds:
        raise ResultError("the record has no finished seed to verify")
    basis = {"key": record["model"].get("key"), "metrics": {s: v["metrics"] for s, v in record["per_seed"].items()}}
    digest = hashlib.sha256(json.dumps(basis, sort_keys=True).encode()).hexdigest()
    return seeds[int(digest[:16], 16) % len(seeds)]


def verification_device(record: dict[str, Any]) -> str:
    """The record's device when this machine has it, else ``cpu``."""
    import torch

    device = record["device"]
    return device if device.startswith("cuda") and torch.cuda.is_available() else "cpu"


def verify(record: dict[str, Any], trust_code: bool = False, log: Callable[[str], None] = print) -> dict[str, Any]:
    """Re-run the record's model on :func:`verification_seed` and return what was verified.

    Returns ``{"seed", "fmbench_version", "device", "date", "seconds"}``; raises ``ResultError``
    (one line naming the metric, the stated and the recomputed value) when a metric does not
    match, and ``ModelError`` when the model cannot be loaded (``python:`` specs need ``trust_code``).
    """
    from fmbench import __version__
    from fmbench.models import load_model
    from fmbench.registry import make_task
    from fmbench.results import now
    from fmbench.runner import score_seed

    task, spec = make_task(record["task"]["id"]), record["model"]["spec"]
    seed, device = verification_seed(record), verification_device(record)
    log(f"verifying {task.id} {spec}: re-running seed {seed} of {sorted(map(int, record['per_seed']))} on {device}")
    start = time.perf_counter()
    model = load_model(spec, task, trust_code=trust_code)
    stated_key = record["model"].get("key")
    if stated_key and model.key() != stated_key:
        raise ResultError(
            f"{spec} loads a model with key {model.key()['sha256']}, not the record's {stated_key['sha256']}"
        )
    model.to(device)
    task.check_model(model)
    recomputed = score_seed(task, model, seed, device, record["batch_size"])
    stated = record["per_seed"][str(seed)]["metrics"]
    for name in sorted(set(stated) | set(recomputed)):
        if name not in recomputed or name not in stated:
            where = "the re-run" if name not in recomputed else "the record"
            raise ResultError(f"verification failed: {task.id} seed {seed}: metric {name!r} is missing from {where}")
        if not matches(stated[name], recomputed[name]):
            raise ResultError(
                f"verification failed: {task.id} seed {seed} metric {name!r}: stated {stated[name]!r}, "
                f"recomputed {recomputed[name]!r} (tolerance {ABS_TOL:g} + {REL_TOL:g} x |recomputed|)"
            )
    seconds = round(time.perf_counter() - start, 3)
    log(f"verified: every metric of seed {seed} matches ({len(stated)} metrics, {seconds:.1f} s)")
    return {"seed": seed, "fmbench_version": __version__, "device": device, "date": now(), "seconds": seconds}
