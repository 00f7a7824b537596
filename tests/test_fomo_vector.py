"""FoMo vector envs: one batched reward-model call per vector step, the same rewards as the per-env FoMo env."""

from __future__ import annotations

import gymnasium as gym
import numpy as np
import pytest
import torch
from gymnasium.vector import SyncVectorEnv
from stable_baselines3.common.vec_env import DummyVecEnv
from tokenizers import Tokenizer, models, pre_tokenizers
from transformers import GPT2Config, GPT2LMHeadModel, PreTrainedTokenizerFast

from fmbench.causal_lm import byte_tokenizer
from fmbench.errors import InputError, ModelError
from fmbench.studies.fomo.lm import LMScorer
from fmbench.studies.fomo.rewards import FMReward, RandomReward
from fmbench.studies.fomo.vector import FoMoVecEnv, FoMoVectorEnv
from fmbench.studies.fomo.vision import OracleVision

ENV = "fmbench/FoMoGoToRedBall-v0"
N_ENVS, STEPS = 2, 70  # GoToRedBall truncates at 64 steps: every sub-env ends at least once


def _tiny_reward(normalisation: str = "pmi") -> FMReward:
    """Oracle captions + a random one-layer GPT-2 over bytes: a fresh model and memo per call."""
    cfg = GPT2Config(
        vocab_size=257, n_positions=1024, n_layer=1, n_embd=16, n_head=2, bos_token_id=256, eos_token_id=256
    )
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(0)
        model = GPT2LMHeadModel(cfg).eval()
    return FMReward(OracleVision(), LMScorer(model, byte_tokenizer(), "tiny-gpt2", batch_size=64), normalisation)


def _fns(mode: str, reward_model=None, env=ENV) -> list:
    return [lambda: gym.make(env, reward_model=reward_model or _tiny_reward(), reward_mode=mode)] * N_ENVS


class Counting:
    """A reward model that counts calls and trajectories."""

    def __init__(self, model) -> None:
        self.model, self.name, self.needs_frames = model, model.name, model.needs_frames
        self.calls, self.scored = 0, 0

    def score(self, trajectories):
        self.calls, self.scored = self.calls + 1, self.scored + len(trajectories)
        return self.model.score(trajectories)


def _actions(steps: int) -> np.ndarray:
    return np.random.default_rng(1).integers(0, 3, (steps, N_ENVS))  # turn and move


@pytest.mark.slow  # 70 vector steps of 2 envs, twice, with a tiny LM: ~2-3 s each
@pytest.mark.parametrize("mode", ["episode", "dense"])
def test_gymnasium_vector_env_matches_per_env_rewards(mode):
    reference = SyncVectorEnv(_fns(mode))  # each sub-env scores itself (its own model and memo)
    counted = Counting(_tiny_reward())
    batched = FoMoVectorEnv(_fns(mode, counted))
    reference.reset(seed=7)
    batched.reset(seed=7)
    ends = 0
    for actions in _actions(STEPS):
        _, r_ref, term, trunc, _ = reference.step(actions)
        _, r_bat, term_b, trunc_b, _ = batched.step(actions)
        np.testing.assert_array_equal(term | trunc, term_b | trunc_b)
        np.testing.assert_allclose(r_bat, r_ref, atol=1e-5, rtol=0)
        ends += int((term | trunc).sum())
    assert ends >= N_ENVS  # episodes ended, and autoreset ran
    assert counted.calls <= STEPS + 1  # at most one call per vector step (and the reset)
    if mode == "episode":
        assert counted.scored == ends


@pytest.mark.slow  # as above
@pytest.mark.parametrize("mode", ["episode", "dense"])
def test_sb3_vec_env_matches_per_env_rewards(mode):
    reference = DummyVecEnv(_fns(mode))
    batched = FoMoVecEnv(_fns(mode))
    reference.seed(3)
    batched.seed(3)
    np.testing.assert_array_equal(reference.reset()["view"], batched.reset()["view"])
    dones = 0
    for actions in _actions(STEPS):
        obs_ref, r_ref, d_ref, info_ref = reference.step(actions)
        obs_bat, r_bat, d_bat, info_bat = batched.step(actions)
        np.testing.assert_array_equal(d_ref, d_bat)
        np.testing.assert_array_equal(obs_ref["view"], obs_bat["view"])
        np.testing.assert_allclose(r_bat, r_ref, atol=1e-5, rtol=0)
        dones += int(d_ref.sum())
        for i in np.flatnonzero(d_bat):
            assert "terminal_observation" in info_bat[i]
    assert dones >= N_ENVS


def test_bad_sub_envs_are_refused():
    mixed = [lambda: gym.make(ENV, reward_model=RandomReward()), lambda: gym.make("fmbench/FoMoGoToLocal-v0")]
    with pytest.raises(InputError, match=r"share one level; got \['GoToLocal', 'GoToRedBall'\]"):
        FoMoVectorEnv(mixed)
    with pytest.raises(InputError, match="the true reward has nothing to batch"):
        FoMoVecEnv([lambda: gym.make(ENV, reward="true")])
    modes = [lambda m=m: gym.make(ENV, reward_model=RandomReward(), reward_mode=m) for m in ("episode", "dense")]
    with pytest.raises(InputError, match="share one reward model and mode"):
        FoMoVecEnv(modes)
    with pytest.raises(InputError, match="batch FoMoEnv rewards"):
        FoMoVectorEnv([lambda: gym.make("CartPole-v1")])


def test_an_lm_lacking_mission_words_is_refused():
    vocab = ["[UNK]", "[PAD]", *"Description of what the agent did: go to the red ball".split()]
    words = Tokenizer(models.WordLevel({w: i for i, w in enumerate(vocab)}, unk_token="[UNK]"))
    words.pre_tokenizer = pre_tokenizers.WhitespaceSplit()
    tokenizer = PreTrainedTokenizerFast(tokenizer_object=words, unk_token="[UNK]", pad_token="[PAD]")
    cfg = GPT2Config(
        vocab_size=len(vocab), n_positions=64, n_layer=1, n_embd=8, n_head=2, bos_token_id=0, eos_token_id=0
    )
    reward = FMReward(OracleVision(), LMScorer(GPT2LMHeadModel(cfg).eval(), tokenizer, "words-lm"), "sum")
    with pytest.raises(ModelError, match=r"^words-lm: its tokenizer has no tokens for the mission words \['a', 'af"):
        FoMoVectorEnv([lambda: gym.make(ENV, reward_model=reward)])
