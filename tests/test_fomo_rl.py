"""The FM-reward PPO example (fmbench.studies.fomo.rl): a few hundred steps on the true reward, never a full run."""

from __future__ import annotations

import pytest
import torch

pytest.importorskip("stable_baselines3")

from fmbench.studies.fomo.rl import POLICY_KEYS, PPOConfig, make_env, random_success, train_ppo  # noqa: E402

TINY = PPOConfig(steps=256, n_envs=2, n_steps=64, batch_size=64, n_epochs=1, eval_every=128, eval_episodes=3)


@pytest.fixture(autouse=True)
def one_thread():
    """One torch thread, as the script uses: a tiny MLP on many threads is slower on a busy CPU."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def test_policy_sees_view_and_direction_only():
    obs, info = make_env().reset(seed=0)
    assert set(obs) == set(POLICY_KEYS) and obs["view"].shape == (147,)
    assert info["mission"] == "go to the red ball"


@pytest.mark.slow  # PPO training
def test_train_ppo_record():
    record = train_ppo("true", seed=0, cfg=TINY)
    assert record["reward"] == "true" and record["seed"] == 0
    assert record["eval_steps"] == [0, 128, 256]
    assert len(record["success"]) == 3 and record["final_success"] == record["success"][-1]
    assert all(0.0 <= s <= 1.0 and s * 3 == round(s * 3) for s in record["success"])
    assert record["steps_to_0.9"] in (None, *record["eval_steps"])
    assert record["wall_s"] >= 0 and "fm_reward_calls" not in record
    assert train_ppo("true", seed=0, cfg=TINY)["success"] == record["success"]  # reproducible


def test_random_success_is_a_seeded_rate():
    rate = random_success(seed=0, episodes=3)
    assert 0.0 <= rate <= 1.0 and rate == random_success(seed=0, episodes=3)


def test_eval_interval_must_divide_into_env_steps():
    with pytest.raises(ValueError, match="multiple of n_envs"):
        train_ppo("true", seed=0, cfg=PPOConfig(steps=64, n_envs=3, eval_every=64))


@pytest.mark.slow  # PPO training
def test_fm_reward_ppo_scores_episode_ends_in_batches():
    record = train_ppo("random", seed=0, cfg=TINY)  # a cheap reward model through the same FoMoVecEnv path
    vector_steps = TINY.steps // TINY.n_envs
    assert 0 < record["fm_reward_batches"] <= min(record["fm_reward_calls"], vector_steps)
