"""The composition env (rewards, termination, info, rendering) and the policy task scoring it."""

from __future__ import annotations

import gymnasium as gym
import numpy as np
import pytest

import fmbench
from fmbench.errors import ModelError
from fmbench.models import LoadedModel
from fmbench.studies.compositional.env import DOCUMENT_SEED, CompositionEnv

ENVS = ["fmbench/ComposeTokensStepByStep-v0", "fmbench/ComposeTokensDirect-v0"]
POLICY_TASK = "fmbench/ComposeTokensPolicy-v0"


def _episode(env_id: str, seed: int, wrong_at: int | None = None) -> tuple[float, list[dict], np.ndarray, np.ndarray]:
    """Write the reference answer (with one wrong token at ``wrong_at``): return, step infos, last obs, document."""
    env = gym.make(env_id, split="test")
    obs, info = env.reset(seed=seed)
    world = env.unwrapped.world
    doc = world.documents("test", DOCUMENT_SEED, np.array([info["document_index"]]))[0]
    assert (obs[: world.prompt_length] == doc[: world.prompt_length]).all()
    assert (obs[world.prompt_length :] == world.pad_id).all()
    total, infos = 0.0, []
    for t in range(world.answer_length):
        token = doc[world.prompt_length + t]
        action = (token + 1) % len(world.vocab) if t == wrong_at else token
        obs, reward, terminated, truncated, info = env.step(action)
        total += reward
        infos.append(info)
        assert terminated == (t == world.answer_length - 1)
    return total, infos, obs, doc


@pytest.mark.parametrize("env_id", ENVS)
def test_reference_answer_scores_one(env_id: str) -> None:
    total, infos, obs, doc = _episode(env_id, seed=3)
    assert total == pytest.approx(1.0)
    assert infos[-1]["exact_match"] and not any(i["exact_match"] for i in infos[:-1])
    assert (obs == doc).all()


@pytest.mark.parametrize("env_id", ENVS)
def test_one_wrong_token_costs_its_share(env_id: str) -> None:
    total, infos, obs, doc = _episode(env_id, seed=3, wrong_at=2)
    answer_length = len(infos)
    assert total == pytest.approx(1.0 - 1.0 / answer_length)
    assert not infos[-1]["exact_match"]
    assert (obs != doc).sum() == 1


def test_info_names_the_document() -> None:
    env = gym.make("fmbench/ComposeTokensDirect-v0")
    _, info = env.reset(seed=0)
    world = env.unwrapped.world
    doc = world.documents("train", DOCUMENT_SEED, np.array([info["document_index"]]))[0]
    assert info["composition"] == " ".join(world.decode(doc[1 : 1 + world.config.depth]))
    assert env.reset(seed=0)[1] == info


def test_step_after_the_end_needs_a_reset() -> None:
    env = CompositionEnv("fmbench/ComposeDirect-v0")
    with pytest.raises(gym.error.ResetNeeded):
        env.step(0)
    env.reset(seed=0)
    for _ in range(env.world.answer_length):
        env.step(0)
    with pytest.raises(gym.error.ResetNeeded):
        env.step(0)
    env.reset(seed=1)
    with pytest.raises(ValueError, match="not in"):
        env.step(len(env.world.vocab))


def test_render_shows_the_tokens_written() -> None:
    env = gym.make("fmbench/ComposeTokensDirect-v0", render_mode="ansi")
    env.reset(seed=0)
    env.step(0)
    text = env.render()
    world = env.unwrapped.world
    assert text.startswith("<bos> ") and text.endswith(" <sep> x0")
    assert len(text.split()) == world.prompt_length + 1


@pytest.mark.parametrize(
    "kwargs, message",
    [
        ({"split": "valid"}, "unknown split"),
        ({"render_mode": "human"}, "render_mode"),
        ({"task": POLICY_TASK}, "not a composition task"),
    ],
)
def test_bad_arguments_are_refused(kwargs: dict, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        CompositionEnv(**kwargs)


# ---- the policy task --------------------------------------------------------------------
def _policy(fn) -> LoadedModel:
    return LoadedModel(
        model=fn, spec="python:test", name="test", interface="policy", n_params=0, weights_sha256=None, dtype="none"
    )


def _oracle(task) -> LoadedModel:
    """Writes each episode's reference answer, looked up by the prompt in the exported documents."""
    chunk = next(task.export_chunks("test", 0))
    start = task.world.prompt_length
    answers = {doc[:start].tobytes(): doc[start:] for doc in chunk["token_ids"]}
    pad = task.world.pad_id
    return _policy(lambda obs: np.array([answers[o[:start].tobytes()][(o[start:] != pad).sum()] for o in obs]))


def test_oracle_policy_scores_perfectly() -> None:
    task = fmbench.make_task(POLICY_TASK)
    scores = task.evaluate(_oracle(task), seed=0, batch_size=100)
    assert scores["mean_return"] == pytest.approx(1.0) and scores["exact_match"] == 1.0


def test_random_baseline_depends_only_on_the_seed() -> None:
    task = fmbench.make_task(POLICY_TASK)
    random = task.load_baseline("random")
    task.check_model(random)
    first = task.evaluate(random, seed=1)
    assert task.evaluate(random, seed=1, batch_size=100) == first
    assert set(first) == set(task.spec.metrics)
    assert 0.0 < first["mean_return"] < 0.1 and first["exact_match"] == 0.0
    assert task.evaluate(random, seed=1, limit=256) == first
    assert task.evaluate(random, seed=1, limit=10) != first


def test_data_follows_the_seed() -> None:
    task = fmbench.make_task(POLICY_TASK)
    assert task.data_hash(0) == task.data_hash(0) != task.data_hash(1)
    chunk = next(task.export_chunks("test", 0))
    assert chunk["token_ids"].shape == (task.episodes, task.world.document_length)
    assert (chunk["document_index"] == task.document_indices(0)).all()
    assert (chunk["ids"] == np.arange(task.episodes)).all()
    stats = task.stats(0)
    assert stats["episodes"] == task.split_size("test") == 256
    assert stats["test"]["held_out_episodes"] + stats["test"]["seen_episodes"] == 256


@pytest.mark.parametrize(
    "fn, message",
    [
        (lambda obs: np.zeros(len(obs) + 1, dtype=np.int64), "shape"),
        (lambda obs: np.zeros(len(obs)), "float64 actions"),
        (lambda obs: np.full(len(obs), 99), "outside"),
        (lambda obs: [0] * len(obs), "returned list"),
        (lambda obs: 1 / 0, "ZeroDivisionError"),
    ],
)
def test_malformed_policies_are_refused(fn, message: str) -> None:
    with pytest.raises(ModelError, match=message):
        fmbench.make_task(POLICY_TASK).check_model(_policy(fn))


def test_sequence_models_are_refused() -> None:
    task = fmbench.make_task(POLICY_TASK)
    model = fmbench.make_task("fmbench/ComposeDirect-v0").load_baseline("untrained")
    with pytest.raises(ModelError, match="scores a 'policy'"):
        task.check_model(model)
