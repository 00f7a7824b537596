"""Loading a Stable-Baselines3 actor-critic policy from its ``.zip`` without unpickling anything.

An SB3 zip holds ``data`` (JSON whose class-valued entries are cloudpickle blobs),
``policy.pth`` (the policy's state dict) and more. Only ``policy.pth`` is read as tensors
(``torch.load(weights_only=True)``) and ``data`` only as plain JSON, never deserialising
its blobs. Sizes are checked before anything is decompressed: every member's declared size
against :data:`MAX_MEMBER_BYTES`, their sum against :data:`MAX_TOTAL_BYTES` and members over
1 MiB against :data:`MAX_RATIO` (a zip bomb is refused from its directory), and the same for
the members of ``policy.pth`` (itself a zip, torch's format), so nothing reads more than it
declares. The policy is rebuilt from the task's env spaces, its layer sizes are read
from the weights' shapes and its activation from ``data``'s readable ``policy_kwargs``.

Example:
    >>> import fmbench
    >>> from fmbench.models import load_model
    >>> task = fmbench.make_task("fmbench/ComposeTokensPolicy-v0")
    >>> load_model("sb3:ppo.zip", task)  # doctest: +SKIP
"""

from __future__ import annotations

import io
import json
import re
import warnings
import zipfile
import zlib
from pathlib import Path
from typing import TYPE_CHECKING, Any

import gymnasium as gym
import numpy as np
import torch

from fmbench.checkpoints import file_sha256
from fmbench.errors import ModelError, first_line
from fmbench.models import LoadedModel, existing_path, from_module

if TYPE_CHECKING:
    from stable_baselines3.common.policies import ActorCriticPolicy

    from fmbench.task import Task

MAX_MEMBER_BYTES = 256 << 20
"""The largest uncompressed size a member of an SB3 zip (or of its ``policy.pth``) may declare: 256 MiB."""
MAX_TOTAL_BYTES = 512 << 20
"""The largest sum of the uncompressed sizes an SB3 zip's members may declare: 512 MiB."""
MAX_RATIO = 100
"""The most a member over 1 MiB may expand (uncompressed / compressed size); SB3's own files stay under 20."""
_ANY_RATIO_BYTES = 1 << 20  # members up to 1 MiB may compress any amount

_LAYER = re.compile(r"^mlp_extractor\.(policy|value)_net\.(\d+)\.weight$")
_ACTIVATION = re.compile(r"^<class 'torch\.nn\.modules\.activation\.(\w+)'>$")
_FLATTEN = "<class 'stable_baselines3.common.torch_layers.FlattenExtractor'>"


class SB3Policy(torch.nn.Module):
    """An SB3 policy seen as a ``policy`` model: observation batch -> deterministic actions."""

    def __init__(self, policy: ActorCriticPolicy) -> None:
        super().__init__()
        self.policy = policy

    def forward(self, obs: np.ndarray) -> np.ndarray:
        return self.policy.predict(obs, deterministic=True)[0]


def check_zip_sizes(z: zipfile.ZipFile, where: str) -> None:
    """``ModelError`` naming ``where`` and the member unless the zip's declared sizes keep to the limits above.

    Example:
        >>> buffer = io.BytesIO()
        >>> with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as z:
        ...     z.writestr("zeros", bytes(2 << 20))
        >>> try:
        ...     check_zip_sizes(zipfile.ZipFile(buffer), "bomb.zip")
        ... except ModelError as e:
        ...     print(str(e).split(" from ")[0])
        sb3: bomb.zip: member zeros expands 2097152 bytes
    """
    total = 0
    for info in z.infolist():
        size = info.file_size
        if size > MAX_MEMBER_BYTES:
            raise ModelError(f"sb3: {where}: member {info.filename} declares {size} bytes (limit {MAX_MEMBER_BYTES})")
        if size > _ANY_RATIO_BYTES and size > MAX_RATIO * info.compress_size:
            raise ModelError(
                f"sb3: {where}: member {info.filename} expands {size} bytes from {info.compress_size} "
                f"(over {MAX_RATIO}x): a zip bomb?"
            )
        total += size
        if total > MAX_TOTAL_BYTES:
            raise ModelError(f"sb3: {where}: members declare over {MAX_TOTAL_BYTES} bytes in all")


def _read_zip(p: Path) -> tuple[dict[str, torch.Tensor], Any]:
    """The state dict in ``policy.pth`` and the parsed ``data`` JSON (``None`` if absent or not JSON)."""
    if not zipfile.is_zipfile(p):
        raise ModelError(f"sb3: {p} is not a zip file")
    try:
        with zipfile.ZipFile(p) as z:
            check_zip_sizes(z, str(p))
            names = set(z.namelist())
            if "policy.pth" not in names:
                raise ModelError(f"sb3: {p} is not a Stable-Baselines3 zip (it has no policy.pth)")
            weights = z.read("policy.pth")
            data = z.read("data") if "data" in names else None
        if not zipfile.is_zipfile(io.BytesIO(weights)):
            raise ModelError(f"sb3: {p}: policy.pth is not in torch's zip format (what torch.save writes)")
        with zipfile.ZipFile(io.BytesIO(weights)) as inner:
            check_zip_sizes(inner, f"{p}: policy.pth")
    except (zipfile.BadZipFile, OSError, EOFError, zlib.error) as e:
        raise ModelError(f"sb3: cannot read {p} ({first_line(e)})") from None
    try:
        state = torch.load(io.BytesIO(weights), weights_only=True, map_location="cpu")
    except Exception as e:  # torch raises many types for files that are not plain tensors
        first = first_line(e)
        raise ModelError(f"sb3: {p}: policy.pth is not a plain state dict ({first})") from None
    if not isinstance(state, dict) or not all(
        isinstance(k, str) and isinstance(v, torch.Tensor) for k, v in state.items()
    ):
        raise ModelError(f"sb3: {p}: policy.pth is not a state dict of named tensors")
    try:
        parsed = json.loads(data) if data is not None else None
    except (json.JSONDecodeError, UnicodeDecodeError):
        parsed = None
    return state, parsed


def _activation(p: Path, data: Any) -> type[torch.nn.Module]:
    """The activation named in ``data``'s ``policy_kwargs`` (SB3's default Tanh if it names none)."""
    kwargs = data.get("policy_kwargs") if isinstance(data, dict) else None
    if not isinstance(kwargs, dict):
        warnings.warn(
            f"sb3: {p}: data holds no readable policy_kwargs; assuming SB3's default Tanh activation", stacklevel=3
        )
        return torch.nn.Tanh
    extractor = kwargs.get("features_extractor_class", _FLATTEN)
    if extractor != _FLATTEN:
        raise ModelError(
            f"sb3: {p}: features extractor {extractor} is not supported; only MlpPolicy "
            "(FlattenExtractor) policies load"
        )
    name = kwargs.get("activation_fn")
    if name is None:
        return torch.nn.Tanh
    m = _ACTIVATION.match(name) if isinstance(name, str) else None
    cls = getattr(torch.nn, m[1], None) if m else None
    if not (isinstance(cls, type) and issubclass(cls, torch.nn.Module)):
        raise ModelError(f"sb3: {p}: activation {name!r} is not a torch.nn activation")
    return cls


def _layers(p: Path, state: dict[str, torch.Tensor], net: str) -> list[torch.Tensor]:
    """Weights of the ``policy`` or ``value`` MLP's linear layers, in order."""
    layers = {int(m[2]): v for k, v in state.items() if (m := _LAYER.match(k)) and m[1] == net}
    if any(v.ndim != 2 for v in layers.values()):
        raise ModelError(f"sb3: {p}: policy.pth is not an actor-critic MLP state dict (non-matrix layer weights)")
    return [layers[i] for i in sorted(layers)]


def _implied_parameters(features: int, net_arch: dict[str, list[int]], n_actions: int) -> int:
    """Parameters of SB3's actor-critic MLP: the policy and value MLPs, then the action and value heads.

    Example:
        >>> _implied_parameters(4, {"pi": [8], "vf": []}, 3)  # (4*8 + 8) + (8*3 + 3) + (4*1 + 1)
        72
    """
    total = 0
    for widths, head in ((net_arch["pi"], n_actions), (net_arch["vf"], 1)):
        sizes = [features, *widths, head]
        total += sum(n_in * n_out + n_out for n_in, n_out in zip(sizes, sizes[1:]))
    return total


def load_sb3(path: str, task: Task) -> LoadedModel:
    """A PPO/A2C ``MlpPolicy`` from an SB3 zip, as a ``policy`` model of ``task``.

    Args:
        path: the ``.zip`` written by ``model.save(...)``.
        task: a policy task; ``task.spec.params["env"]`` gives the observation and action spaces.

    Returns:
        A ``LoadedModel`` whose ``model`` maps an observation batch to deterministic actions.

    Example:
        >>> import fmbench
        >>> task = fmbench.make_task("fmbench/ComposeTokensPolicy-v0")
        >>> load_sb3("ppo.zip", task).model(obs_batch)  # doctest: +SKIP
    """
    try:
        from stable_baselines3.common.policies import ActorCriticPolicy
        from stable_baselines3.common.preprocessing import get_flattened_obs_dim
    except ImportError:
        raise ModelError("sb3: Stable-Baselines3 is not installed; pip install 'fmbench[sb3]'") from None
    p = existing_path(path, "SB3 zip")
    if task.spec.interface != "policy" or "env" not in task.spec.params:
        raise ModelError(f"sb3: {task.id} scores {task.spec.interface!r} models; SB3 policies fit policy tasks")
    state, data = _read_zip(p)
    if "action_net.weight" not in state or state["action_net.weight"].ndim != 2:
        raise ModelError(f"sb3: {p}: policy.pth is not an actor-critic MLP state dict (no action_net)")
    env = gym.make(task.spec.params["env"])
    obs_space, action_space = env.observation_space, env.action_space
    env.close()
    if not isinstance(action_space, gym.spaces.Discrete):
        raise ModelError(f"sb3: {task.spec.params['env']} has a {action_space} action space; only Discrete loads")
    pi, vf = _layers(p, state, "policy"), _layers(p, state, "value")
    n_in = int((pi[0] if pi else state["action_net.weight"]).shape[1])
    n_out = int(state["action_net.weight"].shape[0])
    features = get_flattened_obs_dim(obs_space)
    if n_in != features or n_out != action_space.n:
        raise ModelError(
            f"sb3: {p} maps {n_in} observation features to {n_out} actions; {task.spec.params['env']} "
            f"has {features} (observation shape {obs_space.shape}) and {action_space.n} actions"
        )
    net_arch = {"pi": [int(w.shape[0]) for w in pi], "vf": [int(w.shape[0]) for w in vf]}
    implied, held = _implied_parameters(features, net_arch, n_out), sum(v.numel() for v in state.values())
    if implied > held:  # before building it: empty weight matrices can declare layers of any width
        raise ModelError(
            f"sb3: {p}: policy.pth is not an actor-critic MLP state dict (its layer shapes imply "
            f"{implied:,} parameters; it holds {held:,})"
        )
    policy = ActorCriticPolicy(
        obs_space, action_space, lambda _: 0.0, net_arch=net_arch, activation_fn=_activation(p, data)
    )
    expected = policy.state_dict()
    missing, unexpected = sorted(set(expected) - set(state)), sorted(set(state) - set(expected))
    wrong = sorted(k for k in set(expected) & set(state) if expected[k].shape != state[k].shape)
    if missing or unexpected or wrong:
        raise ModelError(
            f"sb3: {p}: policy.pth is not an actor-critic MLP state dict (missing {missing[:3]}, "
            f"unexpected {unexpected[:3]}, wrong shapes {wrong[:3]})"
        )
    policy.load_state_dict(state, strict=True)
    return from_module(SB3Policy(policy), f"sb3:{path}", p.stem, interface="policy", sha256=file_sha256(p))
