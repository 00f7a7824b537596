"""Turning a model spec from the command line into a model a task can score.

A spec is ``<scheme>:<target>``. The core registers these schemes:
    ``baseline:<name>``           a model shipped with the task (``fmbench describe`` lists them)
    ``safetensors:<file>``        weights + architecture config (header or ``<file>.json``)
    ``hf:<folder or .gguf>``      a Hugging Face causal LM, loaded offline: for a ``causal-lm`` task the
                                  core scorer (:class:`fmbench.causal_lm.HFScorer`), else token ids -> logits
    ``sb3:<zip>``                 a Stable-Baselines3 actor-critic policy (weights only)
    ``python:<module>:<factory>`` ``factory(task)`` returns the model; needs ``trust_code=True``.
                                  ``<module>`` is imported from the working directory first, as
                                  ``python -m`` does, then from ``sys.path``
A study adds its own with :func:`register_scheme` in the module that defines its task class
(FoMo's ``reward:<name>`` builds a reward model by name).

Nothing untrusted is unpickled: safetensors, JSON, and ``torch.load(weights_only=True)``.

Example:
    >>> import fmbench
    >>> task = fmbench.make_task("fmbench/ComposeStepByStep-v0")
    >>> m = load_model("baseline:untrained", task)
    >>> m.interface, m.n_params > 0
    ('sequence-model', True)
"""

from __future__ import annotations

import contextlib
import importlib
import math
import os
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import torch

import fmbench.nn  # noqa: F401  (registers the built-in checkpoint architectures)
from fmbench.checkpoints import (
    TENSOR_SLACK,
    file_sha256,
    get_architecture,
    load_checkpoint,
    meta_build_budget,
    read_metadata,
    stored_shapes,
    weights_sha256,
)
from fmbench.errors import ModelError, first_line
from fmbench.interfaces import call_model, count_parameters
from fmbench.model_key import files_digest, identity_key, weights_key

if TYPE_CHECKING:
    from fmbench.task import Task

Loader = Callable[[str, "Task"], "LoadedModel"]
"""A scheme's loader: ``loader(target, task)`` returns the model the target names."""
KeyFinder = Callable[[str, str], "dict[str, str] | None"]
"""A scheme's key finder: ``key(target, task_id)`` is the key of the model the target names, or ``None``."""


@dataclass
class LoadedModel:
    """A model plus what a result record says about it.

    ``model`` is called as the interface prescribes; for ``sequence-model`` it maps
    ``(B, T)`` token ids to ``(B, T, V)`` logits and ``vocab_size``/``context_length`` say
    ``V`` and the longest input it accepts (``None`` if unbounded); ``tokens`` is the string
    of each token id when the model carries a vocabulary of its own (a tokenizer, or
    ``vocab`` in a checkpoint's header), so a task can refuse one trained on other tokens.
    ``identity`` says what a model without ``weights_sha256`` is, for its key
    (:mod:`fmbench.model_key`; ``None``: its spec).
    """

    model: Any
    spec: str
    name: str
    interface: str
    n_params: int | None
    weights_sha256: str | None
    dtype: str
    vocab_size: int | None = None
    context_length: int | None = None
    tokens: list[str] | None = None
    identity: dict[str, Any] | None = None

    def to(self, device: str) -> LoadedModel:
        """Move the model to ``device`` (torch modules, or any object with a ``to(device)`` method)."""
        if callable(getattr(self.model, "to", None)):
            self.model = self.model.to(device)
        return self

    def describe(self) -> dict[str, Any]:
        return {
            "spec": self.spec,
            "name": self.name,
            "interface": self.interface,
            "n_params": self.n_params,
            "weights_sha256": self.weights_sha256,
            "dtype": self.dtype,
            "key": self.key(),
        }

    def key(self) -> dict[str, str]:
        """The model's leaderboard key (:mod:`fmbench.model_key`): weights hash, else files or spec hash."""
        if self.weights_sha256:
            return weights_key(self.weights_sha256)
        return identity_key(self.identity or {"spec": self.spec})


def from_module(
    module: torch.nn.Module, spec: str, name: str, interface: str = "sequence-model", sha256: str | None = None
) -> LoadedModel:
    """Wrap a torch module (``vocab_size``/``context_length`` read from its attributes if present)."""
    params = list(module.parameters())
    return LoadedModel(
        model=module.eval(),
        spec=spec,
        name=name,
        interface=interface,
        n_params=count_parameters(module),
        weights_sha256=sha256 or weights_sha256(module),
        dtype=str(params[0].dtype).removeprefix("torch.") if params else "none",
        vocab_size=getattr(module, "vocab_size", None),
        context_length=getattr(module, "context_length", None),
    )


def existing_path(path: str, what: str) -> Path:
    """``path`` as a Path if it exists and is readable, else ``ModelError`` naming ``what``."""
    p = Path(path).expanduser()
    if not p.exists():
        raise ModelError(f"{what} not found: {path}")
    if not os.access(p, os.R_OK):
        raise ModelError(f"{what} is not readable: {path}")
    return p


@contextlib.contextmanager
def loading(what: str) -> Iterator[None]:
    """Say on stderr that ``what`` is loading, then how long it took (a slow load would look like a hang).

    Example:
        >>> with loading("a test model"):  # stderr: "fmbench: loading a test model..." then "...loaded in 0 s"
        ...     pass
    """
    print(f"fmbench: loading {what}...", file=sys.stderr, flush=True)
    start = time.perf_counter()
    yield
    print(f"fmbench: loaded {what} in {time.perf_counter() - start:.0f} s", file=sys.stderr, flush=True)


def load_safetensors(path: str, spec: str | None = None) -> LoadedModel:
    """A checkpoint written by ``fmbench.checkpoints.save_checkpoint`` (or with a sidecar config)."""
    p = existing_path(path, "safetensors file")
    model, meta = load_checkpoint(p)
    loaded = from_module(
        model,
        spec or f"safetensors:{path}",
        meta.get("name", p.stem),
        interface=get_architecture(meta["architecture"]).interface,
        sha256=file_sha256(p),
    )
    loaded.tokens = meta.get("vocab")
    return loaded


def load_baseline_checkpoint(task: Task, name: str, path: Path) -> LoadedModel:
    """Baseline ``name`` of ``task`` from a shipped checkpoint, refused if it was trained for another task."""
    trained_for = read_metadata(path).get("task")
    if trained_for != task.id:
        raise ModelError(f"baseline {name} was trained for {trained_for}, not {task.id}")
    loaded = load_safetensors(str(path), spec=f"baseline:{name}")
    loaded.name = name
    return loaded


class HFCausalLM(torch.nn.Module):
    """A Hugging Face causal LM seen as token ids -> logits."""

    def __init__(self, lm: torch.nn.Module) -> None:
        super().__init__()
        self.lm = lm
        cfg = lm.config
        self.vocab_size = int(cfg.vocab_size)
        self.context_length = next(
            (
                int(getattr(cfg, k))
                for k in ("max_position_embeddings", "n_positions", "n_ctx")
                if isinstance(getattr(cfg, k, None), int)
            ),
            None,
        )

    def forward(self, ids: torch.Tensor) -> torch.Tensor:
        return self.lm(input_ids=ids, use_cache=False).logits


def _hf_tokens(p: Path) -> list[str] | None:
    """The token strings of a GGUF file's or a model folder's own tokenizer (``None`` if it has none)."""
    if p.is_file():
        import gguf

        field = gguf.GGUFReader(str(p)).fields.get("tokenizer.ggml.tokens")
        return None if field is None else [bytes(field.parts[i]).decode("utf-8", "replace") for i in field.data]
    if not any((p / f).is_file() for f in ("tokenizer.json", "vocab.json", "tokenizer.model")):
        return None
    from transformers import AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(str(p), local_files_only=True)
    return tokenizer.convert_ids_to_tokens(list(range(len(tokenizer))))


def _stored_values(p: Path) -> tuple[int, int] | None:
    """``(tensors, values)`` a GGUF file or a model folder's safetensors files store (``None``: no such files)."""
    if p.is_file():
        import gguf

        try:
            tensors = gguf.GGUFReader(str(p)).tensors
        except (ValueError, OSError, IndexError) as e:
            raise ModelError(f"{p} is not a readable GGUF file ({first_line(e)})") from None
        return len(tensors), sum(int(t.n_elements) for t in tensors)
    shapes = [shape for f in sorted(p.glob("*.safetensors")) for shape in stored_shapes(f).values()]
    return (len(shapes), sum(math.prod(s) for s in shapes)) if shapes else None


def check_hf_size(p: Path, auto_class: Any, config: Any) -> None:
    """``ModelError`` unless the model ``config`` describes has at most the values its weights files store.

    The model is built from ``config`` on the meta device first (no memory for weights; the
    build stops past twice the stored tensors), so a small folder or GGUF file whose config
    declares a huge model is refused before ``from_pretrained`` allocates it.
    """
    stored = _stored_values(p)
    if stored is None:
        return  # from_pretrained names the missing weights
    n_tensors, n_values = stored
    limit = TENSOR_SLACK * n_tensors + 16
    with meta_build_budget(limit, f"{p}: its config describes more than {limit} tensors; it stores {n_tensors}"):
        model = auto_class.from_config(config)
    described = sum(t.numel() for t in model.parameters())
    if described > n_values:
        raise ModelError(f"{p}: its config describes {described} parameters, but its weights hold {n_values} values")


def from_pretrained_checked(auto_class: Any, p: Path, **kwargs: Any) -> torch.nn.Module:
    """``auto_class.from_pretrained`` offline for a model folder or ``.gguf`` file ``p``, after :func:`check_hf_size`.

    Example:
        >>> from transformers import AutoModelForCausalLM
        >>> from_pretrained_checked(AutoModelForCausalLM, Path("my-model"))  # doctest: +SKIP
    """
    from transformers import AutoConfig

    where, extra = (str(p.parent), {"gguf_file": p.name}) if p.is_file() else (str(p), {})
    config = AutoConfig.from_pretrained(where, local_files_only=True, **extra)
    check_hf_size(p, auto_class, config)
    return auto_class.from_pretrained(where, config=config, local_files_only=True, **extra, **kwargs)


def load_hf(path: str) -> LoadedModel:
    """A causal LM from a local folder, or a ``.gguf`` file (de-quantised once per machine and kept).

    The config is checked against the stored weights before the model is allocated
    (:func:`check_hf_size`); a GGUF file goes through :func:`fmbench.causal_lm.read_causal_lm`.
    """
    p = existing_path(path, "Hugging Face model")
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    from transformers import AutoModelForCausalLM

    from fmbench.causal_lm import read_causal_lm

    if p.is_file() and p.suffix != ".gguf":
        raise ModelError(f"hf: expects a model folder or a .gguf file, got {path}")
    try:
        if p.is_file():  # de-quantised once per machine, as the scorer's GGUF files are
            lm = read_causal_lm(str(p))[0]
        else:
            lm = from_pretrained_checked(AutoModelForCausalLM, p, use_safetensors=True)
        tokens = _hf_tokens(p)
        identity = None if p.is_file() else {"scheme": "hf", "files": files_digest(p)}
    except ModelError:
        raise
    except (OSError, ValueError, KeyError, RuntimeError) as e:
        first = first_line(e)
        raise ModelError(f"cannot load Hugging Face model {path}: {first}") from None
    sha = file_sha256(p) if p.is_file() else None
    loaded = from_module(HFCausalLM(lm), f"hf:{path}", p.stem if p.is_file() else p.name, sha256=sha)
    loaded.tokens = tokens
    loaded.identity = identity
    return loaded


def load_hf_scorer(path: str) -> LoadedModel:
    """A causal LM from a local folder or ``.gguf`` file as the ``causal-lm`` scorer (float32 on the CPU).

    The evaluator's ``LoadedModel.to("cuda")`` moves it to the GPU in bfloat16.
    """
    from fmbench.causal_lm import HFScorer

    p = existing_path(path, "Hugging Face model")
    scorer = HFScorer.from_path(p)
    return LoadedModel(
        model=scorer,
        spec=f"hf:{path}",
        name=scorer.name,
        interface="causal-lm",
        n_params=count_parameters(scorer.model),
        weights_sha256=file_sha256(p) if p.is_file() else weights_sha256(scorer.model),
        dtype=str(next(scorer.model.parameters()).dtype).removeprefix("torch."),
        vocab_size=scorer.vocab_size,
        context_length=scorer.context_length,
    )


def _load_hf_for(target: str, task: Task) -> LoadedModel:
    """``hf:`` specs: the scorer for a ``causal-lm`` task, token ids -> logits for any other."""
    return load_hf_scorer(target) if task.spec.interface == "causal-lm" else load_hf(target)


def _import_from_working_directory(module: str) -> Any:
    """Import ``module`` with the working directory first on ``sys.path`` (as ``python -m`` does)."""
    cwd = os.getcwd()
    added = cwd not in sys.path
    if added:
        sys.path.insert(0, cwd)
    try:
        return importlib.import_module(module)
    finally:
        if added:
            sys.path.remove(cwd)


def load_python(target: str, task: Task) -> LoadedModel:
    """``module:factory``; the factory gets the task and returns a module, an object or a ``LoadedModel``.

    ``module`` is imported from the working directory first (``mymodule.py`` beside you), as
    ``python -m`` does, then from ``sys.path``. A plain object (not a torch module) is accepted
    for interfaces that do not require a module (``policy``, ``reward-model``, ...).
    """
    module, _, attr = target.partition(":")
    if not module or not attr:
        raise ModelError(f"python: spec must be python:<module>:<factory>, got python:{target}")
    imported = call_model(
        f"cannot import python:{target} from the working directory or sys.path", _import_from_working_directory, module
    )
    factory = getattr(imported, attr, None)
    if not callable(factory):
        raise ModelError(f"python:{target}: module {module} has no function {attr!r}")
    made = call_model(f"python:{target}: {attr}(task) failed", factory, task)
    if isinstance(made, LoadedModel):
        return made
    if isinstance(made, torch.nn.Module):
        return from_module(made, f"python:{target}", attr, interface=task.spec.interface)
    if not task.interface.module_required:
        source = getattr(imported, "__file__", None)
        files = {Path(source).name: file_sha256(source)} if source and Path(source).is_file() else None
        return LoadedModel(
            model=made,
            spec=f"python:{target}",
            name=attr,
            interface=task.spec.interface,
            n_params=None,
            weights_sha256=None,
            dtype="none",
            identity={"scheme": "python", "factory": attr, **({"files": files} if files else {"module": module})},
        )
    raise ModelError(f"python:{target} returned {type(made).__name__}, expected a torch.nn.Module or LoadedModel")


@dataclass(frozen=True)
class Scheme:
    """A model-spec scheme: its loader and whether it runs the submission's own code."""

    name: str
    loader: Loader
    runs_code: bool = False
    key: KeyFinder | None = None


_SCHEMES: dict[str, Scheme] = {}


def register_scheme(name: str, loader: Loader, runs_code: bool = False, key: KeyFinder | None = None) -> Scheme:
    """Let model specs ``<name>:<target>`` load through ``loader(target, task)``.

    ``runs_code`` marks a scheme that runs the submission's own code: :func:`load_model`
    refuses it unless ``trust_code`` is set. ``key(target, task_id)`` recomputes the key of the
    model a target names from its files or spec without loading it (``None`` when they are not
    at hand; see :func:`recompute_key`). A taken or malformed name raises ``ValueError``.

    Example:
        >>> register_scheme("python", load_python)
        Traceback (most recent call last):
        ValueError: model-spec scheme 'python' is already registered
    """
    if not name.isidentifier() or not name.islower():
        raise ValueError(f"model-spec scheme {name!r} must be a lower-case identifier")
    if name in _SCHEMES:
        raise ValueError(f"model-spec scheme {name!r} is already registered")
    _SCHEMES[name] = Scheme(name, loader, runs_code, key)
    return _SCHEMES[name]


def list_schemes() -> list[str]:
    """Names of the registered model-spec schemes, sorted.

    Example:
        >>> {"baseline", "hf", "python", "safetensors", "sb3"} <= set(list_schemes())
        True
    """
    return sorted(_SCHEMES)


def load_model(spec: str, task: Task, trust_code: bool = False) -> LoadedModel:
    """Resolve a model spec for ``task`` (see the module docstring for the schemes)."""
    name, sep, rest = spec.partition(":")
    if not sep or name not in _SCHEMES or not rest:
        raise ModelError(f"model spec {spec!r} is not <scheme>:<target> with scheme in {list_schemes()}")
    scheme = _SCHEMES[name]
    if scheme.runs_code and not trust_code:
        raise ModelError(f"{name}: model specs run the submission's own code; pass --trust-code to allow it")
    return scheme.loader(rest, task)


def recompute_key(spec: str, task_id: str) -> dict[str, str] | None:
    """The key of the model ``spec`` names, recomputed from its files or spec, or ``None`` when they are not at hand.

    Files are hashed, never loaded, and no code is run: ``python:`` specs give ``None``, and so does a
    path that does not exist here. A malformed spec raises ``ModelError``.

    Example:
        >>> recompute_key("baseline:trained", "fmbench/ComposeDirect-v0")["sha256"][:12]
        'd81246e9384c'
        >>> recompute_key("safetensors:/no/such/file", "fmbench/ComposeDirect-v0") is None
        True
    """
    name, sep, rest = spec.partition(":")
    if not sep or name not in _SCHEMES or not rest:
        raise ModelError(f"model spec {spec!r} is not <scheme>:<target> with scheme in {list_schemes()}")
    finder = _SCHEMES[name].key
    return finder(rest, task_id) if finder else None


def _file_key(target: str, task_id: str) -> dict[str, str] | None:
    """A model file's key: its sha256 (safetensors, SB3 zip, GGUF), or ``None`` if it is not here."""
    path = Path(target).expanduser()
    return weights_key(file_sha256(path)) if path.is_file() else None


def _hf_key(target: str, task_id: str) -> dict[str, str] | None:
    path = Path(target).expanduser()
    if path.is_dir():
        return identity_key({"scheme": "hf", "files": files_digest(path)})
    return _file_key(target, task_id)


def _baseline_key(target: str, task_id: str) -> dict[str, str]:
    from fmbench.registry import make_task

    return make_task(task_id).baseline_key(target)


def _load_sb3(target: str, task: Task) -> LoadedModel:
    from fmbench.sb3 import load_sb3  # Stable-Baselines3 is an extra: imported only for sb3: specs

    return load_sb3(target, task)


register_scheme("baseline", lambda target, task: task.load_baseline(target), key=_baseline_key)
register_scheme("safetensors", lambda target, task: load_safetensors(target), key=_file_key)
register_scheme("hf", _load_hf_for, key=_hf_key)
register_scheme("sb3", _load_sb3, key=_file_key)
register_scheme("python", load_python, runs_code=True)
