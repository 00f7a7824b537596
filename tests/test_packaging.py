"""The built wheel carries the spec files, schema and checkpoints, and finds them installed."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

import fmbench

REPO = Path(__file__).resolve().parent.parent


@pytest.mark.slow  # builds and installs the wheel
def test_wheel_install_finds_specs(tmp_path):
    pip = [sys.executable, "-m", "pip"]
    subprocess.run(
        [*pip, "wheel", "--no-deps", "--no-build-isolation", "-q", str(REPO), "-w", str(tmp_path / "w")],
        check=True,
        capture_output=True,
        timeout=600,
    )
    wheel = next((tmp_path / "w").glob("fmbench-*.whl"))
    subprocess.run(
        [*pip, "install", "--no-deps", "-q", "--target", str(tmp_path / "site"), str(wheel)],
        check=True,
        capture_output=True,
        timeout=600,
    )
    code = (
        "import fmbench, fmbench.registry as r, fmbench.results as res; "
        "t = fmbench.make_task('fmbench/ComposeStepByStep-v0'); t.load_baseline('trained'); "
        "print(fmbench.__file__, r.builtin_root(), res.SCHEMA_PATH.is_file(), len(fmbench.list_tasks()), "
        "len(fmbench.list_envs()))"
    )
    out = subprocess.run(
        [sys.executable, "-c", code],
        capture_output=True,
        text=True,
        cwd=tmp_path,
        timeout=300,
        env={**os.environ, "PYTHONPATH": str(tmp_path / "site")},
    )
    assert out.returncode == 0, out.stderr
    module, root, schema, n_tasks, n_envs = out.stdout.split()
    assert module.startswith(str(tmp_path / "site"))
    assert root == str(tmp_path / "site" / "fmbench" / "_specs")
    assert (schema, int(n_tasks), int(n_envs)) == ("True", len(fmbench.list_tasks()), len(fmbench.list_envs()))
