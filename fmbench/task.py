"""The task contract every benchmark task implements, and the spec it is built from.

A task is built from one entry of a spec file in ``tasks/`` (a ``TaskSpec``): its id and
version, the studies it cites, fixed parameters, metrics (one primary), the model
interface it scores, the minimum number of seeds for a ranked leaderboard entry, its
shipped baselines, its golden data hashes and its version history. Its data is
deterministic for ``(id, version, seed)`` and ``data_hash(seed)`` fingerprints it. A task
class states the ``params`` it reads (``params_schema``) and the keys its baseline entries
may carry (``baseline_schema``); anything else in the entry is refused when it is built.

Example:
    >>> import fmbench
    >>> task = fmbench.make_task("fmbench/ComposeStepByStep-v0")
    >>> task.spec.primary_metric, task.spec.min_seeds
    ('exact_match', 3)
"""

from __future__ import annotations

import abc
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, ClassVar

import numpy as np

from fmbench import schemas
from fmbench.errors import InputError, ModelError, SpecError
from fmbench.interfaces import Interface, get_interface

if TYPE_CHECKING:
    from fmbench.models import LoadedModel


@dataclass(frozen=True)
class MetricSpec:
    """A metric's name, direction, meaning and, where it is bounded, its closed range ``(low, high)``."""

    name: str
    higher_is_better: bool
    description: str = ""
    range: tuple[float, float] | None = None


@dataclass(frozen=True)
class Study:
    """A paper an entry cites: arXiv id, title and the authors' code (``owner/name`` or ``not public``)."""

    arxiv: str
    title: str
    code: str

    def describe(self) -> dict[str, str]:
        return {"arxiv": self.arxiv, "title": self.title, "code": self.code}


@dataclass(frozen=True)
class TaskSpec:
    """One registered task version, as read from its spec file."""

    id: str
    name: str
    version: int
    studies: tuple[Study, ...]
    entry_point: str
    summary: str
    params: dict[str, Any]
    metrics: dict[str, MetricSpec]
    primary_metric: str
    min_seeds: int
    interface: str
    baselines: dict[str, dict[str, Any]]
    history: list[dict[str, Any]]
    spec_file: str
    data_hashes: dict[str, str] = field(default_factory=dict)
    user_data: str | None = None

    @property
    def study(self) -> str:
        """The primary study's arXiv id (what a result record names)."""
        return self.studies[0].arxiv

    @property
    def title(self) -> str:
        return self.studies[0].title

    def metric(self, name: str) -> MetricSpec:
        """Spec of a metric or of a breakdown ``base|group=value`` (inherits the base's direction)."""
        base = name.split("|", 1)[0]
        if base not in self.metrics:
            raise KeyError(f"{self.id} has no metric {base!r}")
        m = self.metrics[base]
        return m if base == name else MetricSpec(name, m.higher_is_better, range=m.range)


def params_of(properties: dict[str, Any], required: tuple[str, ...] = ()) -> dict[str, Any]:
    """A closed JSON Schema object for a task class's ``params`` (unknown keys refused).

    Example:
        >>> params_of({"level": {"type": "string"}}, required=("level",))["required"]
        ['level']
    """
    return {"type": "object", "additionalProperties": False, "properties": properties, "required": list(required)}


INTEGER = {"type": "integer", "minimum": 0}
POSITIVE = {"type": "integer", "minimum": 1}
STRING = {"type": "string"}
BOOLEAN = {"type": "boolean"}


def evaluation_subset(n: int, limit: int | None) -> np.ndarray:
    """Indices of the items a ``--limit``-ed evaluation scores: all, or ``limit`` evenly spread (sorted).

    ``limit`` means the same everywhere: items scored per seed. Tasks whose items have classes
    take :func:`stratified_subset` instead.

    Example:
        >>> evaluation_subset(10, 3).tolist()
        [0, 4, 9]
    """
    if limit is None:
        return np.arange(n)
    return np.unique(np.linspace(0, n - 1, min(limit, n)).astype(np.int64))


def stratified_subset(labels: np.ndarray, limit: int | None) -> np.ndarray:
    """:func:`evaluation_subset` of labelled items: ``limit`` in all, shared among the classes (sorted indices).

    Each class gets ``limit // classes`` items (the first classes one more, a small class all it
    has, its share passed on to the others), evenly spread over the class's items in order.

    Example:
        >>> labels = np.array([0, 0, 0, 0, 1, 1, 1, 1, 2, 2])
        >>> stratified_subset(labels, 5).tolist()
        [0, 3, 4, 7, 8]
        >>> stratified_subset(labels, 9).tolist()
        [0, 1, 2, 3, 4, 5, 7, 8, 9]
    """
    if limit is None:
        return np.arange(len(labels))
    classes, counts = np.unique(labels, return_counts=True)
    quota, left = np.zeros_like(counts), min(limit, len(labels))
    while left:
        open_classes = np.flatnonzero(quota < counts)
        share = max(1, left // len(open_classes))
        for i in open_classes:
            take = min(share, counts[i] - quota[i], left)
            quota[i], left = quota[i] + take, left - take
    picked = [np.flatnonzero(labels == c)[evaluation_subset(n, q)] for c, n, q in zip(classes, counts, quota) if q]
    return np.sort(np.concatenate(picked))


class Task(abc.ABC):
    """Base class of benchmark tasks.

    Subclasses state their model ``interface``, their named ``splits`` and the expected
    input format, and implement data access, hashing, model checks and evaluation.
    """

    splits: ClassVar[tuple[str, ...]]
    params_schema: ClassVar[dict[str, Any]] = {"type": "object", "additionalProperties": False}
    """JSON Schema of the entry's ``params`` (every key the class reads; nothing else)."""
    baseline_schema: ClassVar[dict[str, Any]] = {"file": {"type": "string"}}
    """JSON Schema ``properties`` a baseline entry may have besides ``description``."""
    min_limit: ClassVar[int] = 1
    """The smallest ``--limit`` the task can score (e.g. 2 where probes need two classes to fit)."""

    def __init__(self, spec: TaskSpec) -> None:
        self.spec = spec
        found = schemas.problem(self.params_schema, spec.params)
        if found:
            raise SpecError(f"{spec.spec_file} {spec.id}: params: {found}")
        baseline = {
            "type": "object",
            "additionalProperties": False,
            "properties": {"description": {"type": "string"}, **self.baseline_schema},
        }
        for name, entry in spec.baselines.items():
            found = schemas.problem(baseline, entry)
            if found:
                raise SpecError(f"{spec.spec_file} {spec.id}: baselines.{name}: {found}")

    @property
    def id(self) -> str:
        return self.spec.id

    @property
    def version(self) -> int:
        return self.spec.version

    @property
    def interface(self) -> Interface:
        """The model interface the task scores (``spec.interface``, from :mod:`fmbench.interfaces`)."""
        return get_interface(self.spec.interface)

    # ---- data ------------------------------------------------------------------------
    def check_split(self, split: str) -> None:
        """Raise ``InputError`` (a ``ValueError``) unless ``split`` is one of the task's splits."""
        if split not in self.splits:
            raise InputError(f"{self.id} has no split {split!r}; its splits are {list(self.splits)}")

    @abc.abstractmethod
    def split_size(self, split: str) -> int:
        """Number of items in a named split."""

    @abc.abstractmethod
    def export_chunks(self, split: str, seed: int) -> Iterator[dict[str, np.ndarray]]:
        """Yield the split in chunks of equal-length columns: ``ids`` (item ids) is required, token ids are
        ``token_ids`` / ``*_token_ids``, and per-item arrays of different shapes a
        :func:`~fmbench.export.ragged` column."""

    @property
    def vocab(self) -> list[str] | None:
        """Token strings of token tasks (a token's id is its index), else ``None``."""
        return None

    def user_data(self) -> str | None:
        """The environment variable naming the user's own copy of data fmbench cannot install, else ``None``."""
        return self.spec.user_data

    @abc.abstractmethod
    def data_hash(self, seed: int) -> str:
        """sha256 fingerprint of all of the task's data for ``seed``."""

    @abc.abstractmethod
    def stats(self, seed: int) -> dict[str, Any]:
        """Plain-data summary of the splits for ``seed``."""

    # ---- models ----------------------------------------------------------------------
    @abc.abstractmethod
    def input_format(self) -> str:
        """One paragraph: what a submitted model receives and must return."""

    @abc.abstractmethod
    def check_model(self, model: LoadedModel) -> None:
        """Raise ``ModelError`` naming the mismatch if ``model`` cannot be scored (``self.interface.check``)."""

    @abc.abstractmethod
    def evaluate(
        self,
        model: LoadedModel,
        seed: int,
        *,
        device: str = "cpu",
        batch_size: int = 256,
        limit: int | None = None,
        progress: bool = False,
    ) -> dict[str, float]:
        """Score ``model`` on ``seed``'s data; keys are the spec's metrics and breakdowns.

        ``limit`` scores that many items of the seed's data (a smoke check; such results are
        marked and cannot be submitted): :func:`evaluation_subset`, or :func:`stratified_subset`
        where items have classes (probe tasks fit their probes on that many training items too).
        """

    @abc.abstractmethod
    def load_baseline(self, name: str) -> LoadedModel:
        """A shipped baseline model by name (see ``spec.baselines``)."""

    def baseline_key(self, name: str) -> dict[str, str]:
        """The key of shipped baseline ``name`` (:mod:`fmbench.model_key`): a task whose baselines are costly to
        load overrides this to compute it from their files or spec."""
        return self.load_baseline(name).key()

    def baseline_entry(self, name: str) -> dict[str, Any]:
        """The spec entry of baseline ``name``; ``ModelError`` naming the shipped ones if there is none."""
        if name not in self.spec.baselines:
            raise ModelError(f"{self.id} has no baseline {name!r}; it ships {sorted(self.spec.baselines)}")
        return self.spec.baselines[name]

    def describe(self) -> dict[str, Any]:
        """Plain-data description for ``fmbench describe``."""
        from fmbench.registry import superseded_by

        s = self.spec
        newer = superseded_by(s.id)
        return {
            "id": s.id,
            "kind": "task",
            "version": s.version,
            **({"superseded_by": newer} if newer else {}),
            "studies": [x.describe() for x in s.studies],
            "summary": s.summary,
            "params": s.params,
            "interface": s.interface,
            "interface_description": self.interface.description,
            "input_format": self.input_format(),
            "splits": {sp: self.split_size(sp) for sp in self.splits},
            "metrics": {
                m.name: {
                    "higher_is_better": m.higher_is_better,
                    "description": m.description,
                    **({"range": list(m.range)} if m.range else {}),
                }
                for m in s.metrics.values()
            },
            "primary_metric": s.primary_metric,
            "min_seeds": s.min_seeds,
            "baselines": {k: v.get("description", "") for k, v in s.baselines.items()},
            "version_history": s.history,
            "spec_file": s.spec_file,
            "data_hashes": s.data_hashes,
            **({"vocab": self.vocab} if self.vocab else {}),
            **({"user_data": self.user_data()} if self.user_data() else {}),
        }
