"""Leaderboard submissions: what lands where, what is refused, and concurrent submitters.

Every refusal must raise ``SubmissionError`` with a message naming the problem and leave
the leaderboard folder exactly as it was.
"""

from __future__ import annotations

import copy
import json
import re
import subprocess
import sys
import time
from datetime import UTC, datetime
from pathlib import Path

import pytest

from fmbench.errors import ResultError, SubmissionError
from fmbench.leaderboard import entries, ranked_rows, submit
from fmbench.model_key import weights_key
from fmbench.registry import builtin_root, make_task
from fmbench.results import aggregate, validate

TASK = "fmbench/ComposeDirect-v0"


def snapshot(root: Path) -> dict[str, bytes | None]:
    """Every path under ``root`` (folders as ``None``, files with their bytes)."""
    if not root.exists():
        return {}
    return {str(p.relative_to(root)): (p.read_bytes() if p.is_file() else None) for p in sorted(root.rglob("*"))}


def leftovers(root: Path) -> list[Path]:
    """Temporary files an atomic write could leave behind."""
    return [p for p in root.rglob("*") if p.name.endswith(".tmp")]


def load(path: Path) -> dict:
    return json.loads(path.read_text())


def write(path: Path, record: dict) -> Path:
    path.write_text(json.dumps(record, indent=2))
    return path


def with_seeds(record: dict, seeds: list[int]) -> dict:
    """The record restricted to ``seeds`` with its aggregates recomputed (a valid record)."""
    r = copy.deepcopy(record)
    r["seeds"] = list(seeds)
    r["per_seed"] = {str(s): r["per_seed"][str(s)] for s in seeds if str(s) in r["per_seed"]}
    r["task"]["data_hash"] = {s: h for s, h in r["task"]["data_hash"].items() if s in r["per_seed"]}
    r["metrics"] = aggregate(r, {k: v["higher_is_better"] for k, v in record["metrics"].items()})
    return r


def other_model(record: dict) -> dict:
    """The same evaluation as if made by another model (other weights hash and spec)."""
    r = copy.deepcopy(record)
    r["model"]["weights_sha256"] = "ab" * 32
    r["model"]["key"] = weights_key("ab" * 32)
    r["model"]["spec"] = "safetensors:other.safetensors"
    return r


@pytest.fixture
def board(tmp_path, complete_result_file) -> Path:
    """A leaderboards folder already holding one entry, ``first`` (the complete record)."""
    root = tmp_path / "leaderboards"
    submit(complete_result_file, "first", root=root)
    return root


def test_accepted_entry_lands_under_its_task_with_a_submission_block(tmp_path, complete_result_file):
    root = tmp_path / "leaderboards"
    original = complete_result_file.read_bytes()
    before = datetime.now(UTC).replace(microsecond=0)
    path = submit(complete_result_file, "my-model_v1.2", code_url="https://example.org/code", root=root)
    assert path == root / TASK / "my-model_v1.2.json"
    entry = load(path)
    block = entry.pop("submission")
    assert block["name"] == "my-model_v1.2" and block["code_url"] == "https://example.org/code"
    assert before <= datetime.fromisoformat(block["submitted"]) <= datetime.now(UTC)
    assert entry == json.loads(original)  # the record itself is copied unchanged
    assert complete_result_file.read_bytes() == original  # and the submitted file is untouched
    validate(path)  # a complete, valid record (the submission block is part of the schema)
    assert [e["submission"]["name"] for e in entries(TASK, root)] == ["my-model_v1.2"]
    assert sorted(p.name for p in (root / TASK).iterdir() if not p.name.startswith(".")) == ["my-model_v1.2.json"]
    assert not leftovers(root)
    rows = ranked_rows(TASK, root)
    assert [(r["rank"], r["name"], r["seeds"], r["verified"]) for r in rows] == [(1, "my-model_v1.2", 3, None)]


def test_longest_allowed_name_is_accepted(tmp_path, complete_result_file):
    name = "x" * 64
    assert submit(complete_result_file, name, root=tmp_path).name == f"{name}.json"


def _malformed_json(path: Path, record: dict) -> None:
    path.write_text(json.dumps(record)[:-20])


def _not_an_object(path: Path, record: dict) -> None:
    path.write_text("5")


def _schema_violation(path: Path, record: dict) -> None:
    del record["primary_metric"]
    write(path, record)


def _extra_key(path: Path, record: dict) -> None:
    record["model"]["hidden"] = "x"
    write(path, record)


def _unknown_task(path: Path, record: dict) -> None:
    record["task"]["id"] = "fmbench/ComposeNothing-v0"
    write(path, record)


def _stale_data_hash(path: Path, record: dict) -> None:
    record["task"]["data_hash"]["0"] = "f" * 64
    write(path, record)


def _one_seed(path: Path, record: dict) -> None:
    write(path, with_seeds(record, [0]))


def _unfinished_seed(path: Path, record: dict) -> None:
    record["seeds"].append(7)
    write(path, record)


def _tampered_metric(path: Path, record: dict) -> None:
    record["metrics"]["exact_match"]["mean"] = 0.99
    write(path, record)


def _wrong_version(path: Path, record: dict) -> None:
    record["task"]["version"] = 3
    write(path, record)


def _already_an_entry(path: Path, record: dict) -> None:
    record["submission"] = {"name": "someone", "code_url": None, "submitted": "2026-01-01T00:00:00+00:00"}
    write(path, record)


@pytest.mark.parametrize(
    "make,problem",
    [
        (_malformed_json, "not valid JSON"),
        (_not_an_object, "violates the result schema"),
        (_schema_violation, "'primary_metric' is a required property"),
        (_extra_key, "violates the result schema at model"),
        (_unknown_task, "unknown task id 'fmbench/ComposeNothing-v0'"),
        (_stale_data_hash, "data hash of seed 0 does not match"),
        (_one_seed, "1 seeds; a ranked entry of fmbench/ComposeDirect-v0 needs at least 3"),
        (_unfinished_seed, "seeds [7] are unfinished"),
        (_tampered_metric, "aggregate of metric 'exact_match' does not match"),
        (_wrong_version, "says version 3"),
        (_already_an_entry, "already a leaderboard entry"),
    ],
    ids=lambda v: getattr(v, "__name__", "")[1:] or None,
)
def test_bad_records_are_refused_and_change_nothing(tmp_path, complete_result_file, board, make, problem):
    path = tmp_path / "result.json"
    make(path, load(complete_result_file))
    before = snapshot(board)
    with pytest.raises(SubmissionError) as err:
        submit(path, "second", root=board)
    assert problem in str(err.value)
    assert "\n" not in str(err.value)
    assert snapshot(board) == before


def test_a_missing_file_is_refused(tmp_path, board):
    before = snapshot(board)
    with pytest.raises(SubmissionError, match="cannot read"):
        submit(tmp_path / "nothing.json", "second", root=board)
    assert snapshot(board) == before


def test_unpinned_data_hashes_are_regenerated_once_per_cache(tmp_path, monkeypatch, complete_result_file):
    from fmbench.hash_cache import cached_hash

    monkeypatch.setenv("FMBENCH_CACHE", str(tmp_path))
    spec = make_task(TASK).spec
    logs: list[list[str]] = []
    for _ in range(2):
        logs.append([])
        validate(complete_result_file, log=logs[-1].append)
    assert logs[0] == [f"checking the data hashes of {TASK} seeds 2 (regenerating that data)..."]
    assert logs[1] == [f"data hashes of {TASK} seeds 2: computed by an earlier check (cached in {tmp_path})"]
    assert cached_hash(spec, 2) == load(complete_result_file)["task"]["data_hash"]["2"]
    (cached,) = tmp_path.rglob("2")
    cached.write_text("not a hash\n")  # a damaged entry counts as absent
    validate(complete_result_file, log=logs[0].append)
    assert logs[0][-1].startswith("checking the data hashes") and cached_hash(spec, 2) is not None
    tampered = load(complete_result_file)
    tampered["task"]["data_hash"]["2"] = "0" * 64
    (tmp_path / "r.json").write_text(json.dumps(tampered))
    with pytest.raises(ResultError, match="data hash of seed 2 does not match"):
        validate(tmp_path / "r.json")


def test_cached_hashes_follow_the_pins_and_skip_user_data(tmp_path):
    from dataclasses import replace

    from fmbench.hash_cache import cached_hash, remember_hash

    spec = make_task(TASK).spec
    remember_hash(spec, 2, "ab" * 32, tmp_path)
    assert cached_hash(spec, 2, tmp_path) == "ab" * 32 and cached_hash(spec, 3, tmp_path) is None
    assert cached_hash(replace(spec, data_hashes={**spec.data_hashes, "0": "cd" * 32}), 2, tmp_path) is None
    users = replace(spec, user_data="FMBENCH_SOMETHING")
    remember_hash(users, 2, "ab" * 32, tmp_path / "other")
    assert cached_hash(users, 2, tmp_path / "other") is None and not (tmp_path / "other").exists()


def test_limit_records_are_refused(board, limited_result_file):
    assert "limit" in load(limited_result_file) and not leftovers(board)
    before = snapshot(board)
    with pytest.raises(SubmissionError, match=r"scored only 256 items per seed \(--limit\)"):
        submit(limited_result_file, "smoke", root=board)
    assert snapshot(board) == before


def test_the_same_result_under_another_name_is_a_duplicate(board, complete_result_file):
    before = snapshot(board)
    with pytest.raises(SubmissionError, match=r"duplicate: 'first' already reports this model"):
        submit(complete_result_file, "second", root=board)
    assert snapshot(board) == before


def test_another_model_under_a_taken_name_is_refused(tmp_path, board, complete_result_file):
    path = write(tmp_path / "other.json", other_model(load(complete_result_file)))
    before = snapshot(board)
    with pytest.raises(SubmissionError, match=f"{TASK} already has a submission named 'first'"):
        submit(path, "first", root=board)
    assert snapshot(board) == before
    # ...while under a fresh name the other model is welcome, and so is the same model on more seeds
    assert submit(path, "other", root=board).is_file()
    more = load(complete_result_file)
    more["seeds"].append(3)
    more["per_seed"]["3"] = more["per_seed"]["2"]
    more["task"]["data_hash"]["3"] = make_task(TASK).data_hash(3)
    more["metrics"] = aggregate(more, {k: v["higher_is_better"] for k, v in more["metrics"].items()})
    assert submit(write(tmp_path / "more.json", more), "more", root=board).is_file()
    assert sorted(e["submission"]["name"] for e in entries(TASK, board)) == ["first", "more", "other"]


@pytest.mark.parametrize(
    "name",
    ["../evil", "a/b", "", ".hidden", "x" * 65, "..", "/tmp/evil", "evil\n", "-dash", "sp ace", "semi;colon", "évil"],
)
def test_unsafe_names_are_refused(tmp_path, board, complete_result_file, name):
    before = snapshot(tmp_path)
    with pytest.raises(SubmissionError, match="unsafe submission name"):
        submit(complete_result_file, name, root=board)
    assert snapshot(tmp_path) == before


def test_a_superseded_task_version_is_refused(tmp_path, monkeypatch, complete_result_file):
    """A spec root adding a version 1 of ComposeDirect: results on version 0 are stale."""
    text = (builtin_root() / "tasks" / "compositional.toml").read_text()
    block = re.search(r'\[\[task\]\]\nid = "fmbench/ComposeDirect-v0".*?(?=\n\[\[task\]\]|\Z)', text, re.S)
    assert block, "the ComposeDirect-v0 entry moved; update this test"
    v1 = block.group(0).replace("ComposeDirect-v0", "ComposeDirect-v1") + (
        '\nhistory = [{ version = 0, change = "First release." }, '
        '{ version = 1, change = "Test-only: a new version." }]\n'
    )
    root = tmp_path / "specs"
    (root / "tasks").mkdir(parents=True)
    (root / "tasks" / "compositional-v1.toml").write_text(text[: text.index("[[task]]")] + v1)
    monkeypatch.setenv("FMBENCH_SPEC_PATH", str(root))
    from fmbench.registry import list_tasks

    assert {TASK, "fmbench/ComposeDirect-v1"} <= set(list_tasks())
    board = tmp_path / "leaderboards"
    with pytest.raises(SubmissionError, match=f"{TASK} is superseded by version 1; evaluate on the current version"):
        submit(complete_result_file, "late", root=board)
    assert snapshot(board) == {}
    monkeypatch.delenv("FMBENCH_SPEC_PATH")  # back on the real registry, the same record is current
    assert submit(complete_result_file, "late", root=board).is_file()


def test_submit_through_the_cli(fmbench_cli, tmp_path, complete_result_file):
    board = tmp_path / "leaderboards"
    proc = fmbench_cli(
        "submit",
        complete_result_file,
        "--name",
        "cli-entry",
        "--code-url",
        "https://example.org",
        "--leaderboards",
        board,
    )
    assert proc.returncode == 0, proc.stderr
    target = board / TASK / "cli-entry.json"
    assert proc.stdout.strip().splitlines()[-1] == f"accepted: {target}"
    assert load(target)["submission"]["code_url"] == "https://example.org"
    proc = fmbench_cli("validate", target)
    assert proc.returncode == 0 and "valid result of fmbench/ComposeDirect-v0 (3/3 seeds finished)" in proc.stdout
    before = snapshot(board)
    for args, problem in [
        (["--name", "again"], "duplicate: 'cli-entry'"),
        (["--name", "../evil"], "unsafe submission name"),
    ]:
        proc = fmbench_cli("submit", complete_result_file, *args, "--leaderboards", board)
        assert proc.returncode == 1
        lines = proc.stderr.strip().splitlines()
        assert len(lines) == 1 and lines[0].startswith("fmbench submit: error:") and problem in lines[0], proc.stderr
    proc = fmbench_cli("submit", complete_result_file, "--leaderboards", board)  # --name is required
    assert proc.returncode == 2 and "--name" in proc.stderr and len(proc.stderr.strip().splitlines()) == 1
    assert snapshot(board) == before


RACER = r"""
import json, os, sys, time
from pathlib import Path
from fmbench.errors import ResultError, SubmissionError
from fmbench.leaderboard import submit
from fmbench.results import check_against_registry, load_record

record, name, root, ready, go = sys.argv[1:]
check_against_registry(load_record(record))  # warm every import and cache before the race
Path(ready).touch()
deadline = time.monotonic() + 300
while not os.path.exists(go):
    if time.monotonic() > deadline:
        sys.exit("never told to go")
    time.sleep(0.0005)
try:
    print(json.dumps({"accepted": str(submit(record, name, root=Path(root)))}))
except SubmissionError as e:
    print(json.dumps({"refused": str(e)}))
"""


def race(tmp_path: Path, submissions: list[tuple[Path, str]], root: Path) -> list[dict[str, str]]:
    """Start one submitter per (record, name), release them together, return what each reported."""
    script = tmp_path / "racer.py"
    script.write_text(RACER)
    go = tmp_path / "go"
    procs, ready = [], []
    for i, (record, name) in enumerate(submissions):
        ready.append(tmp_path / f"ready{i}")
        procs.append(
            subprocess.Popen(
                [sys.executable, str(script), str(record), name, str(root), str(ready[-1]), str(go)],
                stdout=subprocess.PIPE,
                stderr=subprocess.PIPE,
                text=True,
                cwd=tmp_path,
            )
        )
    try:
        deadline = time.monotonic() + 300
        while not all(r.exists() for r in ready):
            assert all(p.poll() is None for p in procs), [p.communicate() for p in procs]
            assert time.monotonic() < deadline, "submitters never got ready"
            time.sleep(0.01)
        go.touch()
        outs = [p.communicate(timeout=300) for p in procs]
    finally:
        for p in procs:
            if p.poll() is None:
                p.kill()
                p.wait()
    assert all(p.returncode == 0 for p in procs), outs
    return [json.loads(out.strip().splitlines()[-1]) for out, _ in outs]


def test_concurrent_submits_of_one_result_under_two_names(tmp_path, complete_result_file):
    root = tmp_path / "leaderboards"
    results = race(tmp_path, [(complete_result_file, "alpha"), (complete_result_file, "beta")], root)
    accepted = [r["accepted"] for r in results if "accepted" in r]
    refused = [r["refused"] for r in results if "refused" in r]
    assert len(accepted) == 1 and len(refused) == 1, results
    winner = Path(accepted[0]).stem
    assert f"duplicate: {winner!r} already reports this model" in refused[0]
    assert sorted(p.name for p in (root / TASK).glob("*.json")) == [f"{winner}.json"]
    assert not leftovers(root)
    validate(accepted[0])


def test_concurrent_submits_under_one_name(tmp_path, complete_result_file):
    """Two different models race for one name: exactly one lands, the other is told the name is taken."""
    other = write(tmp_path / "other.json", other_model(load(complete_result_file)))
    root = tmp_path / "leaderboards"
    results = race(tmp_path, [(complete_result_file, "same"), (other, "same")], root)
    accepted = [r["accepted"] for r in results if "accepted" in r]
    refused = [r["refused"] for r in results if "refused" in r]
    assert len(accepted) == 1 and len(refused) == 1, results
    assert "already has a submission named 'same'" in refused[0], refused
    assert [p.name for p in (root / TASK).glob("*.json")] == ["same.json"]
    assert not leftovers(root)
    validate(root / TASK / "same.json")


def test_baselines_job_skips_tasks_whose_user_data_is_missing_but_not_a_damaged_copy(tmp_path, monkeypatch, capsys):
    from fmbench.baselines import submit_baselines
    from fmbench.errors import DataError

    monkeypatch.delenv("FMBENCH_CIFAR10", raising=False)
    submit_baselines(["fmbench/FedCIFAR10A0p1C10-v0"], [0], tmp_path / "runs", tmp_path / "boards")
    assert "FedCIFAR10A0p1C10-v0: skipped: $FMBENCH_CIFAR10 is not set" in capsys.readouterr().out
    assert not (tmp_path / "runs").exists()  # nothing was evaluated
    monkeypatch.setenv("FMBENCH_CIFAR10", str(tmp_path / "empty"))
    with pytest.raises(DataError, match="CIFAR-10 files missing"):
        submit_baselines(["fmbench/FedCIFAR10A0p1C10-v0"], [0], tmp_path / "runs", tmp_path / "boards")
