"""Model weights as safetensors files with their architecture and config in the header.

Nothing is unpickled: the header's ``fmbench`` entry is JSON naming a registered architecture
and its config; a sidecar ``<file>.json`` with the same content is read when the header lacks
it. Loading is bounded by the file: the model a config describes is first built on PyTorch's
``meta`` device (no memory for weights), the build stops once it registers more than
:data:`TENSOR_SLACK` times the tensors the file stores, and its state dict must match the
stored tensors' names and shapes before the real model is allocated; safetensors itself checks
the header's length and the tensors' offsets against the file's size.
Architectures are registered by the code that provides them (``fmbench.nn.gpt``,
``fmbench.nn.gin`` and ``fmbench.nn.cnn`` for the built-in ones, which ``import fmbench.nn``
registers; a study calls :func:`register_architecture` in its own module).

Example:
    >>> import tempfile, os
    >>> from fmbench.nn.gpt import GPT, GPTConfig
    >>> path = os.path.join(tempfile.mkdtemp(), "m.safetensors")
    >>> save_checkpoint(GPT(GPTConfig(vocab_size=5, n_embd=8)), path, {"note": "x"})
    >>> model, meta = load_checkpoint(path)
    >>> meta["architecture"], model.vocab_size, get_architecture("gpt").interface
    ('gpt', 5, 'sequence-model')
"""

from __future__ import annotations

import contextlib
import dataclasses
import hashlib
import json
import os
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from safetensors import SafetensorError, safe_open
from safetensors.torch import load_model, save_model
from torch.nn.modules.module import (
    register_module_buffer_registration_hook,
    register_module_parameter_registration_hook,
)
from torch.overrides import TorchFunctionMode

from fmbench.errors import ModelError, first_line
from fmbench.interfaces import get_interface
from fmbench.io import atomic_path

TENSOR_SLACK = 2
"""A config may make its model register at most this many times the tensors the file stores (plus 16),
counting tensors later tied or replaced, before the build on the meta device is stopped."""


@dataclass(frozen=True)
class Architecture:
    """A checkpoint architecture: its model class, how to read its config, the interface it serves."""

    name: str
    model_class: type[torch.nn.Module]
    config_from_dict: Callable[[dict[str, Any]], Any]
    interface: str


_ARCHITECTURES: dict[str, Architecture] = {}


def register_architecture(
    name: str, model_class: type[torch.nn.Module], config_from_dict: Callable[[dict[str, Any]], Any], interface: str
) -> Architecture:
    """Let checkpoints name ``name``: ``model_class(config_from_dict(header config))`` serving ``interface``.

    The model class must keep its config as ``model.config`` (a dataclass, written to the
    header). A taken name or class, or an unknown interface, raises ``ValueError``.

    Example:
        >>> from fmbench.nn.gpt import GPT, GPTConfig
        >>> register_architecture("gpt", GPT, GPTConfig.from_dict, "sequence-model")
        Traceback (most recent call last):
        ValueError: architecture 'gpt' is already registered (GPT)
    """
    for known in _ARCHITECTURES.values():
        if name == known.name or model_class is known.model_class:
            raise ValueError(f"architecture {known.name!r} is already registered ({known.model_class.__name__})")
    try:
        get_interface(interface)
    except ModelError as e:
        raise ValueError(f"architecture {name!r}: {e}") from None
    _ARCHITECTURES[name] = Architecture(name, model_class, config_from_dict, interface)
    return _ARCHITECTURES[name]


def get_architecture(name: str) -> Architecture:
    """The registered architecture ``name``; ``ModelError`` naming the known ones if there is none."""
    if name not in _ARCHITECTURES:
        raise ModelError(f"unknown architecture {name!r}; known: {sorted(_ARCHITECTURES)}")
    return _ARCHITECTURES[name]


def architecture_of(model: torch.nn.Module) -> str:
    """Registered architecture name of a model instance."""
    for arch in _ARCHITECTURES.values():
        if isinstance(model, arch.model_class):
            return arch.name
    raise ModelError(f"{type(model).__name__} is not a registered architecture {sorted(_ARCHITECTURES)}")


def save_checkpoint(model: torch.nn.Module, path: str | os.PathLike, extra: dict | None = None) -> None:
    """Write ``model`` (an instance of a registered architecture) atomically with its config and ``extra``."""
    meta = {"architecture": architecture_of(model), "config": dataclasses.asdict(model.config), **(extra or {})}
    with atomic_path(path) as tmp:
        save_model(model, str(tmp), metadata={"fmbench": json.dumps(meta, sort_keys=True)})


def read_metadata(path: str | os.PathLike) -> dict:
    """The checkpoint's architecture/config entry (header, else sidecar JSON)."""
    path = Path(path)
    if not path.is_file():
        raise ModelError(f"model file not found: {path}")
    try:
        with safe_open(str(path), framework="pt") as f:
            header = f.metadata() or {}
    except (SafetensorError, OSError, ValueError) as e:
        raise ModelError(f"{path} is not a readable safetensors file ({e})") from None
    if "fmbench" in header:
        return _config_object(header["fmbench"], f"{path}'s header entry 'fmbench'")
    sidecar = path.with_name(path.name + ".json")
    if not sidecar.is_file():
        raise ModelError(f"{path} carries no architecture config: add it to the header or write {sidecar}")
    try:
        text = sidecar.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as e:
        raise ModelError(f"cannot read {sidecar} ({e})") from None
    return _config_object(text, str(sidecar))


def _config_object(text: str, where: str) -> dict:
    """The architecture entry parsed from JSON text; ``ModelError`` unless it is a JSON object."""
    try:
        meta = json.loads(text)
    except (json.JSONDecodeError, RecursionError) as e:
        raise ModelError(f"{where} is not valid JSON ({type(e).__name__}: {first_line(e)})") from None
    if not isinstance(meta, dict):
        raise ModelError(f"{where} is a JSON {type(meta).__name__}; expected an object (architecture, config)")
    if not isinstance(meta.get("config", {}), dict):
        raise ModelError(f"{where}: 'config' is a JSON {type(meta['config']).__name__}; expected an object")
    return meta


def load_checkpoint(path: str | os.PathLike) -> tuple[torch.nn.Module, dict]:
    """Build the model a checkpoint describes and load its weights (strict; see the module docstring for bounds)."""
    meta = read_metadata(path)
    arch = meta.get("architecture")
    if arch not in _ARCHITECTURES:
        raise ModelError(f"{path}: unknown architecture {arch!r}; known: {sorted(_ARCHITECTURES)}")
    found = _ARCHITECTURES[arch]
    try:
        config = found.config_from_dict(meta.get("config", {}))
        model = build_for_file(path, lambda: found.model_class(config), f"the {arch} config")
        load_model(model, str(path))
    except (ValueError, TypeError, RuntimeError, SafetensorError) as e:
        raise ModelError(f"{path}: weights do not fit the {arch} config ({first_line(e)})") from None
    return model.eval(), meta


def stored_shapes(path: str | os.PathLike) -> dict[str, tuple[int, ...]]:
    """Name -> shape of each tensor a safetensors file stores, read from its header alone.

    Example:
        >>> import tempfile, os
        >>> from safetensors.torch import save_file
        >>> path = os.path.join(tempfile.mkdtemp(), "t.safetensors")
        >>> save_file({"w": torch.zeros(2, 3)}, path)
        >>> stored_shapes(path)
        {'w': (2, 3)}
    """
    try:
        with safe_open(str(path), framework="pt") as f:
            return {name: tuple(f.get_slice(name).get_shape()) for name in f.keys()}
    except (SafetensorError, OSError, ValueError) as e:
        raise ModelError(f"{path} is not a readable safetensors file ({first_line(e)})") from None


_FILLS = frozenset(
    "normal_ uniform_ zero_ fill_ random_ bernoulli_ exponential_ log_normal_ cauchy_ geometric_ erfinv_ clamp_ "
    "clamp_min_ clamp_max_ mul_ add_ sub_ div_ copy_ ones_ zeros_ constant_ eye_ dirac_ kaiming_uniform_ "
    "kaiming_normal_ xavier_uniform_ xavier_normal_ trunc_normal_ orthogonal_ sparse_".split()
)
"""In-place ops (tensor methods and ``torch.nn.init`` functions) that change only a tensor's values."""


class _SkipFillingMeta(TorchFunctionMode):
    """Returns a meta tensor unchanged from :data:`_FILLS`: it has no values, and running them on
    the meta device would import torch's compiler (seconds and 150 MB on first use)."""

    def __torch_function__(self, func, types, args=(), kwargs=None):
        kwargs = kwargs or {}
        target = args[0] if args else kwargs.get("tensor")
        if getattr(func, "__name__", None) in _FILLS and isinstance(target, torch.Tensor) and target.is_meta:
            return target
        return func(*args, **kwargs)


@contextlib.contextmanager
def meta_device() -> Iterator[None]:
    """Create tensors on the meta device (shapes, no memory), skipping ops that only fill values.

    Example:
        >>> with meta_device():
        ...     layer = torch.nn.Linear(100_000, 100_000)
        >>> layer.weight.is_meta, layer.weight.shape
        (True, torch.Size([100000, 100000]))
    """
    with torch.device("meta"), _SkipFillingMeta():
        yield


@contextlib.contextmanager
def meta_build_budget(limit: int, error: str) -> Iterator[None]:
    """Build on the meta device; ``ModelError(error)`` once modules register more than ``limit`` distinct tensors.

    Tensors on the meta device take no memory, but each module and tensor object does: a
    config asking for a million layers is stopped after ``limit`` of its tensors.
    """
    seen: set[int] = set()

    def count(module: torch.nn.Module, name: str, tensor: torch.Tensor | None) -> None:
        if tensor is not None and id(tensor) not in seen:
            seen.add(id(tensor))
            if len(seen) > limit:
                raise ModelError(error)

    hooks = [register_module_parameter_registration_hook(count), register_module_buffer_registration_hook(count)]
    try:
        with meta_device():
            yield
    finally:
        for hook in hooks:
            hook.remove()


def build_for_file(path: str | os.PathLike, build: Callable[[], torch.nn.Module], what: str) -> torch.nn.Module:
    """``build()``, once a build on the meta device shows that its state dict is the tensors ``path`` stores.

    Names and shapes must match (tied tensors may be stored once), so the real build allocates
    what the file holds and no more; ``ModelError`` naming ``path``, ``what`` (the config) and the
    first differences otherwise.

    Example:
        >>> import tempfile, os
        >>> from safetensors.torch import save_model
        >>> path = os.path.join(tempfile.mkdtemp(), "lin.safetensors")
        >>> save_model(torch.nn.Linear(3, 2), path)
        >>> build_for_file(path, lambda: torch.nn.Linear(3, 2), "Linear(3, 2)").weight.shape
        torch.Size([2, 3])
        >>> try:
        ...     build_for_file(path, lambda: torch.nn.Linear(3000, 2000), "Linear(3000, 2000)")
        ... except ModelError as e:
        ...     print(str(e).split(": ", 1)[1])
        weights do not fit Linear(3000, 2000) (wrong shapes \
['bias: (2,) stored, (2000,) described', 'weight: (2, 3) stored, (2000, 3000) described'])
    """
    stored = stored_shapes(path)
    limit = TENSOR_SLACK * len(stored) + 16
    with meta_build_budget(limit, f"{path}: {what} describes more than {limit} tensors; the file stores {len(stored)}"):
        described = build().state_dict(keep_vars=True)
    aliases: dict[int, list[str]] = {}
    for name, tensor in described.items():
        aliases.setdefault(id(tensor), []).append(name)
    missing = sorted(names[0] for names in aliases.values() if not any(n in stored for n in names))
    unexpected = sorted(set(stored) - set(described))
    wrong = sorted(
        f"{n}: {stored[n]} stored, {tuple(described[n].shape)} described"
        for n in set(stored) & set(described)
        if tuple(described[n].shape) != stored[n]
    )
    if missing or unexpected or wrong:
        parts = [
            f"{label} {names[:3]}"
            for label, names in [("missing", missing), ("unexpected", unexpected), ("wrong shapes", wrong)]
            if names
        ]
        raise ModelError(f"{path}: weights do not fit {what} ({', '.join(parts)})")
    return build()


def file_sha256(path: str | os.PathLike) -> str:
    """sha256 of a file's bytes."""
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def weights_sha256(model: torch.nn.Module) -> str:
    """sha256 over a model's named parameters and buffers (names, shapes, dtypes, bytes)."""
    h = hashlib.sha256()
    for name, t in sorted(model.state_dict().items()):
        t = t.detach().cpu().contiguous()
        h.update(f"{name}:{tuple(t.shape)}:{t.dtype}".encode())
        h.update(t.reshape(-1).view(torch.uint8).numpy().tobytes() if t.numel() else b"")
    return h.hexdigest()
