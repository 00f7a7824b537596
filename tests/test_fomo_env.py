"""FoMo envs: true and pluggable rewards, dense mode, frames, bad input."""

from __future__ import annotations

import pickle

import gymnasium as gym
import numpy as np
import pytest

import fmbench  # noqa: F401  (registers the envs)
from fmbench.errors import ModelError
from fmbench.studies.fomo.env import decode_mission, encode_mission
from fmbench.studies.fomo.rollouts import run_policy


class StepCount:
    """A transparent reward model: the number of steps in the trajectory (frames read if asked)."""

    def __init__(self, needs_frames: bool = False, value: float | None = None) -> None:
        self.name, self.needs_frames, self.value, self.calls = "steps", needs_frames, value, []

    def score(self, trajectories):
        self.calls.append([len(t) for t in trajectories])
        for t in trajectories:
            t.check(need_frames=self.needs_frames)
        return np.array([len(t) - 1.0 if self.value is None else self.value for t in trajectories])


def test_true_reward_and_success_info():
    env = gym.make("fmbench/FoMoGoToRedBall-v0", reward="true")
    obs, info = env.reset(seed=0)
    assert decode_mission(obs["mission"]) == info["mission"] == "go to the red ball" and info["success"] is False
    expert = run_policy("GoToRedBall", info["level_seed"])  # the bot on this very layout
    total = 0.0
    for a in expert.actions:
        obs, reward, terminated, truncated, info = env.step(a)
        total += reward
    assert terminated and info["success"] and total == pytest.approx(expert.true_return)


def test_episode_reward_comes_at_the_end_only():
    model = StepCount(needs_frames=True)
    env = gym.make("fmbench/FoMoGoToLocal-v0", reward_model=model, tile_size=8)
    env.reset(seed=1)
    rewards, done = [], False
    while not done:
        _, r, terminated, truncated, _ = env.step(2)
        rewards.append(r)
        done = terminated or truncated
    assert rewards[:-1] == [0.0] * (len(rewards) - 1) and rewards[-1] == len(rewards)
    assert model.calls == [[len(rewards) + 1]]


def test_dense_rewards_sum_to_the_final_score_difference():
    env = gym.make("fmbench/FoMoGoToLocal-v0", reward_model=StepCount(), reward_mode="dense")
    env.reset(seed=2)
    rewards = [env.step(1)[1] for _ in range(5)]
    assert rewards == [1.0] * 5


def test_non_finite_rewards_are_refused():
    env = gym.make("fmbench/FoMoGoToRedBall-v0", reward_model=StepCount(value=float("nan")), reward_mode="dense")
    with pytest.raises(ModelError, match="non-finite"):
        env.reset(seed=0)


def test_render_and_pickling():
    env = gym.make("fmbench/FoMoOpenDoorColor-v0", reward="random", render_mode="rgb_array", tile_size=8)
    env.reset(seed=0)
    frame = env.render()
    grid = env.unwrapped.level.grid
    assert frame.dtype == np.uint8 and frame.shape == (grid.height * 8, grid.width * 8, 3)
    env.step(1)
    clone = pickle.loads(pickle.dumps(env))
    mine, theirs = env.step(2), clone.step(2)
    assert np.array_equal(mine[0]["view"], theirs[0]["view"]) and mine[1:4] == theirs[1:4]


def test_a_named_reward_model_is_rebuilt_not_pickled():
    env = gym.make("fmbench/FoMoGoToRedBall-v0", reward="random")
    env.reset(seed=0)
    assert env.unwrapped.reward_model is not None
    clone = pickle.loads(pickle.dumps(env.unwrapped))
    assert clone._reward_model is None and clone.reward_model.name == "random"


@pytest.mark.filterwarnings("ignore:.*render_mode")
@pytest.mark.parametrize(
    "kwargs,match",
    [
        ({"level": "Maze"}, "unknown BabyAI level"),
        ({"reward_mode": "sometimes"}, "reward_mode"),
        ({"render_mode": "ansi"}, "render_mode"),
        ({"tile_size": 4}, "tile_size"),
    ],
)
def test_bad_arguments(kwargs, match):
    with pytest.raises(ValueError, match=match):
        gym.make("fmbench/FoMoGoToRedBall-v0", **kwargs)


def test_every_level_mission_round_trips_through_the_observation():
    for env_id in [e for e in fmbench.list_envs() if "FoMo" in e]:
        env = gym.make(env_id, reward="true")
        for seed in range(5):
            obs, info = env.reset(seed=seed)
            assert decode_mission(obs["mission"]) == info["mission"]
    with pytest.raises(ValueError, match="unknown words"):
        encode_mission("fly to the moon")


@pytest.mark.parametrize(
    "reward, match",
    [
        ("nonsense", "is not <vision>"),
        ("oracle+smollm2+median", "normalisation"),
        ("telepathy+smollm2", "unknown vision stage"),
        ("learned-facing+smollm2", "unknown vision stage"),
        ("oracle+gpt9", "unknown language model"),
        ("oracle+minilm+pmi", "takes no normalisation"),
        ("clip:ViT-B-32", "CLIP reward"),
        (3, "a reward name is a string"),
    ],
)
def test_a_bad_reward_name_is_refused_at_make_without_loading_a_model(monkeypatch, reward, match):
    def no_loading(*args, **kwargs):
        raise AssertionError("a language model was loaded")

    monkeypatch.setattr("fmbench.studies.fomo.rewards.shared_scorer", no_loading)
    with pytest.raises(ValueError, match=f"^fmbench/FoMoGoToRedBall-v0: .*{match}"):
        gym.make("fmbench/FoMoGoToRedBall-v0", reward=reward)
    for good in (
        "learned+smollm2+pmi",
        "oracle+hf:some/folder+mean",
        "oracle-final+minilm",
        "learned-faced+smollm2+posterior",
        "random",
        "clip:RN50:random",
    ):
        gym.make("fmbench/FoMoGoToRedBall-v0", reward=good)  # checked, not built


def test_a_reward_model_without_score_is_refused_at_make():
    with pytest.raises(ValueError, match="reward_model must have a score"):
        gym.make("fmbench/FoMoGoToRedBall-v0", reward_model=object())
