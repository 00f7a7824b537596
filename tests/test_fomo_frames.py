"""The fast frame renderer draws exactly minigrid's ``get_frame(highlight=True)``."""

import gymnasium as gym
import minigrid  # noqa: F401  (registers the BabyAI levels)
import numpy as np
import pytest

from fmbench.studies.fomo.frames import highlight_mask, render_frame, seen_cells, top_down_frames
from fmbench.studies.fomo.scene import encode_grid, scene_of


@pytest.mark.parametrize("level", ["BabyAI-GoToLocal-v0", "BabyAI-UnlockLocal-v0"])
def test_frames_equal_minigrids_along_random_walks(level):
    # Random walks pick things up, open and unlock doors, face walls and turn: every tile kind
    # a BabyAI room shows, at two tile sizes.
    env = gym.make(level).unwrapped
    rng = np.random.default_rng(0)
    checked = 0
    obs, _ = env.reset(seed=0)
    for _ in range(20):
        for tile_size in (32, 8):
            frame = render_frame(scene_of(env), highlight_mask(env, obs["image"]), tile_size)
            expected = env.get_frame(highlight=True, tile_size=tile_size)
            assert frame.dtype == np.uint8 and frame.shape == expected.shape
            assert np.array_equal(frame, expected)
            checked += 1
        obs, _, terminated, truncated, _ = env.step(int(rng.integers(0, 6)))
        if terminated or truncated:
            break
    assert checked >= 10


@pytest.mark.parametrize("level", ["BabyAI-GoToLocal-v0", "BabyAI-UnlockLocal-v0"])
def test_a_walk_drawn_in_one_pass_equals_minigrids_frames(level):
    env = gym.make(level).unwrapped
    rng = np.random.default_rng(2)
    scenes, seen, expected = [], [], []
    obs, _ = env.reset(seed=4)
    for _ in range(40):  # a random walk: turns to every direction (asserted below), walls in view
        scenes.append(scene_of(env))
        seen.append(seen_cells(obs["image"]))
        expected.append(env.get_frame(highlight=True, tile_size=8))
        obs, _, terminated, truncated, _ = env.step(int(rng.integers(0, 6)))
        if terminated or truncated:
            break
    assert len(scenes) >= 10 and len({s.agent_dir for s in scenes}) == 4
    assert np.array_equal(top_down_frames(scenes, seen, tile_size=8), np.stack(expected))


@pytest.mark.parametrize("level", ["BabyAI-GoToLocal-v0", "BabyAI-UnlockLocal-v0", "BabyAI-OpenDoorColor-v0"])
def test_encode_grid_equals_minigrids_encode_along_random_walks(level):
    # carried and dropped objects, opened and unlocked doors, one room and several
    env = gym.make(level).unwrapped
    rng = np.random.default_rng(1)
    for episode in range(3):
        env.reset(seed=episode)
        for _ in range(40):
            got, expected = encode_grid(env.grid), env.grid.encode()
            assert got.dtype == np.uint8 and got.shape == expected.shape and got.flags.c_contiguous
            assert np.array_equal(got, expected)
            _, _, terminated, truncated, _ = env.step(int(rng.integers(0, 6)))
            if terminated or truncated:
                break


def test_highlight_is_what_the_agent_sees():
    env = gym.make("BabyAI-GoToLocal-v0").unwrapped
    obs, _ = env.reset(seed=3)
    mask = highlight_mask(env, obs["image"])
    assert mask[tuple(env.agent_pos)] and mask[tuple(env.front_pos)]
    assert 0 < mask.sum() <= 49
    blind = highlight_mask(env, np.zeros_like(obs["image"]))
    assert not blind.any()


class _ReadsFrames:
    """A reward model that reads frames (never asked to score here)."""

    name, needs_frames = "reads-frames", True

    def score(self, trajectories):
        raise AssertionError("rewards are deferred")


def test_fomo_env_records_minigrids_frames():
    from fmbench.studies.fomo.env import FoMoEnv

    env = FoMoEnv("GoToLocal", reward_model=_ReadsFrames(), tile_size=16)
    env.defer_rewards()
    env.reset(seed=1)
    expected = [env.level.get_frame(highlight=True, tile_size=16)]
    for action in (0, 2, 2, 1, 2, 3):
        *_, terminated, truncated, _ = env.step(action)
        expected.append(env.level.get_frame(highlight=True, tile_size=16))
        if terminated or truncated:
            break
        if len(expected) == 3:  # frames drawn part way (as a dense reward asks) and the rest later
            assert np.array_equal(env.trajectory().frames, np.stack(expected))
    first = env.trajectory()
    assert np.array_equal(first.frames, np.stack(expected))
    first.frames[:] = 0  # a trajectory's frames are its own: writing them spoils no later one
    assert np.array_equal(env.trajectory().frames, np.stack(expected))
