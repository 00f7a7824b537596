"""The ``fmbench`` command line, run in this process (``fmbench_cli``) and, for exit statuses, the
installed script and tracebacks, as a real process (``fmbench_process``).

Conventions checked throughout: success exits 0; a bad input exits non-zero with exactly
one stderr line naming the problem (2 for usage errors, 1 otherwise) and no traceback;
nothing is written on failure.
"""

from __future__ import annotations

import argparse
import copy
import json
import re
import shutil
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

import fmbench
from fmbench.cli import build_parser
from fmbench.errors import FmbenchError
from fmbench.export import export_split
from fmbench.leaderboard import submit
from fmbench.model_key import weights_key
from fmbench.registry import ID_PATTERN, list_envs, list_tasks, make_task, task_spec
from fmbench.results import aggregate

TASK = "fmbench/ComposeDirect-v0"
TINY = "fmbench/ComposeTiny-v0"  # defined by the ``tiny_spec_root`` fixture (conftest.py)
ENV = "fmbench/ComposeTokensDirect-v0"


def one_line_error(proc, *fragments: str, code: int | None = None) -> str:
    """Assert ``proc`` failed with one stderr line holding every fragment; return the line."""
    assert proc.returncode != 0, proc.stdout
    if code is not None:
        assert proc.returncode == code, proc.stderr
    assert "Traceback" not in proc.stderr, proc.stderr
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1, proc.stderr
    for fragment in fragments:
        assert fragment in lines[0], lines[0]
    return lines[0]


def ok(proc) -> str:
    assert proc.returncode == 0, proc.stderr
    return proc.stdout


def files_in(folder: Path) -> dict[str, bytes]:
    return {str(p.relative_to(folder)): p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()}


# ---- list, --help, describe ------------------------------------------------------------


def test_list_json_rows_and_filters(fmbench_cli):
    rows = json.loads(ok(fmbench_cli("list", "--json")))
    assert isinstance(rows, list) and rows
    for row in rows:
        assert {"id", "kind", "studies", "version"} <= set(row), row
        assert row["kind"] in ("env", "task")
        assert row["studies"] and all(re.fullmatch(r"\d{4}\.\d{4,5}", a) for a in row["studies"]), row
        m = ID_PATTERN.match(row["id"])
        assert m and isinstance(row["version"], int) and int(m["version"]) == row["version"], row
    assert len({r["id"] for r in rows}) == len(rows)
    tasks = json.loads(ok(fmbench_cli("list", "--tasks", "--json")))
    envs = json.loads(ok(fmbench_cli("list", "--envs", "--json")))
    assert {r["kind"] for r in tasks} == {"task"} and {r["kind"] for r in envs} == {"env"}
    assert [r["id"] for r in tasks] == list_tasks() and [r["id"] for r in envs] == list_envs()
    assert sorted(map(json.dumps, tasks + envs)) == sorted(map(json.dumps, rows))
    assert TASK in list_tasks() and ENV in list_envs()
    text = ok(fmbench_cli("list", "--tasks")).splitlines()
    assert [line.split()[0] for line in text] == list_tasks()
    assert all("arXiv:" in line for line in text)
    one_line_error(fmbench_cli("list", "--tasks", "--envs"), "not allowed with", code=2)


def _command_paths(parser: argparse.ArgumentParser, prefix: tuple[str, ...] = ()) -> list[tuple[str, ...]]:
    paths = [prefix]
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for name, sub in action.choices.items():
                paths += _command_paths(sub, (*prefix, name))
    return paths


COMMANDS = _command_paths(build_parser())


def test_every_command_is_known():
    assert set(COMMANDS) >= {
        (),
        ("list",),
        ("describe",),
        ("data",),
        ("data", "export"),
        ("data", "stats"),
        ("eval",),
        ("validate",),
        ("submit",),
        ("leaderboard",),
    }


@pytest.mark.parametrize("path", COMMANDS, ids=lambda p: " ".join(p) or "fmbench")
def test_every_command_has_help(fmbench_cli, path):
    proc = fmbench_cli(*path, "--help")
    assert proc.returncode == 0 and not proc.stderr, proc.stderr
    assert proc.stdout.startswith("usage: " + " ".join(("fmbench", *path)))


def test_version_and_errors_as_exit_statuses_of_the_process(fmbench_process):
    assert ok(fmbench_process("--version")).strip() == f"fmbench {fmbench.__version__}"
    one_line_error(fmbench_process("frobnicate"), "invalid choice", code=2)
    one_line_error(fmbench_process("describe", "zzz"), "unknown env or task id 'zzz'", code=1)


@pytest.mark.parametrize("args", [(), ("data",), ("data", "export")])
def test_usage_errors_exit_2_with_one_line(fmbench_cli, args):
    one_line_error(fmbench_cli(*args), "required", code=2)


def test_the_installed_script_runs_and_debug_ends_in_a_traceback(fmbench_process):
    script = Path(sys.executable).with_name("fmbench")
    assert script.is_file(), f"no fmbench entry point beside {sys.executable}"
    proc = fmbench_process("--debug", "describe", "zzz", command=(str(script),))
    assert proc.returncode == 1 and "Traceback (most recent call last)" in proc.stderr, proc.stderr
    assert proc.stderr.strip().splitlines()[-1].startswith("fmbench.errors.UnknownIdError:"), proc.stderr


def test_describe_task_json(fmbench_cli):
    info = json.loads(ok(fmbench_cli("describe", TASK, "--json")))
    spec = task_spec(TASK)
    assert {"studies", "params", "metrics", "interface", "baselines", "version_history"} <= set(info)
    assert info["id"] == TASK and info["kind"] == "task" and info["version"] == 0
    (study,) = info["studies"]
    assert study["arxiv"] == "2311.12997" and "Compositional" in study["title"]
    assert info["params"] == spec.params and info["params"]["step_by_step"] is False
    assert set(info["metrics"]) == set(spec.metrics) and info["primary_metric"] in info["metrics"]
    assert info["metrics"]["exact_match"]["higher_is_better"] is True
    assert info["interface"] == "sequence-model"
    assert info["interface_description"].startswith("A causal sequence model: a torch.nn.Module mapping")
    assert {"untrained", "trained"} <= set(info["baselines"])
    assert any(h["version"] == 0 for h in info["version_history"])
    assert info["splits"] == {"train": 100000, "test": 16384}


def test_describe_env_and_text_output(fmbench_cli):
    info = json.loads(ok(fmbench_cli("describe", ENV, "--json")))
    assert info["kind"] == "env" and [s["arxiv"] for s in info["studies"]] == ["2311.12997"]
    assert isinstance(info["params"], dict) and any(h["version"] == 0 for h in info["version_history"])
    text = ok(fmbench_cli("describe", ENV)).splitlines()
    assert f"id: {ENV}" in text and any(line.startswith("studies:") for line in text)


def test_describe_unknown_ids(fmbench_cli):
    one_line_error(
        fmbench_cli("describe", "fmbench/ComposeStepByStep-v1", "--json"),
        "unknown env or task id 'fmbench/ComposeStepByStep-v1'",
        "did you mean 'fmbench/ComposeStepByStep-v0'",
    )
    line = one_line_error(fmbench_cli("describe", "zzz"), "unknown env or task id 'zzz'", "fmbench list")
    assert "did you mean" not in line


# ---- data export / stats ---------------------------------------------------------------


@pytest.fixture(scope="module")
def tiny(tiny_spec_root):
    """The tiny task's environment for CLI runs, and its vocabulary and seed-0 data."""
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("FMBENCH_SPEC_PATH", str(tiny_spec_root))
        task = make_task(TINY)
        data = {
            split: {k: np.concatenate([c[k] for c in chunks]) for k in chunks[0]}
            for split in task.splits
            for chunks in [list(task.export_chunks(split, 0))]
        }
        return {
            "env": {"FMBENCH_SPEC_PATH": str(tiny_spec_root)},
            "vocab": task.vocab,
            "data": data,
            "document_length": task.world.document_length,
        }


@pytest.mark.parametrize("split,twice", [("train", False), ("test", True)])
def test_export_jsonl(fmbench_cli, tiny, tmp_path, split, twice):
    """Rows hold every column, ids also as tokens; exporting twice (one split, to save time) gives equal bytes."""
    data, vocab = tiny["data"][split], tiny["vocab"]
    n = len(data["ids"])
    a, b = tmp_path / "a.jsonl", tmp_path / "b.jsonl"
    if not twice:
        b.write_bytes(b"")  # stands in for the second export
    for out in (a, b) if twice else (a,):
        stdout = ok(
            fmbench_cli(
                "data",
                "export",
                TINY,
                "--split",
                split,
                "--seed",
                "0",
                "--format",
                "jsonl",
                "--out",
                out,
                env=tiny["env"],
            )
        )
        assert stdout.strip() == f"wrote {n} items of {TINY} split {split} seed 0 to {out}"
    if twice:
        assert a.read_bytes() == b.read_bytes()
    rows = [json.loads(line) for line in a.read_text().splitlines()]
    assert len(rows) == n and 0 < n < 1000
    for i, row in enumerate(rows):
        assert len(row["tokens"]) == len(row["token_ids"]) == tiny["document_length"]
        assert row["tokens"] == [vocab[t] for t in row["token_ids"]]
        assert row["composition_tokens"] == [vocab[t] for t in row["composition_token_ids"]]
        assert row["token_ids"] == data["token_ids"][i].tolist() and row["ids"] == i
    assert ("in_train" in rows[0]) == (split == "test")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a.jsonl", "b.jsonl"]  # no temp files left


@pytest.mark.parametrize("split,twice", [("train", True), ("test", False)])
def test_export_pt(fmbench_cli, tiny, tmp_path, split, twice):
    """A dict of tensors plus vocab, loadable without unpickling code; byte-identical when exported twice."""
    data = tiny["data"][split]
    a, b = tmp_path / "a.pt", tmp_path / "b.pt"
    if not twice:
        b.write_bytes(b"")
    for out in (a, b) if twice else (a,):
        ok(
            fmbench_cli(
                "data", "export", TINY, "--split", split, "--seed", "0", "--format", "pt", "--out", out, env=tiny["env"]
            )
        )
    if twice:
        assert a.read_bytes() == b.read_bytes()
    payload = torch.load(a, weights_only=True)
    assert payload["token_ids"].shape == (len(data["ids"]), tiny["document_length"])
    assert payload["token_ids"].dtype == torch.int64
    assert payload["vocab"] == tiny["vocab"] and (payload["task"], payload["split"], payload["seed"]) == (
        TINY,
        split,
        0,
    )
    for key, column in data.items():
        assert np.array_equal(payload[key].numpy(), column), key
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a.pt", "b.pt"]


def test_export_depends_on_the_seed(fmbench_cli, tiny, tmp_path):
    ok(
        fmbench_cli(
            "data",
            "export",
            TINY,
            "--split",
            "test",
            "--seed",
            "1",
            "--format",
            "pt",
            "--out",
            tmp_path / "s1.pt",
            env=tiny["env"],
        )
    )
    docs = torch.load(tmp_path / "s1.pt", weights_only=True)["token_ids"].numpy()
    assert docs.shape == tiny["data"]["test"]["token_ids"].shape
    assert not np.array_equal(docs, tiny["data"]["test"]["token_ids"])


@pytest.mark.parametrize(
    "args,problem,code",
    [
        (["--split", "valid", "--seed", "0", "--format", "jsonl"], "has no split 'valid'", 1),
        (["--split", "test", "--seed", "-1", "--format", "jsonl"], "seed must be a non-negative integer", 2),
        (["--split", "test", "--seed", "x", "--format", "pt"], "seed must be a non-negative integer", 2),
        (["--split", "test", "--seed", "0", "--format", "csv"], "invalid choice: 'csv'", 2),
    ],
    ids=["split", "seed-negative", "seed-x", "format"],
)
def test_export_errors_write_nothing(fmbench_cli, tiny, tmp_path, args, problem, code):
    old = tmp_path / "old.out"
    old.write_bytes(b"previous export\n")
    for out in (tmp_path / "new.out", old):
        one_line_error(fmbench_cli("data", "export", TINY, *args, "--out", out, env=tiny["env"]), problem, code=code)
        assert files_in(tmp_path) == {"old.out": b"previous export\n"}


def test_export_onto_a_folder_fails_cleanly(fmbench_cli, tiny, tmp_path):
    (tmp_path / "dir").mkdir()
    (tmp_path / "dir" / "keep").write_text("x")
    one_line_error(
        fmbench_cli(
            "data",
            "export",
            TINY,
            "--split",
            "test",
            "--seed",
            "0",
            "--format",
            "jsonl",
            "--out",
            tmp_path / "dir",
            env=tiny["env"],
        ),
        "fmbench data: error:",
        code=1,
    )
    assert files_in(tmp_path) == {"dir/keep": b"x"}


@pytest.mark.parametrize("fmt", ["jsonl", "pt"])
def test_export_failing_midway_keeps_the_old_file(tmp_path, fmt):
    task = make_task(TASK)
    real = task.export_chunks

    def broken(split, seed):
        chunks = real(split, seed)
        yield next(chunks)
        raise RuntimeError("disk on fire")

    task.export_chunks = broken
    out = tmp_path / f"data.{fmt}"
    out.write_text("old")
    with pytest.raises(RuntimeError, match="disk on fire"):
        export_split(task, "test", 0, fmt, out)
    assert files_in(tmp_path) == {f"data.{fmt}": b"old"}
    with pytest.raises(FmbenchError, match="unknown format 'csv'"):
        export_split(task, "test", 0, "csv", out)
    assert files_in(tmp_path) == {f"data.{fmt}": b"old"}


def test_data_stats_json(fmbench_cli):
    stats = json.loads(ok(fmbench_cli("data", "stats", TASK, "--seed", "0", "--json")))
    assert stats["task"] == TASK and stats["seed"] == 0
    train, test = stats["train"], stats["test"]
    assert train["documents"] == 100000 and test["documents"] == 16384
    assert train["compositions"] == 50 == len(set(train["composition_list"]))
    assert test["seen_compositions"] == 50 and test["held_out_compositions"] == 974  # as the summary says
    assert len(set(test["held_out_list"])) == 974 and not set(test["held_out_list"]) & set(train["composition_list"])
    assert sum(test["held_out_by_identities"].values()) == 974
    assert all(len(c.split()) == 5 for c in train["composition_list"])  # 5 functions composed
    one_line_error(fmbench_cli("data", "stats", TASK, "--seed", "x"), "seed must be", code=2)


# ---- eval ------------------------------------------------------------------------------

EVAL = ["eval", "--task", TASK, "--model", "baseline:untrained", "--no-progress"]


def test_eval_limit_writes_a_valid_record_and_resumes(fmbench_cli, tmp_path):
    out = tmp_path / "run.json"
    ok(fmbench_cli(*EVAL, "--seeds", "0", "--limit", "32", "--out", out))
    first = json.loads(out.read_text())
    assert first["limit"] == 32 and first["seeds"] == [0] and list(first["per_seed"]) == ["0"]
    assert first["task"] == {**first["task"], "id": TASK, "version": 0, "study": "2311.12997"}
    assert first["model"]["spec"] == "baseline:untrained" and first["device"] == "cpu"
    assert ok(fmbench_cli("validate", out)).strip().splitlines() == [
        f"{out}: valid result of {TASK} (1/1 seeds finished)",
        "valid but not submittable: it scored only 32 items per seed (--limit); evaluate on the full data to submit",
    ]

    proc = fmbench_cli(*EVAL, "--seeds", "0,1", "--limit", "32", "--out", out)
    assert "resuming" in ok(proc) + proc.stderr
    second = json.loads(out.read_text())
    assert second["seeds"] == [0, 1] and sorted(second["per_seed"]) == ["0", "1"]
    assert second["per_seed"]["0"] == first["per_seed"]["0"]  # seed 0 was not evaluated again
    assert second["metrics"]["exact_match"]["per_seed"] == [
        second["per_seed"][s]["metrics"]["exact_match"] for s in ("0", "1")
    ]
    ok(fmbench_cli("validate", out))

    before = out.read_bytes()
    one_line_error(
        fmbench_cli(*EVAL, "--seeds", "0,1,2", "--limit", "16", "--out", out), "was evaluated with limit 32, not 16"
    )
    assert out.read_bytes() == before


def test_eval_without_out_prints_the_record(fmbench_cli):
    proc = fmbench_cli(*EVAL, "--seeds", "3", "--limit", "8")
    record = json.loads(ok(proc))  # stdout is the record alone; the progress log goes to stderr
    assert record["seeds"] == [3] and record["limit"] == 8 and list(record["per_seed"]) == ["3"]
    assert "seed 3: exact_match=" in proc.stderr


@pytest.mark.parametrize(
    "args,problem",
    [
        (["--task", "fmbench/ComposeStepByStep-v0", "--model", "baseline:untrained"], f"holds results of {TASK}"),
        (["--task", TASK, "--model", "baseline:trained"], "holds results of another model (baseline:untrained)"),
    ],
    ids=["other-task", "other-model"],
)
def test_eval_refuses_an_out_file_of_another_run(fmbench_cli, tmp_path, limited_result_file, args, problem):
    out = tmp_path / "theirs.json"
    shutil.copy(limited_result_file, out)
    before = out.read_bytes()
    one_line_error(
        fmbench_cli("eval", *args, "--seeds", "0,1,2,3", "--limit", "256", "--no-progress", "--out", out),
        problem,
        "choose another --out",
    )
    assert out.read_bytes() == before and files_in(tmp_path) == {"theirs.json": before}


@pytest.mark.parametrize("seeds", ["0,,1", "a", "1,1", "", "3-1"])
def test_eval_refuses_malformed_seeds(fmbench_cli, tmp_path, seeds):
    one_line_error(
        fmbench_cli(*EVAL, "--seeds", seeds, "--limit", "8", "--out", tmp_path / "r.json"),
        f"bad seeds {seeds!r}",
        code=1,
    )
    assert not any(tmp_path.iterdir())


@pytest.mark.parametrize("task,limit,minimum", [(TASK, "0", 1), ("fmbench/GraphMotifsTreeX1-v0", "11", 12)])
def test_eval_refuses_a_limit_below_the_tasks_minimum(fmbench_cli, tmp_path, task, limit, minimum):
    one_line_error(
        fmbench_cli(
            "eval",
            "--task",
            task,
            "--model",
            "baseline:untrained",
            "--seeds",
            "0",
            "--limit",
            limit,
            "--no-progress",
            "--out",
            tmp_path / "r.json",
        ),
        f"--limit must be >= {minimum} on {task}, got {limit}",
        code=1,
    )
    assert not any(tmp_path.iterdir())


@pytest.mark.parametrize(
    "model,fragments",
    [
        ("baseline:nope", ["has no baseline 'nope'", "'trained'", "'untrained'"]),
        ("safetensors:/nonexistent/model.safetensors", ["not found", "/nonexistent/model.safetensors"]),
        ("python:os:getcwd", ["--trust-code"]),
        ("nonsense", ["is not <scheme>:<target>"]),
    ],
    ids=["baseline", "safetensors", "python", "scheme"],
)
def test_eval_refuses_bad_models(fmbench_cli, tmp_path, model, fragments):
    one_line_error(
        fmbench_cli(
            "eval",
            "--task",
            TASK,
            "--model",
            model,
            "--seeds",
            "0",
            "--limit",
            "8",
            "--no-progress",
            "--out",
            tmp_path / "r.json",
        ),
        *fragments,
        code=1,
    )
    assert not any(tmp_path.iterdir())


@pytest.mark.skipif(torch.cuda.is_available(), reason="checks the refusal on a machine without CUDA")
def test_eval_refuses_cuda_without_a_gpu(fmbench_cli, tmp_path):
    one_line_error(
        fmbench_cli(*EVAL, "--seeds", "0", "--limit", "8", "--device", "cuda", "--out", tmp_path / "r.json"),
        "no CUDA device",
        code=1,
    )
    assert not any(tmp_path.iterdir())


# ---- validate --------------------------------------------------------------------------


def _malformed(record: dict) -> str:
    return json.dumps(record)[:-1]


def _missing_key(record: dict) -> str:
    del record["seeds"]
    return json.dumps(record)


def _tampered_metric(record: dict) -> str:
    record["per_seed"]["1"]["metrics"]["token_accuracy"] += 0.25  # aggregates no longer match
    return json.dumps(record)


def _unknown_task(record: dict) -> str:
    record["task"]["id"] = "fmbench/ComposeDirekt-v0"
    return json.dumps(record)


def _stale_hash(record: dict) -> str:
    record["task"]["data_hash"]["2"] = "0" * 64
    return json.dumps(record)


@pytest.mark.parametrize(
    "make,problem",
    [
        (_malformed, "is not valid JSON"),
        (_missing_key, "violates the result schema at (top level): 'seeds' is a required property"),
        (_tampered_metric, "aggregate of metric 'token_accuracy' does not match its per-seed values"),
        (_unknown_task, "unknown task id 'fmbench/ComposeDirekt-v0'; did you mean 'fmbench/ComposeDirect-v0'"),
        (_stale_hash, "data hash of seed 2 does not match"),
    ],
    ids=lambda v: getattr(v, "__name__", "")[1:] or None,
)
def test_validate_names_the_problem(fmbench_cli, tmp_path, complete_result_file, make, problem):
    path = tmp_path / "r.json"
    path.write_text(make(json.loads(complete_result_file.read_text())))
    line = one_line_error(fmbench_cli("validate", path), problem, code=1)
    assert line.startswith("fmbench validate: error:")


def test_validate_accepts_a_good_record_and_refuses_a_missing_one(fmbench_cli, tmp_path, complete_result_file):
    cache = {"FMBENCH_CACHE": str(tmp_path / "cache")}
    verdict = [f"{complete_result_file}: valid result of {TASK} (3/3 seeds finished)", "submittable"]
    out = ok(fmbench_cli("validate", complete_result_file, env=cache))
    assert out.strip().splitlines() == [
        f"checking the data hashes of {TASK} seeds 2 (regenerating that data)...",  # seeds 0, 1: pinned in the spec
        *verdict,
    ]
    out = ok(fmbench_cli("validate", complete_result_file, env=cache))  # seed 2's hash: remembered
    assert out.strip().splitlines() == [
        f"data hashes of {TASK} seeds 2: computed by an earlier check (cached in {tmp_path / 'cache'})",
        *verdict,
    ]
    one_line_error(fmbench_cli("validate", tmp_path / "absent.json"), "cannot read", code=1)


# ---- leaderboard -----------------------------------------------------------------------


@pytest.fixture
def two_entries(tmp_path, complete_result_file) -> Path:
    """A leaderboards folder with the untrained baseline and a (made-up) better model."""
    root = tmp_path / "leaderboards"
    submit(complete_result_file, "baseline-untrained", root=root)
    better = copy.deepcopy(json.loads(complete_result_file.read_text()))
    for seed, value in zip(better["seeds"], (0.5, 0.6, 0.7)):
        better["per_seed"][str(seed)]["metrics"]["exact_match"] = value
    better["metrics"] = aggregate(better, {k: v["higher_is_better"] for k, v in better["metrics"].items()})
    better["model"].update(
        spec="safetensors:better.safetensors",
        name="better",
        weights_sha256="cd" * 32,
        key=weights_key("cd" * 32),
        n_params=1234,
    )
    path = tmp_path / "better.json"
    path.write_text(json.dumps(better))
    submit(path, "better", code_url="https://example.org/better", root=root)
    return root


def test_leaderboard_prints_a_ranked_table(fmbench_cli, two_entries):
    lines = ok(fmbench_cli("leaderboard", TASK, "--leaderboards", two_entries)).splitlines()
    assert re.split(r"\s{2,}", lines[0]) == [
        "rank",
        "name",
        "exact_match ↑ (mean ± std)",
        "#params",
        "seeds",
        "device",
        "date",
        "verified",
    ]
    rows = [re.split(r"\s{2,}", line) for line in lines[1:]]
    date = r"\d{4}-\d{2}-\d{2}"
    assert rows[0][:6] == ["1", "better", "0.6000 ± 0.1000", "1,234", "3", "cpu"] and re.fullmatch(date, rows[0][6])
    assert rows[1][:2] == ["2", "baseline-untrained (baseline)"] and rows[1][3].endswith("M") and len(rows) == 2
    as_json = json.loads(ok(fmbench_cli("leaderboard", TASK, "--leaderboards", two_entries, "--json")))
    assert [(r["rank"], r["name"]) for r in as_json] == [(1, "better"), (2, "baseline-untrained")]
    assert as_json[0]["code_url"] == "https://example.org/better" and as_json[1]["baseline"] is True
    out = ok(fmbench_cli("leaderboard", "fmbench/ComposeBase-v0", "--leaderboards", two_entries))
    assert out.strip() == "fmbench/ComposeBase-v0 has no entries yet"
    one_line_error(
        fmbench_cli("leaderboard", "fmbench/ComposeDirect-v9", "--leaderboards", two_entries),
        "did you mean 'fmbench/ComposeDirect-v0'",
        code=1,
    )


def test_leaderboard_render_writes_the_readmes(fmbench_cli, two_entries):
    before = files_in(two_entries)
    out = ok(fmbench_cli("leaderboard", "render", "--leaderboards", two_entries))
    task_readme, index = two_entries / TASK / "README.md", two_entries / "README.md"
    assert out.splitlines() == [f"wrote {task_readme}", f"wrote {index}"]
    after = files_in(two_entries)
    assert set(after) - set(before) == {f"{TASK}/README.md", "README.md"}
    assert all(after[k] == v for k, v in before.items())  # entries untouched
    text = task_readme.read_text()
    assert text.startswith(f"# {TASK}\n") and "arXiv:2311.12997" in text
    table = [line for line in text.splitlines() if line.startswith("| ")]
    assert table[0] == "| rank | name | exact_match ↑ (mean ± std) | #params | seeds | device | date | verified |"
    assert table[1].startswith("| 1 | better | 0.6000 ± 0.1000 | 1,234 | 3 | cpu |")
    assert table[2].startswith("| 2 | baseline-untrained (baseline) |") and len(table) == 3
    idx = index.read_text()
    assert f"| [{TASK}]({TASK}/README.md) | 2311.12997 | 2 | better | exact_match 0.6000 ± 0.1000 |" in idx
    assert "ComposeBase-v0" not in idx and not (two_entries / "fmbench/ComposeBase-v0").exists()
    assert not [p for p in two_entries.rglob("*.tmp")]


def test_end_to_end_on_a_tiny_task(fmbench_cli, tiny, tmp_path):
    """A real, full evaluation (no --limit) goes through validate, submit, leaderboard and render."""
    env, out, board = tiny["env"], tmp_path / "tiny.json", tmp_path / "leaderboards"
    ok(fmbench_cli("eval", "--task", TINY, "--model", "baseline:untrained", "--no-progress", "--out", out, env=env))
    record = json.loads(out.read_text())
    assert record["seeds"] == [0, 1, 2] and "limit" not in record  # the task's min_seeds by default
    ok(fmbench_cli("validate", out, env=env))
    assert (
        ok(fmbench_cli("submit", out, "--name", "tiny-untrained", "--leaderboards", board, env=env)).splitlines()[-1]
        == f"accepted: {board / TINY / 'tiny-untrained.json'}"
    )
    ok(fmbench_cli("validate", board / TINY / "tiny-untrained.json", env=env))
    table = ok(fmbench_cli("leaderboard", TINY, "--leaderboards", board, env=env)).splitlines()
    # baseline:untrained is the shipped baseline (its key), whatever the entry's name
    assert len(table) == 2 and re.split(r"\s{2,}", table[1])[:2] == ["1", "tiny-untrained (baseline)"]
    one_line_error(fmbench_cli("validate", out), f"unknown task id '{TINY}'")  # the real registry has no such task
