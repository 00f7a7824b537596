"""Checks every registered environment with Gymnasium's and SB3's checkers."""

from __future__ import annotations

import inspect
import pickle
import subprocess
import sys
import warnings

import gymnasium as gym
import numpy as np
import pytest
from gymnasium.envs.registration import EnvSpec, load_env_creator
from gymnasium.utils.env_checker import check_env

import fmbench

ENVS = fmbench.list_envs()


def _loads_smollm2(env_id: str) -> bool:
    """Whether the env's reward model (its ``reward`` keyword, given or default) runs SmolLM2 (a minute to load)."""
    spec = gym.spec(env_id)
    param = inspect.signature(load_env_creator(spec.entry_point)).parameters.get("reward")
    return "smollm2" in str(spec.kwargs.get("reward", param.default if param else ""))


# The cases that step an env; those whose reward loads SmolLM2 are slow.
STEPPED = [pytest.param(e, marks=[pytest.mark.slow] if _loads_smollm2(e) else []) for e in ENVS]


def test_envs_are_registered_with_gymnasium():
    assert ENVS, "the registry declares no env"
    assert all(e in gym.registry for e in ENVS)


def test_registration_is_idempotent():
    before = {e: gym.registry[e] for e in ENVS}
    fmbench.register_envs()
    assert {e: gym.registry[e] for e in ENVS} == before


@pytest.mark.parametrize("env_id", STEPPED)
def test_gymnasium_check_env_without_warnings(env_id):
    env = gym.make(env_id)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        check_env(env.unwrapped)
    env.close()


@pytest.mark.parametrize("env_id", STEPPED)
def test_sb3_check_env(env_id):
    sb3_checker = pytest.importorskip("stable_baselines3.common.env_checker")
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        sb3_checker.check_env(gym.make(env_id).unwrapped)


def _rollout(env_id: str, seed: int, steps: int = 50) -> list:
    env = gym.make(env_id)
    obs, _ = env.reset(seed=seed)
    env.action_space.seed(seed)
    trace = [obs]
    for _ in range(steps):
        obs, reward, terminated, truncated, info = env.step(env.action_space.sample())
        trace.append((obs, reward, terminated, truncated))
        if terminated or truncated:
            obs, _ = env.reset()
            trace.append(obs)
    return trace


def _same(a, b) -> bool:
    if isinstance(a, dict):
        return isinstance(b, dict) and a.keys() == b.keys() and all(_same(a[k], b[k]) for k in a)
    if isinstance(a, (tuple, list)):
        return len(a) == len(b) and all(_same(x, y) for x, y in zip(a, b))
    return bool(np.array_equal(a, b))


@pytest.mark.parametrize("env_id", STEPPED)
def test_seeded_rollouts_are_deterministic(env_id):
    assert _same(_rollout(env_id, 3), _rollout(env_id, 3))
    assert not _same(_rollout(env_id, 3), _rollout(env_id, 4))


@pytest.mark.parametrize("env_id", STEPPED)
def test_pickling_keeps_state(env_id):
    env = gym.make(env_id)
    env.reset(seed=0)
    env.step(env.action_space.sample())
    clone = pickle.loads(pickle.dumps(env))
    action = env.action_space.sample()
    assert _same(env.step(action)[:4], clone.step(action)[:4])


@pytest.mark.parametrize("env_id", ENVS)
def test_spec_json_round_trip(env_id):
    spec = gym.spec(env_id)
    assert EnvSpec.from_json(spec.to_json()) == spec


@pytest.mark.parametrize("env_id", STEPPED)
def test_make_vec(env_id):
    envs = gym.make_vec(env_id, num_envs=2)
    obs, _ = envs.reset(seed=0)
    assert all(len(leaf) == 2 for leaf in (obs.values() if isinstance(obs, dict) else [obs]))
    envs.step(envs.action_space.sample())
    envs.close()


def test_make_with_module_prefix_in_a_fresh_interpreter():
    code = f"import gymnasium as gym; env = gym.make('fmbench:{ENVS[0]}'); env.reset(seed=0); print('ok')"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "ok"
