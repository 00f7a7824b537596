"""Model weights as safetensors files with their architecture and config in the header.

Nothing is unpickled: the header's ``fmbench`` entry is JSON naming a registered architecture
and its config; a sidecar ``<file>.json`` with the same content is read when the header lacks
it. Architectures are registered by the code that provides them (``fmbench.nn.gpt``,
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

import dataclasses
import hashlib
import json
import os
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from safetensors import SafetensorError, safe_open
from safetensors.torch import load_model, save_model

from fmbench.errors import ModelError, first_line
from fmbench.interfaces import get_interface
from fmbench.io import atomic_path


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
    """Build the model a checkpoint describes and load its weights (strict)."""
    meta = read_metadata(path)
    arch = meta.get("architecture")
    if arch not in _ARCHITECTURES:
        raise ModelError(f"{path}: unknown architecture {arch!r}; known: {sorted(_ARCHITECTURES)}")
    found = _ARCHITECTURES[arch]
    try:
        model = found.model_class(found.config_from_dict(meta.get("config", {})))
        missing, unexpected = load_model(model, str(path), strict=False)
    except (ValueError, TypeError, RuntimeError, SafetensorError) as e:
        raise ModelError(f"{path}: weights do not fit the {arch} config ({e})") from None
    if missing or unexpected:
        raise ModelError(
            f"{path}: weights do not fit the {arch} config "
            f"(missing {sorted(missing)[:3]}, unexpected {sorted(unexpected)[:3]})"
        )
    return model.eval(), meta


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
