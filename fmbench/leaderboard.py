"""Leaderboards kept as files: ``<dir>/<task id>/<submission name>.json`` plus rendered tables.

A submission is a complete result record that passes every check (schema, registered and
current task version, matching data hashes, enough seeds, safe and unused name, not the
same model evaluated on the same seeds as an accepted entry). It is written atomically
under a per-task lock and never overwrites anything. Shipped baselines are submitted
first (their model spec starts with ``baseline:``) and are marked in the tables.

Example:
    >>> rows = ranked_rows("fmbench/ComposeStepByStep-v0")
    >>> rows[0]["rank"]
    1
"""

from __future__ import annotations

import fcntl
import os
import re
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from fmbench.errors import ResultError, SubmissionError, UnknownIdError
from fmbench.io import atomic_open, write_json_atomic
from fmbench.registry import list_tasks, task_spec
from fmbench.results import check_against_registry, check_schema, load_record, now, submittable

NAME_PATTERN = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$")
LEADERBOARDS_ENV = "FMBENCH_LEADERBOARDS"


def default_dir() -> Path:
    """``$FMBENCH_LEADERBOARDS``, the checkout's ``leaderboards/``, or the wheel's read-only copy."""
    if os.environ.get(LEADERBOARDS_ENV):
        return Path(os.environ[LEADERBOARDS_ENV])
    checkout = Path(__file__).resolve().parent.parent
    if (checkout / "pyproject.toml").is_file() and (checkout / "leaderboards").is_dir():
        return checkout / "leaderboards"
    return Path(__file__).parent / "_specs" / "leaderboards"


def task_dir(root: Path, task_id: str) -> Path:
    return root / task_id


@contextmanager
def _locked(folder: Path) -> Iterator[None]:
    """Hold an exclusive lock on the folder itself (no lock file is left behind)."""
    folder.mkdir(parents=True, exist_ok=True)
    fd = os.open(folder, os.O_RDONLY)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        yield
    finally:
        os.close(fd)  # closing releases the lock


def entries(task_id: str, root: Path | None = None) -> list[dict[str, Any]]:
    """Accepted submissions of a task (each record has its ``submission`` block)."""
    folder = task_dir(root or default_dir(), task_id)
    return [load_record(p) for p in sorted(folder.glob("*.json"))] if folder.is_dir() else []


def submit(
    path: str | Path,
    name: str,
    code_url: str | None = None,
    root: Path | None = None,
    log: Callable[[str], None] | None = None,
) -> Path:
    """Check a result file and add it to its task's leaderboard; return the written path (``log``: slow steps)."""
    root = root or default_dir()
    if not isinstance(name, str) or not NAME_PATTERN.fullmatch(name):  # fullmatch: '$' would allow "x\n"
        raise SubmissionError(
            f"unsafe submission name {name!r}: use 1-64 letters, digits, '.', '_' or '-', "
            "starting with a letter or digit"
        )
    try:
        record = load_record(path)
        check_schema(record, str(path))
        if "submission" in record:
            raise SubmissionError(f"{path} is already a leaderboard entry ({record['submission']['name']})")
        tid = record["task"]["id"]
        reason = submittable(record)
        if reason:
            raise SubmissionError(f"{path}: {reason}")
        check_against_registry(record, str(path), log)  # metrics and data hashes: the expensive check last
    except (ResultError, UnknownIdError) as e:
        raise SubmissionError(str(e)) from None
    record["submission"] = {"name": name, "code_url": code_url, "submitted": now()}
    folder = task_dir(root, tid)
    target = folder / f"{name}.json"
    with _locked(folder):
        for other in entries(tid, root):
            if other["submission"]["name"] == name:
                raise SubmissionError(f"{tid} already has a submission named {name!r}")
            sha = record["model"]["weights_sha256"]
            if (
                sha is not None
                and other["model"]["weights_sha256"] == sha
                and sorted(other["seeds"]) == sorted(record["seeds"])
            ):
                raise SubmissionError(
                    f"duplicate: {other['submission']['name']!r} already reports this model "
                    f"(weights {record['model']['weights_sha256'][:12]}) on the same seeds"
                )
        try:
            write_json_atomic(target, record, exclusive=True)
        except FileExistsError:
            raise SubmissionError(f"{target} already exists") from None
    return target


def ranked_rows(task_id: str, root: Path | None = None) -> list[dict[str, Any]]:
    """Table rows ranked by the primary metric's mean (then lower std, then earlier submission)."""
    spec = task_spec(task_id)
    higher = spec.metrics[spec.primary_metric].higher_is_better
    rows = []
    for r in entries(task_id, root):
        m = r["metrics"][spec.primary_metric]
        rows.append(
            {
                "name": r["submission"]["name"],
                "mean": m["mean"],
                "std": m["std"],
                "n_params": r["model"]["n_params"],
                "seeds": len(r["seeds"]),
                "device": r["device"],
                "date": r["submission"]["submitted"][:10],
                "baseline": _is_baseline_entry(r),
                "model": r["model"]["spec"],
                "code_url": r["submission"].get("code_url"),
                "_order": (-m["mean"] if higher else m["mean"], m["std"], r["submission"]["submitted"]),
            }
        )
    rows.sort(key=lambda row: row.pop("_order"))
    for i, row in enumerate(rows, 1):
        row["rank"] = i
    return rows


def entry_name(baseline: str) -> str:
    """Leaderboard entry name of a shipped baseline (what ``python -m fmbench.baselines`` submits it as).

    Example:
        >>> entry_name("trained")
        'baseline-trained'
    """
    return f"baseline-{baseline}"


def _is_baseline_entry(record: dict[str, Any]) -> bool:
    """A shipped baseline submitted under its own name by the baselines job (not, say, the demo's copy)."""
    spec = record["model"]["spec"]
    return spec.startswith("baseline:") and record["submission"]["name"] == entry_name(spec.removeprefix("baseline:"))


def _params(n: int | None) -> str:
    if n is None:
        return "?"
    return f"{n / 1e6:.2f}M" if n >= 1e5 else f"{n:,}"


def format_table(task_id: str, rows: list[dict[str, Any]], markdown: bool = False) -> str:
    """The ranked table as aligned text or Markdown."""
    spec = task_spec(task_id)
    arrow = "↑" if spec.metrics[spec.primary_metric].higher_is_better else "↓"
    head = ["rank", "name", f"{spec.primary_metric} {arrow} (mean ± std)", "#params", "seeds", "device", "date"]
    body = [
        [
            str(r["rank"]),
            r["name"] + (" (baseline)" if r["baseline"] else ""),
            f"{r['mean']:.4f} ± {r['std']:.4f}",
            _params(r["n_params"]),
            str(r["seeds"]),
            r["device"],
            r["date"],
        ]
        for r in rows
    ]
    if markdown:
        lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
        return "\n".join(lines + ["| " + " | ".join(row) + " |" for row in body])
    widths = [max(len(x) for x in col) for col in zip(head, *body)]
    return "\n".join("  ".join(x.ljust(w) for x, w in zip(row, widths)).rstrip() for row in [head, *body])


def render(root: Path | None = None) -> list[Path]:
    """Rewrite ``<task>/README.md`` for every task with entries and the index ``README.md``."""
    root = root or default_dir()
    written, index = (
        [],
        [
            "# fmbench leaderboards",
            "",
            "Regenerated by `fmbench leaderboard render`; submit with `fmbench submit`.",
            "",
            "| task | study | entries | best | best " + "primary metric |",
            "|---|---|---|---|---|",
        ],
    )
    for tid in list_tasks():
        rows = ranked_rows(tid, root)
        if not rows:
            continue
        spec = task_spec(tid)
        text = "\n".join(
            [
                f"# {tid}",
                "",
                spec.summary,
                "",
                f"Study: arXiv:{spec.study} — {spec.title}. Primary metric: `{spec.primary_metric}`; "
                f"ranked entries need at least {spec.min_seeds} seeds.",
                "",
                format_table(tid, rows, markdown=True),
                "",
            ]
        )
        path = task_dir(root, tid) / "README.md"
        with atomic_open(path) as f:
            f.write(text)
        written.append(path)
        best = rows[0]
        index.append(
            f"| [{tid}]({tid}/README.md) | {spec.study} | {len(rows)} | {best['name']} | "
            f"{spec.primary_metric} {best['mean']:.4f} ± {best['std']:.4f} |"
        )
    path = root / "README.md"
    with atomic_open(path) as f:
        f.write("\n".join(index) + "\n")
    return [*written, path]
