"""Spec files: parsing, validation errors, id resolution."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest

import fmbench
from fmbench.errors import SpecError, UnknownIdError
from fmbench.registry import load_spec_dir, make_task, spec_root, task_spec

TASK = """
[study]
arxiv = "2311.12997"
title = "t"

[[task]]
id = "{id}"
entry_point = "fmbench.studies.compositional.task:CompositionTask"
interface = "sequence-model"
min_seeds = 3
primary_metric = "exact_match"
metrics = {{ exact_match = {{ higher_is_better = true }} }}
baselines = {{ untrained = {{ description = "x" }} }}
history = [{{ version = {version}, change = "x" }}]
"""


def _root(tmp_path: Path, text: str, folder: str = "tasks") -> Path:
    (tmp_path / "envs").mkdir()
    (tmp_path / "tasks").mkdir()
    (tmp_path / folder / "study.toml").write_text(text)
    return tmp_path


def test_valid_spec_parses(tmp_path):
    envs, tasks = load_spec_dir(_root(tmp_path, TASK.format(id="fmbench/Foo-v2", version=2)))
    assert not envs and tasks["fmbench/Foo-v2"].version == 2 and tasks["fmbench/Foo-v2"].name == "Foo"


@pytest.mark.parametrize("text,problem", [
    ("[[task]\nid=", "malformed TOML"),
    (TASK.format(id="fmbench/foo-v0", version=0), "is not of the form"),
    (TASK.format(id="fmbench/Foo-v01", version=1), "is not of the form"),
    (TASK.format(id="fmbench/Foo-v1", version=0), "history has no entry for version 1"),
    (TASK.format(id="fmbench/Foo-v0", version=0).replace('primary_metric = "exact_match"', 'primary_metric = "acc"'),
     "primary_metric 'acc' is not among"),
    (TASK.format(id="fmbench/Foo-v0", version=0).replace("min_seeds = 3", "min_seeds = 0"), "min_seeds"),
    (TASK.format(id="fmbench/Foo-v0", version=0).replace('entry_point = "fmbench.studies.compositional.task:'
                                                         'CompositionTask"\n', ""), "missing required key 'entry_point'"),
    (TASK.format(id="fmbench/Foo-v0", version=0).replace("higher_is_better = true", "higher = true"),
     "needs higher_is_better"),
    (TASK.format(id="fmbench/Foo-v0", version=0).replace('[study]\narxiv = "2311.12997"\ntitle = "t"', ""),
     "missing [study]"),
    (TASK.format(id="fmbench/Foo-v0", version=0) + TASK.format(id="fmbench/Foo-v0", version=0).split("[[task]]")[1]
     .join(["[[task]]", ""]), "already declared"),
])
def test_malformed_specs_name_the_file_and_problem(tmp_path, text, problem):
    with pytest.raises(SpecError) as err:
        load_spec_dir(_root(tmp_path, text))
    assert "study.toml" in str(err.value) and problem in str(err.value)


def test_unknown_ids_suggest_the_nearest():
    with pytest.raises(UnknownIdError, match="did you mean 'fmbench/ComposeStepByStep-v0'"):
        make_task("fmbench/ComposeStepByStep-v9")
    with pytest.raises(UnknownIdError, match="fmbench list"):
        task_spec("nothing-like-it")


def test_spec_root_is_the_checkout_or_the_wheel_copy():
    root = spec_root()
    assert (root / "tasks" / "compositional.toml").is_file()
    assert (root / "envs").is_dir()


def test_import_registers_in_a_fresh_interpreter():
    code = "import fmbench, gymnasium as gym; print(len(fmbench.list_tasks()), all(e in gym.registry for e in fmbench.list_envs()))"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr
    assert out.stdout.split() == [str(len(fmbench.list_tasks())), "True"]


def test_malformed_spec_dir_is_one_line_cli_error(tmp_path):
    shutil.copytree(spec_root() / "envs", tmp_path / "envs")
    (tmp_path / "tasks").mkdir()
    (tmp_path / "tasks" / "bad.toml").write_text("[[task]\n")
    out = subprocess.run([sys.executable, "-m", "fmbench.cli", "list"], capture_output=True, text=True, timeout=300,
                         env={"FMBENCH_SPEC_DIR": str(tmp_path), "PATH": "/usr/bin:/bin"})
    assert out.returncode != 0
    assert out.stderr.count("\n") == 1 and "bad.toml: malformed TOML" in out.stderr
