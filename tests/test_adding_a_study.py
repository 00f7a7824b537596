"""docs/adding-a-study.md works as written: its toy study registers from a spec folder and as an installed
distribution, its golden hashes are right, its commands run; broken ``fmbench.studies`` entry points are skipped.

The doc's files are the code blocks preceded by ``<!-- file: PATH -->``; its commands (run in-process) are the
lines of the blocks preceded by ``<!-- run -->``, and the block after ``<!-- output -->`` is what the last of
them prints.
"""

from __future__ import annotations

import doctest
import importlib
import os
import re
import shlex
import subprocess
import sys
import time
from pathlib import Path

import gymnasium as gym
import pytest

from fmbench import registry
from fmbench.cli import main

REPO = Path(__file__).resolve().parent.parent
DOC = REPO / "docs" / "adding-a-study.md"
TASK, ENV, STUDY = "fmbench/ParityBits-v0", "fmbench/ParityAnswer-v0", "2207.08799"
FILE_BLOCK = re.compile(r"^<!-- file: (\S+) -->\n```\w*\n(.*?)^```$", re.M | re.S)
RUN_BLOCK = re.compile(r"^<!-- run -->\n```\w*\n(.*?)^```$", re.M | re.S)
OUTPUT_BLOCK = re.compile(r"^<!-- output -->\n```\w*\n(.*?)^```$", re.M | re.S)
VARYING = re.compile(r"\b(\d{4}-\d{2}-\d{2}|cpu|cuda)\b")  # the leaderboard's date and device columns


def extract(root: Path) -> Path:
    """Write the doc's files under ``root``; return it."""
    blocks = FILE_BLOCK.findall(DOC.read_text(encoding="utf-8"))
    assert {p for p, _ in blocks} >= {"toystudy/task.py", "toystudy/specs/tasks/parity.toml", "pyproject.toml"}
    for path, text in blocks:
        (root / path).parent.mkdir(parents=True, exist_ok=True)
        (root / path).write_text(text, encoding="utf-8")
    return root


@pytest.fixture
def clean_registry(monkeypatch):
    """Forget registries read during the test, the toy's Gymnasium env and its imported modules afterwards."""
    registry.reload()
    yield monkeypatch
    monkeypatch.undo()  # the environment and sys.path first, then the registry is read again from them
    registry.reload()
    gym.registry.pop(ENV, None)
    for name in [m for m in sys.modules if m == "toystudy" or m.startswith("toystudy.")]:
        del sys.modules[name]


def run_doc_commands(root: Path, monkeypatch, capsys) -> list[tuple[str, str]]:
    """Run the ``<!-- run -->`` lines in ``root``, in-process; return (command, stdout) pairs."""
    monkeypatch.chdir(root)
    outputs = []
    for block in RUN_BLOCK.findall(DOC.read_text(encoding="utf-8")):
        for line in block.splitlines():
            words = shlex.split(line.replace("$PWD", str(root)), comments=True)
            if not words:
                continue
            if words[0] == "export":
                for assignment in words[1:]:
                    name, _, value = assignment.partition("=")
                    if name == "PYTHONPATH":
                        monkeypatch.syspath_prepend(value)
                        value = os.pathsep.join([value, os.environ.get("PYTHONPATH", "")])
                    monkeypatch.setenv(name, value)
                continue
            if words[0] == "fmbench":
                status = main(words[1:])
                out, err = capsys.readouterr()
                assert status == 0 and "skipped" not in err, (line, err)
            else:
                assert words[:2] == ["python", "-c"], f"the doc runs {line!r}; this test runs fmbench and python -c"
                exec(compile(words[2], line, "exec"), {})
                out = capsys.readouterr().out
            outputs.append((line, out))
    return outputs


def test_the_doc_study_runs_from_a_spec_folder(tmp_path, clean_registry, capsys):
    root = extract(tmp_path)
    outputs = run_doc_commands(root, clean_registry, capsys)
    by_command = {line: out for line, out in outputs}
    assert TASK in by_command[f"fmbench list --study {STUDY}"] and ENV in by_command[f"fmbench list --study {STUDY}"]
    # the golden hashes in the doc's spec are the data's own (the doc prints them with this command)
    hashes = next(out for line, out in outputs if "data_hash" in line).split()
    assert hashes == [registry.task_spec(TASK).data_hashes[s] for s in ("0", "1")]
    assert any("(array([" in out for line, out in outputs if "gym.make" in line)
    assert by_command["fmbench validate exact.json"].splitlines()[-1] == "submittable"
    assert (root / "lb" / TASK / "exact.json").is_file() and (root / "lb" / TASK / "even.json").is_file()
    printed = by_command[f"fmbench leaderboard {TASK} --leaderboards lb"]
    documented = OUTPUT_BLOCK.findall(DOC.read_text(encoding="utf-8"))[-1]
    assert VARYING.sub("-", printed).split() == VARYING.sub("-", documented).split()
    env = gym.make(ENV)
    obs, _ = env.reset(seed=0)
    assert env.step(int(obs.sum()) % 2)[1:3] == (1.0, True)
    for module in ("toystudy.data", "toystudy.env", "toystudy.task"):  # the doc's docstring examples
        result = doctest.testmod(importlib.import_module(module))
        assert result.attempted and not result.failed, module


def test_the_doc_spec_is_refused_with_a_wrong_hash(tmp_path, clean_registry, capsys):
    root = extract(tmp_path)
    spec = root / "toystudy" / "specs" / "tasks" / "parity.toml"
    text = spec.read_text(encoding="utf-8")
    golden = re.search(r'0 = "([0-9a-f]{64})"', text)[1]
    spec.write_text(text.replace(golden, "0" * 64), encoding="utf-8")
    clean_registry.syspath_prepend(str(root))
    clean_registry.setenv("FMBENCH_SPEC_PATH", str(root / "toystudy" / "specs"))
    clean_registry.chdir(root)
    assert (
        main(
            [
                "eval",
                "--task",
                TASK,
                "--model",
                "baseline:exact",
                "--seeds",
                "0,1,2",
                "--out",
                "r.json",
                "--no-progress",
            ]
        )
        == 0
    )
    assert main(["validate", "r.json"]) == 1
    assert "data hash of seed 0 does not match" in capsys.readouterr().err


@pytest.mark.slow
def test_the_doc_study_installed_as_a_distribution(tmp_path):
    src, site = extract(tmp_path / "src"), tmp_path / "site"
    start = time.perf_counter()
    subprocess.run(
        [
            sys.executable,
            "-m",
            "pip",
            "install",
            "--no-deps",
            "--no-build-isolation",
            "-q",
            "--target",
            str(site),
            str(src),
        ],
        check=True,
        capture_output=True,
        timeout=300,
    )
    build_s = time.perf_counter() - start
    assert (site / "toystudy" / "specs" / "tasks" / "parity.toml").is_file()
    script = f"""
import gymnasium as gym
from fmbench.cli import main
from fmbench.registry import spec_roots
print([origin for _, origin in spec_roots()])
env = gym.make({ENV!r})
obs, _ = env.reset(seed=0)
print("reward", env.step(int(obs.sum()) % 2)[1])
for argv in (["list", "--study", {STUDY!r}], ["describe", {TASK!r}],
             ["eval", "--task", {TASK!r}, "--model", "baseline:exact", "--seeds", "0,1,2", "--out", "r.json",
              "--no-progress"],
             ["submit", "r.json", "--name", "exact", "--leaderboards", "lb"]):
    assert main(argv) == 0, argv
"""
    env = {k: v for k, v in os.environ.items() if k != "FMBENCH_SPEC_PATH"}
    env["PYTHONPATH"] = os.pathsep.join([str(site), str(REPO)])
    done = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, cwd=tmp_path, env=env, timeout=300
    )
    assert done.returncode == 0, done.stderr
    assert "skipped" not in done.stderr, done.stderr
    assert "entry point 'toystudy' (toystudy:spec_root) of fmbench-toystudy" in done.stdout
    assert "reward 1.0" in done.stdout and TASK in done.stdout and ENV in done.stdout
    assert f"spec_file: {site / 'toystudy' / 'specs' / 'tasks' / 'parity.toml'}" in done.stdout
    assert (tmp_path / "lb" / TASK / "exact.json").is_file()
    print(f"built and installed the toy study in {build_s:.1f} s")


def write_distribution(site: Path, name: str, entry_point: str, modules: dict[str, str]) -> None:
    """An installed distribution ``name`` (a bare dist-info) with one ``fmbench.studies`` entry point."""
    info = site / f"{name.replace('-', '_')}-0.1.dist-info"
    info.mkdir(parents=True)
    (info / "METADATA").write_text(f"Metadata-Version: 2.1\nName: {name}\nVersion: 0.1\n", encoding="utf-8")
    (info / "entry_points.txt").write_text(f"[fmbench.studies]\n{entry_point}\n", encoding="utf-8")
    for module, text in modules.items():
        (site / f"{module}.py").write_text(text, encoding="utf-8")


def test_broken_entry_points_are_skipped_in_one_line_each(tmp_path, clean_registry, capsys):
    site = tmp_path / "site"
    write_distribution(site, "study-missing", "missing = no_such_study:spec_root", {})
    write_distribution(
        site,
        "study-raising",
        "raising = raising_study:spec_root",
        {"raising_study": "raise RuntimeError('no GPU driver found')\n"},
    )
    write_distribution(
        site,
        "study-failing",
        "failing = failing_study:spec_root",
        {"failing_study": "def spec_root():\n    raise ValueError('spec folder not configured')\n"},
    )
    write_distribution(
        site,
        "study-notapath",
        "notapath = notapath_study:spec_root",
        {"notapath_study": "def spec_root():\n    return 42\n"},
    )
    clean_registry.syspath_prepend(str(site))
    registry.reload()
    assert main(["list", "--tasks"]) == 0
    out, err = capsys.readouterr()
    skipped = [line for line in err.splitlines() if line.startswith("fmbench list: skipped: entry point")]
    assert len(skipped) == 4 and len(err.splitlines()) == 4, err
    expected = {
        "study-missing": "ModuleNotFoundError: No module named 'no_such_study'",
        "study-raising": "RuntimeError: no GPU driver found",
        "study-failing": "ValueError: spec folder not configured",
        "study-notapath": "returned int, expected the path of a spec root",
    }
    for dist, problem in expected.items():
        assert any(f"of {dist}:" in line and problem in line for line in skipped), (dist, err)
    assert "fmbench/ComposeDirect-v0" in out and "fmbench/GraphMotifsTreeX1-v0" in out
