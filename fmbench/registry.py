"""Reads the declarative spec files of every spec root and registers what they declare.

A spec root is a folder holding ``envs/`` and ``tasks/`` with one TOML file per study. Roots
are additive, read in this order:

1. the built-in specs (the checkout's ``envs/`` and ``tasks/``, or the wheel's copy);
2. every folder in ``$FMBENCH_SPEC_PATH`` (``os.pathsep``-separated), like lm-evaluation-harness's
   ``include_path``;
3. every installed distribution's entry point in the ``fmbench.studies`` group: a function
   returning its spec root (``[project.entry-points."fmbench.studies"] mystudy = "mystudy:spec_root"``),
   the way third-party packages add Gymnasium envs.

A file holds ``[[study]]`` tables (arXiv id, title, authors' code; the first is the primary
study), optional ``[defaults]`` merged into every entry, and entries: ``[[task]]`` in
``tasks/``, ``[[env]]`` in ``envs/``; an entry with ``defaults = false`` takes nothing from
``[defaults]``, and ``studies = [...]`` narrows the studies it cites. Every file is checked
against ``fmbench/schemas/spec.schema.json``: an unknown key, a wrong type or a missing field
skips that entry (or the whole file, for ``[[study]]``/``[defaults]``) with one line naming the
file, entry and key, and the rest of the registry still loads; :func:`problems` lists what was
skipped (``fmbench list`` prints it). The same id in two files is refused, naming both, and so is a
task whose ``interface`` is not registered in :mod:`fmbench.interfaces` (a study's own interface
must be registered by the module its ``fmbench.studies`` entry point names, which is imported
before its specs are read).

An id is ``fmbench/<Name>-v<N>``; a registered version is immutable, so a change that could
move a score is a new entry with a new version and a line in its ``history``. Each task entry
pins its data's sha256 for seeds 0 and 1 (``data_hashes``), checked by the registry-wide tests.

Example:
    >>> import fmbench
    >>> "fmbench/ComposeStepByStep-v0" in list_tasks()
    True
    >>> spec = task_spec("fmbench/GraphMotifsTreeX1-v0")
    >>> spec.study, [s.arxiv for s in spec.studies]
    ('2208.02810', ['2208.02810', '2111.03220'])
"""

from __future__ import annotations

import difflib
import importlib
import inspect
import os
import re
import tomllib
from dataclasses import dataclass, field
from functools import lru_cache
from importlib.metadata import entry_points
from pathlib import Path
from typing import Any

from fmbench import schemas
from fmbench.errors import SpecError, UnknownIdError, first_line
from fmbench.interfaces import list_interfaces
from fmbench.task import MetricSpec, Study, Task, TaskSpec

ID_PATTERN = re.compile(r"^fmbench/(?P<name>[A-Z][A-Za-z0-9]*)-v(?P<version>0|[1-9][0-9]*)$")
SPEC_PATH_ENV = "FMBENCH_SPEC_PATH"
ENTRY_POINT_GROUP = "fmbench.studies"


@dataclass(frozen=True)
class EnvSpec:
    """One registered environment version."""

    id: str
    name: str
    version: int
    studies: tuple[Study, ...]
    entry_point: str
    summary: str
    kwargs: dict[str, Any]
    max_episode_steps: int | None
    history: list[dict[str, Any]]
    spec_file: str

    @property
    def study(self) -> str:
        """The primary study's arXiv id."""
        return self.studies[0].arxiv

    def describe(self) -> dict[str, Any]:
        """Plain data for ``fmbench describe``: the spec plus the env's spaces and constructor options."""
        import gymnasium as gym

        env = gym.make(self.id)
        try:
            spaces = {"observation_space": str(env.observation_space), "action_space": str(env.action_space)}
        finally:
            env.close()
        cls = env.unwrapped.__class__
        options = {
            name: "(required)" if p.default is p.empty else repr(p.default)
            for name, p in inspect.signature(cls.__init__).parameters.items()
            if name != "self" and p.kind in (p.POSITIONAL_OR_KEYWORD, p.KEYWORD_ONLY)
        }
        return {
            "id": self.id,
            "kind": "env",
            "version": self.version,
            "studies": [s.describe() for s in self.studies],
            "summary": self.summary,
            "entry_point": self.entry_point,
            "params": self.kwargs,
            "max_episode_steps": self.max_episode_steps,
            **spaces,
            "options": {
                "gym.make keyword arguments (default)": options,
                "documentation": (inspect.getdoc(cls) or "").split("\n\n")[0],
            },
            "version_history": self.history,
            "spec_file": self.spec_file,
        }


@dataclass
class Registry:
    """Every env and task spec found in the spec roots, and what was skipped (one line each)."""

    envs: dict[str, EnvSpec] = field(default_factory=dict)
    tasks: dict[str, TaskSpec] = field(default_factory=dict)
    problems: list[str] = field(default_factory=list)
    roots: list[tuple[Path, str]] = field(default_factory=list)


# ---- reading one spec root -----------------------------------------------------------------------
def _merge(defaults: dict[str, Any], entry: dict[str, Any]) -> dict[str, Any]:
    out = dict(defaults)
    for key, value in entry.items():
        out[key] = {**out[key], **value} if isinstance(value, dict) and isinstance(out.get(key), dict) else value
    return out


def _check(where: str, definition: str, instance: Any) -> None:
    spec_schema = schemas.load("spec")
    found = schemas.problem({"$ref": f"#/$defs/{definition}"}, instance, root=spec_schema)
    if found:
        raise SpecError(f"{where}: {found}")


def _entry(path: Path, doc: dict[str, Any], raw: Any, i: int, kind: str) -> TaskSpec | EnvSpec:
    where = f"{path} [[{kind}]] #{i + 1}"
    if isinstance(raw, dict) and isinstance(raw.get("id"), str):
        where = f"{path} {raw['id']}"
    _check(where, f"{kind}_keys", raw)
    entry = _merge(doc.get("defaults", {}), raw) if raw.get("defaults", True) else dict(raw)
    entry.pop("defaults", None)
    _check(where, f"{kind}_entry", entry)
    m = ID_PATTERN.match(entry["id"])
    assert m is not None  # the schema checked the pattern
    version = int(m["version"])
    if not any(h["version"] == version for h in entry["history"]):
        raise SpecError(f"{where}: key 'history': no entry for version {version}")
    file_studies = {s["arxiv"]: Study(**s) for s in doc["study"]}
    cited = entry.get("studies", list(file_studies))
    unknown = [a for a in cited if a not in file_studies]
    if unknown:
        raise SpecError(
            f"{where}: key 'studies': {unknown[0]} is not one of the file's [[study]] tables {sorted(file_studies)}"
        )
    common = {
        "id": entry["id"],
        "name": m["name"],
        "version": version,
        "entry_point": entry["entry_point"],
        "summary": entry["summary"],
        "history": entry["history"],
        "spec_file": str(path),
        "studies": tuple(file_studies[a] for a in cited),
    }
    if kind == "env":
        return EnvSpec(kwargs=entry.get("kwargs", {}), max_episode_steps=entry.get("max_episode_steps"), **common)
    metrics = {
        name: MetricSpec(
            name, m["higher_is_better"], m.get("description", ""), tuple(m["range"]) if "range" in m else None
        )
        for name, m in entry["metrics"].items()
    }
    empty = sorted(name for name, m in metrics.items() if m.range and not m.range[0] < m.range[1])
    if empty:
        raise SpecError(f"{where}: key 'metrics': the range of {empty} is empty (it needs low < high)")
    if entry["interface"] not in list_interfaces():
        raise SpecError(
            f"{where}: key 'interface': unknown interface {entry['interface']!r}; known: {', '.join(list_interfaces())}"
        )
    if entry["primary_metric"] not in metrics:
        raise SpecError(
            f"{where}: key 'primary_metric': {entry['primary_metric']!r} is not among its metrics {sorted(metrics)}"
        )
    return TaskSpec(
        params=entry.get("params", {}),
        metrics=metrics,
        primary_metric=entry["primary_metric"],
        min_seeds=entry["min_seeds"],
        interface=entry["interface"],
        baselines=entry["baselines"],
        data_hashes=entry.get("data_hashes", {}),
        user_data=entry.get("user_data"),
        **common,
    )


def _read_file(path: Path, kind: str) -> tuple[list[TaskSpec | EnvSpec], list[str]]:
    """The entries of one file and a line per skipped entry; ``SpecError`` if the whole file is unusable."""
    try:
        doc = tomllib.loads(path.read_text(encoding="utf-8"))
    except tomllib.TOMLDecodeError as e:
        raise SpecError(f"{path}: malformed TOML ({e})") from None
    except (OSError, UnicodeDecodeError) as e:
        raise SpecError(f"{path}: cannot read ({first_line(e)})") from None
    _check(str(path), f"{kind}_file", doc)
    out: list[TaskSpec | EnvSpec] = []
    skipped: list[str] = []
    for i, raw in enumerate(doc.get(kind, [])):
        try:
            out.append(_entry(path, doc, raw, i, kind))
        except SpecError as e:
            skipped.append(str(e))
    return out, skipped


def read_spec_root(root: Path) -> tuple[dict[str, EnvSpec], dict[str, TaskSpec], list[str]]:
    """Every env and task spec under ``root/envs`` and ``root/tasks``, and a line per problem.

    Example:
        >>> envs, tasks, problems = read_spec_root(builtin_root())
        >>> "fmbench/ComposeTokensDirect-v0" in envs, problems
        (True, [])
    """
    found: dict[str, dict[str, Any]] = {"env": {}, "task": {}}
    problems: list[str] = []
    for folder, kind in (("envs", "env"), ("tasks", "task")):
        for path in sorted((root / folder).glob("*.toml")):
            try:
                entries, skipped = _read_file(path, kind)
            except SpecError as e:
                problems.append(str(e))
                continue
            problems += skipped
            for spec in entries:
                if spec.id in found[kind]:
                    problems.append(f"{path}: id {spec.id} is already declared in {found[kind][spec.id].spec_file}")
                    continue
                found[kind][spec.id] = spec
    return found["env"], found["task"], problems


def load_spec_dir(root: Path) -> tuple[dict[str, EnvSpec], dict[str, TaskSpec]]:
    """Like :func:`read_spec_root`, but strict: the first problem raises ``SpecError`` (for checking new specs)."""
    envs, tasks, problems = read_spec_root(Path(root))
    if problems:
        raise SpecError(problems[0])
    return envs, tasks


# ---- the spec roots ------------------------------------------------------------------------------
def builtin_root() -> Path:
    """The folder of the built-in ``envs/`` and ``tasks/``: the wheel's copy, or the checkout."""
    packaged = Path(__file__).parent / "_specs"
    return packaged if packaged.is_dir() else Path(__file__).resolve().parent.parent


def _entry_point_roots(problems: list[str]) -> list[tuple[Path, str]]:
    roots = []
    for ep in sorted(entry_points(group=ENTRY_POINT_GROUP), key=lambda e: e.name):
        origin = f"entry point {ep.name!r} ({ep.value}) of {ep.dist.name if ep.dist else 'an unknown distribution'}"
        try:
            target = ep.load()
            root = target() if callable(target) else target
        except Exception as e:  # a third party's code: report whatever it raised, keep the rest
            problems.append(f"{origin}: does not load ({type(e).__name__}: {first_line(e, '')})")
            continue
        if not isinstance(root, (str, os.PathLike)):
            problems.append(f"{origin}: returned {type(root).__name__}, expected the path of a spec root")
            continue
        roots.append((Path(root), origin))
    return roots


def spec_roots() -> list[tuple[Path, str]]:
    """The spec roots in reading order, each with where it came from."""
    return registry().roots


@lru_cache(maxsize=8)
def _build(spec_path: str) -> Registry:
    reg = Registry()
    roots = [(builtin_root(), "built-in")]
    roots += [(Path(p), f"${SPEC_PATH_ENV}") for p in spec_path.split(os.pathsep) if p]
    roots += _entry_point_roots(reg.problems)
    seen: set[Path] = set()
    for root, origin in roots:
        if not root.is_dir() or not ((root / "envs").is_dir() or (root / "tasks").is_dir()):
            reg.problems.append(f"{root} ({origin}): not a folder holding envs/ or tasks/")
            continue
        if root.resolve() in seen:
            continue
        seen.add(root.resolve())
        reg.roots.append((root, origin))
        envs, tasks, problems = read_spec_root(root)
        reg.problems += problems
        for found, into in ((envs, reg.envs), (tasks, reg.tasks)):
            for id_, spec in found.items():
                if id_ in into:
                    reg.problems.append(f"{spec.spec_file}: id {id_} is already declared in {into[id_].spec_file}")
                else:
                    into[id_] = spec
    _register_with_gymnasium(reg.envs.values())
    return reg


def registry() -> Registry:
    """The registry of the current spec roots (read once per ``$FMBENCH_SPEC_PATH`` value)."""
    return _build(os.environ.get(SPEC_PATH_ENV, ""))


def reload() -> Registry:
    """Forget every registry read so far (after installing a study package) and read again."""
    _build.cache_clear()
    return registry()


def problems() -> list[str]:
    """One line per spec file, entry or root that was skipped."""
    return list(registry().problems)


def specs() -> tuple[dict[str, EnvSpec], dict[str, TaskSpec]]:
    """All env and task specs of the current spec roots."""
    reg = registry()
    return reg.envs, reg.tasks


def _register_with_gymnasium(envs: Any) -> None:
    import gymnasium as gym

    for spec in envs:
        if spec.id not in gym.registry:
            gym.register(
                id=spec.id,
                entry_point=spec.entry_point,
                max_episode_steps=spec.max_episode_steps,
                kwargs=dict(spec.kwargs),
            )


def register_envs() -> None:
    """Register every env with Gymnasium (idempotent: already-registered ids are kept)."""
    _register_with_gymnasium(registry().envs.values())


# ---- lookups -----------------------------------------------------------------------------------
def _unknown(kind: str, id_: str) -> UnknownIdError:
    envs, tasks = specs()
    known = {"task": list(tasks), "env": list(envs), "env or task": [*envs, *tasks]}[kind]
    close = difflib.get_close_matches(id_, [*envs, *tasks], n=1, cutoff=0.5)
    hint = f"; did you mean {close[0]!r}?" if close else f"; run `fmbench list` to see the {len(known)} registered"
    skipped = f" ({len(problems())} spec entries were skipped: see `fmbench list`)" if problems() else ""
    return UnknownIdError(f"unknown {kind} id {id_!r}{hint}{skipped}")


def list_tasks(study: str | None = None) -> list[str]:
    """Registered task ids, sorted; only those citing arXiv id ``study`` when given."""
    return sorted(i for i, s in specs()[1].items() if study is None or study in (x.arxiv for x in s.studies))


def list_envs(study: str | None = None) -> list[str]:
    """Registered env ids, sorted; only those citing arXiv id ``study`` when given."""
    return sorted(i for i, s in specs()[0].items() if study is None or study in (x.arxiv for x in s.studies))


def task_spec(id_: str) -> TaskSpec:
    """The spec of a registered task (did-you-mean error for unknown ids)."""
    tasks = specs()[1]
    if id_ not in tasks:
        raise _unknown("task", id_)
    return tasks[id_]


def env_spec(id_: str) -> EnvSpec:
    """The spec of a registered env (did-you-mean error for unknown ids)."""
    envs = specs()[0]
    if id_ not in envs:
        raise _unknown("env", id_)
    return envs[id_]


def any_spec(id_: str) -> TaskSpec | EnvSpec:
    """The spec of a registered env or task.

    Example:
        >>> any_spec("fmbench/ComposeTokensDirect-v0").entry_point
        'fmbench.studies.compositional.env:CompositionEnv'
    """
    envs, tasks = specs()
    if id_ in envs:
        return envs[id_]
    if id_ in tasks:
        return tasks[id_]
    raise _unknown("env or task", id_)


def current_version(name: str) -> int:
    """Highest registered version of a task name (``Compose...`` without ``-vN``)."""
    versions = [s.version for s in specs()[1].values() if s.name == name]
    if not versions:
        raise _unknown("task", f"fmbench/{name}-v0")
    return max(versions)


def superseded_by(id_: str) -> str | None:
    """The id of the current version of a task when ``id_`` is an older one (kept loadable, with its
    leaderboard), else ``None``.

    Example:
        >>> superseded_by("fmbench/GraphMotifsBAX1-v0"), superseded_by("fmbench/GraphMotifsBAX1-v1")
        ('fmbench/GraphMotifsBAX1-v1', None)
    """
    spec = task_spec(id_)
    latest = current_version(spec.name)
    return f"fmbench/{spec.name}-v{latest}" if latest > spec.version else None


def make_task(id_: str) -> Task:
    """Build a registered task (its class checks the entry's ``params`` and baselines).

    Example:
        >>> make_task("fmbench/ComposeDirect-v0").spec.params["step_by_step"]
        False
    """
    spec = task_spec(id_)
    module, _, attr = spec.entry_point.partition(":")
    try:
        cls = getattr(importlib.import_module(module), attr)
    except (ImportError, AttributeError) as e:
        raise SpecError(
            f"{spec.spec_file} {id_}: entry point {spec.entry_point!r} cannot be loaded ({first_line(e)})"
        ) from None
    if not (isinstance(cls, type) and issubclass(cls, Task)):
        raise SpecError(f"{spec.spec_file} {id_}: entry point {spec.entry_point!r} is not a fmbench.task.Task class")
    return cls(spec)
