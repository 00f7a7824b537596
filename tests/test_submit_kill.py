"""``kill -9`` during ``fmbench submit``: no partial entry ever appears, the lock dies with the writer, and
the next submit succeeds and removes the temp files a killed writer left behind (once they are stale).

Each case starts real ``fmbench submit`` processes (seconds of imports each), so the module is ``slow``.
"""

from __future__ import annotations

import fcntl
import json
import os
import random
import shutil
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from fmbench.leaderboard import STALE_TEMP_SECONDS, VERIFIED_SUFFIX, check_entry, submit

pytestmark = pytest.mark.slow

TASK = "fmbench/ComposeDirect-v0"
SHIPPED = Path(__file__).resolve().parent.parent / "leaderboards"

# `fmbench submit` whose fsync of a file in the leaderboards folder (the entry's temp file) announces itself
# through a marker file and then hangs: the writer holds the lock with a complete temp file not yet in place.
HOLD_AT_FSYNC = """
import os, sys, time
marker, root, argv = sys.argv[1], os.path.realpath(sys.argv[2]), sys.argv[3:]
real_fsync = os.fsync
def fsync(fd):
    real_fsync(fd)
    if os.path.realpath(f"/proc/self/fd/{fd}").startswith(root + os.sep):
        open(marker, "w").close()
        time.sleep(600)
os.fsync = fsync
from fmbench.cli import main
sys.exit(main(argv))
"""


def result_file(folder: Path, sha: str) -> Path:
    """A submittable result (a shipped entry as another model's, weights hash ``sha * 32``)."""
    record = json.loads((SHIPPED / TASK / "baseline-untrained.json").read_text())
    del record["submission"]
    record["model"].update(
        spec=f"safetensors:{sha}.safetensors",
        name=sha,
        weights_sha256=sha * 32,
        key={"sha256": sha * 32, "of": "weights"},
    )
    path = folder / f"result-{sha}.json"
    path.write_text(json.dumps(record))
    return path


def assert_no_partial_entry(folder: Path) -> None:
    """Every ``*.json`` in the task's folder is a complete, valid entry."""
    for path in folder.glob("*.json"):
        if not path.name.endswith(VERIFIED_SUFFIX):  # a verification beside its entry is not an entry
            assert check_entry(path, TASK) is None, path


def assert_lock_free(folder: Path) -> None:
    fd = os.open(folder, os.O_RDONLY | os.O_DIRECTORY)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)  # BlockingIOError if a dead writer's lock were stuck
    finally:
        os.close(fd)


@pytest.fixture
def board(tmp_path) -> Path:
    root = tmp_path / "leaderboards"
    shutil.copytree(SHIPPED / TASK, root / TASK)
    return root


def test_a_writer_killed_while_writing_leaves_no_entry_and_the_next_submit_cleans_up(board, tmp_path):
    folder, marker = board / TASK, tmp_path / "writing"
    before = {p.name: p.read_bytes() for p in folder.iterdir()}
    argv = ["submit", result_file(tmp_path, "aa"), "--name", "killed", "--leaderboards", board]
    proc = subprocess.Popen(
        [sys.executable, "-c", HOLD_AT_FSYNC, marker, board, *map(str, argv)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    try:
        deadline = time.monotonic() + 300
        while not marker.exists() and proc.poll() is None and time.monotonic() < deadline:
            time.sleep(0.05)
        assert marker.exists(), proc.stderr.read().decode() if proc.poll() is not None else "timed out"
    finally:
        proc.send_signal(signal.SIGKILL)  # held in its fsync (or never got there): kill -9 either way
        proc.wait(60)
        proc.stderr.close()

    temp = [p for p in folder.iterdir() if p.name not in before]
    assert len(temp) == 1 and temp[0].name.startswith(".killed.json.") and temp[0].name.endswith(".tmp")
    assert json.loads(temp[0].read_text())["submission"]["name"] == "killed"  # complete, but never in place
    assert_no_partial_entry(folder)
    assert_lock_free(folder)

    young = submit(result_file(tmp_path, "bb"), "after-kill", root=board)
    assert young.exists() and temp[0].exists()  # a young temp file may belong to a live writer: kept
    old = time.time() - STALE_TEMP_SECONDS - 60
    os.utime(temp[0], (old, old))
    removed = []
    submit(result_file(tmp_path, "cc"), "later", root=board, log=removed.append)
    assert [line for line in removed if line.startswith("removed")] == [f"removed stale temp file {temp[0]}"]
    assert not temp[0].exists()
    assert {p.name for p in folder.iterdir()} == {*before, "after-kill.json", "later.json"}
    assert all((folder / name).read_bytes() == data for name, data in before.items())
    assert_no_partial_entry(folder)


def test_writers_killed_at_random_points_never_leave_a_partial_entry(board, tmp_path):
    folder, rng = board / TASK, random.Random(0)
    before = {p.name for p in folder.iterdir()}
    procs = []
    for i in range(2):  # concurrent writers: they also contend for the folder's lock
        argv = ["submit", result_file(tmp_path, f"{i}d"), "--name", f"killed-{i}", "--leaderboards", board]
        procs.append(
            subprocess.Popen(
                [sys.executable, "-m", "fmbench.cli", *map(str, argv)],
                stdout=subprocess.PIPE,
                stderr=subprocess.DEVNULL,
                text=True,
            )
        )

    def kill_soon_after_the_checks(proc: subprocess.Popen, delay: float) -> None:
        for line in proc.stdout:  # the data-hash line comes right before the lock is taken and the entry written
            if "data hashes" in line:
                time.sleep(delay)
                break
        proc.send_signal(signal.SIGKILL)

    killers = [
        threading.Thread(target=kill_soon_after_the_checks, args=(p, rng.uniform(0, 0.05)), daemon=True) for p in procs
    ]
    for k in killers:
        k.start()
    for k, p in zip(killers, procs):
        k.join(300)
        p.wait(60)
        p.stdout.close()
    assert_no_partial_entry(folder)
    assert_lock_free(folder)
    landed = {p.name for p in folder.glob("*.json")} - before
    assert landed <= {f"killed-{i}.json" for i in range(2)}  # a writer killed after its entry was in place
    for name in landed:
        assert json.loads((folder / name).read_text())["submission"]["name"] == Path(name).stem
    submit(result_file(tmp_path, "ee"), "after-kills", root=board)
    assert_no_partial_entry(folder)
