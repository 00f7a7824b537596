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
from fmbench.errors import InputError

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


# ---- the env contract (fmbench.env_contract): options checked at make, actions checked, no step past the end ----


def _fast_kwargs(env_id: str) -> dict:
    """Options that keep the env from loading a language model (the level's true reward for FoMo envs)."""
    return {"reward": "true"} if _loads_smollm2(env_id) else {}


def _string_options(env_id: str) -> list[tuple[str, str]]:
    """(name, env id in the error) of every constructor option with a string default or spec value."""
    spec = gym.spec(env_id)
    params = inspect.signature(load_env_creator(spec.entry_point)).parameters.values()
    return [
        (p.name, "" if p.name in spec.kwargs else env_id)  # a bad registered option changes which env it is
        for p in params
        if isinstance(spec.kwargs.get(p.name, p.default), str) or p.name == "render_mode"
    ]


BAD_OPTIONS = [pytest.param(e, name, named, id=f"{e}-{name}") for e in ENVS for name, named in _string_options(e)]


@pytest.mark.filterwarnings("ignore:.*render_mode:UserWarning")
@pytest.mark.parametrize("env_id, option, named", BAD_OPTIONS)
def test_a_bad_option_is_refused_at_make(env_id, option, named):
    with pytest.raises(InputError, match="nonsense") as refused:
        gym.make(env_id, **{option: "nonsense"})
    assert "\n" not in str(refused.value) and named in str(refused.value)


def test_every_env_has_an_option_checked_at_make():
    assert {e for e, *_ in (p.values for p in BAD_OPTIONS)} == set(ENVS)


def _started(env_id: str) -> gym.Env:
    env = gym.make(env_id, **_fast_kwargs(env_id))
    env.reset(seed=0)
    return env


@pytest.mark.parametrize("env_id", ENVS)
def test_actions_outside_the_action_space_are_refused(env_id):
    env = _started(env_id)
    space = env.action_space
    assert isinstance(space, gym.spaces.Discrete), f"add bad actions for {space} to this test"
    first = int(space.start)
    for action in (first + 0.5, float(first), str(first), first + int(space.n), first - 1, np.array([first])):
        with pytest.raises(InputError, match="is not in Discrete") as refused:
            env.step(action)
        assert "\n" not in str(refused.value) and env_id in str(refused.value)
    env.step(np.int64(first))  # numpy integers are actions
    env.step(first)


@pytest.mark.parametrize("env_id", ENVS)
def test_step_after_the_episode_ends_raises_until_reset(env_id):
    env = _started(env_id)
    env.action_space.seed(0)
    for _ in range(100_000):
        _, _, terminated, truncated, _ = env.step(env.action_space.sample())
        if terminated or truncated:
            break
    assert terminated or truncated, "the episode never ended"
    for _ in range(2):
        with pytest.raises(gym.error.ResetNeeded, match="call reset") as refused:
            env.step(env.action_space.sample())
        assert "\n" not in str(refused.value) and env_id in str(refused.value)
    env.reset(seed=1)
    env.step(env.action_space.sample())


@pytest.mark.parametrize("env_id", ENVS)
def test_step_before_the_first_reset_raises(env_id):
    with pytest.raises(gym.error.ResetNeeded, match="call reset"):
        gym.make(env_id, **_fast_kwargs(env_id)).unwrapped.step(0)
