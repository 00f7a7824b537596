"""Leaderboards kept as files: ``<dir>/<task id>/<submission name>.json`` plus rendered tables.

A submission is a complete result record that passes every check (schema, registered and
current task version, matching data hashes, enough seeds, safe and unused name, not the
same model evaluated on the same seeds as an accepted entry). It is written atomically
under a per-task lock and never overwrites anything.

"The same model" means the same key (:mod:`fmbench.model_key`: weights hash, else a hash of
the model's files, else of its canonical spec). ``submit`` recomputes the key from the
model's files or spec when they are at hand (``submission.key = "recomputed"``; a stated key
that differs is refused, naming both) and otherwise keeps the record's (``"stated"``). An
entry is marked "(baseline)" only when its recomputed key is that of a baseline the task ships.

Verified entries: ``submit(..., verify=True)`` re-runs the model on one of the record's seeds
(:mod:`fmbench.verify`) before accepting it and stores ``submission.verified``;
:func:`verify_entries` (``fmbench leaderboard verify``) verifies accepted entries and writes
``<entry>.verified.json`` beside each, never touching the entry: it applies while the entry's
bytes are those it verified. Tables show which entries are verified.

A folder survives bad files: an entry that is not a valid, accepted record of its task (or is a
symlink) is listed as invalid with the reason and left out of the table; ``check`` lists every bad
file. Task folders and entries must stay inside the leaderboards root: symlinks are never followed.
Free text is escaped (``md_escape``) wherever it is rendered as Markdown and flattened to one
line (``one_line``) in plain-text tables.

Example:
    >>> rows = ranked_rows("fmbench/ComposeStepByStep-v0")
    >>> rows[0]["rank"]
    1
"""

from __future__ import annotations

import fcntl
import hashlib
import os
import re
import stat
import time
import unicodedata
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from functools import cache
from pathlib import Path
from typing import Any, NamedTuple

import jsonschema

from fmbench.errors import FmbenchError, InputError, ModelError, ResultError, SubmissionError, UnknownIdError
from fmbench.io import atomic_open, write_json_atomic
from fmbench.model_key import identity_key, weights_key
from fmbench.registry import list_tasks, make_task, superseded_by, task_spec
from fmbench.results import check_against_registry, check_schema, load_record, now, schema, submittable

NAME_PATTERN = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$")
LEADERBOARDS_ENV = "FMBENCH_LEADERBOARDS"
STALE_TEMP_SECONDS = 600  # a writer's temp file this old is left over from a killed writer
VERIFIED_SUFFIX = ".verified.json"  # <entry>.verified.json: written by `fmbench leaderboard verify`
_TEMP_NAME = re.compile(r"^\..+\.tmp$")  # fmbench.io.atomic_path's temp files: ".<name>.<random>.tmp"
_MD_SPECIAL = str.maketrans(
    {"\\": "\\\\", "|": "\\|", "`": "\\`", "[": "\\[", "]": "\\]", "&": "&amp;", "<": "&lt;", ">": "&gt;"}
)


class Invalid(NamedTuple):
    """A file in a leaderboards folder that is not a valid entry, and why."""

    path: Path
    reason: str

    def __str__(self) -> str:
        return f"{self.path}: {self.reason}"


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


def one_line(text: object) -> str:
    """Free text as one line of plain text: line breaks and other control characters become spaces.

    Example:
        >>> one_line("cpu\\n1  x\\r\\x1b[31mred\\u2028z")
        'cpu 1  x  [31mred z'
    """
    return "".join(" " if unicodedata.category(c) in ("Cc", "Zl", "Zp") else c for c in str(text))


def md_escape(text: object) -> str:
    """Free text as one line of inert Markdown (table cells, lists): no markup, links, HTML or headings.

    Example:
        >>> md_escape("# a|b [x](y) <img onerror=alert(1)>\\nz")
        '\\\\# a\\\\|b \\\\[x\\\\](y) &lt;img onerror=alert(1)&gt; z'
    """
    text = one_line(" ".join(str(text).translate(_MD_SPECIAL).splitlines()))
    return "\\" + text if text.startswith("#") else text


def unsafe_folder(root: Path, task_id: str) -> str | None:
    """Why a task's folder may not be used (a symlink on the way, or outside ``root``), or ``None``.

    Example:
        >>> unsafe_folder(Path("leaderboards"), "../elsewhere")
        'leaderboards/../elsewhere is outside the leaderboards folder'
    """
    folder, path = task_dir(root, task_id), root
    for part in Path(task_id).parts:
        path = path / part
        if path.is_symlink():
            return f"{path} is a symlink (refused)"
    if not folder.resolve().is_relative_to(root.resolve()):
        return f"{folder} is outside the leaderboards folder"
    return None


def check_entry(path: Path, task_id: str) -> str | None:
    """Why ``path`` is not a valid accepted entry of ``task_id`` (one line), or ``None``."""
    return _read_entry(path, task_id)[1]


def _read_entry(path: Path, task_id: str) -> tuple[dict[str, Any] | None, str | None]:
    """``(record, None)`` for a valid accepted entry of ``task_id``, else ``(None, why)`` in one line."""
    if path.is_symlink():
        return None, "a symlink (refused)"
    if not path.is_file():
        return None, "not a regular file"
    try:
        record = load_record(path)
        if not isinstance(record, dict):
            return None, f"not a result record (a JSON {type(record).__name__})"
        if "submission" not in record:
            return None, "not a leaderboard entry (no submission block)"
        check_schema(record, "entry")
    except (ResultError, ValueError, RecursionError) as e:  # ValueError: not UTF-8; RecursionError: nested too deep
        return None, (str(e).splitlines() or [type(e).__name__])[0].removeprefix(f"{path} ").removeprefix("entry: ")
    if record["task"]["id"] != task_id:
        return None, f"a record of {record['task']['id']}, not of {task_id}"
    if record["submission"]["name"] != path.stem:
        return None, f"its submission name {record['submission']['name']!r} does not match the file name"
    primary = task_spec(task_id).primary_metric
    if primary not in record["metrics"]:
        return None, f"no {primary!r} metric"
    return record, None


def _bytes_sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def _read_verification(path: Path, entry: Path) -> tuple[dict[str, Any] | None, str | None]:
    """``(verified block, None)`` of a valid ``<entry>.verified.json`` that matches ``entry``'s bytes, else why not."""
    if path.is_symlink() or not path.is_file():
        return None, "a symlink (refused)" if path.is_symlink() else "not a regular file"
    try:
        found = load_record(path)
    except (ResultError, ValueError, RecursionError) as e:
        return None, str(e).splitlines()[0].removeprefix(f"{path} ")
    block = {"$ref": "#/$defs/verified", "$defs": schema()["$defs"]}
    if (
        not isinstance(found, dict)
        or set(found) != {"entry_sha256", "verified"}
        or not isinstance(found["entry_sha256"], str)
        or next(jsonschema.Draft202012Validator(block).iter_errors(found["verified"]), None) is not None
    ):
        return None, "not a verification ({entry_sha256, verified} as `fmbench leaderboard verify` writes it)"
    if found["entry_sha256"] != _bytes_sha256(entry):
        return None, f"stale: {entry.name} changed after it was verified (run `fmbench leaderboard verify` again)"
    return found["verified"], None


@contextmanager
def _locked(folder: Path) -> Iterator[None]:
    """Hold an exclusive lock on the folder itself (no lock file is left behind; a symlink is refused)."""
    folder.mkdir(parents=True, exist_ok=True)
    fd = os.open(folder, os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        yield
    finally:
        os.close(fd)  # closing releases the lock


def scan(task_id: str, root: Path | None = None) -> tuple[list[dict[str, Any]], list[Invalid]]:
    """A task's valid entries (each record has its ``submission`` block) and its invalid files.

    An entry verified by ``fmbench leaderboard verify`` carries that verification (from its
    ``<entry>.verified.json``) in ``submission.verified`` of the returned record; a verification
    that does not match its entry's bytes, or has no valid entry, is listed as invalid.
    """
    root = root or default_dir()
    folder = task_dir(root, task_id)
    unsafe = unsafe_folder(root, task_id)
    if unsafe:
        return [], [Invalid(folder, unsafe)]
    if not folder.is_dir():
        return [], []
    good, bad = {}, []
    for path in sorted(folder.glob("*.json")):
        if path.name.endswith(VERIFIED_SUFFIX):
            continue
        record, reason = _read_entry(path, task_id)
        if reason:
            bad.append(Invalid(path, reason))
        else:
            good[path.stem] = record
    for path in sorted(folder.glob(f"*{VERIFIED_SUFFIX}")):
        name = path.name.removesuffix(VERIFIED_SUFFIX)
        if name not in good:
            bad.append(Invalid(path, f"verifies {name}.json, which is not a valid entry"))
            continue
        verified, reason = _read_verification(path, folder / f"{name}.json")
        if reason:
            bad.append(Invalid(path, reason))
        else:
            good[name]["submission"]["verified"] = verified
    return list(good.values()), bad


def entries(task_id: str, root: Path | None = None) -> list[dict[str, Any]]:
    """Valid accepted submissions of a task (invalid files are left out: see ``scan``)."""
    return scan(task_id, root)[0]


def check(root: Path | None = None) -> list[Invalid]:
    """Every bad file under a leaderboards folder: invalid entries and verifications, symlinks, JSON outside a
    task's folder.

    Example:
        >>> check()
        []
    """
    root = root or default_dir()
    if not root.is_dir():
        raise InputError(f"{root} is not a folder")
    tasks = set(list_tasks())
    bad = []
    for folder, dirs, files in os.walk(root):  # never follows symlinked folders
        here = Path(folder)
        rel = here.relative_to(root).as_posix()
        for d in sorted(dirs):
            if (here / d).is_symlink():
                bad.append(Invalid(here / d, "a symlink (refused)"))
            elif d.endswith(".json") and rel in tasks:  # as ``scan`` lists it under the task's table
                bad.append(Invalid(here / d, "not a regular file"))
        dirs.sort()
        if rel in tasks:
            bad += scan(rel, root)[1]  # its entries and verifications, symlinked ones included
        for name in sorted(files):
            path = here / name
            if rel in tasks and name.endswith(".json"):
                continue
            if path.is_symlink():
                bad.append(Invalid(path, "a symlink (refused)"))
            elif name.endswith(".json"):
                bad.append(Invalid(path, "not in the folder of a registered task"))
    return bad


def remove_stale_temp_files(folder: Path, max_age: float = STALE_TEMP_SECONDS) -> list[Path]:
    """Delete the atomic-write temp files (``.<name>.<random>.tmp``) older than ``max_age`` seconds.

    Call it holding the folder's lock. Rule: writers hold the lock while they write and a write takes
    seconds, so a temp file untouched for ``max_age`` (10 minutes) is left over from a killed writer;
    a younger one is kept in case a writer that does not take the lock is still at work. Only regular
    files are removed (never a symlink or folder).
    """
    removed, cutoff = [], time.time() - max_age
    for path in folder.iterdir():
        if not _TEMP_NAME.match(path.name):
            continue
        st = path.lstat()
        if stat.S_ISREG(st.st_mode) and st.st_mtime < cutoff:
            path.unlink(missing_ok=True)
            removed.append(path)
    return removed


def check_name(name: str) -> None:
    """Refuse an unsafe submission name (``SubmissionError``)."""
    if not isinstance(name, str) or not NAME_PATTERN.fullmatch(name):  # fullmatch: '$' would allow "x\n"
        raise SubmissionError(
            f"unsafe submission name {name!r}: use 1-64 letters, digits, '.', '_' or '-', "
            "starting with a letter or digit"
        )
    if name.endswith(VERIFIED_SUFFIX.removesuffix(".json")):
        raise SubmissionError(f"submission name {name!r} may not end with '.verified' (the verifications' names)")


def model_key_of(record: dict[str, Any], where: str = "record") -> tuple[dict[str, str], str]:
    """The record's model key and how it is known: ``"recomputed"`` from its files or spec, else ``"stated"``.

    A key the record states (``model.key`` or ``model.weights_sha256``) that differs from the
    recomputed one is refused (``SubmissionError`` naming both). A record without ``model.key``
    (written before keys) gets its weights hash, else its spec's hash.

    Example:
        >>> key, how = model_key_of({"task": {"id": "fmbench/ComposeDirect-v0"}, "model": {
        ...     "spec": "baseline:trained", "weights_sha256": "ab" * 32}})
        Traceback (most recent call last):
        ...
        fmbench.errors.SubmissionError: record: it states model key abababababab… but baseline:trained hashes to \
d81246e9384c9d7a2c3104948218a53631a9a94bb81dc7087676ad97f06d78c5
    """
    from fmbench.models import recompute_key

    model = record["model"]
    try:
        found = recompute_key(model["spec"], record["task"]["id"])
    except FmbenchError as e:
        raise SubmissionError(f"{where}: cannot hash the model {model['spec']}: {e}") from None
    stated = model.get("key") or (
        weights_key(model["weights_sha256"]) if model["weights_sha256"] else identity_key({"spec": model["spec"]})
    )
    if found is None:
        return stated, "stated"
    for claim in (model.get("key", {}).get("sha256"), model["weights_sha256"]):
        if claim and claim != found["sha256"]:
            raise SubmissionError(
                f"{where}: it states model key {claim[:12]}… but {model['spec']} hashes to {found['sha256']}"
            )
    return found, "recomputed"


def submit(
    path: str | Path,
    name: str,
    code_url: str | None = None,
    root: Path | None = None,
    log: Callable[[str], None] | None = None,
    verify: bool = False,
    trust_code: bool = False,
) -> Path:
    """Check a result file and add it to its task's leaderboard; return the written path (``log``: slow steps).

    ``verify`` re-runs the model on one of the record's seeds first (:func:`fmbench.verify.verify`;
    ``trust_code`` lets it run a ``python:`` model) and refuses the record unless every metric matches.
    """
    root = root or default_dir()
    check_name(name)
    try:
        record = load_record(path)
        if isinstance(record, dict) and "submission" in record:
            raise SubmissionError(f"{path} is already a leaderboard entry, not a result to submit")
        check_schema(record, str(path))
        tid = record["task"]["id"]
        reason = submittable(record)
        if reason:
            raise SubmissionError(f"{path}: {reason}")
        check_against_registry(record, str(path), log)  # metrics and data hashes: the expensive checks last
        record["model"]["key"], how = model_key_of(record, str(path))
        verified = _verify(record, trust_code, log) if verify else None
    except (ResultError, UnknownIdError, ModelError) as e:
        raise SubmissionError(str(e)) from None
    record["submission"] = {"name": name, "code_url": code_url, "submitted": now(), "key": how}
    if verified:
        record["submission"]["verified"] = {**verified, "by": "submit --verify"}
    folder = task_dir(root, tid)
    target = folder / f"{name}.json"
    unsafe = unsafe_folder(root, tid)
    if unsafe:
        raise SubmissionError(unsafe)
    with _locked(folder):
        for path in remove_stale_temp_files(folder):
            (log or _quiet)(f"removed stale temp file {path}")
        others, invalid = scan(tid, root)
        for bad in invalid:
            (log or _quiet)(f"skipped invalid entry {bad}")
        key = record["model"]["key"]
        for other in others:
            if other["submission"]["name"] == name:
                raise SubmissionError(f"{tid} already has a submission named {name!r}")
            if other["model"]["key"]["sha256"] == key["sha256"] and sorted(other["seeds"]) == sorted(record["seeds"]):
                raise SubmissionError(
                    f"duplicate: {other['submission']['name']!r} already reports this model "
                    f"(key {key['sha256'][:12]}, a hash of its {key['of']}) on the same seeds"
                )
        try:
            write_json_atomic(target, record, exclusive=True)
        except FileExistsError:
            raise SubmissionError(f"{target} already exists") from None
    return target


def _verify(record: dict[str, Any], trust_code: bool, log: Callable[[str], None] | None) -> dict[str, Any]:
    from fmbench.verify import verify

    return verify(record, trust_code=trust_code, log=log or _quiet)


def verify_entries(
    task_id: str,
    root: Path | None = None,
    entry: str | None = None,
    trust_code: bool = False,
    log: Callable[[str], None] | None = None,
) -> dict[str, str | None]:
    """Verify a task's entries (or only ``entry``): ``{name: None if verified, else why not}``.

    Each verified entry gets ``<entry>.verified.json`` (its bytes' sha256 and the verification),
    written atomically under the task's lock after checking that the entry did not change while
    its model ran; entries themselves are never rewritten. A failed verification writes nothing.
    """
    root = root or default_dir()
    task_spec(task_id)  # unknown ids fail with a suggestion
    folder = task_dir(root, task_id)
    records = entries(task_id, root)
    chosen = [r for r in records if entry is None or r["submission"]["name"] == entry]
    if entry is not None and not chosen:
        raise SubmissionError(f"{task_id} has no valid entry named {entry!r}")
    outcome: dict[str, str | None] = {}
    for record in chosen:
        name = record["submission"]["name"]
        path = folder / f"{name}.json"
        digest = _bytes_sha256(path)
        try:
            verified = _verify(record, trust_code, log)
        except (ResultError, ModelError) as e:
            outcome[name] = str(e).splitlines()[0]
            continue
        with _locked(folder):
            remove_stale_temp_files(folder)
            if path.is_symlink() or not path.is_file() or _bytes_sha256(path) != digest:
                outcome[name] = f"{path.name} changed while it was verified; not marked"
                continue
            sidecar = {"entry_sha256": digest, "verified": {**verified, "by": "leaderboard verify"}}
            write_json_atomic(folder / f"{name}{VERIFIED_SUFFIX}", sidecar)
        outcome[name] = None
    return outcome


def _quiet(message: str) -> None:
    pass


def ranked_rows(task_id: str, root: Path | None = None) -> list[dict[str, Any]]:
    """Table rows of a task's valid entries ranked by the primary metric's mean (see ``rank``)."""
    return rank(task_id, entries(task_id, root))


def rank(task_id: str, records: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Table rows of valid entries ranked by the primary metric's mean (then lower std, then earlier submission)."""
    spec = task_spec(task_id)
    higher = spec.metrics[spec.primary_metric].higher_is_better
    rows = []
    for r in records:
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
                "baseline": _is_baseline(r),
                "verified": r["submission"].get("verified"),
                "model": r["model"]["spec"],
                "code_url": r["submission"].get("code_url"),
                "_order": (-m["mean"] if higher else m["mean"], m["std"], r["submission"]["submitted"]),
            }
        )
    rows.sort(key=lambda row: row.pop("_order"))
    for i, row in enumerate(rows, 1):
        row["rank"] = i
    return rows


@cache
def baseline_keys(task_id: str) -> dict[str, str]:
    """``{key sha256: baseline name}`` of the baselines ``task_id`` ships (one that cannot be loaded here is left
    out: e.g. a task on data the user brings).

    Example:
        >>> sorted(baseline_keys("fmbench/ComposeDirect-v0").values())
        ['trained', 'untrained']
    """
    task = make_task(task_id)
    found = {}
    for name in task.spec.baselines:
        try:
            found[task.baseline_key(name)["sha256"]] = name
        except FmbenchError:
            continue
    return found


def _is_baseline(record: dict[str, Any]) -> bool:
    """Whether an entry is a baseline the task ships: its key, recomputed at submission, is that baseline's.

    An entry of spec ``baseline:<name>`` (a shipped name) whose key was recomputed is one by construction:
    ``submit`` recomputed its key from that very baseline. Only other entries need the shipped baselines'
    keys (:func:`baseline_keys`, which may load every baseline of the task).
    """
    if record["submission"]["key"] != "recomputed":
        return False
    scheme, _, name = record["model"]["spec"].partition(":")
    task_id = record["task"]["id"]
    if scheme == "baseline" and name in task_spec(task_id).baselines:
        return True
    return record["model"]["key"]["sha256"] in baseline_keys(task_id)


def entry_name(baseline: str) -> str:
    """Leaderboard entry name of a shipped baseline (what ``python -m fmbench.baselines`` submits it as).

    Example:
        >>> entry_name("trained")
        'baseline-trained'
    """
    return f"baseline-{baseline}"


def _params(n: int | None) -> str:
    if n is None:
        return "?"
    return f"{n / 1e6:.2f}M" if n >= 1e5 else f"{n:,}"


def _verified(block: dict[str, Any] | None) -> str:
    return f"yes (seed {block['seed']})" if block else "no"


def superseded_note(task_id: str) -> str | None:
    """The line a superseded task's leaderboard opens with, or ``None`` for a current task.

    Example:
        >>> superseded_note("fmbench/GraphMotifsBAX1-v0")
        'Superseded by fmbench/GraphMotifsBAX1-v1 (rows kept for reference; new entries go there).'
    """
    newer = superseded_by(task_id)
    if newer is None:
        return None
    return f"Superseded by {newer} (rows kept for reference; new entries go there)."


def format_table(task_id: str, rows: list[dict[str, Any]], markdown: bool = False) -> str:
    """The ranked table as aligned text or Markdown (free text escaped, or flattened to one line)."""
    spec = task_spec(task_id)
    arrow = "↑" if spec.metrics[spec.primary_metric].higher_is_better else "↓"
    head = ["rank", "name", f"{spec.primary_metric} {arrow} (mean ± std)", "#params", "seeds", "device", "date"]
    head.append("verified")
    body = [
        [
            str(r["rank"]),
            r["name"] + (" (baseline)" if r["baseline"] else ""),
            f"{r['mean']:.4f} ± {r['std']:.4f}",
            _params(r["n_params"]),
            str(r["seeds"]),
            r["device"],
            r["date"],
            _verified(r["verified"]),
        ]
        for r in rows
    ]
    if markdown:
        lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
        return "\n".join(lines + ["| " + " | ".join(map(md_escape, row)) + " |" for row in body])
    body = [[one_line(x) for x in row] for row in body]
    widths = [max(len(x) for x in col) for col in zip(head, *body)]
    return "\n".join("  ".join(x.ljust(w) for x, w in zip(row, widths)).rstrip() for row in [head, *body])


def format_invalid(invalid: list[Invalid], markdown: bool = False) -> str:
    """The files left out of a table, one line each (Markdown: a list of escaped file names and reasons)."""
    if markdown:
        items = [f"- {md_escape(f'{b.path.name}: {b.reason}')}" for b in invalid]
        return "\n".join(["Not ranked (invalid files):", "", *items])
    return "\n".join(["invalid entries (not ranked):"] + [f"  {one_line(b)}" for b in invalid])


def render(root: Path | None = None, log: Callable[[str], None] | None = None) -> list[Path]:
    """Rewrite ``<task>/README.md`` for every task with entries and the index ``README.md``.

    Invalid files are listed under their task's table (and each reported through ``log``); a task
    whose folder is unsafe (a symlink, or outside ``root``) gets no README.
    """
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
        records, invalid = scan(tid, root)
        rows = rank(tid, records)
        for bad in invalid:
            (log or _quiet)(f"invalid entry {bad}")
        if (not rows and not invalid) or unsafe_folder(root, tid):
            continue
        spec = task_spec(tid)
        text = "\n".join(
            [
                f"# {tid}",
                "",
                *([f"**{superseded_note(tid)}**", ""] if superseded_by(tid) else []),
                spec.summary,
                "",
                f"Study: arXiv:{spec.study} — {spec.title}. Primary metric: `{spec.primary_metric}`; "
                f"ranked entries need at least {spec.min_seeds} seeds. (baseline): the model is a baseline the "
                "task ships (same key). Verified: fmbench re-ran the model on the seed shown and every metric matched.",
                "",
                format_table(tid, rows, markdown=True) if rows else "No valid entries yet.",
                "",
                *([format_invalid(invalid, markdown=True), ""] if invalid else []),
            ]
        )
        path = task_dir(root, tid) / "README.md"
        with _locked(path.parent), atomic_open(path) as f:
            f.write(text)
        written.append(path)
        if not rows:
            continue
        best = rows[0]
        index.append(
            f"| [{tid}]({tid}/README.md){' (superseded)' if superseded_by(tid) else ''} | {spec.study} | {len(rows)} | "
            f"{md_escape(best['name'])} | "
            f"{spec.primary_metric} {best['mean']:.4f} ± {best['std']:.4f} |"
        )
    path = root / "README.md"
    with atomic_open(path) as f:
        f.write("\n".join(index) + "\n")
    return [*written, path]
