"""Loading Stable-Baselines3 policies from their zips, and refusing what is not one, without unpickling."""

from __future__ import annotations

import base64
import dataclasses
import io
import json
import pickle
import sys
import zipfile
from pathlib import Path

import gymnasium as gym
import numpy as np
import pytest
import torch

import fmbench
from fmbench.checkpoints import file_sha256
from fmbench.errors import ModelError
from fmbench.models import load_model
from fmbench.registry import task_spec
from fmbench.studies.compositional.policy_task import CompositionPolicyTask

PPO = pytest.importorskip("stable_baselines3").PPO
DIRECT_ENV = "fmbench/ComposeTokensDirect-v0"


@pytest.fixture(scope="module")
def direct_task() -> CompositionPolicyTask:
    """The policy task on the direct-format env (6-step episodes)."""
    spec = task_spec("fmbench/ComposeTokensPolicy-v0")
    return CompositionPolicyTask(dataclasses.replace(spec, params={**spec.params, "env": DIRECT_ENV}))


@pytest.fixture(scope="module")
def trained(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A tiny PPO (asymmetric ReLU MLP) trained for 256 steps, saved as a zip."""
    model = PPO(
        "MlpPolicy",
        gym.make(DIRECT_ENV),
        n_steps=64,
        batch_size=64,
        n_epochs=1,
        seed=0,
        device="cpu",
        policy_kwargs={"net_arch": {"pi": [32], "vf": [16, 8]}, "activation_fn": torch.nn.ReLU},
    )
    model.learn(256)
    path = tmp_path_factory.mktemp("sb3") / "ppo.zip"
    model.save(path)
    return path


def _observations(n: int = 16) -> np.ndarray:
    """Observations from the start and middle of episodes."""
    envs = gym.make_vec(DIRECT_ENV, num_envs=n // 2, vectorization_mode="sync")
    first, _ = envs.reset(seed=0)
    later = envs.step(envs.action_space.sample())[0]
    return np.concatenate([first, later])


def _rewrite(src: Path, dst: Path, **members: bytes | None) -> Path:
    """Copy an SB3 zip, replacing (bytes) or dropping (``None``) members."""
    with zipfile.ZipFile(src) as zin, zipfile.ZipFile(dst, "w") as zout:
        for name in zin.namelist():
            if members.get(name, b"") is not None:
                zout.writestr(name, members.get(name) or zin.read(name))
    return dst


def _assert_matches_sb3(path: Path, task: CompositionPolicyTask) -> None:
    loaded = load_model(f"sb3:{path}", task)
    task.check_model(loaded)
    obs = _observations()
    expected = PPO.load(path, device="cpu").predict(obs, deterministic=True)[0]
    assert (loaded.model(obs) == expected).all()


def test_actions_match_sb3(trained: Path, direct_task: CompositionPolicyTask) -> None:
    _assert_matches_sb3(trained, direct_task)
    loaded = load_model(f"sb3:{trained}", direct_task)
    assert loaded.interface == "policy" and loaded.dtype == "float32" and loaded.n_params > 0
    assert loaded.weights_sha256 == file_sha256(trained)
    assert 0.0 <= direct_task.evaluate(loaded, seed=0)["mean_return"] <= 1.0


def test_default_architecture_and_unreadable_kwargs(tmp_path: Path, direct_task: CompositionPolicyTask) -> None:
    path = tmp_path / "default.zip"
    PPO("MlpPolicy", gym.make(DIRECT_ENV), n_steps=64, seed=1, device="cpu").save(path)
    _assert_matches_sb3(path, direct_task)
    no_data = _rewrite(path, tmp_path / "no_data.zip", data=b"not json")
    with pytest.warns(UserWarning, match="assuming SB3's default Tanh"):
        loaded = load_model(f"sb3:{no_data}", direct_task)
    obs = _observations()
    assert (loaded.model(obs) == PPO.load(path, device="cpu").predict(obs, deterministic=True)[0]).all()


def _assert_matches_sb3_weights(path: Path, reference: Path, task: CompositionPolicyTask) -> None:
    obs = _observations()
    expected = load_model(f"sb3:{reference}", task).model(obs)
    assert (load_model(f"sb3:{path}", task).model(obs) == expected).all()


class _WritesMarker:
    """Unpickling this runs code: it creates ``path``."""

    def __init__(self, path: Path) -> None:
        self.path = str(path)

    def __reduce__(self) -> tuple:
        return exec, (f"open({self.path!r}, 'w').close()",)


def test_pickles_in_the_zip_never_run(trained: Path, direct_task: CompositionPolicyTask, tmp_path: Path) -> None:
    marker = tmp_path / "pwned"
    payload = pickle.dumps(_WritesMarker(marker))
    data = json.loads(zipfile.ZipFile(trained).read("data"))
    for entry in data.values():
        if isinstance(entry, dict) and ":serialized:" in entry:
            entry[":serialized:"] = base64.b64encode(payload).decode()
    evil_data = _rewrite(trained, tmp_path / "evil_data.zip", data=json.dumps(data).encode())
    _assert_matches_sb3_weights(evil_data, trained, direct_task)
    weights = io.BytesIO()
    torch.save({"action_net.weight": _WritesMarker(marker)}, weights)
    evil_weights = _rewrite(trained, tmp_path / "evil_weights.zip", **{"policy.pth": weights.getvalue()})
    with pytest.raises(ModelError, match="policy.pth is not a plain state dict"):
        load_model(f"sb3:{evil_weights}", direct_task)
    assert not marker.exists()
    pickle.loads(payload)  # the payload is live: unpickling it does create the marker
    assert marker.exists()


def _zip(path: Path, **members: bytes) -> Path:
    with zipfile.ZipFile(path, "w") as z:
        for name, raw in members.items():
            z.writestr(name, raw)
    return path


def _state_bytes(state: dict) -> bytes:
    buf = io.BytesIO()
    torch.save(state, buf)
    return buf.getvalue()


def test_broken_files_are_refused(trained: Path, direct_task: CompositionPolicyTask, tmp_path: Path) -> None:
    text = tmp_path / "notes.zip"
    text.write_text("hello")
    cases = {
        str(tmp_path / "missing.zip"): "not found",
        str(text): "not a zip file",
        str(_rewrite(trained, tmp_path / "no_policy.zip", **{"policy.pth": None})): "no policy.pth",
        str(
            _zip(tmp_path / "cnn.zip", **{"policy.pth": _state_bytes({"cnn.weight": torch.zeros(2, 2)})})
        ): "not an actor-critic MLP state dict",
        str(
            _rewrite(
                trained,
                tmp_path / "extra.zip",
                **{
                    "policy.pth": _state_bytes(
                        {
                            **torch.load(io.BytesIO(zipfile.ZipFile(trained).read("policy.pth")), weights_only=True),
                            "log_std": torch.zeros(33),
                        }
                    )
                },
            )
        ): r"unexpected \['log_std'\]",
    }
    for path, message in cases.items():
        with pytest.raises(ModelError, match=message):
            load_model(f"sb3:{path}", direct_task)


def test_unsupported_architectures_are_refused(
    trained: Path, direct_task: CompositionPolicyTask, tmp_path: Path
) -> None:
    data = json.loads(zipfile.ZipFile(trained).read("data"))
    data["policy_kwargs"]["activation_fn"] = "<class 'mypackage.Swish'>"
    custom = _rewrite(trained, tmp_path / "custom.zip", data=json.dumps(data).encode())
    with pytest.raises(ModelError, match="not a torch.nn activation"):
        load_model(f"sb3:{custom}", direct_task)


def test_wrong_task_or_spaces_are_refused(trained: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    with pytest.raises(ModelError, match=r"1584 \(observation shape \(48,\)\)"):
        load_model(f"sb3:{trained}", fmbench.make_task("fmbench/ComposeTokensPolicy-v0"))
    with pytest.raises(ModelError, match="SB3 policies fit policy tasks"):
        load_model(f"sb3:{trained}", fmbench.make_task("fmbench/ComposeDirect-v0"))
    monkeypatch.setitem(sys.modules, "stable_baselines3.common.policies", None)
    with pytest.raises(ModelError, match=r"pip install 'fmbench\[sb3\]'"):
        load_model(f"sb3:{trained}", fmbench.make_task("fmbench/ComposeTokensPolicy-v0"))


def _deflated_zip(**members: bytes) -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as z:
        for name, raw in members.items():
            z.writestr(name, raw)
    return buffer.getvalue()


def test_zip_bombs_and_oversized_members_are_refused_before_decompressing(
    direct_task: CompositionPolicyTask, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from fmbench import sb3

    bomb = tmp_path / "bomb.zip"
    bomb.write_bytes(_deflated_zip(**{"policy.pth": bytes(2 << 20)}))
    inner = _zip(tmp_path / "inner.zip", **{"policy.pth": _deflated_zip(**{"archive/data/0": bytes(2 << 20)})})
    not_torch_zip = _zip(tmp_path / "legacy.zip", **{"policy.pth": b"\x80\x02 a legacy torch pickle"})
    cases = {
        bomb: r"bomb.zip: member policy.pth expands 2097152 bytes from \d+ \(over 100x\): a zip bomb\?",
        inner: r"inner.zip: policy.pth: member archive/data/0 expands 2097152 bytes",
        not_torch_zip: "policy.pth is not in torch's zip format",
    }
    for path, message in cases.items():
        with pytest.raises(ModelError, match=message):
            load_model(f"sb3:{path}", direct_task)
    monkeypatch.setattr(sb3, "MAX_MEMBER_BYTES", 1000)
    plain = _zip(tmp_path / "plain.zip", **{"policy.pth": bytes(2000)})
    with pytest.raises(ModelError, match=r"plain.zip: member policy.pth declares 2000 bytes \(limit 1000\)"):
        load_model(f"sb3:{plain}", direct_task)
    many = _zip(tmp_path / "many.zip", **{"policy.pth": bytes(900), "data": bytes(900), "other": bytes(900)})
    monkeypatch.setattr(sb3, "MAX_TOTAL_BYTES", 2000)
    with pytest.raises(ModelError, match="many.zip: members declare over 2000 bytes in all"):
        load_model(f"sb3:{many}", direct_task)
