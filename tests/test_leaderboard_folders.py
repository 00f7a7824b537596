"""Leaderboard folders that survive bad files: invalid entries are listed (with why) and the rest
renders, ``submit`` still works, ``fmbench leaderboard check`` reports every bad file, free text is
escaped in Markdown, symlinks are refused and stale temp files of killed writers are removed."""

from __future__ import annotations

import json
import os
import re
import time
from pathlib import Path

import pytest

from fmbench.leaderboard import md_escape, submit
from fmbench.model_key import weights_key

TASK = "fmbench/ComposeDirect-v0"
INJECTION = "# cpu | `x` [click](https://evil.example) <img src=x onerror=alert(1)>\n# second line"


@pytest.fixture
def board(tmp_path, complete_result_file) -> Path:
    """A leaderboards folder with one valid entry (the untrained baseline)."""
    root = tmp_path / "leaderboards"
    submit(complete_result_file, "baseline-untrained", root=root)
    return root


def entry(board: Path) -> dict:
    return json.loads((board / TASK / "baseline-untrained.json").read_text())


def other_model(tmp_path: Path, complete_result_file: Path, sha: str = "cd") -> Path:
    """A copy of the complete result as if from another model (other weights)."""
    record = json.loads(complete_result_file.read_text())
    record["model"].update(
        spec="safetensors:other.safetensors", name="other", weights_sha256=sha * 32, key=weights_key(sha * 32)
    )
    path = tmp_path / f"other-{sha}.json"
    path.write_text(json.dumps(record))
    return path


def write_bad_files(board: Path, complete_result_file: Path) -> dict[str, str]:
    """Malformed entries beside the valid one: file name -> a fragment of the reason it is refused."""
    folder, good = board / TASK, entry(board)
    (folder / "broken.json").write_text("{not json")
    (folder / "a-list.json").write_text("[1, 2]")
    (folder / "plain.json").write_text(complete_result_file.read_text())  # valid JSON, no submission block
    no_metrics = {k: v for k, v in good.items() if k != "metrics"} | {"submission": good["submission"] | {"name": "x"}}
    (folder / "no-metrics.json").write_text(json.dumps(no_metrics))
    (folder / "types.json").write_text(json.dumps(good | {"seeds": "0,1,2"}))
    return {
        "broken.json": "not valid JSON",
        "a-list.json": "a JSON list",
        "plain.json": "no submission block",
        "no-metrics.json": "metrics",
        "types.json": "seeds",
    }


def test_md_escape_makes_free_text_inert():
    assert md_escape("# Heading") == "\\# Heading"
    assert md_escape("[click](https://evil.example)") == "\\[click\\](https://evil.example)"
    assert md_escape("<img src=x onerror=alert(1)>") == "&lt;img src=x onerror=alert(1)&gt;"
    assert md_escape("a|b `c`\nd\r\ne") == "a\\|b \\`c\\` d e"
    assert md_escape("a\\|b") == "a\\\\\\|b"  # a backslash cannot cancel the escape that follows it
    assert md_escape("not # a heading") == "not # a heading" and md_escape(12) == "12"


def test_bad_entries_are_listed_and_the_table_still_renders(fmbench_cli, board, complete_result_file):
    reasons = write_bad_files(board, complete_result_file)
    proc = fmbench_cli("leaderboard", TASK, "--leaderboards", board)
    assert proc.returncode == 0 and proc.stderr == ""
    lines = proc.stdout.splitlines()
    assert lines[1].startswith("1") and "baseline-untrained (baseline)" in lines[1] and len(lines) == 3 + len(reasons)
    assert lines[2] == "invalid entries (not ranked):"
    listed = {Path(line.strip().split(": ", 1)[0]).name: line.split(": ", 1)[1] for line in lines[3:]}
    assert set(listed) == set(reasons) and all(reasons[name] in why for name, why in listed.items())
    as_json = fmbench_cli("leaderboard", TASK, "--leaderboards", board, "--json")
    assert [r["name"] for r in json.loads(as_json.stdout)] == ["baseline-untrained"]
    assert "invalid entries" in as_json.stderr

    proc = fmbench_cli("leaderboard", "render", "--leaderboards", board)
    assert proc.returncode == 0, proc.stderr
    readme = (board / TASK / "README.md").read_text()
    assert "| 1 | baseline-untrained (baseline) |" in readme
    assert all(f"- {name}: " in readme for name in reasons)
    assert f"| [{TASK}]({TASK}/README.md) | 2311.12997 | 1 | baseline-untrained |" in (board / "README.md").read_text()


def test_check_reports_every_bad_file(fmbench_cli, board, complete_result_file):
    clean = fmbench_cli("leaderboard", "check", "--leaderboards", board)
    assert (clean.returncode, clean.stdout) == (0, "every leaderboard file is valid\n")
    reasons = write_bad_files(board, complete_result_file)
    (board / "stray.json").write_text("{}")  # not in a task's folder
    proc = fmbench_cli("leaderboard", "check", "--leaderboards", board)
    lines = proc.stdout.splitlines()
    assert proc.returncode == 1 and lines[-1] == f"{len(reasons) + 1} invalid file(s)"
    named = {Path(line.split(": ", 1)[0]).name for line in lines[:-1]}
    assert named == {*reasons, "stray.json"} and len(lines) == len(reasons) + 2


def test_check_of_a_missing_folder_is_an_error(fmbench_cli, tmp_path):
    proc = fmbench_cli("leaderboard", "check", "--leaderboards", tmp_path / "absent")
    assert (
        proc.returncode == 1 and proc.stderr == f"fmbench leaderboard: error: {tmp_path / 'absent'} is not a folder\n"
    )


def test_check_passes_on_the_shipped_leaderboards(fmbench_cli):
    shipped = Path(__file__).resolve().parent.parent / "leaderboards"
    proc = fmbench_cli("leaderboard", "check", "--leaderboards", shipped)
    assert (proc.returncode, proc.stdout) == (0, "every leaderboard file is valid\n")


def test_submit_works_beside_bad_files(fmbench_cli, board, complete_result_file, tmp_path):
    reasons = write_bad_files(board, complete_result_file)
    proc = fmbench_cli(
        "submit", other_model(tmp_path, complete_result_file), "--name", "other", "--leaderboards", board
    )
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.splitlines()[-1] == f"accepted: {board / TASK / 'other.json'}"
    skipped = [line for line in proc.stdout.splitlines() if line.startswith("skipped invalid entry")]
    assert len(skipped) == len(reasons)
    names = [r["name"] for r in json.loads(fmbench_cli("leaderboard", TASK, "--leaderboards", board, "--json").stdout)]
    assert sorted(names) == ["baseline-untrained", "other"]
    clash = fmbench_cli(
        "submit", other_model(tmp_path, complete_result_file, "ef"), "--name", "broken", "--leaderboards", board
    )
    assert (
        clash.returncode == 1
        and "already exists" in clash.stderr
        and "{not json" == (board / TASK / "broken.json").read_text()
    )


def test_free_text_is_escaped_in_the_rendered_markdown(fmbench_cli, board):
    hostile = entry(board) | {"device": INJECTION}
    hostile["submission"] = hostile["submission"] | {"name": "hostile", "code_url": "javascript:alert(1)"}
    (board / TASK / "hostile.json").write_text(json.dumps(hostile))
    assert fmbench_cli("leaderboard", "check", "--leaderboards", board).returncode == 0
    assert fmbench_cli("leaderboard", "render", "--leaderboards", board).returncode == 0
    readme = (board / TASK / "README.md").read_text()
    row = next(line for line in readme.splitlines() if line.startswith("| ") and "hostile" in line)
    assert md_escape(INJECTION) in row and row.count(" | ") == 7  # still 8 cells
    assert "<img" not in readme and not re.search(r"(?<!\\)\]\(", readme) and "\n# second" not in readme


def test_symlinked_entries_are_refused(fmbench_cli, board, tmp_path):
    outside = tmp_path / "outside.json"
    outside.write_text(json.dumps(entry(board) | {"submission": entry(board)["submission"] | {"name": "linked"}}))
    (board / TASK / "linked.json").symlink_to(outside)
    proc = fmbench_cli("leaderboard", TASK, "--leaderboards", board)
    assert proc.returncode == 0 and f"{board / TASK / 'linked.json'}: a symlink (refused)" in proc.stdout
    assert [
        r["name"] for r in json.loads(fmbench_cli("leaderboard", TASK, "--leaderboards", board, "--json").stdout)
    ] == ["baseline-untrained"]
    check = fmbench_cli("leaderboard", "check", "--leaderboards", board)
    assert (
        check.returncode == 1 and check.stdout.splitlines()[0] == f"{board / TASK / 'linked.json'}: a symlink (refused)"
    )


def test_symlinked_task_folders_are_never_written(fmbench_cli, complete_result_file, tmp_path):
    board, elsewhere = tmp_path / "leaderboards", tmp_path / "elsewhere"
    elsewhere.mkdir()
    (board / "fmbench").mkdir(parents=True)
    (board / TASK).symlink_to(elsewhere, target_is_directory=True)
    proc = fmbench_cli("submit", complete_result_file, "--name", "x", "--leaderboards", board)
    assert proc.returncode == 1 and "is a symlink (refused)" in proc.stderr and proc.stderr.count("\n") == 1
    assert list(elsewhere.iterdir()) == []
    render = fmbench_cli("leaderboard", "render", "--leaderboards", board)
    assert render.returncode == 0 and list(elsewhere.iterdir()) == [] and "is a symlink (refused)" in render.stdout
    listed = fmbench_cli("leaderboard", TASK, "--leaderboards", board)
    assert listed.returncode == 0 and "is a symlink (refused)" in listed.stdout
    check = fmbench_cli("leaderboard", "check", "--leaderboards", board)
    assert check.returncode == 1 and check.stdout.splitlines()[0] == f"{board / TASK}: a symlink (refused)"


def test_the_next_submit_removes_stale_temp_files(fmbench_cli, board, complete_result_file, tmp_path):
    folder = board / TASK
    stale, fresh, other = folder / ".killed.json.abc123.tmp", folder / ".busy.json.def456.tmp", folder / "notes.tmp"
    for path in (stale, fresh, other):
        path.write_text("{partial")
    old = time.time() - 3600
    os.utime(stale, (old, old))
    os.utime(other, (old, old))
    proc = fmbench_cli(
        "submit", other_model(tmp_path, complete_result_file), "--name", "other", "--leaderboards", board
    )
    assert proc.returncode == 0, proc.stderr
    assert f"removed stale temp file {stale}" in proc.stdout.splitlines()
    assert not stale.exists() and fresh.exists() and other.exists()  # young or not a writer's temp file: kept
