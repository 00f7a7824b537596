"""Spec files: the schema, what a bad entry costs (only itself), additive roots, id resolution."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

import fmbench
from fmbench.cli import main
from fmbench.errors import SpecError, UnknownIdError
from fmbench.registry import (
    any_spec,
    builtin_root,
    env_spec,
    list_tasks,
    load_spec_dir,
    make_task,
    problems,
    read_spec_root,
    task_spec,
)

HASHES = '{ 0 = "' + "a" * 64 + '", 1 = "' + "b" * 64 + '" }'
STUDY = '[[study]]\narxiv = "2311.12997"\ntitle = "t"\ncode = "x/y"\n'
ENTRY = """
[[task]]
id = "ID"
summary = "s"
entry_point = "fmbench.studies.compositional.task:CompositionTask"
interface = "sequence-model"
min_seeds = 3
primary_metric = "exact_match"
metrics = { exact_match = { higher_is_better = true } }
baselines = { untrained = { description = "x" } }
history = [{ version = VERSION, change = "x" }]
data_hashes = HASHES
""".replace("HASHES", HASHES)


def entry(id_: str = "fmbench/Foo-v0", version: int = 0, study: bool = True) -> str:
    """A complete task entry (preceded by a [[study]] table unless ``study`` is false)."""
    return (STUDY if study else "") + ENTRY.replace("ID", id_).replace("VERSION", str(version))


def root_with(tmp_path: Path, text: str, folder: str = "tasks", name: str = "study.toml") -> Path:
    (tmp_path / "envs").mkdir(parents=True, exist_ok=True)
    (tmp_path / "tasks").mkdir(exist_ok=True)
    (tmp_path / folder / name).write_text(text)
    return tmp_path


def test_valid_spec_parses(tmp_path):
    envs, tasks = load_spec_dir(root_with(tmp_path, entry("fmbench/Foo-v2", 2)))
    spec = tasks["fmbench/Foo-v2"]
    assert not envs and spec.version == 2 and spec.name == "Foo" and spec.study == "2311.12997"
    assert spec.data_hashes == {"0": "a" * 64, "1": "b" * 64}


@pytest.mark.parametrize(
    "text,problem",
    [
        ("[[task]\nid=", "malformed TOML"),
        (entry("fmbench/foo-v0"), "key 'id'"),
        (entry("fmbench/Foo-v01", 1), "key 'id'"),
        (entry("fmbench/Foo-v1", 0), "key 'history': no entry for version 1"),
        (entry().replace('primary_metric = "exact_match"', 'primary_metric = "acc"'), "'acc' is not among its metrics"),
        (entry().replace("min_seeds = 3", "min_seeds = 0"), "key 'min_seeds'"),
        (entry().replace("min_seeds = 3", 'min_seeds = "3"'), "key 'min_seeds': '3' is not of type 'integer'"),
        (
            entry().replace('entry_point = "fmbench.studies.compositional.task:CompositionTask"\n', ""),
            "missing required key 'entry_point'",
        ),
        (entry().replace("higher_is_better = true", "higher = true"), "unknown key 'metrics.exact_match.higher'"),
        (
            entry().replace("higher_is_better = true", "higher_is_better = true, range = [1, 0]"),
            "key 'metrics': the range of ['exact_match'] is empty (it needs low < high)",
        ),
        (
            entry().replace("higher_is_better = true", "higher_is_better = true, range = [0]"),
            "key 'metrics.exact_match.range': [0] is too short",
        ),
        (entry().replace("min_seeds = 3", "param = { depth = 3 }\nmin_seeds = 3"), "unknown key 'param'"),
        (entry().replace(f"data_hashes = {HASHES}", ""), "data_hashes"),
        (entry().replace('"' + "a" * 64 + '"', '"abc"'), "key 'data_hashes.0'"),
        (entry().replace(STUDY, ""), "missing required key 'study'"),
        (entry().replace('code = "x/y"\n', ""), "missing required key 'study.0.code'"),
        (entry().replace("[[study]]", "[study]"), "key 'study'"),
        (entry() + 'studies = ["2208.02810"]\n', "2208.02810 is not one of the file's [[study]] tables"),
        ("[defaults]\nmin_seed = 3\n" + entry(), "unknown key 'defaults.min_seed'"),
        ("colour = 1\n" + entry(), "unknown key 'colour'"),
        (entry() + entry(study=False), "already declared"),
        (
            entry().replace('interface = "sequence-model"', 'interface = "sequence-modle"'),
            "fmbench/Foo-v0: key 'interface': unknown interface 'sequence-modle'; known: bn-classifier, causal-lm,",
        ),
    ],
)
def test_malformed_specs_name_the_file_and_problem(tmp_path, text, problem):
    with pytest.raises(SpecError) as err:
        load_spec_dir(root_with(tmp_path, text))
    assert "study.toml" in str(err.value) and problem in str(err.value), str(err.value)
    assert "\n" not in str(err.value)


def test_a_bad_entry_skips_only_itself(tmp_path):
    text = entry("fmbench/Good-v0") + entry("fmbench/Bad-v0", study=False).replace("min_seeds = 3", "min_seeds = -1")
    envs, tasks, found = read_spec_root(root_with(tmp_path, text))
    assert list(tasks) == ["fmbench/Good-v0"]
    assert len(found) == 1 and "fmbench/Bad-v0: key 'min_seeds'" in found[0]


def test_every_builtin_spec_is_clean():
    assert read_spec_root(builtin_root())[2] == []
    assert problems() == []


def test_task_classes_refuse_params_and_baseline_keys_they_do_not_read(tmp_path, monkeypatch):
    text = entry("fmbench/Typo-v0").replace("min_seeds = 3", "params = { depht = 3 }\nmin_seeds = 3")
    text += entry("fmbench/WrongType-v0", study=False).replace(
        "min_seeds = 3", 'params = { depth = "3" }\nmin_seeds = 3'
    )
    text += entry("fmbench/Extra-v0", study=False).replace('description = "x"', 'description = "x", fil = "a"')
    monkeypatch.setenv("FMBENCH_SPEC_PATH", str(root_with(tmp_path, text)))
    with pytest.raises(SpecError, match=r"study.toml fmbench/Typo-v0: params: unknown key 'depht'"):
        make_task("fmbench/Typo-v0")
    with pytest.raises(SpecError, match=r"fmbench/WrongType-v0: params: key 'depth': '3' is not of type 'integer'"):
        make_task("fmbench/WrongType-v0")
    with pytest.raises(SpecError, match=r"fmbench/Extra-v0: baselines.untrained: unknown key 'fil'"):
        make_task("fmbench/Extra-v0")


def test_entry_point_must_be_a_task_class(tmp_path, monkeypatch):
    text = entry("fmbench/NotATask-v0").replace(
        "fmbench.studies.compositional.task:CompositionTask", "fmbench:make_task"
    )
    monkeypatch.setenv("FMBENCH_SPEC_PATH", str(root_with(tmp_path, text)))
    with pytest.raises(SpecError, match="is not a fmbench.task.Task class"):
        make_task("fmbench/NotATask-v0")


def test_spec_path_roots_add_to_the_builtin_ones(tmp_path, monkeypatch):
    a = root_with(tmp_path / "a", entry("fmbench/Extra-v0"))
    b = root_with(tmp_path / "b", entry("fmbench/Other-v0"))
    monkeypatch.setenv("FMBENCH_SPEC_PATH", f"{a}:{b}:{tmp_path / 'missing'}")
    assert {"fmbench/Extra-v0", "fmbench/Other-v0", "fmbench/ComposeDirect-v0"} <= set(list_tasks())
    assert len(problems()) == 1 and "missing" in problems()[0] and "not a folder" in problems()[0]


def test_the_same_id_in_two_roots_is_refused_naming_both_files(tmp_path, monkeypatch):
    clash = root_with(tmp_path / "clash", entry("fmbench/ComposeDirect-v0"), name="clash.toml")
    monkeypatch.setenv("FMBENCH_SPEC_PATH", str(clash))
    (line,) = problems()
    assert str(clash / "tasks" / "clash.toml") in line and "compositional.toml" in line and "already declared" in line
    assert task_spec("fmbench/ComposeDirect-v0").spec_file.endswith("compositional.toml")  # the built-in one stays


def test_fmbench_list_reports_what_was_skipped(tmp_path, monkeypatch, capsys):
    bad = root_with(tmp_path, entry("fmbench/Good-v0") + "[[task]]\nid = 3\n")
    monkeypatch.setenv("FMBENCH_SPEC_PATH", str(bad))
    assert main(["list", "--tasks"]) == 0
    out, err = capsys.readouterr()
    assert "fmbench/Good-v0" in out and "fmbench/ComposeDirect-v0" in out
    assert err.count("\n") == 1 and err.startswith("fmbench list: skipped: ") and "[[task]] #2: key 'id'" in err


def test_a_malformed_file_skips_only_that_file(tmp_path, monkeypatch):
    monkeypatch.setenv("FMBENCH_SPEC_PATH", str(root_with(tmp_path, "[[task]\n")))
    assert "fmbench/ComposeDirect-v0" in list_tasks()
    assert len(problems()) == 1 and "study.toml: malformed TOML" in problems()[0]


def test_entries_cite_every_study_of_their_file_and_list_filters_by_study(capsys):
    spec = task_spec("fmbench/GraphFashionSuperpixels-v0")
    assert [s.arxiv for s in spec.studies] == ["2208.02810", "2111.03220"]
    assert main(["list", "--study", "2111.03220", "--json"]) == 0
    rows = json.loads(capsys.readouterr().out)
    assert rows and all(r["id"].startswith("fmbench/Graph") and "2111.03220" in r["studies"] for r in rows)
    assert main(["describe", "fmbench/GraphMotifsTreeX1-v0", "--json"]) == 0
    described = json.loads(capsys.readouterr().out)
    assert [s["arxiv"] for s in described["studies"]] == ["2208.02810", "2111.03220"]


def test_describe_an_env_shows_its_spaces_and_options(capsys):
    assert main(["describe", "fmbench/FoMoGoToRedBall-v0", "--json"]) == 0
    info = json.loads(capsys.readouterr().out)
    assert info["kind"] == "env" and "Dict(" in info["observation_space"] and "Discrete(" in info["action_space"]
    assert "reward" in info["options"]["gym.make keyword arguments (default)"]


def test_unknown_ids_suggest_the_nearest_and_name_the_kind():
    with pytest.raises(UnknownIdError, match="unknown task id .* did you mean 'fmbench/ComposeStepByStep-v0'"):
        make_task("fmbench/ComposeStepByStep-v9")
    with pytest.raises(UnknownIdError, match="fmbench list"):
        task_spec("nothing-like-it")
    with pytest.raises(UnknownIdError, match="unknown env id 'fmbench/FoMoGoToRedBall-v7'; did you mean"):
        env_spec("fmbench/FoMoGoToRedBall-v7")
    with pytest.raises(UnknownIdError, match="unknown env or task id"):
        any_spec("fmbench/Nothing-v0")


def test_unknown_id_in_the_cli_names_env_or_task(capsys):
    assert main(["describe", "fmbench/FoMoGoToRedBal-v0"]) == 1
    err = capsys.readouterr().err
    assert err.startswith("fmbench describe: error: unknown env or task id") and "FoMoGoToRedBall-v0" in err


def test_builtin_root_is_the_checkout_or_the_wheel_copy():
    root = builtin_root()
    assert (root / "tasks" / "compositional.toml").is_file()
    assert (root / "envs").is_dir()


def test_import_registers_in_a_fresh_interpreter():
    code = (
        "import fmbench, gymnasium as gym; "
        "print(len(fmbench.list_tasks()), all(e in gym.registry for e in fmbench.list_envs()))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr
    assert out.stdout.split() == [str(len(fmbench.list_tasks())), "True"]


def test_an_unexpected_exception_shows_its_traceback(monkeypatch, capsys):
    def broken(args):
        raise ZeroDivisionError("a bug")

    monkeypatch.setattr("fmbench.cli.cmd_list", broken)
    with pytest.raises(ZeroDivisionError):
        main(["list"])


def test_debug_shows_the_traceback_of_a_user_error():
    assert main(["describe", "fmbench/Nothing-v0"]) == 1
    with pytest.raises(UnknownIdError):
        main(["--debug", "describe", "fmbench/Nothing-v0"])
