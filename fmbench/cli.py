"""The ``fmbench`` command line: list, describe, audit, data, eval, grid, validate, submit, leaderboard.

Every command has ``--help``; on bad input (an :class:`~fmbench.errors.FmbenchError` or a file
that cannot be read or written) it prints one line naming the problem to stderr and exits
non-zero (2 for usage errors, 1 for everything else). Any other exception is a bug in fmbench
or in the submitted code it ran: its traceback is shown. ``--debug`` shows every traceback.

Example:
    >>> main(["list", "--tasks"])  # doctest: +ELLIPSIS
    fmbench/ComposeBase-v0...
    0
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
import warnings
from pathlib import Path
from typing import Any

from fmbench.errors import FmbenchError, first_line
from fmbench.verify import ABS_TOL, REL_TOL


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> None:  # one line instead of usage + message
        self.exit(2, f"{self.prog}: error: {message} (see --help)\n")


def _progress(line: str) -> None:
    """A progress message of a slow step (on stdout: stderr holds only the one-line error, if any)."""
    print(line, flush=True)


def _print_json(obj: Any) -> None:
    print(json.dumps(obj, indent=2))


def cmd_list(args: argparse.Namespace) -> None:
    from fmbench.registry import env_spec, list_envs, list_tasks, problems, task_spec

    def row(kind: str, spec: Any) -> dict[str, Any]:
        extra = {"primary_metric": spec.primary_metric, "interface": spec.interface} if kind == "task" else {}
        return {
            "id": spec.id,
            "kind": kind,
            "studies": [x.arxiv for x in spec.studies],
            "version": spec.version,
            "summary": spec.summary,
            **extra,
        }

    rows = []
    if not args.tasks:
        rows += [row("env", env_spec(i)) for i in list_envs(args.study)]
    if not args.envs:
        rows += [row("task", task_spec(i)) for i in list_tasks(args.study)]
    for line in problems():
        print(f"fmbench list: skipped: {line}", file=sys.stderr)
    if args.markdown:
        print(registry_table(rows))
        return
    if args.json:
        _print_json(rows)
        return
    width = max((len(r["id"]) for r in rows), default=0)
    for r in rows:
        studies = ",".join(f"arXiv:{a}" for a in r["studies"])
        print(f"{r['id']:<{width}}  {r['kind']:<4}  {studies}  {r['summary']}")


def registry_table(rows: list[dict[str, Any]]) -> str:
    """One Markdown row per study: its envs and tasks (the README's table; ``fmbench list --markdown``)."""
    from fmbench.registry import any_spec

    studies: dict[str, Any] = {}
    for r in rows:
        for study in any_spec(r["id"]).studies:
            studies.setdefault(study.arxiv, {"study": study, "env": [], "task": [], "docs": set()})
            studies[study.arxiv][r["kind"]].append(r["id"].removeprefix("fmbench/"))
            studies[study.arxiv]["docs"].add(Path(any_spec(r["id"]).spec_file).stem)
    lines = ["| study | envs | tasks | docs |", "|---|---|---|---|"]
    for arxiv, s in sorted(studies.items()):
        docs = ", ".join(f"[{d}](docs/{d}/README.md)" for d in sorted(s["docs"]))
        lines.append(
            f"| arXiv:{arxiv} {s['study'].title} | {', '.join(s['env']) or '—'} | "
            f"{', '.join(s['task']) or '—'} | {docs} |"
        )
    return "\n".join(lines)


def cmd_describe(args: argparse.Namespace) -> None:
    from fmbench.registry import EnvSpec, any_spec, make_task

    spec = any_spec(args.id)
    info = spec.describe() if isinstance(spec, EnvSpec) else make_task(args.id).describe()
    if args.json:
        _print_json(info)
        return
    for key, value in info.items():
        text = json.dumps(value, indent=2) if isinstance(value, (dict, list)) else str(value)
        print(f"{key}: {text}")


def cmd_audit(args: argparse.Namespace) -> None:
    from fmbench.registry import make_task

    if (args.id is None) == (args.tu_root is None):
        raise FmbenchError("audit takes a task id or --tu-root DIR (a TU dataset's folder), not both or neither")
    if args.tu_root is not None:
        from fmbench.studies.graphcl.audit import audit_tu

        title, audit = audit_tu(args.tu_root, args.name, args.seed)
    else:
        if args.name is not None:
            raise FmbenchError("--name goes with --tu-root (the TU dataset's name), not with a task id")
        task = make_task(args.id)
        shortcut_audit = getattr(task, "shortcut_audit", None)
        if shortcut_audit is None:
            raise FmbenchError(f"{args.id} has no shortcut audit: it is not a graph task")
        title, audit = args.id, shortcut_audit(args.seed)
    if args.json:
        _print_json(audit.to_dict())
        return
    print(f"{title}, seed {args.seed}: {audit.table()}")


def cmd_data_export(args: argparse.Namespace) -> None:
    from fmbench.export import export_split
    from fmbench.registry import make_task

    n = export_split(make_task(args.id), args.split, args.seed, args.format, args.out)
    print(f"wrote {n} items of {args.id} split {args.split} seed {args.seed} to {args.out}")


def cmd_data_stats(args: argparse.Namespace) -> None:
    from fmbench.registry import make_task

    stats = make_task(args.id).stats(args.seed)
    if args.json:
        _print_json(stats)
        return
    _print_nested(stats)


def _print_nested(d: dict[str, Any], indent: int = 0) -> None:
    for key, value in d.items():
        if isinstance(value, dict):
            print(" " * indent + f"{key}:")
            _print_nested(value, indent + 2)
        elif isinstance(value, list) and len(value) > 8:
            print(" " * indent + f"{key}: {len(value)} items")
            for item in value:
                print(" " * (indent + 2) + str(item))
        else:
            print(" " * indent + f"{key}: {value}")


def cmd_eval(args: argparse.Namespace) -> None:
    from fmbench.models import load_model
    from fmbench.registry import make_task
    from fmbench.runner import parse_seeds, run_evaluation

    task = make_task(args.task)
    seeds = parse_seeds(args.seeds) if args.seeds is not None else list(range(task.spec.min_seeds))
    if args.out and Path(args.out).is_dir():
        raise FmbenchError(f"--out {args.out} is a directory; give a file path")
    model = load_model(args.model, task, trust_code=args.trust_code)
    log = print if args.out else (lambda line: print(line, file=sys.stderr))  # stdout is the record's then
    record = run_evaluation(
        task,
        model,
        seeds,
        device=args.device,
        batch_size=args.batch_size,
        out=args.out,
        limit=args.limit,
        progress=not args.no_progress,
        log=log,
    )
    if not args.out:
        _print_json(record)


def cmd_grid(args: argparse.Namespace) -> int:
    from fmbench.grid import (
        CONNECT_TIMEOUT_S,
        Grid,
        check_reachable,
        connect,
        disconnect,
        read_grid_file,
        run_grid,
    )

    settings = read_grid_file(args.file) if args.file else {}
    for key in ("tasks", "models"):  # comma-separated on the command line, lists in a file
        if getattr(args, key) is not None:
            settings[key] = [x.strip() for x in getattr(args, key).split(",") if x.strip()]
    for key in ("seeds", "limit", "device", "batch_size", "cpus_per_run", "gpus_per_run", "out", "address"):
        if getattr(args, key) is not None:
            settings[key] = getattr(args, key)
    if args.trust_code:
        settings["trust_code"] = True
    if not settings.get("tasks") or not settings.get("models"):
        raise FmbenchError("a grid needs --tasks and --models (or a --file that lists them)")
    gpus = settings.get("gpus_per_run", 0)
    address = settings.get("address")
    if address:  # before loading any model: a cluster that does not answer fails in seconds
        check_reachable(address, CONNECT_TIMEOUT_S)
    grid = Grid.build(
        settings["tasks"],
        settings["models"],
        seeds=settings.get("seeds"),
        limit=settings.get("limit"),
        device=settings.get("device") or ("cuda" if gpus > 0 else "cpu"),
        batch_size=settings.get("batch_size", 256),
        trust_code=settings.get("trust_code", False),
    )
    out = Path(settings.get("out", "runs/grid"))
    n = len(grid.cells())
    where = f"the Ray cluster at {address}" if address else "a local Ray instance"
    _progress(f"grid: {len(grid.pairs)} (task, model) pairs, {n} cells; starting {where}")
    seconds = connect(address, timeout=CONNECT_TIMEOUT_S)
    _progress(f"Ray ready in {seconds:.1f} s")
    start = time.perf_counter()
    try:
        collector = run_grid(grid, out, settings.get("cpus_per_run", 1), gpus, not args.no_progress, _progress)
    finally:
        disconnect()
    print(collector.table())
    failed = sum(len(o.errors) for o in collector.outcomes.values())
    print(
        f"{n - failed}/{n} cells finished ({collector.skipped} already done) in {time.perf_counter() - start:.1f} s; "
        f"records under {out}, cell statuses in {out / 'grid.json'}"
    )
    return 1 if failed else 0


def cmd_validate(args: argparse.Namespace) -> None:
    from fmbench.results import submittable, validate

    record = validate(args.file, log=_progress)
    done = [s for s in record["seeds"] if str(s) in record["per_seed"]]
    print(f"{args.file}: valid result of {record['task']['id']} ({len(done)}/{len(record['seeds'])} seeds finished)")
    reason = submittable(record)
    print("submittable" if reason is None else f"valid but not submittable: {reason}")


def cmd_submit(args: argparse.Namespace) -> None:
    from fmbench.leaderboard import submit

    root = Path(args.leaderboards) if args.leaderboards else None
    path = submit(
        args.file, args.name, args.code_url, root, log=_progress, verify=args.verify, trust_code=args.trust_code
    )
    print(f"accepted{' (verified)' if args.verify else ''}: {path}")


def cmd_leaderboard(args: argparse.Namespace) -> int:
    from fmbench.leaderboard import check, format_invalid, format_table, one_line, rank, render, scan, superseded_note
    from fmbench.registry import task_spec

    root = Path(args.leaderboards) if args.leaderboards else None
    if args.target == "verify":
        return _verify_entries(args, root)
    if args.task or args.entry or args.trust_code:
        raise FmbenchError("a task after the target, --entry and --trust-code go with `leaderboard verify` only")
    if (args.out or args.docs) and args.target != "site":
        raise FmbenchError("--out and --docs go with `leaderboard site` only")
    if args.target == "site":
        return _site(args, root)
    if args.target == "render":
        for path in render(root, log=_progress):
            print(f"wrote {path}")
        return 0
    if args.target == "check":
        bad = check(root)
        for b in bad:
            print(one_line(b))
        print(f"{len(bad)} invalid file(s)" if bad else "every leaderboard file is valid")
        return 1 if bad else 0
    task_spec(args.target)  # unknown ids fail with a suggestion
    records, invalid = scan(args.target, root)
    rows = rank(args.target, records)
    if args.json:
        _print_json(rows)
    elif rows:
        note = superseded_note(args.target)
        print(format_table(args.target, rows) + (f"\n{note}" if note else ""))
    else:
        print(f"{args.target} has no entries yet")
    if invalid:
        print(format_invalid(invalid), file=sys.stderr if args.json else sys.stdout)
    return 0


def _site(args: argparse.Namespace, root: Path | None) -> int:
    from fmbench.leaderboard import check
    from fmbench.site import build_site

    if not args.out:
        raise FmbenchError("leaderboard site needs --out DIR, the folder to write the site into")
    start = time.perf_counter()
    files = build_site(args.out, root, Path(args.docs) if args.docs else None)
    bad = check(root)
    print(
        f"wrote {len(files)} files to {args.out} in {time.perf_counter() - start:.1f} s; "
        f"open {Path(args.out) / 'index.html'}"
    )
    if bad:
        print(f"{len(bad)} invalid leaderboard file(s), shown as invalid on their task's page")
    return 0


def _alphas(text: str) -> list[float]:
    """``--alphas``: a number of evenly spaced points on [0, 1] (``21``) or a comma-separated list."""
    import numpy as np

    try:
        if "," not in text and text.isdigit():
            if int(text) < 2:
                raise ValueError
            return [float(a) for a in np.linspace(0, 1, int(text))]
        return [float(a) for a in text.split(",")]
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"alphas must be a count >= 2 or a comma-separated list, got {text!r}"
        ) from None


def cmd_connect(args: argparse.Namespace) -> None:
    import torch

    from fmbench.loss_path import check_alphas, loss_path
    from fmbench.models import load_model
    from fmbench.registry import make_task

    if args.limit is not None and args.limit < 1:
        raise FmbenchError(f"--limit must be a positive integer, got {args.limit}")
    check_alphas(args.alphas, args.extrapolate)
    task = make_task(args.task)
    if not callable(getattr(task, "path_data", None)):
        raise FmbenchError(f"{task.id} has no data sets for a loss path; connect works on tasks that define path_data")
    if args.bezier and not callable(getattr(task, "curve_data", None)):
        raise FmbenchError(f"{task.id} has no training data for a Bézier curve; --bezier needs a task with curve_data")
    if args.bezier_steps < 1:
        raise FmbenchError(f"--bezier-steps must be a positive integer, got {args.bezier_steps}")
    a = load_model(args.a, task, trust_code=args.trust_code)
    b = load_model(args.b, task, trust_code=args.trust_code)
    sets, bn_images = task.path_data(args.seed, args.limit)
    curve = task.curve_data(args.seed, args.limit) if args.bezier else None
    device = "cuda" if args.device == "auto" and torch.cuda.is_available() else args.device.replace("auto", "cpu")
    result = loss_path(
        a.model,
        b.model,
        sets,
        bn_images,
        args.alphas,
        recompute_bn=not args.no_bn_recompute,
        match=args.match,
        extrapolate=args.extrapolate,
        bezier=curve,
        bezier_steps=args.bezier_steps,
        seed=args.seed,
        device=device,
    )
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    result.to_json(out.with_suffix(".json"), task=task.id, seed=args.seed, a=args.a, b=args.b, limit=args.limit)
    result.plot(out.with_suffix(".png"), title=f"{task.id} seed {args.seed}: {a.name} -> {b.name}")
    for name in result.loss:
        print(
            f"{name}: loss barrier {result.barrier[name]:.4f} nats, accuracy barrier "
            f"{result.accuracy_barrier[name]:.4f}, loss at the ends {result.loss[name][0]:.4f} and "
            f"{result.loss[name][-1]:.4f}"
        )
    print(f"wrote {out.with_suffix('.json')} and {out.with_suffix('.png')}")


def _verify_entries(args: argparse.Namespace, root: Path | None) -> int:
    from fmbench.leaderboard import verify_entries

    if not args.task:
        raise FmbenchError("leaderboard verify needs a task id: fmbench leaderboard verify <task> [--entry NAME]")
    outcome = verify_entries(args.task, root, args.entry, trust_code=args.trust_code, log=_progress)
    for name, why in outcome.items():
        print(f"verified {name}" if why is None else f"NOT verified {name}: {why}")
    failed = sum(why is not None for why in outcome.values())
    print(f"{len(outcome) - failed} of {len(outcome)} entries verified" if outcome else f"{args.task} has no entries")
    return 1 if failed else 0


VERIFY_HELP = (
    "re-run the model on one of the record's finished seeds (chosen from the record's hash and printed) "
    "before submitting, and accept it, marked verified, only if every metric of that seed matches the record: "
    f"|stated - recomputed| <= {ABS_TOL:g} + {REL_TOL:g} x |recomputed|. Runs on the record's device when this "
    "machine has it, else on the CPU (a record made on a GPU may not match on a CPU to this tolerance)"
)


def build_parser() -> argparse.ArgumentParser:
    """The argument parser of every command."""
    from fmbench import __version__

    p = _Parser(prog="fmbench", description="Benchmarks from studies of foundation-model capabilities.")
    p.add_argument("--version", action="version", version=f"fmbench {__version__}")
    p.add_argument("--debug", action="store_true", help="show the traceback of every error")
    sub = p.add_subparsers(dest="command", required=True, parser_class=_Parser)

    s = sub.add_parser("list", help="registered envs and tasks")
    kind = s.add_mutually_exclusive_group()
    kind.add_argument("--envs", action="store_true", help="only environments")
    kind.add_argument("--tasks", action="store_true", help="only tasks")
    s.add_argument("--study", metavar="ARXIV_ID", help="only entries citing this study, e.g. 2111.03220")
    s.add_argument("--json", action="store_true", help="a JSON array of {id, kind, studies, version, ...}")
    s.add_argument("--markdown", action="store_true", help="one table row per study (the README's table)")
    s.set_defaults(func=cmd_list)

    s = sub.add_parser("describe", help="study, parameters, metrics, interface, baselines, version history")
    s.add_argument("id")
    s.add_argument("--json", action="store_true")
    s.set_defaults(func=cmd_describe)

    s = sub.add_parser(
        "audit",
        help="shortcut audit of a graph task or a TU dataset on disk: simple classifiers on statistics that should "
        "not tell the class",
    )
    s.add_argument("id", nargs="?", help="a graph task id (or give --tu-root)")
    s.add_argument(
        "--tu-root",
        help="a TU-format dataset's folder (NAME_A.txt, ...; or DIR/NAME/raw/): audited on "
        "a stratified half/half split of its graphs drawn with --seed; nothing is downloaded",
    )
    s.add_argument("--name", help="the TU dataset's file prefix, e.g. MUTAG (default: the one dataset in the folder)")
    s.add_argument("--seed", type=_seed, default=0)
    s.add_argument("--json", action="store_true")
    s.set_defaults(func=cmd_audit)

    data = sub.add_parser("data", help="export a task's data or show its statistics")
    dsub = data.add_subparsers(dest="data_command", required=True, parser_class=_Parser)
    s = dsub.add_parser("export", help="write a split as JSONL or a torch tensor file")
    s.add_argument("id")
    s.add_argument("--split", required=True)
    s.add_argument("--seed", type=_seed, required=True)
    s.add_argument("--format", choices=["jsonl", "pt"], required=True)
    s.add_argument("--out", required=True)
    s.set_defaults(func=cmd_data_export)
    s = dsub.add_parser("stats", help="what each split holds")
    s.add_argument("id")
    s.add_argument("--seed", type=_seed, required=True)
    s.add_argument("--json", action="store_true")
    s.set_defaults(func=cmd_data_stats)

    s = sub.add_parser("eval", help="score a model on a task over seeds; resumable with --out")
    s.add_argument("--task", required=True)
    s.add_argument(
        "--model",
        required=True,
        help="baseline:NAME | safetensors:FILE | hf:DIR_OR_GGUF | sb3:ZIP | python:MODULE:FACTORY (with --trust-code)",
    )
    s.add_argument("--seeds", help="e.g. 0,1,2 or 0-4 (default: the task's minimum for a ranked entry)")
    s.add_argument("--device", default="auto", help="auto (CUDA when present), cpu or cuda")
    s.add_argument("--batch-size", type=int, default=256)
    s.add_argument("--out", help="result JSON; rerunning with the same file skips finished seeds")
    s.add_argument(
        "--limit",
        type=int,
        metavar="N",
        help="score only N items per seed on any task: N of the seed's test items, evenly spread and "
        "class-balanced where items have classes (probe tasks also fit on N train items); a smoke "
        "check, recorded in the result, not submittable",
    )
    s.add_argument("--trust-code", action="store_true", help="allow python: specs to run their own code")
    s.add_argument("--no-progress", action="store_true", help="no progress bars")
    s.set_defaults(func=cmd_eval)

    s = sub.add_parser("grid", help="evaluate tasks x models x seeds on Ray, one record per (task, model); resumable")
    s.add_argument("--file", help="a grid file (TOML) with any of the options below as keys; options override it")
    s.add_argument("--tasks", help="comma-separated task ids")
    s.add_argument("--models", help="comma-separated model specs (as eval --model); `baselines`: each task's own")
    s.add_argument("--seeds", help="e.g. 0,1,2 or 0-4 (default: each task's minimum for a ranked entry)")
    s.add_argument("--limit", type=int, metavar="N", help="score N items per seed (as eval --limit; not submittable)")
    s.add_argument("--device", help="cpu or cuda (default: cuda when --gpus-per-run > 0, else cpu)")
    s.add_argument("--batch-size", type=int)
    s.add_argument("--cpus-per-run", type=float, help="CPUs each cell reserves (default 1; also its torch threads)")
    s.add_argument("--gpus-per-run", type=float, help="GPUs each cell reserves (default 0)")
    s.add_argument("--out", help="folder of the records (default runs/grid); rerun with it to resume")
    s.add_argument(
        "--address",
        help="an existing Ray cluster (host:port, ray://host:port or auto; default: start Ray on this machine); "
        "one that does not answer within 10 s is an error",
    )
    s.add_argument("--trust-code", action="store_true", help="allow python: specs to run their own code")
    s.add_argument("--no-progress", action="store_true", help="no progress bar")
    s.set_defaults(func=cmd_grid)

    s = sub.add_parser("validate", help="check a result file against the schema and the registry")
    s.add_argument("file")
    s.set_defaults(func=cmd_validate)

    s = sub.add_parser("submit", help="add a complete result to its task's leaderboard")
    s.add_argument("file")
    s.add_argument("--name", required=True, help="submission name: letters, digits, '.', '_', '-'")
    s.add_argument("--code-url")
    s.add_argument("--leaderboards", help="leaderboards folder (default: the checkout's leaderboards/)")
    s.add_argument("--verify", action="store_true", help=VERIFY_HELP)
    s.add_argument("--trust-code", action="store_true", help="with --verify: allow a python: model to run its code")
    s.set_defaults(func=cmd_submit)

    s = sub.add_parser(
        "leaderboard",
        help="print a task's ranked table, `render` every README, `check` every file, or `verify` a task's entries",
    )
    s.add_argument(
        "target",
        help="a task id, `render`, `site` (a static web leaderboard: --out DIR), `check` (exit status 1 when a file "
        "is invalid), or `verify` TASK: re-run each "
        "entry's model on one of its seeds as `submit --verify` does and write <entry>.verified.json beside each "
        "entry that matches (entries are never rewritten; exit status 1 when one does not match)",
    )
    s.add_argument("task", nargs="?", help="with verify: the task whose entries to verify")
    s.add_argument("--entry", metavar="NAME", help="with verify: only this entry")
    s.add_argument("--trust-code", action="store_true", help="with verify: allow python: models to run their code")
    s.add_argument("--leaderboards", help="leaderboards folder (default: the checkout's leaderboards/)")
    s.add_argument("--out", help="with site: the folder to write the site into (new, empty, or an earlier site)")
    s.add_argument("--docs", help="with site: the folder of the study pages (default: the checkout's docs/)")
    s.add_argument("--json", action="store_true")
    s.set_defaults(func=cmd_leaderboard)

    s = sub.add_parser(
        "connect",
        help="loss and accuracy along the linear path (or a trained Bézier curve) between two classifiers (PNG + JSON)",
    )
    s.add_argument("--task", required=True, help="a task defining the data sets (e.g. fmbench/MMCFashionBoxFT-v0)")
    s.add_argument("--a", required=True, help="model at alpha 0 (a model spec, as for eval --model)")
    s.add_argument("--b", required=True, help="model at alpha 1")
    s.add_argument("--seed", type=_seed, default=0, help="the task seed whose data sets are used (default 0)")
    s.add_argument("--alphas", type=_alphas, default="21", help="a count of points on [0, 1] or a list (default 21)")
    s.add_argument("--extrapolate", action="store_true", help="allow alphas outside [0, 1] (not in the barrier)")
    s.add_argument("--match", action="store_true", help="permute b's hidden units to a's first (weight matching)")
    s.add_argument("--no-bn-recompute", action="store_true", help="keep the interpolated BatchNorm statistics")
    s.add_argument(
        "--bezier",
        action="store_true",
        help="a quadratic Bézier curve trained on the task's training data, not the line",
    )
    s.add_argument(
        "--bezier-steps", type=int, default=500, metavar="N", help="training steps of the curve (default 500)"
    )
    s.add_argument("--limit", type=int, metavar="N", help="N class-balanced items per set (a quick look)")
    s.add_argument("--out", default="connect", help="output path prefix: writes PREFIX.json and PREFIX.png")
    s.add_argument("--device", default="auto", help="auto (CUDA when present), cpu or cuda")
    s.add_argument("--trust-code", action="store_true", help="allow python: specs to run their own code")
    s.set_defaults(func=cmd_connect)
    return p


def _seed(text: str) -> int:
    if not text.isdigit():
        raise argparse.ArgumentTypeError(f"seed must be a non-negative integer, got {text!r}")
    return int(text)


def main(argv: list[str] | None = None) -> int:
    """Run the CLI; return the exit status."""
    # torch_geometric (graph tasks) still calls torch.jit.script at import; not the user's concern
    warnings.filterwarnings("ignore", message=r".*torch\.jit\.script.*deprecated", category=FutureWarning)
    args = build_parser().parse_args(argv)
    try:
        status = args.func(args)
    except BrokenPipeError:  # output piped into e.g. `head`
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 0
    except (FmbenchError, OSError) as e:  # the user's input or files: one line (a bug in fmbench: a traceback)
        if args.debug:
            raise
        print(f"fmbench {args.command}: error: {first_line(e)}", file=sys.stderr)
        return 1
    return status or 0


if __name__ == "__main__":
    sys.exit(main())
