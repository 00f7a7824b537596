"""Provenance of leaderboard entries: model keys, duplicates, the baseline mark, verification.

The weightless record is the shipped ``baseline:random`` policy of ComposeTokensPolicy-v0 (its
key is a hash of its spec; re-running one seed takes about a second), restricted to seeds 0-2.
"""

from __future__ import annotations

import copy
import json
import re
from pathlib import Path

import pytest

from fmbench.errors import SubmissionError
from fmbench.leaderboard import ranked_rows, submit
from fmbench.model_key import weights_key
from fmbench.results import aggregate, validate

POLICY = "fmbench/ComposeTokensPolicy-v0"
DIRECT = "fmbench/ComposeDirect-v0"
SHIPPED = Path(__file__).parent.parent / "leaderboards" / POLICY / "baseline-random.json"


def files_in(folder: Path) -> dict[str, bytes]:
    return {str(p.relative_to(folder)): p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()}


def reaggregated(record: dict, seeds: list[int] | None = None) -> dict:
    """The record (restricted to ``seeds``) with its means and stds recomputed from its per-seed values."""
    r = copy.deepcopy(record)
    if seeds is not None:
        r["seeds"] = seeds
        r["per_seed"] = {str(s): r["per_seed"][str(s)] for s in seeds}
        r["task"]["data_hash"] = {str(s): r["task"]["data_hash"][str(s)] for s in seeds}
    r["metrics"] = aggregate(r, {k: v["higher_is_better"] for k, v in r["metrics"].items()})
    return r


def write(path: Path, record: dict) -> Path:
    path.write_text(json.dumps(record, indent=2))
    return path


@pytest.fixture
def genuine(tmp_path) -> dict:
    """The shipped random-policy record as a result to submit (no submission block), seeds 0-2."""
    record = json.loads(SHIPPED.read_text())
    del record["submission"]
    return reaggregated(record, [0, 1, 2])


@pytest.fixture
def made_up(genuine) -> dict:
    """The genuine record with every seed's mean_return raised by 0.05, means and stds consistent."""
    record = copy.deepcopy(genuine)
    for seed in record["per_seed"].values():
        seed["metrics"]["mean_return"] += 0.05
    return reaggregated(record)


def test_one_weightless_model_is_a_duplicate_under_any_name(tmp_path, genuine):
    """The same key on the same seeds is refused, whatever the entry's or the model's name."""
    root = tmp_path / "boards"
    entry = json.loads(submit(write(tmp_path / "r.json", genuine), "first", root=root).read_text())
    assert entry["model"]["weights_sha256"] is None and entry["model"]["key"]["of"] == "spec"
    assert entry["submission"]["key"] == "recomputed"
    before = files_in(root)
    renamed = copy.deepcopy(genuine)
    renamed["model"].update(name="my-policy", spec="python:mine:make_policy")  # the key stated, not recomputable
    for name, record in [("second", genuine), ("third", renamed)]:
        with pytest.raises(SubmissionError, match=r"duplicate: 'first' already reports this model \(key [0-9a-f]{12}"):
            submit(write(tmp_path / f"{name}.json", record), name, root=root)
    assert files_in(root) == before
    other_seeds = reaggregated(genuine, [0, 1])
    other_seeds["seeds"] = [0, 1, 3]  # seed 3 unfinished: refused, but not as a duplicate
    with pytest.raises(SubmissionError, match="unfinished"):
        submit(write(tmp_path / "o.json", other_seeds), "other", root=root)


def test_a_stated_key_that_the_files_contradict_is_refused_naming_both(tmp_path, complete_result_file):
    record = json.loads(complete_result_file.read_text())  # baseline:untrained of ComposeDirect-v0
    shipped = record["model"]["key"]["sha256"]
    record["model"].update(weights_sha256="ab" * 32, key=weights_key("ab" * 32))
    with pytest.raises(
        SubmissionError, match=f"states model key abababababab… but baseline:untrained hashes to {shipped}"
    ):
        submit(write(tmp_path / "lie.json", record), "lie", root=tmp_path / "boards")
    model_file = tmp_path / "model.safetensors"
    model_file.write_bytes(b"not the weights the record names")
    record["model"]["spec"] = f"safetensors:{model_file}"
    with pytest.raises(SubmissionError, match=f"safetensors:{model_file} hashes to [0-9a-f]{{64}}$"):
        submit(write(tmp_path / "lie.json", record), "lie", root=tmp_path / "boards")
    assert not (tmp_path / "boards").exists()


def test_a_key_is_recomputed_from_local_files(tmp_path, complete_result_file):
    from fmbench.checkpoints import file_sha256

    model_file = tmp_path / "model.safetensors"
    model_file.write_bytes(b"some weights")
    record = json.loads(complete_result_file.read_text())
    record["model"].update(
        spec=f"safetensors:{model_file}",
        weights_sha256=file_sha256(model_file),
        key=weights_key(file_sha256(model_file)),
    )
    entry = json.loads(submit(write(tmp_path / "r.json", record), "mine", root=tmp_path / "boards").read_text())
    assert entry["submission"]["key"] == "recomputed" and entry["model"]["key"]["sha256"] == file_sha256(model_file)
    model_file.unlink()  # another model whose file is not at hand: its key is the one the record states
    record["model"].update(weights_sha256="ef" * 32, key=weights_key("ef" * 32))
    entry = json.loads(submit(write(tmp_path / "r2.json", record), "theirs", root=tmp_path / "boards").read_text())
    assert entry["submission"]["key"] == "stated" and entry["model"]["key"] == weights_key("ef" * 32)


def test_the_baseline_mark_follows_the_recomputed_key_not_the_name_or_spec(tmp_path, complete_result_file):
    root = tmp_path / "boards"
    submit(complete_result_file, "anything", root=root)  # baseline:untrained under any name
    stated = json.loads(complete_result_file.read_text())
    stated["model"]["spec"] = "python:mine:make"  # claims the baseline's weights; cannot be recomputed without its code
    other_root = tmp_path / "other"
    assert (
        json.loads(submit(write(tmp_path / "s.json", stated), "claims", root=other_root).read_text())["submission"][
            "key"
        ]
        == "stated"
    )
    assert [(r["name"], r["baseline"]) for r in ranked_rows(DIRECT, root)] == [("anything", True)]
    assert [(r["name"], r["baseline"]) for r in ranked_rows(DIRECT, other_root)] == [("claims", False)]


def test_submit_verify_marks_a_genuine_record(tmp_path, genuine, fmbench_cli):
    root = tmp_path / "boards"
    proc = fmbench_cli(
        "submit", write(tmp_path / "r.json", genuine), "--name", "real", "--verify", "--leaderboards", root
    )
    assert proc.returncode == 0, proc.stderr
    seed = re.search(r"re-running seed (\d) of \[0, 1, 2\] on cpu", proc.stdout)
    assert seed and "accepted (verified)" in proc.stdout
    verified = json.loads((root / POLICY / "real.json").read_text())["submission"]["verified"]
    assert verified["seed"] == int(seed[1]) and verified["by"] == "submit --verify" and verified["device"] == "cpu"
    table = fmbench_cli("leaderboard", POLICY, "--leaderboards", root).stdout.splitlines()
    assert table[0].endswith("verified") and table[1].endswith(f"yes (seed {seed[1]})")


def test_made_up_but_consistent_values_pass_validate_and_fail_verify(tmp_path, made_up, fmbench_cli):
    path = write(tmp_path / "made-up.json", made_up)
    validate(path)
    root = tmp_path / "boards"
    proc = fmbench_cli("submit", path, "--name", "fake", "--verify", "--leaderboards", root)
    assert proc.returncode == 1 and len(proc.stderr.strip().splitlines()) == 1
    assert re.search(
        r"verification failed: fmbench/ComposeTokensPolicy-v0 seed \d metric 'mean_return': stated [0-9.]+, "
        r"recomputed [0-9.]+ \(tolerance 1e-06 \+ 1e-06 x \|recomputed\|\)",
        proc.stderr,
    ), proc.stderr
    assert not root.exists()
    assert fmbench_cli("submit", path, "--name", "fake", "--leaderboards", root).returncode == 0  # unverified: taken


def test_leaderboard_verify_writes_a_verification_beside_each_entry_and_never_the_entry(
    tmp_path, genuine, made_up, fmbench_cli
):
    root = tmp_path / "boards"
    submit(write(tmp_path / "g.json", genuine), "real", root=root)
    submit(write(tmp_path / "m.json", made_up), "fake", root=tmp_path / "spare")  # its own board: not a duplicate
    (root / POLICY / "fake.json").write_bytes((tmp_path / "spare" / POLICY / "fake.json").read_bytes())  # as if by a PR
    entries = {name: (root / POLICY / f"{name}.json").read_bytes() for name in ("real", "fake")}
    proc = fmbench_cli("leaderboard", "verify", POLICY, "--leaderboards", root)
    assert proc.returncode == 1
    assert "verified real" in proc.stdout.splitlines() and "1 of 2 entries verified" in proc.stdout
    assert re.search(r"NOT verified fake: verification failed: .* metric 'mean_return'", proc.stdout)
    assert {name: (root / POLICY / f"{name}.json").read_bytes() for name in entries} == entries
    assert sorted(p.name for p in (root / POLICY).iterdir()) == ["fake.json", "real.json", "real.verified.json"]
    rows = {r["name"]: r["verified"] for r in ranked_rows(POLICY, root)}
    assert rows["fake"] is None and rows["real"]["by"] == "leaderboard verify"
    assert fmbench_cli("leaderboard", "check", "--leaderboards", root).returncode == 0
    only = fmbench_cli("leaderboard", "verify", POLICY, "--entry", "real", "--leaderboards", root)
    assert only.returncode == 0 and "1 of 1 entries verified" in only.stdout
    changed = json.loads(entries["real"])
    changed["submission"]["code_url"] = "https://example.org/edited"
    (root / POLICY / "real.json").write_text(json.dumps(changed, indent=2))  # edited after it was verified
    check = fmbench_cli("leaderboard", "check", "--leaderboards", root)
    assert (
        check.returncode == 1 and "real.verified.json: stale: real.json changed after it was verified" in check.stdout
    )
    assert {r["name"]: r["verified"] for r in ranked_rows(POLICY, root)} == {"real": None, "fake": None}
    missing = fmbench_cli("leaderboard", "verify", POLICY, "--entry", "nobody", "--leaderboards", root)
    assert missing.returncode == 1 and "has no valid entry named 'nobody'" in missing.stderr


def test_the_plain_table_keeps_one_line_per_entry(tmp_path, genuine, fmbench_cli):
    genuine["device"] = "cpu\n2  forged row\r\x1b[2J\u2028end"
    root = tmp_path / "boards"
    submit(write(tmp_path / "r.json", genuine), "hostile", root=root)
    (root / POLICY / "bad\nrank 1.json").write_text("{}")  # a file name cannot forge a line either
    lines = fmbench_cli("leaderboard", POLICY, "--leaderboards", root).stdout.splitlines()
    assert len(lines) == 4 and "cpu 2  forged row  [2J end" in lines[1] and "\x1b" not in lines[1]
    assert lines[2] == "invalid entries (not ranked):" and "bad rank 1.json: not a leaderboard entry" in lines[3]
    check = fmbench_cli("leaderboard", "check", "--leaderboards", root).stdout.splitlines()
    assert len(check) == 2 and "bad rank 1.json" in check[0]


def test_a_name_ending_in_verified_is_refused(tmp_path, genuine):
    with pytest.raises(SubmissionError, match="may not end with '.verified'"):
        submit(write(tmp_path / "r.json", genuine), "x.verified", root=tmp_path / "boards")
