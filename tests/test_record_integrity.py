"""Records cannot lie about arithmetic or range: strict JSON, finite numbers, declared metric ranges,
bounded size and depth.

Every hostile record must be refused by ``fmbench validate`` and ``fmbench submit`` with one clean
line (exit status 1) and nothing written.
"""

from __future__ import annotations

import copy
import json
from pathlib import Path

import pytest

from fmbench.errors import ResultError
from fmbench.io import write_json_atomic
from fmbench.registry import task_spec
from fmbench.results import MAX_RECORD_BYTES, MAX_RECORD_DEPTH, add_seed, aggregate, load_record, new_record

TASK = "fmbench/ComposeDirect-v0"
BOARDS = Path(__file__).resolve().parent.parent / "leaderboards"


def snapshot(root: Path) -> dict[str, bytes | None]:
    """Every path under ``root`` (folders as ``None``, files with their bytes)."""
    return {str(p.relative_to(root)): (p.read_bytes() if p.is_file() else None) for p in sorted(root.rglob("*"))}


def _nan_mean(record: dict) -> str:
    record["metrics"]["exact_match"]["mean"] = float("nan")
    return json.dumps(record)


def _infinite_per_seed_value(record: dict) -> str:
    record["per_seed"]["0"]["metrics"]["token_accuracy"] = float("inf")
    return json.dumps(record)


def _overflowing_number(record: dict) -> str:
    record["metrics"]["exact_match"]["per_seed"][0] = 0.123456789
    return json.dumps(record).replace("0.123456789", "1e999", 1)


def _nan_std(record: dict) -> str:
    record["metrics"]["token_accuracy"]["std"] = float("nan")
    return json.dumps(record)


def _negative_std(record: dict) -> str:
    record["metrics"]["token_accuracy"]["std"] = -0.1
    return json.dumps(record)


def _exact_match_out_of_range(record: dict) -> str:
    for seed in record["per_seed"].values():
        seed["metrics"]["exact_match"] = 7.5
    record["metrics"] = aggregate(record, {k: v["higher_is_better"] for k, v in record["metrics"].items()})
    return json.dumps(record)


def _huge(record: dict) -> str:
    record["environment"]["padding"] = "x" * MAX_RECORD_BYTES
    return json.dumps(record)


def _deep(record: dict) -> str:
    depth = 100_000  # far past Python's recursion limit: refused before parsing, not a RecursionError
    return json.dumps(record)[:-1] + ', "deep": ' + "[" * depth + "]" * depth + "}"


HOSTILE = [
    (_nan_mean, "holds NaN: a record's numbers must be finite (strict JSON)"),
    (_infinite_per_seed_value, "holds Infinity: a record's numbers must be finite"),
    (_overflowing_number, "holds 1e999: a record's numbers must be finite"),
    (_nan_std, "holds NaN"),
    (_negative_std, "violates the result schema at metrics/token_accuracy/std: -0.1 is less than the minimum of 0"),
    (_exact_match_out_of_range, "metric 'exact_match' of seed 0 is 7.5, outside its range [0, 1]"),
    (_huge, f"is larger than {MAX_RECORD_BYTES:,} bytes, the limit for a record"),
    (_deep, f"nests 100001 levels deep; a record may nest at most {MAX_RECORD_DEPTH}"),
]


@pytest.mark.parametrize("make,problem", HOSTILE, ids=lambda v: getattr(v, "__name__", "")[1:] or None)
def test_validate_and_submit_refuse_in_one_line_and_write_nothing(
    fmbench_cli, tmp_path, complete_result_file, make, problem
):
    folder = tmp_path / "in"
    folder.mkdir()
    path = folder / "result.json"
    path.write_text(make(json.loads(complete_result_file.read_text())))
    board = tmp_path / "leaderboards"
    fmbench_cli("submit", complete_result_file, "--name", "first", "--leaderboards", board)
    before = snapshot(tmp_path)
    for args in (["validate", path], ["submit", path, "--name", "second", "--leaderboards", board]):
        proc = fmbench_cli(*args)
        lines = proc.stderr.strip().splitlines()
        assert proc.returncode == 1, proc.stdout
        assert len(lines) == 1 and lines[0].startswith(f"fmbench {args[0]}: error:"), proc.stderr
        assert problem in lines[0], lines[0]
        assert snapshot(tmp_path) == before


def test_the_largest_shipped_record_is_far_below_the_limits():
    rows = sorted(BOARDS.rglob("*.json"), key=lambda p: p.stat().st_size)
    assert rows[-1].stat().st_size * 100 < MAX_RECORD_BYTES
    assert load_record(rows[-1])["submission"]


def test_a_non_finite_metric_is_an_error_naming_it_and_never_written(tmp_path):
    record = new_record(
        task_info={"id": TASK, "version": 0, "study": "2311.12997"},
        model_info={
            "spec": "x",
            "name": "x",
            "interface": "sequence-model",
            "n_params": 1,
            "weights_sha256": None,
            "dtype": "float32",
        },
        seeds=[0],
        primary_metric="exact_match",
        device="cpu",
        batch_size=8,
    )
    empty = copy.deepcopy(record)
    with pytest.raises(ResultError, match=r"seed 0: metrics \['token_accuracy'\] are NaN, infinite or not numbers"):
        add_seed(record, 0, "0" * 64, {"exact_match": 0.5, "token_accuracy": float("-inf")}, {}, seconds=1.0)
    assert record == empty
    record["metrics"] = {"exact_match": {"mean": float("nan")}}
    path = tmp_path / "r.json"
    with pytest.raises(ValueError, match="not JSON compliant"):
        write_json_atomic(path, record)
    assert list(tmp_path.iterdir()) == []


def test_a_breakdown_metric_inherits_its_base_range():
    spec = task_spec(TASK)
    assert spec.metric("exact_match").range == (0, 1)
    assert spec.metric("exact_match|depth=2").range == (0, 1)
