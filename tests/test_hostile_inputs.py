"""Hostile inputs, generated: every command either refuses one with a clean one-line error (an
fmbench error type), writing nothing and staying within bounded memory and time, or, for an input
that is genuinely valid, accepts it and round-trips it.

Covered: result records (``validate``, ``submit``), leaderboard folders (``leaderboard``,
``render``, ``check``, ``submit``), model files (safetensors headers and sidecars, SB3 zips, pickles in the
FoMo CLIP and image-to-text checkpoints) and data folders (Fashion-MNIST IDX, TU). Env misuse is
covered registry-wide by ``test_registry_envs.py``; ``kill -9`` during ``submit`` by
``test_submit_kill.py``.

Examples are derandomised (the same cases on every run); hypothesis keeps no database and writes nothing into
the checkout.
"""

from __future__ import annotations

import copy
import json
import math
import shutil
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import datetime
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from hypothesis import HealthCheck, event, example, given, settings
from hypothesis import strategies as st
from hypothesis.configuration import set_hypothesis_home_dir

from fmbench.errors import FmbenchError
from fmbench.leaderboard import VERIFIED_SUFFIX, submit
from fmbench.results import MAX_RECORD_BYTES, validate

set_hypothesis_home_dir(tempfile.mkdtemp(prefix="hypothesis-"))  # its caches go there, not into the checkout
settings.register_profile(
    "fmbench-hostile",
    max_examples=40,
    deadline=None,
    derandomize=True,
    database=None,  # nothing written into the checkout
    suppress_health_check=[HealthCheck.too_slow],
)
settings.load_profile("fmbench-hostile")

TASK = "fmbench/ComposeDirect-v0"
SHIPPED = Path(__file__).resolve().parent.parent / "leaderboards"
GENUINE = SHIPPED / TASK / "baseline-untrained.json"
MEMORY_LIMIT = 200 << 20  # bytes the peak resident memory may rise above where a case starts
TIME_LIMIT = 10.0  # seconds one command may take on one hostile input (a loaded 2-core machine)


@contextmanager
def bounded(limit: int = MEMORY_LIMIT, seconds: float = TIME_LIMIT) -> Iterator[None]:
    """Fail unless the block keeps the process's peak resident memory within ``limit`` bytes of its current one
    and ends within ``seconds`` (Linux: the peak is reset through ``/proc/self/clear_refs``)."""
    try:
        Path("/proc/self/clear_refs").write_text("5")  # reset VmHWM to the current resident size
        start = _status_kb("VmRSS")
    except OSError:
        start = None  # no way to reset the peak here: time is still checked
    began = time.perf_counter()
    try:
        yield
    finally:  # also when the block raised: a refusal must be cheap too
        took = time.perf_counter() - began
        assert took < seconds, f"took {took:.1f} s"
        if start is not None:
            grew = (_status_kb("VmHWM") - start) << 10
            assert grew < limit, f"peak resident memory rose {grew >> 20} MB"


def _status_kb(field: str) -> int:
    line = next(x for x in Path("/proc/self/status").read_text().splitlines() if x.startswith(field + ":"))
    return int(line.split()[1])


def snapshot(root: Path) -> dict[str, bytes | None]:
    """Every path under ``root`` (folders and links as ``None``, files with their bytes)."""
    return {
        str(p.relative_to(root)): (p.read_bytes() if p.is_file() and not p.is_symlink() else None)
        for p in sorted(root.rglob("*"))
    }


def one_line_error(error: BaseException) -> str:
    """The message of an fmbench error, checked to be what the CLI can print as one short line."""
    assert isinstance(error, FmbenchError), f"{type(error).__name__}: {error}"
    text = str(error)
    assert text.strip() and "\n" not in text.strip() and len(text) < 2_000, text[:300]
    return text


# --- result records: validate and submit --------------------------------------------------------------------


def genuine_record() -> dict[str, Any]:
    """A shipped entry as a fresh result of another model (no submission block, other weights)."""
    record = json.loads(GENUINE.read_text())
    del record["submission"]
    record["model"].update(
        spec="safetensors:other.safetensors",
        name="other",
        weights_sha256="ab" * 32,
        key={"sha256": "ab" * 32, "of": "weights"},
    )
    return record


def paths_of(value: Any, at: tuple = ()) -> list[tuple]:
    """Every key path into a JSON value (its root excluded)."""
    items = value.items() if isinstance(value, dict) else enumerate(value) if isinstance(value, list) else ()
    out = []
    for key, item in items:
        out += [(*at, key), *paths_of(item, (*at, key))]
    return out


GENUINE_PATHS = paths_of(genuine_record())
METRICS = sorted(genuine_record()["metrics"])
SEEDS = [str(s) for s in genuine_record()["seeds"]]
FREE_TEXT = [("device",), ("model", "name"), ("model", "dtype"), ("git_commit",), ("fmbench_version",)] + [
    ("environment", k) for k in genuine_record()["environment"]
]

HOSTILE_NUMBERS = st.sampled_from(
    [math.nan, math.inf, -math.inf, 1e308, -1e308, 1e200, -1e200, 10**30, -(10**30), 2**64, 7.5, -1.0, -1e-3, 1.001]
)
JSON_SCALARS = st.one_of(
    st.none(), st.booleans(), st.integers(-(2**70), 2**70), st.floats(allow_nan=True), st.text(max_size=12)
)
HOSTILE_VALUES = st.one_of(
    HOSTILE_NUMBERS,
    JSON_SCALARS,
    st.lists(JSON_SCALARS, max_size=4),
    st.dictionaries(st.text(max_size=6), JSON_SCALARS, max_size=3),
    st.integers(1, 60).map(lambda depth: json.loads("[" * depth + "]" * depth)),
    st.sampled_from(["x" * 200_000, "\x00\ud800", "é" * 1000, "<img src=x onerror=alert(1)>\n# h"]),
)


def _set(record: dict, path: tuple, value: Any) -> None:
    for key in path[:-1]:
        record = record[key]
    record[path[-1]] = value


def _delete(record: dict, path: tuple) -> None:
    for key in path[:-1]:
        record = record[key]
    del record[path[-1]]


@st.composite
def refused_records(draw) -> tuple[str, bytes]:
    """A record that must be refused, as ``(what was done, file bytes)``."""
    record = genuine_record()
    metric, seed = draw(st.sampled_from(METRICS)), draw(st.sampled_from(SEEDS))
    kind = draw(
        st.sampled_from(
            [
                "consistent-hostile-per-seed",  # per-seed value and aggregates agree: NaN, huge, out of range
                "hostile-aggregate",
                "negative-std",
                "inconsistent-mean",
                "missing-key",
                "extra-key",
                "wrong-type",
                "deep",
                "non-utf8",
                "duplicate-key",
                "truncated",
                "oversized",
            ]
        )
    )
    if kind == "consistent-hostile-per-seed":
        record["per_seed"][seed]["metrics"][metric] = draw(HOSTILE_NUMBERS)
        values = np.array([record["per_seed"][s]["metrics"][metric] for s in SEEDS], dtype=np.float64)
        with np.errstate(all="ignore"):
            mean, std = float(values.mean()), float(values.std(ddof=1))
        record["metrics"][metric].update(per_seed=values.tolist(), mean=mean, std=std)
    elif kind == "hostile-aggregate":
        field = draw(st.sampled_from(["mean", "std"]))
        record["metrics"][metric][field] = draw(HOSTILE_NUMBERS)
    elif kind == "negative-std":
        record["metrics"][metric]["std"] = -draw(st.floats(1e-12, 1.0))
    elif kind == "inconsistent-mean":
        record["metrics"][metric]["mean"] += draw(st.sampled_from([1e-6, -1e-6, 0.01, 0.5]))
    elif kind == "missing-key":
        path = draw(st.sampled_from([p for p in GENUINE_PATHS if _required(p)]))
        _delete(record, path)
    elif kind == "extra-key":
        path = draw(st.sampled_from([(), ("task",), ("model",), ("per_seed", seed), ("metrics", metric), ("timings",)]))
        target = record
        for key in path:
            target = target[key]
        target[draw(st.sampled_from(["extra", "submission_", "__proto__"]))] = draw(JSON_SCALARS)
    elif kind == "wrong-type":
        path = draw(st.sampled_from([p for p in GENUINE_PATHS if _typed(p)]))
        original = _get(record, path)
        value = draw(HOSTILE_VALUES.filter(lambda v, o=original: _other_type(v, o)))
        _set(record, path, value)
    elif kind == "deep":
        depth = draw(st.integers(40, 200_000))
        return kind, (json.dumps(record)[:-1] + ', "environment2": ' + "[" * depth + "]" * depth + "}").encode()
    text = json.dumps(record, allow_nan=True)
    if kind == "non-utf8":
        at = draw(st.integers(0, len(text)))
        bad = draw(st.sampled_from([b"\xff", b"\xc3\x28", b"\xed\xa0\x80", b"\x80"]))
        return kind, text[:at].encode() + bad + text[at:].encode()
    if kind == "duplicate-key":  # a second "device" (or metric mean) that a different reader would see first
        key = draw(st.sampled_from(['"device": ', '"mean": ', '"weights_sha256": ']))
        at = text.index(key)
        return kind, (text[:at] + key + '"evil", ' + text[at:]).encode()
    if kind == "truncated":
        return kind, text[: draw(st.integers(0, len(text) - 1))].encode()
    if kind == "oversized":
        return kind, (text[:-1] + ', "pad": "' + "x" * MAX_RECORD_BYTES + '"}').encode()
    return kind, text.encode()


def _get(record: Any, path: tuple) -> Any:
    for key in path:
        record = record[key]
    return record


def _required(path: tuple) -> bool:
    """Whether the schema (or the task) requires the key at ``path``."""
    if path[0] == "environment" or path[:2] == ("timings", "load_seconds"):
        return False
    if path[0] == "per_seed" and len(path) == 2:  # a whole seed: then it is unfinished, which validate allows
        return False
    return not isinstance(path[-1], int)  # an item of a list: what is left may still be consistent


def _typed(path: tuple) -> bool:
    """Whether only one JSON type may stand at ``path`` (``n_params`` and ``weights_sha256`` may also be null)."""
    nullable = [("model", "n_params"), ("model", "weights_sha256")]
    return path not in FREE_TEXT and path not in nullable and path[0] != "environment"


def _other_type(value: Any, original: Any) -> bool:
    def kind(v: Any) -> str:
        if isinstance(v, bool) or v is None:
            return repr(v)
        return "number" if isinstance(v, (int, float)) else type(v).__name__

    return kind(value) != kind(original) or isinstance(value, float) and not math.isfinite(value)


@pytest.fixture(scope="module")
def board(tmp_path_factory) -> Path:
    """A leaderboards folder holding a copy of the task's shipped entries."""
    root = tmp_path_factory.mktemp("hostile-board")
    shutil.copytree(SHIPPED / TASK, root / TASK)
    return root


def _write(data: bytes) -> Path:
    folder = Path(tempfile.mkdtemp(prefix="hostile-record-"))
    (folder / "result.json").write_bytes(data)
    return folder / "result.json"


@settings(max_examples=100)
@given(case=refused_records())
def test_hostile_records_are_refused_in_one_line_and_change_nothing(fmbench_cli, board, case):
    kind, data = case
    event(kind)
    path = _write(data)
    before = snapshot(board)
    with bounded():
        with pytest.raises(Exception) as refused:  # noqa: B017 (the type is checked below)
            validate(path)
    one_line_error(refused.value)
    with bounded():
        with pytest.raises(Exception) as refused:  # noqa: B017
            submit(path, "hostile", root=board)
    one_line_error(refused.value)
    proc = fmbench_cli("submit", path, "--name", "hostile", "--leaderboards", board)
    assert proc.returncode == 1 and proc.stderr.startswith("fmbench submit: error: ") and proc.stderr.count("\n") == 1
    assert snapshot(board) == before
    shutil.rmtree(path.parent)


@pytest.mark.slow  # two real processes (seconds of imports each)
def test_hostile_records_never_show_a_traceback_from_the_real_cli(fmbench_process, board, tmp_path):
    text = json.dumps(genuine_record())
    for command, data in [
        ("validate", text.replace('"device": ', '"device": "x", "device": ', 1).encode()),
        ("submit", text[:100].encode() + b"\xff" + text[100:].encode()),
    ]:
        path = tmp_path / f"{command}.json"
        path.write_bytes(data)
        before = snapshot(board)
        options = ["--name", "x", "--leaderboards", board] if command == "submit" else []
        proc = fmbench_process(command, path, *options)
        assert proc.returncode == 1 and "Traceback" not in proc.stderr and proc.stderr.count("\n") == 1, proc.stderr
        assert proc.stderr.startswith(f"fmbench {command}: error: ") and snapshot(board) == before


@st.composite
def mutated_records(draw) -> dict[str, Any]:
    """A genuine record with one value anywhere replaced by an arbitrary one (valid or not)."""
    record = genuine_record()
    path = draw(st.sampled_from(FREE_TEXT) | st.sampled_from(GENUINE_PATHS))
    if path in FREE_TEXT:
        value = draw(st.one_of(st.text(max_size=200), HOSTILE_VALUES))
    else:
        value = draw(HOSTILE_VALUES)
    _set(record, path, value)
    return record


@settings(max_examples=100)
@given(record=mutated_records())
def test_any_mutated_record_is_refused_cleanly_or_accepted_faithfully(board, record):
    path = _write(json.dumps(record, allow_nan=True).encode())
    before = snapshot(board)
    try:
        with bounded():
            validate(path)
    except Exception as e:  # noqa: BLE001 (checked to be a one-line fmbench error)
        event("refused")
        one_line_error(e)
        with pytest.raises(Exception) as refused:  # noqa: B017
            submit(path, "mutated", root=board)
        one_line_error(refused.value)
        assert snapshot(board) == before
        return
    finally:
        shutil.rmtree(path.parent)
    event("accepted")
    assert_plausible(record)
    path = _write(json.dumps(record).encode())
    written = submit(path, "mutated", root=board)
    try:
        entry = json.loads(written.read_text())
        assert {k: v for k, v in entry.items() if k != "submission"} == record
    finally:
        written.unlink()
        shutil.rmtree(path.parent)
    assert snapshot(board) == before


def assert_plausible(record: dict[str, Any]) -> None:
    """What an accepted record must satisfy, checked independently of the validator."""
    seeds = [str(s) for s in record["seeds"]]
    for name, m in record["metrics"].items():
        values = [record["per_seed"][s]["metrics"][name] for s in seeds]
        assert all(isinstance(v, (int, float)) and not isinstance(v, bool) and -1e-9 <= v <= 1 + 1e-9 for v in values)
        assert m["per_seed"] == values and math.isclose(m["mean"], sum(values) / len(values), abs_tol=1e-9)
        assert 0 <= m["std"] <= 1 and math.isfinite(m["std"])
    assert set(record["metrics"]) == set(genuine_record()["metrics"])
    for stamp in [record["date"], *(s["finished"] for s in record["per_seed"].values())]:
        assert datetime.fromisoformat(stamp).tzinfo is not None, stamp
    assert record["task"] == genuine_record()["task"]


def test_a_genuine_record_is_valid(board):
    """The base of the generated cases passes, so every refusal above is due to its mutation."""
    path = _write(json.dumps(genuine_record()).encode())
    validate(path)
    written = submit(path, "genuine", root=board)
    written.unlink()
    shutil.rmtree(path.parent)


SLOW_SHAPES = {  # inputs that were quadratic (or worse) in the checks that run before any model
    "escaped quotes in an unterminated string": lambda r: json.dumps(r)[:-1] + ', "x": "' + '\\"' * 100_000 + "}",
    "many seeds of mixed types": lambda r: json.dumps(r | {"seeds": [*range(100_000), "x"]}),
    "an integer of 5,000 digits": lambda r: json.dumps(r)[:-1] + ', "batch_size": ' + "9" * 5000 + "}",
}


@pytest.mark.parametrize("shape", SLOW_SHAPES, ids=lambda s: s.replace(" ", "-"))
def test_records_shaped_to_be_slow_are_refused_quickly(board, shape):
    path = _write(SLOW_SHAPES[shape](genuine_record()).encode())
    before = snapshot(board)
    for command in (lambda: validate(path), lambda: submit(path, "slow", root=board)):
        with bounded(seconds=5):
            with pytest.raises(Exception) as refused:  # noqa: B017
                command()
        one_line_error(refused.value)
    assert snapshot(board) == before
    shutil.rmtree(path.parent)


# --- leaderboard folders: leaderboard, render, check, submit --------------------------------------------------

GOOD_ENTRIES = sorted(p.stem for p in (SHIPPED / TASK).glob("*.json") if not p.name.endswith(VERIFIED_SUFFIX))
JUNK_NAMES = st.from_regex(r"\.?[a-z0-9][a-z0-9._-]{0,10}(\.json|\.txt|)", fullmatch=True).filter(
    lambda n: Path(n).stem not in GOOD_ENTRIES and n not in ("README.md", "hostile-new.json")
)


def _entry_bytes(**changes: Any) -> bytes:
    entry = json.loads(GENUINE.read_text())
    entry.update(changes)
    return json.dumps(entry, allow_nan=True).encode()


JUNK_CONTENTS = st.one_of(
    st.binary(max_size=300),
    st.sampled_from(
        [
            b"",
            b"{",
            b"[]",
            b"{}",
            b"null",
            b'"text"',
            b'{"submission": {}}',
            b"\xff\xfe{}",
            b"[" * 100 + b"]" * 100,
            b'{"a": 1, "a": 2}',
            _entry_bytes(),  # a valid entry under another file name
            _entry_bytes(metrics={}),
            _entry_bytes(device=math.nan),
            _entry_bytes(seeds="0,1,2"),
        ]
    ),
    st.integers(0, len(GENUINE.read_bytes()) - 1).map(lambda n: GENUINE.read_bytes()[:n]),
)
JUNK = st.one_of(
    st.tuples(st.just("file"), JUNK_NAMES, JUNK_CONTENTS),
    st.tuples(st.sampled_from(["dir", "fifo", "link-in", "link-out", "link-dangling", "link-dir"]), JUNK_NAMES),
)


def add_junk(folder: Path, outside: Path, junk: tuple) -> Path:
    """Put one junk item into a task's leaderboard folder; return its path."""
    kind, name = junk[0], junk[1]
    path = folder / name
    if kind == "file":
        path.write_bytes(junk[2])
    elif kind == "dir":
        path.mkdir()
        (path / "inner.json").write_bytes(GENUINE.read_bytes())
    elif kind == "fifo":
        import os

        os.mkfifo(path)  # a reader that opened it would wait forever
    elif kind == "link-in":
        path.symlink_to(folder / f"{GOOD_ENTRIES[0]}.json")
    elif kind == "link-out":
        target = outside / f"{path.stem}.json"
        target.write_bytes(_entry_bytes(submission={"name": path.stem, "submitted": "2026-01-01T00:00:00+00:00"}))
        path.symlink_to(target)
    elif kind == "link-dangling":
        path.symlink_to(outside / "missing.json")
    else:
        path.symlink_to(outside, target_is_directory=True)
    return path


@settings(max_examples=20)
@given(junk=st.lists(JUNK, min_size=1, max_size=6, unique_by=lambda j: j[1]))
def test_a_folder_with_junk_keeps_its_good_rows_and_lists_every_bad_file(fmbench_cli, junk):
    from fmbench.leaderboard import check, ranked_rows, render, scan

    work = Path(tempfile.mkdtemp(prefix="hostile-folder-"))
    root, outside = work / "leaderboards", work / "outside"
    shutil.copytree(SHIPPED / TASK, root / TASK)
    outside.mkdir()
    folder = root / TASK
    added = [add_junk(folder, outside, j) for j in junk]
    event(f"{len(added)} junk items")
    before = snapshot(folder)
    with bounded():
        good, bad = scan(TASK, root)
        rows = ranked_rows(TASK, root)
        listed = check(root)
        written = render(root)
    assert sorted(r["submission"]["name"] for r in good) == GOOD_ENTRIES == sorted(r["name"] for r in rows)
    expected_bad = {p for p in added if p.name.endswith(".json")}
    assert {b.path for b in bad} == expected_bad
    inner = {p / "inner.json" for p, j in zip(added, junk) if j[0] == "dir"}  # JSON outside a task's folder
    assert {b.path for b in listed} == expected_bad | inner | {p for p in added if p.is_symlink()}
    assert all(b.reason and "\n" not in b.reason for b in bad + listed)
    readme = (folder / "README.md").read_text()
    assert folder / "README.md" in written and all(f"| {name} " in readme for name in GOOD_ENTRIES)
    shown = fmbench_cli("leaderboard", TASK, "--leaderboards", root)
    assert (
        shown.returncode == 0
        and shown.stderr == ""
        and len(shown.stdout.splitlines()) == (1 + len(GOOD_ENTRIES) + (1 + len(bad) if bad else 0))
    )

    record = genuine_record()
    result = work / "result.json"
    result.write_text(json.dumps(record))
    with bounded():
        entry = submit(result, "hostile-new", root=root)
    assert json.loads(entry.read_text())["submission"]["name"] == "hostile-new"
    after = snapshot(folder)
    del after["README.md"], before["README.md"], after["hostile-new.json"]
    assert after == before  # nothing else written, moved or removed
    assert set(outside.iterdir()) == {outside / f"{p.stem}.json" for p, j in zip(added, junk) if j[0] == "link-out"}
    shutil.rmtree(work)


# --- model files: safetensors headers and sidecars, pickles ----------------------------------------------------


def _tiny_checkpoint() -> bytes:
    """A genuine 2-layer GPT checkpoint of the built-in architecture (a few KB)."""
    import torch

    from fmbench.checkpoints import save_checkpoint
    from fmbench.nn.gpt import GPT, GPTConfig

    folder = Path(tempfile.mkdtemp(prefix="hostile-model-"))
    model = GPT(GPTConfig(vocab_size=7, context_size=8, n_embd=8), generator=torch.Generator().manual_seed(0))
    save_checkpoint(model, folder / "m.safetensors")
    data = (folder / "m.safetensors").read_bytes()
    shutil.rmtree(folder)
    return data


GENUINE_MODEL = _tiny_checkpoint()
_HEADER_SIZE = int.from_bytes(GENUINE_MODEL[:8], "little")
GENUINE_HEADER = json.loads(GENUINE_MODEL[8 : 8 + _HEADER_SIZE])
GENUINE_META = json.loads(GENUINE_HEADER["__metadata__"]["fmbench"])
TENSORS = sorted(k for k in GENUINE_HEADER if k != "__metadata__")
SMALL_CONFIG_VALUES = st.one_of(st.integers(-3, 40), st.floats(allow_nan=True), st.none(), st.text(max_size=4))


def _with_header(header: dict, data: bytes | None = None) -> bytes:
    raw = json.dumps(header).encode()
    return len(raw).to_bytes(8, "little") + raw + (GENUINE_MODEL[8 + _HEADER_SIZE :] if data is None else data)


@st.composite
def model_files(draw) -> tuple[str, bytes, bytes | None]:
    """``(what was done, safetensors bytes, sidecar bytes or None)``: a genuine checkpoint, damaged."""
    kind = draw(
        st.sampled_from(
            ["bytes", "truncated", "header-size", "dtype", "shape", "offsets", "entry", "config", "sidecar"]
        )
    )
    header, sidecar = copy.deepcopy(GENUINE_HEADER), None
    tensor = draw(st.sampled_from(TENSORS))
    if kind == "bytes":
        return kind, draw(st.binary(max_size=400)), None
    if kind == "truncated":
        return kind, GENUINE_MODEL[: draw(st.integers(0, len(GENUINE_MODEL) - 1))], None
    if kind == "header-size":
        size = draw(st.sampled_from([0, 1, _HEADER_SIZE - 1, _HEADER_SIZE + 1, len(GENUINE_MODEL), 2**40, 2**64 - 1]))
        return kind, size.to_bytes(8, "little") + GENUINE_MODEL[8:], None
    if kind == "dtype":
        header[tensor]["dtype"] = draw(st.sampled_from(["F16", "F64", "I64", "BOOL", "U8", "X", "", "F8_E4M3"]))
    elif kind == "shape":
        header[tensor]["shape"] = draw(
            st.lists(st.integers(0, 2**40), max_size=4) | st.sampled_from([[-1], ["8"], [2**63], None])
        )
    elif kind == "offsets":
        header[tensor]["data_offsets"] = draw(st.lists(st.integers(-1, 2**64 + 1), min_size=0, max_size=3))
    elif kind == "entry":  # the fmbench entry: not JSON, or JSON of any type
        header["__metadata__"]["fmbench"] = draw(
            st.text(max_size=30) | HOSTILE_VALUES.map(lambda v: json.dumps(v, allow_nan=True))
        )
    elif kind == "config":  # a config of small but wrong values (a large one is the bounded-memory case below)
        meta = copy.deepcopy(GENUINE_META)
        key = draw(st.sampled_from([*meta["config"], "extra"]))
        meta["config"][key] = draw(SMALL_CONFIG_VALUES)
        meta["architecture"] = draw(st.sampled_from(["gpt", "gpt", "gin", "cnn", "", "GPT", "__class__"]))
        header["__metadata__"]["fmbench"] = json.dumps(meta, allow_nan=True)
    else:  # no entry in the header: the sidecar is read
        del header["__metadata__"]
        sidecar = draw(
            st.binary(max_size=50)
            | HOSTILE_VALUES.map(lambda v: json.dumps(v, allow_nan=True).encode())
            | st.just(json.dumps({**GENUINE_META, "config": []}).encode())
        )
    return kind, _with_header(header), sidecar


@pytest.fixture(scope="module")
def direct_task():
    import fmbench

    return fmbench.make_task(TASK)


@settings(max_examples=60)
@given(case=model_files())
def test_damaged_model_files_are_refused_in_one_line(direct_task, case):
    from fmbench.models import load_model

    kind, data, sidecar = case
    event(kind)
    folder = Path(tempfile.mkdtemp(prefix="hostile-model-"))
    path = folder / "m.safetensors"
    path.write_bytes(data)
    if sidecar is not None:
        (folder / "m.safetensors.json").write_bytes(sidecar)
    try:
        with bounded():
            loaded = load_model(f"safetensors:{path}", direct_task)
            direct_task.check_model(loaded)
        event("loaded: a damage the model survives")  # e.g. an unused config key set to a harmless value
    except Exception as e:  # noqa: BLE001 (checked to be a one-line fmbench error)
        one_line_error(e)
    finally:
        shutil.rmtree(folder)


class _Payload:
    """Pickles as a call to ``print``: what a hostile checkpoint could hold instead of tensors."""

    def __reduce__(self):
        return (print, ("this must never run",))


def test_a_pickle_in_place_of_a_safetensors_file_is_refused(direct_task, tmp_path, capsys):
    import torch

    from fmbench.models import load_model

    torch.save({"wte.weight": _Payload()}, tmp_path / "m.safetensors")
    with pytest.raises(Exception) as refused:  # noqa: B017
        load_model(f"safetensors:{tmp_path / 'm.safetensors'}", direct_task)
    assert "not a readable safetensors file" in one_line_error(refused.value)
    assert "this must never run" not in capsys.readouterr().out


@pytest.mark.slow
def test_a_tiny_file_claiming_a_large_config_stays_within_bounded_memory(direct_task, tmp_path):
    from fmbench.models import load_model

    header = copy.deepcopy(GENUINE_HEADER)  # the same few KB of tensors, a config of 150M parameters (600 MB)
    header["__metadata__"]["fmbench"] = json.dumps(
        GENUINE_META | {"config": GENUINE_META["config"] | {"n_embd": 2048, "n_layer": 3}}
    )
    (tmp_path / "m.safetensors").write_bytes(_with_header(header))
    with bounded():
        with pytest.raises(Exception) as refused:  # noqa: B017
            load_model(f"safetensors:{tmp_path / 'm.safetensors'}", direct_task)
    one_line_error(refused.value)


POLICY_TASK = "fmbench/ComposeTokensPolicy-v0"
SB3_KEYS = [
    *(
        f"mlp_extractor.{net}_net.{i}.{kind}"
        for net in ("policy", "value")
        for i in (0, 2)
        for kind in ("weight", "bias")
    ),
    *(f"{head}.{kind}" for head in ("action_net", "value_net") for kind in ("weight", "bias")),
]


def _zip(members: dict[str, bytes]) -> bytes:
    import io
    import zipfile

    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as z:
        for name, data in members.items():
            z.writestr(name, data)
    return buffer.getvalue()


def _state_bytes(state: dict) -> bytes:
    import io

    import torch

    buffer = io.BytesIO()
    torch.save(state, buffer)
    return buffer.getvalue()


@st.composite
def sb3_zips(draw) -> tuple[str, bytes]:
    """``(what was done, zip bytes)``: not SB3 policies, or policies of random small shapes."""
    import torch

    kind = draw(st.sampled_from(["bytes", "members", "policy-bytes", "state", "data"]))
    if kind == "bytes":
        return kind, draw(st.binary(max_size=300))
    if kind == "members":
        names = st.sampled_from(["policy.pth", "data", "pytorch_variables.pth", "../x"]) | st.text(
            min_size=1, max_size=8
        )
        return kind, _zip(draw(st.dictionaries(names, st.binary(max_size=40), max_size=3)))
    if kind == "policy-bytes":
        return kind, _zip({"policy.pth": draw(st.binary(max_size=200))})
    shapes = st.lists(st.integers(0, 40), min_size=0, max_size=3)
    state = {k: torch.zeros(draw(shapes)) for k in draw(st.lists(st.sampled_from(SB3_KEYS), unique=True))}
    data = draw(HOSTILE_VALUES).__repr__().encode() if kind == "data" else None
    return kind, _zip({"policy.pth": _state_bytes(state), **({"data": data} if data is not None else {})})


@pytest.fixture(scope="module")
def policy_task():
    pytest.importorskip("stable_baselines3")
    import fmbench

    return fmbench.make_task(POLICY_TASK)


@settings(max_examples=40)
@given(case=sb3_zips())
def test_damaged_sb3_zips_are_refused_in_one_line(policy_task, case):
    from fmbench.models import load_model

    kind, data = case
    event(kind)
    folder = Path(tempfile.mkdtemp(prefix="hostile-sb3-"))
    (folder / "policy.zip").write_bytes(data)
    try:
        with bounded():
            load_model(f"sb3:{folder / 'policy.zip'}", policy_task)
        event("loaded")  # random shapes that happen to make a valid policy
    except FmbenchError as e:
        one_line_error(e)
    finally:
        shutil.rmtree(folder)


def test_an_sb3_policy_declaring_a_huge_layer_in_empty_weights_stays_within_bounded_memory(policy_task):
    """Empty weight matrices (shapes like ``(0, n)`` cost no bytes) declare a layer of 100 million units."""
    import gymnasium as gym
    import torch
    from stable_baselines3.common.preprocessing import get_flattened_obs_dim

    from fmbench.models import load_model

    env = gym.make(policy_task.spec.params["env"])
    features, actions = get_flattened_obs_dim(env.observation_space), int(env.action_space.n)
    env.close()
    width, state = 100_000_000, {}
    for net in ("policy", "value"):
        shapes = {0: (0, features), 2: (width, 0), 4: (0, width)}
        state |= {f"mlp_extractor.{net}_net.{i}.weight": torch.zeros(shape) for i, shape in shapes.items()}
    state |= {"action_net.weight": torch.zeros(actions, 0), "value_net.weight": torch.zeros(1, 0)}
    folder = Path(tempfile.mkdtemp(prefix="hostile-sb3-"))
    (folder / "policy.zip").write_bytes(_zip({"policy.pth": _state_bytes(state)}))
    try:
        with bounded(), pytest.raises(Exception) as refused:  # noqa: B017
            load_model(f"sb3:{folder / 'policy.zip'}", policy_task)
    finally:
        shutil.rmtree(folder)
    assert "imply 200,000," in one_line_error(refused.value)


FOMO_TASK = "fmbench/FoMoRewardPickup-v0"


def _tiny_captioner(folder: Path) -> None:
    """A tiny image-to-text model folder (ViT encoder, GPT-2 decoder, word-level tokenizer, image processor)."""
    import torch
    from tokenizers import Tokenizer, models, pre_tokenizers
    from transformers import (
        GPT2Config,
        PreTrainedTokenizerFast,
        VisionEncoderDecoderConfig,
        VisionEncoderDecoderModel,
        ViTConfig,
        ViTImageProcessor,
    )

    words = Tokenizer(models.WordLevel({w: i for i, w in enumerate(["[PAD]", "[UNK]", "a"])}, unk_token="[UNK]"))
    words.pre_tokenizer = pre_tokenizers.Whitespace()
    PreTrainedTokenizerFast(tokenizer_object=words, pad_token="[PAD]", unk_token="[UNK]").save_pretrained(folder)
    ViTImageProcessor(size={"height": 16, "width": 16}).save_pretrained(folder)
    encoder = ViTConfig(
        image_size=16, patch_size=8, hidden_size=8, num_hidden_layers=1, num_attention_heads=2, intermediate_size=8
    )
    decoder = GPT2Config(vocab_size=3, n_positions=8, n_embd=8, n_layer=1, n_head=2)
    torch.manual_seed(0)
    config = VisionEncoderDecoderConfig.from_encoder_decoder_configs(encoder, decoder)
    VisionEncoderDecoderModel(config).save_pretrained(folder)


def test_terminal_escapes_quoted_from_a_hostile_file_reach_the_terminal_escaped(fmbench_cli, policy_task, tmp_path):
    """An SB3 zip whose ``data`` names a features extractor made of escape sequences and a second line."""
    import gymnasium as gym
    from stable_baselines3.common.policies import ActorCriticPolicy

    env = gym.make(policy_task.spec.params["env"])
    policy = ActorCriticPolicy(env.observation_space, env.action_space, lambda _: 0.0, net_arch=[4])
    env.close()
    hostile = "\x1b]0;owned\x07\x1b[2J\x9b31m\rcleared\nfmbench eval: all good"
    data = json.dumps({"policy_kwargs": {"features_extractor_class": hostile}}).encode()
    (tmp_path / "p.zip").write_bytes(_zip({"policy.pth": _state_bytes(policy.state_dict()), "data": data}))
    proc = fmbench_cli("eval", "--task", POLICY_TASK, "--model", f"sb3:{tmp_path / 'p.zip'}", "--no-progress")
    assert proc.returncode == 1 and proc.stderr.count("\n") == 1, proc.stderr
    assert proc.stderr.endswith("features extractor \\x1b]0;owned\\x07\\x1b[2J\\x9b31m\n")  # up to the \\r
    assert not any(c in proc.stderr for c in "\x1b\x07\x9b\r")


@pytest.mark.slow  # imports open_clip, transformers and the FoMo task (about 30 s on a loaded 2-core machine)
def test_pickled_fomo_clip_and_captioner_checkpoints_are_one_line_errors(fmbench_cli, tmp_path):
    """A pickle that ``torch.load(weights_only=True)`` refuses, in a CLIP checkpoint or an image-to-text model's
    ``pytorch_model.bin``, is a one-line error of ``fmbench eval`` (a ``reward:`` model spec), and never runs."""
    open_clip = pytest.importorskip("open_clip")
    pytest.importorskip("transformers")
    import torch

    config = {
        "embed_dim": 16,
        "vision_cfg": {"image_size": 32, "layers": 1, "width": 32, "head_width": 16, "patch_size": 16},
        "text_cfg": {"context_length": 16, "vocab_size": 49408, "width": 32, "heads": 2, "layers": 1},
    }
    (tmp_path / "hostile-clip.json").write_text(json.dumps(config))
    open_clip.add_model_config(tmp_path / "hostile-clip.json")
    # padded past 2 bytes per parameter, so the loader's size check lets it through to torch.load
    padding = torch.zeros(2_000_000, dtype=torch.float16)
    torch.save({"state_dict": {"positional_embedding": _Payload(), "padding": padding}}, tmp_path / "clip.pt")
    captioner = tmp_path / "captioner"
    _tiny_captioner(captioner)
    (captioner / "model.safetensors").unlink()
    torch.save({"encoder.embeddings.cls_token": _Payload()}, captioner / "pytorch_model.bin")

    for spec, problem in [
        (f"reward:clip:hostile-clip:{tmp_path / 'clip.pt'}", "cannot load CLIP model hostile-clip from "),
        (f"reward:hf:{captioner}+minilm", f"cannot load image-to-text model {captioner}: "),
    ]:
        proc = fmbench_cli("eval", "--task", FOMO_TASK, "--model", spec, "--seeds", "0", "--no-progress")
        assert proc.returncode == 1 and proc.stdout == "", proc.stdout
        assert proc.stderr.count("\n") == 1 and proc.stderr.startswith(f"fmbench eval: error: {problem}")
        assert "Weights only load failed" in proc.stderr and "this must never run" not in proc.stderr
        assert "\x1b" not in proc.stderr  # torch's message holds terminal escapes: shown escaped


# --- data folders: Fashion-MNIST IDX files, TU datasets ---------------------------------------------------------


def _idx(magic: int, dims: list[int], data: bytes) -> bytes:
    return b"".join(d.to_bytes(4, "big") for d in [magic, *dims]) + data


def _gzip(data: bytes) -> bytes:
    import gzip

    return gzip.compress(data, compresslevel=1, mtime=0)


GOOD_IMAGES = _idx(2051, [3, 28, 28], bytes(3 * 28 * 28))
GOOD_LABELS = _idx(2049, [3], bytes([0, 5, 9]))


@st.composite
def idx_files(draw) -> tuple[str, bytes, bytes]:
    """``(what was done, gzipped image file, gzipped label file)`` of a 3-image test split, damaged."""
    kind = draw(st.sampled_from(["not-gzip", "gzip-garbage", "truncated-gzip", "header", "length", "labels"]))
    images, labels = GOOD_IMAGES, GOOD_LABELS
    if kind == "not-gzip":
        return kind, draw(st.binary(max_size=200)), _gzip(labels)
    if kind == "gzip-garbage":
        return kind, _gzip(draw(st.binary(max_size=200))), _gzip(labels)
    if kind == "truncated-gzip":
        whole = _gzip(images)
        return kind, whole[: draw(st.integers(0, len(whole) - 1))], _gzip(labels)
    if kind == "header":  # any magic and dimensions (their product may overflow 64 bits), little data
        magic = draw(st.sampled_from([2051, 2049, 0, 2**32 - 1]))
        dims = draw(st.lists(st.integers(0, 2**32 - 1) | st.sampled_from([0, 1, 28, 2**31]), min_size=0, max_size=4))
        return kind, _gzip(_idx(magic, dims, draw(st.binary(max_size=64)))), _gzip(labels)
    if kind == "length":
        cut = draw(st.integers(1, 100))
        return kind, _gzip(images[:-cut] if draw(st.booleans()) else images + bytes(cut)), _gzip(labels)
    values = draw(st.lists(st.integers(0, 255), min_size=0, max_size=5))
    return kind, _gzip(images), _gzip(_idx(2049, [draw(st.sampled_from([len(values), 3, 2**32 - 1]))], bytes(values)))


@example(case=("product-overflows-to-zero", _gzip(_idx(2051, [4, 2**31, 2**31], b"")), _gzip(GOOD_LABELS)))
@settings(max_examples=50)
@given(case=idx_files())
def test_damaged_fashion_mnist_files_are_refused_in_one_line(case):
    from fmbench.fashion_mnist import ENV_VAR, FILES, load_fashion_mnist

    kind, images, labels = case
    event(kind)
    folder = Path(tempfile.mkdtemp(prefix="hostile-idx-"))
    (folder / FILES["train"][0]).write_bytes(_gzip(GOOD_IMAGES))
    (folder / FILES["train"][1]).write_bytes(_gzip(GOOD_LABELS))
    (folder / FILES["test"][0]).write_bytes(images)
    (folder / FILES["test"][1]).write_bytes(labels)
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv(ENV_VAR, str(folder))
        try:
            with bounded():
                loaded_images, loaded_labels = load_fashion_mnist("test")
            event("loaded")  # a well-formed split of another size (counts are the loader helper's check)
            assert loaded_images.shape[1:] == (28, 28) and len(loaded_images) == len(loaded_labels)
        except Exception as e:  # noqa: BLE001 (checked to be a one-line fmbench error)
            one_line_error(e)
    shutil.rmtree(folder)


@pytest.mark.slow
def test_a_small_gzip_claiming_many_images_stays_within_bounded_memory():
    from fmbench.fashion_mnist import ENV_VAR, FILES, load_fashion_mnist

    n, megabyte = 700_000, bytes(1 << 20)  # 549 MB of images in about 600 KB of gzip members
    rest = n * 28 * 28 - (1 << 20)
    members = [
        _gzip(_idx(2051, [n, 28, 28], megabyte)),
        *[_gzip(megabyte)] * (rest >> 20),
        _gzip(bytes(rest % (1 << 20))),
    ]
    folder = Path(tempfile.mkdtemp(prefix="hostile-idx-"))
    for split in FILES:
        (folder / FILES[split][0]).write_bytes(b"".join(members))
        (folder / FILES[split][1]).write_bytes(_gzip(_idx(2049, [n], bytes(n))))
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv(ENV_VAR, str(folder))
        try:
            with bounded():  # refused (the published count is 10,000) or read in bounded memory
                load_fashion_mnist("test")
        except FmbenchError as e:
            one_line_error(e)
        finally:
            shutil.rmtree(folder)


TU_FILES = {  # two graphs (3 and 2 nodes) with node labels and attributes
    "A": "1, 2\n2, 3\n4, 5\n",
    "graph_indicator": "1\n1\n1\n2\n2\n",
    "graph_labels": "-1\n1\n",
    "node_labels": "0\n1\n2\n0\n1\n",
    "node_attributes": "0.5, 1\n1, 2\n0, 0\n1, 1\n2, 2\n",
}
TU_GARBAGE = st.one_of(
    st.text(max_size=20),
    st.sampled_from(["", "nan", "inf", "-1", "0", "1e308", "99999999999999999999", "1,", ",", "1, 2, 3", "0x10", "٣"]),
    st.integers(-(2**63), 2**63).map(str),
)


@st.composite
def tu_folders(draw) -> tuple[str, dict[str, bytes]]:
    """``(what was done, file suffix -> bytes)`` of a small TU dataset, damaged."""
    files = {k: v.encode() for k, v in TU_FILES.items()}
    target = draw(st.sampled_from(sorted(files)))
    kind = draw(st.sampled_from(["line", "bytes", "truncated", "missing", "non-utf8"]))
    if kind == "line":
        lines = files[target].decode().splitlines()
        at = draw(st.integers(0, len(lines)))
        garbage = draw(TU_GARBAGE).replace("\r", "")
        files[target] = "\n".join(lines[:at] + [garbage] + lines[at + 1 :]).encode() + b"\n"
    elif kind == "bytes":
        files[target] = draw(st.binary(max_size=60))
    elif kind == "truncated":
        files[target] = files[target][: draw(st.integers(0, len(files[target]) - 1))]
    elif kind == "missing":
        del files[target]
    else:
        at = draw(st.integers(0, len(files[target])))
        files[target] = files[target][:at] + b"\xff\xfe" + files[target][at:]
    return f"{kind} {target}", files


@settings(max_examples=50)
@given(case=tu_folders())
def test_damaged_tu_datasets_are_refused_in_one_line(case):
    pytest.importorskip("torch_geometric")
    from fmbench.studies.graphcl.tu import load_tu

    kind, files = case
    event(kind.split()[0])
    folder = Path(tempfile.mkdtemp(prefix="hostile-tu-"))
    for suffix, data in files.items():
        (folder / f"TOY_{suffix}.txt").write_bytes(data)
    try:
        with bounded():
            data = load_tu(folder, "TOY")
        event("loaded")  # a damage that leaves a valid dataset (a blank line, another label value, ...)
        assert all(g.x.shape[0] > 0 and bool(g.x.isfinite().all()) for g in data.graphs)
    except Exception as e:  # noqa: BLE001 (checked to be a one-line fmbench error)
        one_line_error(e)
    finally:
        shutil.rmtree(folder)


@pytest.mark.slow
def test_a_tu_node_label_far_out_of_range_stays_within_bounded_memory():
    pytest.importorskip("torch_geometric")
    from fmbench.studies.graphcl.tu import load_tu

    folder = Path(tempfile.mkdtemp(prefix="hostile-tu-"))
    for suffix, text in TU_FILES.items():
        if suffix != "node_attributes":  # features from the labels: a one-hot of 12 million columns (240 MB)
            (folder / f"TOY_{suffix}.txt").write_text(text.replace("2\n0\n1\n", "12000000\n0\n1\n", 1))
    try:
        with bounded():  # refused, or loaded in bounded memory
            load_tu(folder, "TOY")
    except FmbenchError as e:
        one_line_error(e)
    finally:
        shutil.rmtree(folder)
