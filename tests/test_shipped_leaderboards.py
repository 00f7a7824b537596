"""Every shipped leaderboard row stays a valid, submittable record of its task's current version.

The data hashes of the pinned seeds (0 and 1) are compared with the spec (the registry-wide tests
prove the data still has them); those of the other seeds must agree across a task's rows. Every
row is a shipped baseline whose key was recomputed: it is the key of the baseline its spec names.
"""

from __future__ import annotations

import copy
import json
from pathlib import Path

import pytest

from fmbench.leaderboard import VERIFIED_SUFFIX, baseline_keys
from fmbench.registry import list_tasks, superseded_by, task_spec
from fmbench.results import check_against_registry, check_schema, submittable

BOARDS = Path(__file__).parent.parent / "leaderboards"
ROWS = sorted(p for p in BOARDS.rglob("*.json") if not p.name.endswith(VERIFIED_SUFFIX))


@pytest.mark.parametrize("path", ROWS, ids=lambda p: str(p.relative_to(BOARDS)))
def test_each_row_is_valid_and_submittable(path):
    record = json.loads(path.read_text())
    check_schema(record, str(path))
    pinned = copy.deepcopy(record)
    pinned["task"]["data_hash"] = {s: h for s, h in record["task"]["data_hash"].items() if s in ("0", "1")}
    assert pinned["task"]["data_hash"], f"{path}: no pinned seed (0 or 1)"
    check_against_registry(pinned, str(path))
    reason = submittable(record)
    if superseded_by(record["task"]["id"]):  # a superseded version's rows stay, for reference
        assert reason is not None and "is superseded by version" in reason
    else:
        assert reason is None


def test_rows_of_one_task_agree_on_every_seeds_data_hash():
    seen: dict[tuple[str, str], tuple[str, Path]] = {}
    for path in ROWS:
        task = json.loads(path.read_text())["task"]
        for seed, digest in task["data_hash"].items():
            first = seen.setdefault((task["id"], seed), (digest, path))
            assert first[0] == digest, f"{path} and {first[1]} disagree on the data hash of seed {seed}"


def test_every_task_with_a_baseline_has_rows():
    boards = {str(p.parent.relative_to(BOARDS)) for p in ROWS}
    assert boards <= set(list_tasks())
    assert {t for t in list_tasks() if not task_spec(t).user_data} <= boards


@pytest.mark.slow  # builds every task and loads its baselines (~15 s of CPU in all: study imports, superpixels)
@pytest.mark.parametrize("path", ROWS, ids=lambda p: str(p.relative_to(BOARDS)))
def test_each_row_has_the_recomputed_key_of_the_baseline_it_names(path):
    record = json.loads(path.read_text())
    assert record["submission"]["key"] == "recomputed"
    shipped = baseline_keys(record["task"]["id"])
    assert shipped.get(record["model"]["key"]["sha256"]) == record["model"]["spec"].removeprefix("baseline:")
