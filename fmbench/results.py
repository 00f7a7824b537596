"""Result records: building, aggregating and checking them (schema: ``schemas/result.schema.json``).

Records are strict JSON: ``NaN`` and ``Infinity`` (and numbers that overflow to them), integers beyond 64 bits
and a key repeated within one object (which readers resolve differently) are refused when a record is read;
non-finite numbers are never written. A record file may hold at most ``MAX_RECORD_BYTES`` (5 MB; shipped
records are about 20 KB) and nest arrays and objects at most ``MAX_RECORD_DEPTH`` (32) deep; both are
checked before the JSON is parsed, in time linear in the file's size. A record lists at most ``MAX_SEEDS``
(256) seeds.

Example:
    >>> record = new_record(task_info={"id": "fmbench/ComposeDirect-v0", "version": 0, "study": "2311.12997"},
    ...                     model_info={"spec": "baseline:untrained", "name": "untrained", "interface":
    ...                                 "sequence-model", "n_params": 1, "weights_sha256": None, "dtype": "float32"},
    ...                     seeds=[0], primary_metric="exact_match", device="cpu", batch_size=8)
    >>> add_seed(record, 0, "0" * 64, {"exact_match": 0.5}, {"exact_match": True}, seconds=1.0)
    >>> record["metrics"]["exact_match"]["mean"]
    0.5
"""

from __future__ import annotations

import json
import math
import platform
import re
import subprocess
from collections import Counter
from collections.abc import Callable, Sequence
from datetime import UTC, datetime
from functools import lru_cache
from importlib import metadata
from pathlib import Path
from typing import Any

import jsonschema

from fmbench.errors import ResultError, UnknownIdError
from fmbench.hash_cache import cache_dir, cached_hash, remember_hash

SCHEMA_PATH = Path(__file__).parent / "schemas" / "result.schema.json"
MAX_RECORD_BYTES = 5_000_000
MAX_RECORD_DEPTH = 32
MAX_SEEDS = 256
# A JSON string, or an unterminated one up to the end (possessive: no backtracking, so linear in the text)
_STRING = re.compile(r'"(?:[^"\\]|\\.)*+"?', re.DOTALL)
_NOT_BRACKET = re.compile(r"[^\[\]{}]+")


_FORMATS = jsonschema.FormatChecker()  # jsonschema checks "date-time" only with an optional package: done here


@_FORMATS.checks("date-time", raises=ValueError)
def is_date_time(value: object) -> bool:
    """Whether a JSON value that is a string is a date and time with a UTC offset (RFC 3339, as ``now`` writes).

    Example:
        >>> is_date_time("2026-11-26T05:18:12+00:00"), is_date_time("2026-11-26"), is_date_time(3)
        (True, False, True)
    """
    if not isinstance(value, str):
        return True  # the schema's "type" speaks about other types
    return len(value) >= 20 and value[10] in "Tt" and datetime.fromisoformat(value).tzinfo is not None


@lru_cache(maxsize=1)
def schema() -> dict[str, Any]:
    """The result record's JSON Schema."""
    return json.loads(SCHEMA_PATH.read_text())


def now() -> str:
    """Current UTC time, ISO 8601 with seconds."""
    return datetime.now(UTC).isoformat(timespec="seconds")


@lru_cache(maxsize=1)
def git_commit() -> str | None:
    """Commit of the fmbench checkout in use, or ``None`` for an installed wheel."""
    root = Path(__file__).resolve().parent.parent
    if not (root / ".git").exists():
        return None
    try:
        out = subprocess.run(["git", "-C", str(root), "rev-parse", "HEAD"], capture_output=True, text=True, timeout=10)
    except (OSError, subprocess.SubprocessError):
        return None
    return out.stdout.strip() or None if out.returncode == 0 else None


def environment(packages: Sequence[str] = ()) -> dict[str, str]:
    """Versions that can move a score, and the CPU kernels torch runs (``cpu_capability``: float
    results differ in the last bits between AVX2 and AVX512 kernels).

    Args:
        packages: distributions whose installed versions to add (``"absent"`` where not installed).

    Example:
        >>> sorted(environment(["numpy"]))
        ['cpu_capability', 'numpy', 'platform', 'python', 'torch']
    """
    import numpy
    import torch

    def version(name: str) -> str:
        try:
            return metadata.version(name)
        except metadata.PackageNotFoundError:
            return "absent"

    return {
        "python": platform.python_version(),
        "torch": torch.__version__,
        "numpy": numpy.__version__,
        "platform": platform.platform(),
        "cpu_capability": torch.backends.cpu.get_cpu_capability(),
        **{name: version(name) for name in packages},
    }


def new_record(
    task_info: dict[str, Any],
    model_info: dict[str, Any],
    seeds: list[int],
    primary_metric: str,
    device: str,
    batch_size: int,
) -> dict[str, Any]:
    """An empty record (no finished seed yet)."""
    from fmbench import __version__

    return {
        "schema_version": 1,
        "task": {**task_info, "data_hash": {}},
        "model": model_info,
        "seeds": list(seeds),
        "per_seed": {},
        "metrics": {},
        "primary_metric": primary_metric,
        "device": device,
        "batch_size": batch_size,
        "fmbench_version": __version__,
        "git_commit": git_commit(),
        "timings": {"total_seconds": 0.0},
        "date": now(),
        "environment": environment(),
    }


def add_seed(
    record: dict[str, Any],
    seed: int,
    data_hash: str,
    metrics: dict[str, float],
    higher_is_better: dict[str, bool],
    seconds: float,
) -> None:
    """Store one finished seed and recompute the aggregates."""
    bad = [k for k, v in metrics.items() if not isinstance(v, (int, float)) or not math.isfinite(v)]
    if bad:
        raise ResultError(f"seed {seed}: metrics {bad} are NaN, infinite or not numbers")
    record["task"]["data_hash"][str(seed)] = data_hash
    record["per_seed"][str(seed)] = {"metrics": dict(metrics), "seconds": round(seconds, 3), "finished": now()}
    record["timings"]["total_seconds"] = round(sum(s["seconds"] for s in record["per_seed"].values()), 3)
    record["metrics"] = aggregate(record, higher_is_better)
    record["date"] = now()


def finished_seeds(record: dict[str, Any]) -> list[int]:
    """Finished seeds in the order they were requested."""
    return [s for s in record["seeds"] if str(s) in record["per_seed"]]


def aggregate(record: dict[str, Any], higher_is_better: dict[str, bool]) -> dict[str, Any]:
    """Mean, sample std and per-seed values of every metric present in all finished seeds."""
    seeds = finished_seeds(record)
    if not seeds:
        return {}
    names = set.intersection(*(set(record["per_seed"][str(s)]["metrics"]) for s in seeds))
    out = {}
    for name in sorted(names):
        values = [record["per_seed"][str(s)]["metrics"][name] for s in seeds]
        mean = sum(values) / len(values)
        # (v - mean) * (v - mean): a huge value overflows to inf (refused as a mismatch), where ** raises
        std = math.sqrt(sum((v - mean) * (v - mean) for v in values) / (len(values) - 1)) if len(values) > 1 else 0.0
        out[name] = {"mean": mean, "std": std, "per_seed": values, "higher_is_better": higher_is_better[name]}
    return out


def nesting_depth(text: str) -> int:
    """How deep the arrays and objects of a JSON text nest (brackets inside strings ignored).

    Example:
        >>> nesting_depth('{"a": [1, {"b": "[[["}]}')
        3
    """
    depth = deepest = 0
    for bracket in _NOT_BRACKET.sub("", _STRING.sub("", text)):
        depth += 1 if bracket in "[{" else -1
        deepest = max(deepest, depth)
    return deepest


def parse_strict(text: str, where: str) -> Any:
    """Parse JSON text, refusing ``NaN``, ``Infinity``, numbers too large for a float or 64 bits, repeated keys.

    Example:
        >>> parse_strict('{"mean": NaN}', "r.json")
        Traceback (most recent call last):
        ...
        fmbench.errors.ResultError: r.json holds NaN: a record's numbers must be finite (strict JSON)
        >>> parse_strict('{"device": "a", "device": "b"}', "r.json")
        Traceback (most recent call last):
        ...
        fmbench.errors.ResultError: r.json repeats the key 'device' in one object (strict JSON)
    """

    def refuse(constant: str) -> float:
        raise ResultError(f"{where} holds {constant}: a record's numbers must be finite (strict JSON)")

    def finite(number: str) -> float:
        value = float(number)
        return value if math.isfinite(value) else refuse(number)

    def int64(number: str) -> int:
        if len(number) <= 20 and -(2**63) <= int(number) < 2**63:
            return int(number)
        shown = number if len(number) <= 24 else f"{number[:20]}... ({len(number)} characters)"
        raise ResultError(f"{where} holds the integer {shown}: too large for 64 bits (strict JSON)")

    def unique(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
        obj = dict(pairs)
        if len(obj) < len(pairs):
            repeated = next(k for k, n in Counter(k for k, _ in pairs).items() if n > 1)
            raise ResultError(f"{where} repeats the key {repeated[:100]!r} in one object (strict JSON)")
        return obj

    try:
        return json.loads(text, parse_constant=refuse, parse_float=finite, parse_int=int64, object_pairs_hook=unique)
    except json.JSONDecodeError as e:
        raise ResultError(f"{where} is not valid JSON (line {e.lineno}: {e.msg})") from None


def load_record(path: str | Path) -> dict[str, Any]:
    """Read a record file (``ResultError`` for unreadable, oversized, too deep, non-finite or malformed JSON)."""
    try:
        with open(path, "rb") as f:
            data = f.read(MAX_RECORD_BYTES + 1)
    except OSError as e:
        raise ResultError(f"cannot read {path}: {e.strerror or e}") from None
    if len(data) > MAX_RECORD_BYTES:
        raise ResultError(f"{path} is larger than {MAX_RECORD_BYTES:,} bytes, the limit for a record")
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as e:
        raise ResultError(f"{path} is not UTF-8 text (byte {e.start})") from None
    depth = nesting_depth(text)
    if depth > MAX_RECORD_DEPTH:
        raise ResultError(f"{path} nests {depth} levels deep; a record may nest at most {MAX_RECORD_DEPTH}")
    return parse_strict(text, str(path))


def non_finite(value: Any, at: str = "") -> str | None:
    """Path of the first NaN or infinite number in a JSON-like value, or ``None``.

    Example:
        >>> non_finite({"metrics": {"acc": {"std": float("nan")}}})
        'metrics/acc/std'
    """
    if isinstance(value, float) and not math.isfinite(value):
        return at or "(top level)"
    items = value.items() if isinstance(value, dict) else enumerate(value) if isinstance(value, list) else ()
    for key, item in items:
        found = non_finite(item, f"{at}/{key}" if at else str(key))
        if found:
            return found
    return None


def check_schema(record: Any, where: str = "record") -> None:
    """Validate against the JSON Schema and the record's own arithmetic."""
    seeds = record.get("seeds") if isinstance(record, dict) else None
    if isinstance(seeds, list) and len(seeds) > MAX_SEEDS:  # before the schema's uniqueItems (quadratic on mixed types)
        raise ResultError(f"{where}: {len(seeds)} seeds; a record lists at most {MAX_SEEDS}")
    bad = non_finite(record)
    if bad:
        raise ResultError(f"{where}: {bad} is not a finite number")
    validator = jsonschema.Draft202012Validator(schema(), format_checker=_FORMATS)
    error = jsonschema.exceptions.best_match(validator.iter_errors(record))
    if error is not None:
        at = "/".join(str(p) for p in error.absolute_path) or "(top level)"
        message = error.message if len(error.message) <= 300 else f"{error.message[:150]}...{error.message[-100:]}"
        raise ResultError(f"{where} violates the result schema at {at[:200]}: {message}")
    model, key = record["model"], record["model"].get("key")
    if key is None and "submission" in record:
        raise ResultError(f"{where}: a leaderboard entry needs model/key (submitted before keys: submit it again)")
    if key is not None and model["weights_sha256"] and key != {"sha256": model["weights_sha256"], "of": "weights"}:
        raise ResultError(f"{where}: model/key is not its weights_sha256 ({model['weights_sha256']}), as it must be")
    unknown = sorted(set(record["per_seed"]) - {str(s) for s in record["seeds"]})
    if unknown:
        raise ResultError(f"{where}: per_seed has seeds {unknown} that are not in seeds")
    missing_hash = [s for s in record["per_seed"] if s not in record["task"]["data_hash"]]
    if missing_hash:
        raise ResultError(f"{where}: finished seeds {missing_hash} have no data hash")
    if record["per_seed"] and record["primary_metric"] not in record["metrics"]:
        raise ResultError(f"{where}: primary metric {record['primary_metric']!r} is not in its metrics")
    seeds = finished_seeds(record)
    present = set.intersection(*(set(record["per_seed"][str(s)]["metrics"]) for s in seeds)) if seeds else set()
    if set(record["metrics"]) != present:
        raise ResultError(
            f"{where}: aggregated metrics {sorted(record['metrics'])} do not match the metrics "
            f"of its finished seeds {sorted(present)}"
        )
    expected = aggregate(record, {k: v["higher_is_better"] for k, v in record["metrics"].items()})
    for name, agg in expected.items():
        got = record["metrics"][name]
        if (
            got["per_seed"] != agg["per_seed"]
            or abs(got["mean"] - agg["mean"]) > 1e-9
            or abs(got["std"] - agg["std"]) > 1e-9
        ):
            raise ResultError(f"{where}: aggregate of metric {name!r} does not match its per-seed values")


def check_against_registry(
    record: dict[str, Any], where: str = "record", log: Callable[[str], None] | None = None
) -> None:
    """Check the record's task, version, metrics and data hashes against the installed registry.

    A seed whose hash the spec pins (seeds 0 and 1) is compared with the pinned value (the
    registry-wide tests prove the data still has it); any other seed's data is regenerated,
    which ``log`` (if given) announces first, once per machine (:mod:`fmbench.hash_cache`).
    """
    from fmbench.registry import make_task, task_spec

    tid = record["task"]["id"]
    try:
        spec = task_spec(tid)
    except UnknownIdError as e:
        raise ResultError(f"{where}: {e}") from None
    if record["task"]["version"] != spec.version:
        raise ResultError(f"{where}: says version {record['task']['version']} but {tid} is version {spec.version}")
    if record["primary_metric"] != spec.primary_metric:
        raise ResultError(
            f"{where}: primary metric {record['primary_metric']!r} is not {tid}'s {spec.primary_metric!r}"
        )
    missing = sorted(set(spec.metrics) - set(record["metrics"])) if record["per_seed"] else []
    if missing:
        raise ResultError(f"{where}: lacks metrics {missing} of {tid}")
    for name, m in record["metrics"].items():
        try:
            direction = spec.metric(name).higher_is_better
        except KeyError:
            raise ResultError(f"{where}: metric {name!r} is not one of {tid}'s") from None
        if m["higher_is_better"] != direction:
            raise ResultError(f"{where}: metric {name!r} has the wrong direction")
        check_range(name, m, finished_seeds(record), spec.metric(name).range, where)
    hashes = record["task"]["data_hash"]
    known = {seed: spec.data_hashes.get(seed) or cached_hash(spec, int(seed)) for seed in hashes}
    unpinned = sorted((s for s in hashes if s not in spec.data_hashes), key=int)
    regenerate = [s for s in unpinned if known[s] is None]
    remembered = [s for s in unpinned if known[s] is not None]
    if remembered and log:
        log(
            f"data hashes of {tid} seeds {', '.join(remembered)}: computed by an earlier check (cached in "
            f"{cache_dir()})"
        )
    if regenerate:
        if log:
            log(f"checking the data hashes of {tid} seeds {', '.join(regenerate)} (regenerating that data)...")
        task = make_task(tid)
        for seed in regenerate:
            known[seed] = task.data_hash(int(seed))
            remember_hash(spec, int(seed), known[seed])
    for seed, digest in hashes.items():
        if known[seed] != digest:
            raise ResultError(
                f"{where}: data hash of seed {seed} does not match {tid}'s data "
                "(stale result or another fmbench data version)"
            )


def check_range(
    name: str, metric: dict[str, Any], seeds: list[int], bounds: tuple[float, float] | None, where: str = "record"
) -> None:
    """Refuse a per-seed value or mean of ``metric`` outside its spec's range ``bounds`` (``None``: unbounded).

    Float rounding is forgiven up to ``1e-9`` beyond a bound (as in the aggregate check).

    Example:
        >>> check_range("exact_match", {"mean": 7.5, "per_seed": [7.5]}, [0], (0, 1), "r.json")
        Traceback (most recent call last):
        ...
        fmbench.errors.ResultError: r.json: metric 'exact_match' of seed 0 is 7.5, outside its range [0, 1]
    """
    if bounds is None:
        return
    low, high = bounds
    for seed, value in [*zip(seeds, metric["per_seed"]), ("mean", metric["mean"])]:
        if not low - 1e-9 <= value <= high + 1e-9:
            which = "mean" if seed == "mean" else f"of seed {seed}"
            raise ResultError(f"{where}: metric {name!r} {which} is {value}, outside its range [{low}, {high}]")


def validate(path: str | Path, log: Callable[[str], None] | None = None) -> dict[str, Any]:
    """Load and fully check a record file; return it (``log`` announces slow steps)."""
    record = load_record(path)
    check_schema(record, str(path))
    check_against_registry(record, str(path), log)
    return record


def submittable(record: dict[str, Any]) -> str | None:
    """Why a valid record cannot be a ranked leaderboard entry, or ``None`` if it can.

    Example:
        >>> submittable({"task": {"id": "fmbench/ComposeDirect-v0", "version": 0}, "seeds": [0], "per_seed": {"0": {}},
        ...              "limit": 64})
        'it scored only 64 items per seed (--limit); evaluate on the full data to submit'
    """
    from fmbench.registry import current_version, task_spec

    spec = task_spec(record["task"]["id"])
    latest = current_version(spec.name)
    if record["task"]["version"] < latest:
        return f"{spec.id} is superseded by version {latest}; evaluate on the current version"
    if "limit" in record:
        return f"it scored only {record['limit']} items per seed (--limit); evaluate on the full data to submit"
    missing = [s for s in record["seeds"] if str(s) not in record["per_seed"]]
    if missing:
        return f"seeds {missing} are unfinished; rerun `fmbench eval` with the same --out"
    if len(record["seeds"]) < spec.min_seeds:
        return f"it has {len(record['seeds'])} seeds; a ranked entry of {spec.id} needs at least {spec.min_seeds}"
    return None
