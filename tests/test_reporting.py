"""The reproduction scripts' reporting helpers: run log resume and torn lines, sample std, tables, PNGs."""

from __future__ import annotations

import json
import math

import pytest

from fmbench.reporting import MeanStd, RunLog, markdown_table, mean_std_cell, pyplot, save_png

KEY = ("task", "seed")


def test_run_log_resumes_by_key(tmp_path):
    path = tmp_path / "runs.jsonl"
    log = RunLog(path, KEY)
    assert len(log) == 0 and not path.exists()
    assert log.append({"task": "a", "seed": 0, "acc": 0.5})
    assert log.append({"task": "a", "seed": 1, "acc": 0.7})
    assert not log.append({"task": "a", "seed": 0, "acc": 0.9})  # already recorded: skipped
    again = RunLog(path, KEY)
    assert [r["acc"] for r in again.records] == [0.5, 0.7]
    assert ("a", 1) in again and ("a", 2) not in again
    assert not again.append({"task": "a", "seed": 1, "acc": 0.0})
    assert len(path.read_text().splitlines()) == 2


def test_torn_last_line_is_dropped_and_overwritten(tmp_path):
    path = tmp_path / "runs.jsonl"
    path.write_text(
        json.dumps({"task": "a", "seed": 0})
        + "\n"
        + json.dumps({"task": "a", "seed": 1})
        + "\n"
        + '{"task": "a", "seed": 2, "acc": 0.'
    )
    with pytest.warns(UserWarning, match="line 3: dropped a partly written last line"):
        log = RunLog(path, KEY)
    assert [r["seed"] for r in log.records] == [0, 1] and ("a", 2) not in log
    assert log.append({"task": "a", "seed": 2, "acc": 0.25})
    lines = path.read_text().splitlines()
    assert [json.loads(line)["seed"] for line in lines] == [0, 1, 2] and json.loads(lines[2])["acc"] == 0.25


def test_complete_last_line_without_newline_is_kept(tmp_path):
    path = tmp_path / "runs.jsonl"
    path.write_text(json.dumps({"task": "a", "seed": 0}))
    log = RunLog(path, KEY)
    assert log.append({"task": "a", "seed": 1})
    assert [json.loads(line)["seed"] for line in path.read_text().splitlines()] == [0, 1]


def test_bad_lines_are_named(tmp_path):
    path = tmp_path / "runs.jsonl"
    path.write_text('{"task": "a", "seed": 0}\nnot json\n{"task": "a", "seed": 1}\n')
    with pytest.raises(ValueError, match="runs.jsonl, line 2: not a JSON line"):
        RunLog(path, KEY)
    path.write_text('{"task": "a", "seed": 0}\n{"task": "a"}\n')
    with pytest.raises(ValueError, match="line 2: the record has no 'seed'"):
        RunLog(path, KEY)
    path.write_text("[1, 2]\n")
    with pytest.raises(ValueError, match="line 1: expected a JSON object"):
        RunLog(path, KEY)


def test_a_file_changed_by_someone_else_is_not_overwritten(tmp_path):
    path = tmp_path / "runs.jsonl"
    log = RunLog(path, KEY)
    log.append({"task": "a", "seed": 0})
    with path.open("a") as f:
        f.write('{"task": "a", "seed": 5}\n')
    with pytest.raises(ValueError, match="changed since it was read"):
        log.append({"task": "a", "seed": 1})
    assert len(path.read_text().splitlines()) == 2


def test_sample_std_with_known_values():
    s = MeanStd.of([2, 4, 4, 4, 5, 5, 7, 9])  # population std 2, sample std sqrt(32/7)
    assert s.mean == 5.0 and s.n == 8 and s.std == pytest.approx(math.sqrt(32 / 7))
    assert MeanStd.of([0.5, 1.0]).format(3) == "0.750 ± 0.354"
    assert MeanStd.of([1.0, 1.0, 1.0]).std == 0.0
    one = MeanStd.of([0.8])
    assert one.n == 1 and math.isnan(one.std) and one.format(2) == "0.80 (n=1)"
    assert mean_std_cell([]) == "–" and mean_std_cell([1.0, 3.0], 1) == "2.0 ± 1.4"
    with pytest.raises(ValueError, match="non-empty"):
        MeanStd.of([])
    with pytest.raises(ValueError, match="non-finite"):
        MeanStd.of([1.0, float("nan")])


def test_markdown_table():
    text = markdown_table(["model", "k", "score"], [["a|b", 10, "0.5 ± 0.1"], ["c", 2, "–"]], align="lrr")
    assert text.splitlines() == [
        "| model | k | score |",
        "|---|---:|---:|",
        "| a\\|b | 10 | 0.5 ± 0.1 |",
        "| c | 2 | – |",
    ]
    with pytest.raises(ValueError, match="row 0 has 2 cells, the header 3"):
        markdown_table(["a", "b", "c"], [[1, 2]])
    with pytest.raises(ValueError, match="align"):
        markdown_table(["a", "b"], [], align="lx")


def test_png_is_written_without_a_version_stamp_and_reproducibly(tmp_path):
    def draw(path):
        fig, ax = pyplot().subplots(figsize=(2, 2))
        ax.plot([0, 1], [0, 1])
        return save_png(fig, path, dpi=50)

    first, second = draw(tmp_path / "a" / "plot.png"), draw(tmp_path / "b.png")
    data = first.read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n" and b"matplotlib" not in data
    assert second.read_bytes() == data
    assert pyplot().get_fignums() == []  # closed
