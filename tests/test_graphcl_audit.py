"""Shortcut audit of graph tasks: what each statistic sees, bad input, and the registry-wide check."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

pytest.importorskip("torch_geometric")

from torch_geometric.data import Data  # noqa: E402

from fmbench.cli import main  # noqa: E402
from fmbench.registry import list_tasks, make_task, superseded_by  # noqa: E402
from fmbench.studies.graphcl.audit import Audit, AuditError, audit_graphs, audit_task, shipped_audits  # noqa: E402
from fmbench.studies.graphcl.generator import DEGREE_MATCHED_MOTIFS  # noqa: E402
from fmbench.studies.graphcl.task import GraphProbeTask, MotifTask  # noqa: E402

MARGIN = 0.1  # a synthetic task's size and degree statistics must stay within chance + this
GATED = ("size", "degree")


def graph(edges: list[tuple[int, int]], label: int | None, n: int | None = None, **extra) -> Data:
    e = torch.tensor(edges, dtype=torch.long).t().reshape(2, -1)
    n = n if n is not None else int(e.max()) + 1
    g = Data(x=torch.ones(n, 1), edge_index=torch.cat([e, e.flip(0)], 1), **extra)
    if label is not None:
        g.y = torch.tensor([label])
    return g


def split(make, n: int = 20) -> tuple[list[Data], list[Data]]:
    """``make(i)`` for ``i < n`` (train) and ``n <= i < 2n`` (test)."""
    return [make(i) for i in range(n)], [make(i) for i in range(n, 2 * n)]


CYCLE6 = [(i, (i + 1) % 6) for i in range(6)]
TWO_TRIANGLES = [(0, 1), (1, 2), (2, 0), (3, 4), (4, 5), (5, 3)]


def test_2_regular_graphs_are_blind_to_degree_and_wl_but_not_to_triangles_and_cycle_rank():
    train, test = split(lambda i: graph(CYCLE6 if i % 2 else TWO_TRIANGLES, i % 2))
    audit = audit_graphs(train, test)
    assert audit.chance == 0.5 and audit.n_classes == 2
    for blind in ("size", "degree", "wl1", "wl2"):
        assert audit.accuracy(blind) is None
        assert audit.row(blind).note == "not applicable: the same for every training graph"
    assert audit.accuracy("triangles") == audit.accuracy("cycle_rank") == 1.0
    assert audit.row("background").note == "not applicable: the graphs have no edge labels (edge_label)"


def test_wl2_tells_apart_motifs_that_share_one_degree_profile():
    ladder, barbell = DEGREE_MATCHED_MOTIFS["ladder"], DEGREE_MATCHED_MOTIFS["barbell"]
    train, test = split(lambda i: graph(ladder if i % 2 else barbell, i % 2))
    audit = audit_graphs(train, test, ("degree", "wl2"))
    assert audit.accuracy("degree") is None  # the same histogram for both
    assert audit.accuracy("wl2") == 1.0


def test_background_statistics_read_only_style_edges():
    def make(i: int) -> Data:  # class = the size of the style part; the content part is the same
        content, style = [(0, 1), (1, 2)], [(2, 3 + k) for k in range(1 + 3 * (i % 2))]
        g = graph(content + style, i % 2)
        g.edge_label = torch.tensor([1, 1] + [-1] * len(style)).repeat(2)
        return g

    audit = audit_graphs(*split(make), ("background",))
    assert audit.accuracy("background") == 1.0


def test_bad_input_gives_one_line_errors_or_not_applicable():
    with pytest.raises(AuditError, match="graph 0 of train has no single class label"):
        audit_graphs([graph(CYCLE6, None)], [graph(CYCLE6, 0)])
    with pytest.raises(AuditError, match=r"the train graphs hold one class \(0\)"):
        audit_graphs([graph(CYCLE6, 0)] * 3, [graph(CYCLE6, 1)])
    with pytest.raises(AuditError, match="the test split has no graphs"):
        audit_graphs([graph(CYCLE6, 0), graph(CYCLE6, 1)], [])
    with pytest.raises(ValueError, match="unknown statistic 'colour'"):
        audit_graphs([graph(CYCLE6, 0), graph(CYCLE6, 1)], [graph(CYCLE6, 1)], ("colour",))
    # graphs without edges: every structural statistic is constant, so not applicable, but size still counts
    empty = split(lambda i: graph([], i % 2, n=3 + i % 2))
    audit = audit_graphs(*empty)
    assert audit.accuracy("size") == 1.0
    assert all(audit.accuracy(s) is None for s in ("triangles", "cycle_rank"))


def test_audit_round_trips_and_prints_a_table():
    audit = audit_graphs(*split(lambda i: graph(CYCLE6 if i % 2 else TWO_TRIANGLES, i % 2)))
    assert Audit.from_dict(audit.to_dict()) == audit
    lines = audit.table().splitlines()
    assert lines[0] == "20 train / 20 test graphs, 2 classes, chance 0.500"
    assert lines[1].split() == ["statistic", "logistic", "forest", "best", "-", "chance"]
    assert "triangles   1.000     1.000   +0.500" in lines


def test_cli_audit_of_a_task_without_graphs_is_a_one_line_error(capsys):
    assert main(["audit", "fmbench/ComposeDirect-v0"]) == 1
    assert (
        capsys.readouterr()
        .err.strip()
        .endswith("fmbench/ComposeDirect-v0 has no shortcut audit: it is not a graph task")
    )


def write_tu(folder: Path, labels: list[int], name: str = "TOY") -> None:
    """A TU-format dataset: graph ``g`` is a 5-7 node cycle if its label is 0, a 12-14 node path if 1."""
    folder.mkdir(parents=True)
    edges, indicator, first = [], [], 1
    for g, label in enumerate(labels):
        n = (5, 12)[label] + g % 3
        edges += [(first + i, first + (i + 1) % n) for i in range(n - label)]
        indicator += [g + 1] * n
        first += n
    rows = {"A": [f"{a}, {b}" for a, b in edges], "graph_indicator": indicator, "graph_labels": labels}
    for suffix, lines in rows.items():
        (folder / f"{name}_{suffix}.txt").write_text("".join(f"{x}\n" for x in lines))


def test_cli_audits_a_tu_dataset_on_disk(tmp_path, capsys):
    write_tu(tmp_path / "TOY" / "raw", [0, 1] * 12)  # torch_geometric's TUDataset layout; the name is inferred
    assert main(["audit", "--tu-root", str(tmp_path), "--seed", "1"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[0] == "TOY, seed 1: 12 train / 12 test graphs, 2 classes, chance 0.500"
    assert lines[2].split() == ["size", "1.000", "1.000", "+0.500"]  # paths are longer than cycles
    assert lines[-1].startswith("background") and lines[-1].endswith("the graphs have no edge labels (edge_label)")


@pytest.mark.parametrize(
    "args,error",
    [
        (["--tu-root", "{tmp}/missing"], "{tmp}/missing: no such folder (expected a TU dataset's folder)"),
        (["--tu-root", "{tmp}/ONE"], "the train graphs hold one class (0); an audit needs at least two"),
        (["fmbench/GraphMotifsTreeX1-v1", "--tu-root", "{tmp}"], "audit takes a task id or --tu-root DIR"),
        ([], "audit takes a task id or --tu-root DIR"),
        (["fmbench/GraphMotifsTreeX1-v1", "--name", "X"], "--name goes with --tu-root"),
    ],
)
def test_cli_tu_audit_bad_input_is_a_one_line_error(tmp_path, capsys, args, error):
    write_tu(tmp_path / "ONE", [0] * 6)
    assert main(["audit", *(a.format(tmp=tmp_path) for a in args)]) == 1
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and error.format(tmp=tmp_path) in err, err


# ---- every registered graph task ----------------------------------------------------------------
GRAPH_TASKS = [t for t in list_tasks() if t.startswith("fmbench/Graph")]
SYNTHETIC = [t for t in GRAPH_TASKS if isinstance(make_task(t), MotifTask)]
CURRENT_SYNTHETIC = [t for t in SYNTHETIC if superseded_by(t) is None]  # superseded versions are exempt: pinned data


def test_every_graph_task_ships_an_audit_of_its_pinned_data_and_describe_shows_it():
    shipped = shipped_audits()
    assert all(isinstance(make_task(t), GraphProbeTask) for t in GRAPH_TASKS)
    assert sorted(shipped) == GRAPH_TASKS
    for tid in GRAPH_TASKS:
        assert shipped[tid]["data_hash"] == make_task(tid).spec.data_hashes["0"], f"{tid}: stale audit"
    info = make_task("fmbench/GraphMotifsBAX1-v0").describe()
    assert info["shortcut_audit"] == shipped["fmbench/GraphMotifsBAX1-v0"]["audit"]
    assert info["superseded_by"] == "fmbench/GraphMotifsBAX1-v1"
    assert "superseded_by" not in make_task("fmbench/GraphMotifsBAX1-v1").describe()


@pytest.mark.parametrize("tid", CURRENT_SYNTHETIC)
def test_current_synthetic_tasks_have_no_size_or_degree_shortcut(tid):
    audit = Audit.from_dict(shipped_audits()[tid]["audit"])
    for statistic in GATED:
        assert audit.accuracy(statistic) <= audit.chance + MARGIN, f"{tid}: {statistic} classifies"


@pytest.mark.parametrize("background", ["BA", "Tree"])
def test_version_1_removes_the_degree_shortcut_and_wl2_falls_with_the_multiplier(background):
    """v0 (varied motifs) gave the class away through degree counts on both backgrounds; v1 (degree-matched
    motifs) does not, and two WL rounds see less of the motif the more background there is."""
    wl2 = []
    for m in (1, 2, 4, 8):
        v0, v1 = (
            Audit.from_dict(shipped_audits()[f"fmbench/GraphMotifs{background}X{m}-v{v}"]["audit"]) for v in (0, 1)
        )
        assert v0.accuracy("degree") > v0.chance + 0.2 and v1.accuracy("degree") <= v1.chance + MARGIN
        wl2.append(v1.accuracy("wl2"))
    assert wl2 == sorted(wl2, reverse=True) and wl2[0] - wl2[-1] > 0.05, wl2


@pytest.mark.slow  # regenerates each current synthetic task's train/test graphs (~1-2 s each)
@pytest.mark.parametrize("tid", CURRENT_SYNTHETIC)
def test_shipped_size_and_degree_audits_are_what_the_data_gives(tid):
    fresh = audit_task(make_task(tid), 0, GATED)
    shipped = Audit.from_dict(shipped_audits()[tid]["audit"])
    assert fresh.chance == shipped.chance
    assert [fresh.row(s) for s in GATED] == [shipped.row(s) for s in GATED]


@pytest.mark.slow  # audits 1,200 graphs (~3 s)
def test_cli_audit_prints_the_table_the_shipped_audit_holds(capsys):
    tid = "fmbench/GraphMotifsBAX1-v1"
    assert main(["audit", tid]) == 0
    shipped = Audit.from_dict(shipped_audits()[tid]["audit"])
    assert capsys.readouterr().out.strip() == f"{tid}, seed 0: {shipped.table()}"


def test_a_superseded_task_keeps_its_leaderboard_marked_superseded(capsys):
    assert main(["leaderboard", "fmbench/GraphMotifsBAX1-v0"]) == 0
    out = capsys.readouterr().out
    assert "baseline-untrained (baseline)" in out
    assert out.strip().endswith(
        "Superseded by fmbench/GraphMotifsBAX1-v1 (rows kept for reference; new entries go there)."
    )
