"""Reads the declarative spec files in ``envs/`` and ``tasks/`` and registers what they declare.

Each study has one TOML file in each folder. A file holds a ``[study]`` table (arXiv id,
title, authors' code), optional ``[defaults]`` merged into every entry, and entries:
``[[task]]`` in ``tasks/``, ``[[env]]`` in ``envs/``; an entry with ``defaults = false`` takes
nothing from ``[defaults]``. An id is ``fmbench/<Name>-v<N>``; a
registered version is immutable, so a change that could move a score is a new entry with
a new version and a line in its ``history``.

Example:
    >>> import fmbench
    >>> "fmbench/ComposeStepByStep-v0" in list_tasks()
    True
    >>> spec = task_spec("fmbench/ComposeStepByStep-v0")
    >>> spec.study
    '2311.12997'
"""

from __future__ import annotations

import difflib
import importlib
import os
import re
import tomllib
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Any

from fmbench.errors import SpecError, UnknownIdError
from fmbench.task import MetricSpec, Task, TaskSpec

ID_PATTERN = re.compile(r"^fmbench/(?P<name>[A-Z][A-Za-z0-9]*)-v(?P<version>0|[1-9][0-9]*)$")
SPEC_DIR_ENV = "FMBENCH_SPEC_DIR"


@dataclass(frozen=True)
class EnvSpec:
    """One registered environment version."""

    id: str
    name: str
    version: int
    study: str
    title: str
    entry_point: str
    summary: str
    kwargs: dict[str, Any]
    max_episode_steps: int | None
    history: list[dict[str, Any]]
    spec_file: str

    def describe(self) -> dict[str, Any]:
        return {"id": self.id, "kind": "env", "version": self.version, "study": self.study,
                "title": self.title, "summary": self.summary, "entry_point": self.entry_point,
                "params": self.kwargs, "max_episode_steps": self.max_episode_steps,
                "version_history": self.history, "spec_file": self.spec_file}


def spec_root() -> Path:
    """Folder holding ``envs/`` and ``tasks/``: ``$FMBENCH_SPEC_DIR``, the wheel's copy, or the checkout."""
    if os.environ.get(SPEC_DIR_ENV):
        return Path(os.environ[SPEC_DIR_ENV])
    packaged = Path(__file__).parent / "_specs"
    return packaged if packaged.is_dir() else Path(__file__).resolve().parent.parent


def _read(path: Path) -> dict[str, Any]:
    try:
        return tomllib.loads(path.read_text(encoding="utf-8"))
    except tomllib.TOMLDecodeError as e:
        raise SpecError(f"{path}: malformed TOML ({e})") from None


def _merge(defaults: dict[str, Any], entry: dict[str, Any]) -> dict[str, Any]:
    out = dict(defaults)
    for key, value in entry.items():
        out[key] = {**out[key], **value} if isinstance(value, dict) and isinstance(out.get(key), dict) else value
    return out


def _require(where: str, entry: dict[str, Any], key: str, kind: type | tuple[type, ...]) -> Any:
    if key not in entry:
        raise SpecError(f"{where}: missing required key {key!r}")
    if not isinstance(entry[key], kind) or isinstance(entry[key], bool) and kind is int:
        raise SpecError(f"{where}: {key!r} must be {getattr(kind, '__name__', kind)}, got {entry[key]!r}")
    return entry[key]


def _common(path: Path, doc: dict[str, Any], entry: dict[str, Any], i: int, kind: str) -> dict[str, Any]:
    study = doc.get("study")
    if not isinstance(study, dict):
        raise SpecError(f"{path}: missing [study] table")
    where = f"{path} [[{kind}]] #{i + 1}"
    inherit = entry.pop("defaults", True)
    if not isinstance(inherit, bool):
        raise SpecError(f"{where}: 'defaults' must be true or false")
    entry = _merge(doc.get("defaults", {}), entry) if inherit else entry
    id_ = _require(where, entry, "id", str)
    m = ID_PATTERN.match(id_)
    if not m:
        raise SpecError(f"{where}: id {id_!r} is not of the form fmbench/<Name>-v<N>")
    where = f"{path} {id_}"
    entry_point = _require(where, entry, "entry_point", str)
    if not re.match(r"^[\w.]+:[\w.]+$", entry_point):
        raise SpecError(f"{where}: entry_point {entry_point!r} is not 'module:attribute'")
    version = int(m["version"])
    history = _require(where, entry, "history", list)
    if not any(isinstance(h, dict) and h.get("version") == version for h in history):
        raise SpecError(f"{where}: history has no entry for version {version}")
    return {"id": id_, "name": m["name"], "version": version, "entry_point": entry_point, "history": history,
            "study": _require(f"{path} [study]", study, "arxiv", str),
            "title": _require(f"{path} [study]", study, "title", str), "code": study.get("code", ""),
            "summary": entry.get("summary", ""), "entry": entry, "where": where, "spec_file": path.name}


def _task_spec(path: Path, doc: dict[str, Any], entry: dict[str, Any], i: int) -> TaskSpec:
    c = _common(path, doc, entry, i, "task")
    e, where = c.pop("entry"), c.pop("where")
    metrics_raw = _require(where, e, "metrics", dict)
    metrics = {}
    for name, m in metrics_raw.items():
        if not isinstance(m, dict) or not isinstance(m.get("higher_is_better"), bool):
            raise SpecError(f"{where}: metric {name!r} needs higher_is_better = true/false")
        metrics[name] = MetricSpec(name, m["higher_is_better"], m.get("description", ""))
    primary = _require(where, e, "primary_metric", str)
    if primary not in metrics:
        raise SpecError(f"{where}: primary_metric {primary!r} is not among its metrics {sorted(metrics)}")
    min_seeds = _require(where, e, "min_seeds", int)
    if min_seeds < 1:
        raise SpecError(f"{where}: min_seeds must be >= 1")
    baselines = _require(where, e, "baselines", dict)
    if not baselines:
        raise SpecError(f"{where}: a task ships at least one baseline")
    return TaskSpec(params=e.get("params", {}), metrics=metrics, primary_metric=primary, min_seeds=min_seeds,
                    interface=_require(where, e, "interface", str), baselines=baselines, **c)


def _env_spec(path: Path, doc: dict[str, Any], entry: dict[str, Any], i: int) -> EnvSpec:
    c = _common(path, doc, entry, i, "env")
    e, where = c.pop("entry"), c.pop("where")
    c.pop("code")
    steps = e.get("max_episode_steps")
    if steps is not None and (not isinstance(steps, int) or steps < 1):
        raise SpecError(f"{where}: max_episode_steps must be a positive integer")
    return EnvSpec(kwargs=e.get("kwargs", {}), max_episode_steps=steps, **c)


def load_spec_dir(root: Path) -> tuple[dict[str, EnvSpec], dict[str, TaskSpec]]:
    """Parse and check every spec file under ``root/envs`` and ``root/tasks``."""
    envs: dict[str, EnvSpec] = {}
    tasks: dict[str, TaskSpec] = {}
    for folder, key, build, out in (("envs", "env", _env_spec, envs), ("tasks", "task", _task_spec, tasks)):
        for path in sorted((root / folder).glob("*.toml")):
            doc = _read(path)
            entries = doc.get(key, [])
            if not isinstance(entries, list):
                raise SpecError(f"{path}: [[{key}]] must be an array of tables")
            for i, entry in enumerate(entries):
                spec = build(path, doc, entry, i)
                if spec.id in out:
                    raise SpecError(f"{path}: id {spec.id} is already declared in {out[spec.id].spec_file}")
                out[spec.id] = spec
    return envs, tasks


@lru_cache(maxsize=None)
def _specs(root: str) -> tuple[dict[str, EnvSpec], dict[str, TaskSpec]]:
    return load_spec_dir(Path(root))


def specs() -> tuple[dict[str, EnvSpec], dict[str, TaskSpec]]:
    """All env and task specs of the current spec root (parsed once)."""
    return _specs(str(spec_root()))


def register_envs() -> None:
    """Register every env with Gymnasium (idempotent: already-registered ids are kept)."""
    import gymnasium as gym

    for spec in specs()[0].values():
        if spec.id not in gym.registry:
            gym.register(id=spec.id, entry_point=spec.entry_point, max_episode_steps=spec.max_episode_steps,
                         kwargs=dict(spec.kwargs))


def _unknown(kind: str, id_: str, known: list[str]) -> UnknownIdError:
    close = difflib.get_close_matches(id_, known, n=1, cutoff=0.5)
    hint = f"; did you mean {close[0]!r}?" if close else f"; run `fmbench list` to see the {len(known)} registered"
    return UnknownIdError(f"unknown {kind} id {id_!r}{hint}")


def list_tasks() -> list[str]:
    """Registered task ids, sorted."""
    return sorted(specs()[1])


def list_envs() -> list[str]:
    """Registered env ids, sorted."""
    return sorted(specs()[0])


def task_spec(id_: str) -> TaskSpec:
    """The spec of a registered task (did-you-mean error for unknown ids)."""
    tasks = specs()[1]
    if id_ not in tasks:
        raise _unknown("task", id_, list(tasks) + list(specs()[0]))
    return tasks[id_]


def env_spec(id_: str) -> EnvSpec:
    """The spec of a registered env (did-you-mean error for unknown ids)."""
    envs = specs()[0]
    if id_ not in envs:
        raise _unknown("env", id_, list(envs) + list(specs()[1]))
    return envs[id_]


def current_version(name: str) -> int:
    """Highest registered version of a task name (``Compose...`` without ``-vN``)."""
    versions = [s.version for s in specs()[1].values() if s.name == name]
    if not versions:
        raise _unknown("task", name, list(specs()[1]))
    return max(versions)


def make_task(id_: str) -> Task:
    """Build a registered task.

    Example:
        >>> make_task("fmbench/ComposeDirect-v0").spec.params["step_by_step"]
        False
    """
    spec = task_spec(id_)
    module, _, attr = spec.entry_point.partition(":")
    try:
        cls = getattr(importlib.import_module(module), attr)
    except (ImportError, AttributeError) as e:
        raise SpecError(f"{spec.spec_file} {id_}: entry point {spec.entry_point!r} cannot be loaded ({e})") from None
    return cls(spec)
