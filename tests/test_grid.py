"""``fmbench grid``: checks before anything runs, records written cell by cell and resumed, failed cells
reported, and a real Ray cluster (``ray start --head``) whose records equal a serial ``fmbench eval``."""

from __future__ import annotations

import dataclasses
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pytest

from conftest import TINY_TASK
from fmbench.baselines import main as submit_main
from fmbench.errors import InputError
from fmbench.grid import Collector, Grid, read_grid_file
from fmbench.leaderboard import entries
from fmbench.registry import make_task
from fmbench.results import load_record

TASK = "fmbench/ComposeDirect-v0"
STEP = "fmbench/ComposeStepByStep-v0"

FAILING_MODEL = '''
import torch


class FailsOnLargeBatches(torch.nn.Module):
    """Passes the task's model check (a batch of 2) and raises on the evaluator's batches."""

    def __init__(self, vocab_size):
        super().__init__()
        self.vocab_size = vocab_size
        self.bias = torch.nn.Parameter(torch.zeros(vocab_size))

    def forward(self, ids):
        if ids.shape[0] > 2:
            raise RuntimeError("deliberate failure in this cell")
        return self.bias.expand(*ids.shape, self.vocab_size)


def make(task):
    return FailsOnLargeBatches(len(task.vocab))
'''


def one_line_error(proc, *fragments: str) -> str:
    assert proc.returncode == 1, proc.stdout
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and "Traceback" not in proc.stderr, proc.stderr
    for fragment in fragments:
        assert fragment in lines[0], lines[0]
    return lines[0]


def fake_result(task_id: str) -> dict:
    """A cell result as ``run_cell`` returns it (every metric of the task, a well-formed data hash)."""
    return {"metrics": dict.fromkeys(make_task(task_id).spec.metrics, 0.25), "data_hash": "0" * 64, "seconds": 0.5}


def test_unknown_task_or_model_stops_the_grid_before_anything_runs(fmbench_cli, tmp_path):
    out = tmp_path / "grid"
    proc = fmbench_cli(
        "grid",
        "--tasks",
        f"{TASK},fmbench/NoSuchTask-v0",
        "--models",
        "baseline:trained",
        "--out",
        out,
        "--no-progress",
    )
    one_line_error(proc, "fmbench/NoSuchTask-v0")
    proc = fmbench_cli("grid", "--tasks", TASK, "--models", "baseline:trained,baseline:nonesuch", "--out", out)
    one_line_error(proc, "nonesuch")
    spec = tmp_path / "grid.toml"  # the same from a grid file; the command line overrides the file
    spec.write_text(f'tasks = ["{TASK}"]\nmodels = ["baseline:trained"]\nseeds = [0, 1]\nlimit = 0\n')
    one_line_error(fmbench_cli("grid", "--file", spec, "--out", out), "limit must be >= 1")
    one_line_error(fmbench_cli("grid", "--file", spec, "--tasks", "fmbench/NoSuch-v0", "--out", out), "NoSuch")
    assert not out.exists()


def test_unreachable_cluster_is_one_line_within_the_stated_timeout(fmbench_cli, tmp_path):
    with socket.socket() as s:  # a port nobody listens on: bound, never listening
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
        start = time.perf_counter()
        proc = fmbench_cli(
            "grid",
            "--tasks",
            TASK,
            "--models",
            "baseline:untrained",
            "--address",
            f"127.0.0.1:{port}",
            "--out",
            tmp_path / "g",
            "--limit",
            "64",
        )
    one_line_error(proc, f"cannot reach the Ray cluster at 127.0.0.1:{port} within 10 s")
    assert time.perf_counter() - start < 10
    assert not (tmp_path / "g").exists()


def test_grid_file_keys_are_checked(tmp_path):
    bad = tmp_path / "grid.toml"
    bad.write_text('tasks = ["fmbench/ComposeDirect-v0"]\nmodel = ["baselines"]\n')
    with pytest.raises(Exception, match=r"unknown keys \['model'\]"):
        read_grid_file(bad)
    bad.write_text("tasks = 'fmbench/ComposeDirect-v0'\n")
    with pytest.raises(Exception, match="tasks must be a list of strings"):
        read_grid_file(bad)


def test_cells_are_written_as_they_finish_and_a_rerun_resumes(tmp_path):
    grid = Grid.build([TASK], ["baselines"], seeds="0-2", limit=64)
    assert grid.pairs == [(TASK, "baseline:untrained"), (TASK, "baseline:trained")]
    collector = Collector(grid, tmp_path)
    assert len(collector.todo) == 6 and collector.skipped == 0
    first, second, *_ = collector.todo
    collector.finished(first, fake_result(TASK))
    collector.failed(second, "RuntimeError: boom")
    path = Grid.record_path(tmp_path, TASK, "baseline:untrained")
    record = load_record(path)  # on disk as soon as the cell finished
    assert list(record["per_seed"]) == ["0"] and record["limit"] == 64
    summary = json.loads(collector.write_summary().read_text())["cells"]
    assert [c["status"] for c in summary] == ["finished", "failed", "not run", "not run", "not run", "not run"]
    assert summary[1]["error"] == "RuntimeError: boom"
    assert "1" in collector.table().splitlines()[1]  # the failed seed is listed

    again = Collector(grid, tmp_path)  # a rerun: reads the records back
    assert again.skipped == 1
    assert [(c.model, c.seed) for c in again.todo] == [("baseline:untrained", 1), ("baseline:untrained", 2)] + [
        ("baseline:trained", seed) for seed in range(3)
    ]
    with pytest.raises(Exception, match="limit 64, not 32"):  # another limit never overwrites finished cells
        Collector(dataclasses.replace(grid, limit=32), tmp_path)
    assert load_record(path) == record


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_combined_grids_keep_every_pair_and_refuse_mixed_settings():
    a = Grid.build([STEP], ["baseline:untrained"], seeds="0", limit=64)
    b = Grid.build([STEP], ["baseline:trained"], seeds="0", limit=64)
    both = Grid.combine([a, b])
    assert both.pairs == [(STEP, "baseline:untrained"), (STEP, "baseline:trained")] and len(both.cells()) == 2
    with pytest.raises(InputError, match="appears in two"):
        Grid.combine([a, a])
    with pytest.raises(InputError, match="different settings"):
        Grid.combine([a, Grid.build([STEP], ["baseline:trained"], seeds="0", limit=128)])


@pytest.fixture
def ray_cluster(tmp_path):
    """A real one-node Ray cluster (``ray start --head --block``) whose workers can import ``tmp_path``'s modules;
    stopped by signalling its own ``ray start`` process (never ``ray stop``, which stops every Ray on the machine)."""
    port = _free_port()
    temp = tempfile.mkdtemp(prefix="ray", dir="/tmp")  # short: Ray's socket paths must fit in 107 bytes
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(tmp_path), os.environ.get("PYTHONPATH", "")])}
    ray = shutil.which("ray", path=str(Path(sys.executable).parent)) or "ray"
    proc = subprocess.Popen(
        [
            ray,
            "start",
            "--head",
            f"--port={port}",
            "--num-cpus=2",
            "--node-ip-address=127.0.0.1",
            # every fixed default port made free: another Ray on the machine (the federated tests') may hold it
            *(
                f"--{name}={_free_port()}"
                for name in (
                    "ray-client-server-port",
                    "dashboard-agent-listen-port",
                    "dashboard-agent-grpc-port",
                    "runtime-env-agent-port",
                    "metrics-export-port",
                )
            ),
            "--include-dashboard=false",
            "--disable-usage-stats",
            f"--temp-dir={temp}",
            "--block",
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        env=env,
        start_new_session=True,
    )
    try:
        for line in proc.stdout:
            if "Ray runtime started" in line:
                break
        else:
            pytest.fail(f"ray start --head exited with status {proc.wait()}")
        yield f"127.0.0.1:{port}"
    finally:
        proc.send_signal(signal.SIGTERM)
        proc.wait(timeout=60)
        shutil.rmtree(temp, ignore_errors=True)


@pytest.fixture
def tiny_tasks(monkeypatch, tiny_spec_root):
    """The test-only tiny task registered here and, started after this fixture, in the cluster's workers."""
    monkeypatch.setenv("FMBENCH_SPEC_PATH", str(tiny_spec_root))


@pytest.mark.slow
def test_grid_on_a_real_cluster_equals_serial_eval_and_survives_a_failing_cell(
    tiny_tasks, ray_cluster, fmbench_cli, tmp_path
):
    """About 30-60 s on the shared 2-core machine: the cluster's start (10-30 s), its workers importing torch and
    fmbench (10-25 s), four cells and their rerun, and the baselines job (`make leaderboards`) as a grid."""
    from fmbench.models import load_model
    from fmbench.runner import run_evaluation

    (tmp_path / "gridfail.py").write_text(FAILING_MODEL)
    out = tmp_path / "grid"
    grid_args = [
        "--tasks",
        STEP,
        "--models",
        "baseline:trained,python:gridfail:make",
        "--seeds",
        "0,1",
        "--limit",
        "64",
        "--trust-code",
        "--no-progress",
        "--out",
        out,
        "--address",
        ray_cluster,
    ]
    proc = fmbench_cli("grid", *grid_args, cwd=tmp_path)
    assert proc.returncode == 1, proc.stderr  # cells failed
    assert "2/4 cells finished" in proc.stdout, proc.stdout
    cells = json.loads((out / "grid.json").read_text())["cells"]
    failed = [c for c in cells if c["status"] == "failed"]
    assert {(c["task"], c["seed"]) for c in failed} == {(STEP, 0), (STEP, 1)}
    assert all(c["model"] == "python:gridfail:make" and "deliberate failure" in c["error"] for c in failed)

    path = Grid.record_path(out, STEP, "baseline:trained")
    assert fmbench_cli("validate", path).returncode == 0
    task = make_task(STEP)
    serial = run_evaluation(
        task, load_model("baseline:trained", task), [0, 1], device="cpu", limit=64, progress=False, log=print
    )
    record = load_record(path)
    assert json.dumps(record["metrics"]) == json.dumps(serial["metrics"])  # byte-identical metrics
    assert record["task"]["data_hash"] == serial["task"]["data_hash"]
    assert record["metrics"]["exact_match"]["mean"] > 0.9  # a trained model: the metrics say something
    assert not Grid.record_path(out, STEP, "python:gridfail:make").exists()  # no cell of it finished

    rerun = fmbench_cli("grid", *grid_args, cwd=tmp_path)  # resumes: only the failed cells run again
    assert "resuming" in rerun.stdout and "(2 already done)" in rerun.stdout, rerun.stdout

    # `make leaderboards` as a grid: the tiny task's baseline, full evaluations, submitted as the serial job does
    boards = {}
    for how, extra in (("grid", ["--grid", "--address", ray_cluster]), ("serial", [])):
        root = tmp_path / f"leaderboards-{how}"
        root.mkdir()
        runs = ["--runs", str(tmp_path / f"runs-{how}"), "--leaderboards", str(root)]
        submit_main(["--tasks", TINY_TASK, "--seeds", "0-2", *runs, *extra])
        boards[how] = entries(TINY_TASK, root)
    assert [e["submission"]["name"] for e in boards["grid"]] == ["baseline-untrained"]
    assert json.dumps(boards["grid"][0]["metrics"]) == json.dumps(boards["serial"][0]["metrics"])
