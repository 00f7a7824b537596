"""The learned captioner: shipped weights, parsing fresh held-out frames, and frame checks."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from safetensors import safe_open
from safetensors.torch import save_file

gym = pytest.importorskip("gymnasium")
pytest.importorskip("minigrid")

from fmbench.errors import ModelError  # noqa: E402
from fmbench.studies.fomo.captioner import (
    DEFAULT_WEIGHTS,
    LearnedCaptioner,
    TileParser,
    load_parser,  # noqa: E402
    save_parser,
    tiles_of,
)
from fmbench.studies.fomo.captions import caption  # noqa: E402
from fmbench.studies.fomo.scene import scene_of  # noqa: E402
from fmbench.studies.fomo.train_captioner import HELD_OUT_SEED, states  # noqa: E402

FOMO_LEVELS = [
    "BabyAI-GoToRedBallNoDists-v0",
    "BabyAI-GoToLocal-v0",
    "BabyAI-PickupDist-v0",
    "BabyAI-OpenDoorColor-v0",
    "BabyAI-PutNextLocal-v0",
]
FRESH_SEED = 2 * HELD_OUT_SEED + 17  # neither trained on nor in the training script's held-out report


@pytest.fixture(scope="module")
def captioner() -> LearnedCaptioner:
    return LearnedCaptioner.default()


def test_shipped_weights_are_small_and_load(captioner):
    assert DEFAULT_WEIGHTS.stat().st_size < 256 * 1024
    with safe_open(str(DEFAULT_WEIGHTS), framework="pt") as f:
        meta = json.loads(f.metadata()["fmbench"])
    assert meta["architecture"] == "tile_parser" and meta["config"] == captioner.model.config
    assert meta["trained"]["train_accuracy"] == 1.0
    assert sum(p.numel() for p in captioner.model.parameters()) < 100_000
    assert not captioner.model.training


@pytest.mark.parametrize("level", FOMO_LEVELS)
def test_parses_fresh_held_out_episodes(captioner, level):
    env = gym.make(level)
    rng = np.random.default_rng(0)
    for seed, p_random in ((FRESH_SEED, 0.0), (FRESH_SEED + 1, 0.25)):
        truth, frames = [], {8: [], 16: [], 32: []}
        for _ in states(env, seed, p_random, rng, max_steps=40):
            truth.append(scene_of(env))
            for ts, out in frames.items():
                out.append(env.unwrapped.get_frame(highlight=ts != 16, tile_size=ts))
        for ts, out in frames.items():
            parsed = captioner.scenes(np.stack(out), tile_size=ts)
            assert len(parsed) == len(truth)
            assert np.mean([p.same(t) for p, t in zip(parsed, truth)]) >= 0.98, (level, seed, ts)
            if p_random == 0.0:
                assert caption(parsed) == caption(truth)


def test_rgb_array_render_uses_default_tile_size(captioner):
    env = gym.make("BabyAI-GoToLocal-v0", render_mode="rgb_array")
    env.reset(seed=FRESH_SEED)
    (parsed,) = captioner.scenes(env.render()[None], tile_size=32)
    assert parsed.same(scene_of(env))
    assert tiles_of(env.render()[None]).shape[:3] == (1, 8, 8)


@pytest.mark.parametrize("ts", [8, 12, 24, 32])
def test_tiles_are_area_means_of_their_cells(ts):
    frames = np.random.default_rng(ts).integers(0, 256, (2, 3 * ts, 4 * ts, 3), dtype=np.uint8)
    tiles = tiles_of(frames, tile_size=ts)
    assert tiles.shape == (2, 4, 3, 3, 8, 8)
    cell = torch.from_numpy(frames[1, 2 * ts : 3 * ts, ts : 2 * ts]).permute(2, 0, 1).float()  # x = 1, y = 2
    assert torch.allclose(tiles[1, 1, 2], torch.nn.functional.adaptive_avg_pool2d(cell, 8) / 255, atol=1e-6)
    assert torch.equal(tiles_of(frames, grid_size=(4, 3)), tiles)


@pytest.mark.parametrize(
    "frames, kwargs, message",
    [
        (np.zeros((1, 64, 64, 3), np.float32), {"tile_size": 8}, "uint8"),
        (np.zeros((64, 64, 3), np.uint8), {"tile_size": 8}, r"\(T, H, W, 3\)"),
        (np.zeros((1, 64, 64, 4), np.uint8), {"tile_size": 8}, r"\(T, H, W, 3\)"),
        (np.zeros((1, 64, 60, 3), np.uint8), {"tile_size": 8}, "do not divide"),
        (np.zeros((1, 64, 64, 3), np.uint8), {"tile_size": 4}, "at least 8"),
        (np.zeros((1, 64, 64, 3), np.uint8), {"grid_size": (8, 4)}, "not 8x4"),
    ],
)
def test_bad_frames_raise(captioner, frames, kwargs, message):
    with pytest.raises(ValueError, match=message):
        tiles_of(frames, **kwargs)
    if "tile_size" in kwargs:
        with pytest.raises(ValueError, match=message):
            captioner.scenes(frames, kwargs["tile_size"])


def test_save_load_round_trip_and_bad_files(tmp_path):
    model = TileParser(hidden=16, layers=1)
    save_parser(model, tmp_path / "p.safetensors", {"note": "test"})
    loaded = load_parser(tmp_path / "p.safetensors")
    x = torch.rand(5, 3, 8, 8)
    assert all(torch.equal(a, b) for a, b in zip(model(x).values(), loaded(x).values()))
    (tmp_path / "junk.safetensors").write_bytes(b"not a safetensors file")
    with pytest.raises(ModelError, match="not a readable safetensors file"):
        load_parser(tmp_path / "junk.safetensors")
    with pytest.raises(ModelError):
        load_parser(tmp_path / "missing.safetensors")
    assert LearnedCaptioner(model).scenes(np.zeros((0, 64, 64, 3), np.uint8), tile_size=8) == []


def test_a_parser_config_bigger_than_its_weights_is_refused(tmp_path):
    save_parser(TileParser(hidden=16, layers=1), tmp_path / "p.safetensors")
    with safe_open(str(tmp_path / "p.safetensors"), framework="pt") as f:
        weights = {k: f.get_tensor(k) for k in f.keys()}
    meta = {"architecture": "tile_parser", "config": {"hidden": 100_000, "layers": 1}}
    save_file(weights, str(tmp_path / "big.safetensors"), metadata={"fmbench": json.dumps(meta)})
    with pytest.raises(ModelError, match=r"weights do not fit the tile parser config \(wrong shapes"):
        load_parser(tmp_path / "big.safetensors")


def test_parsed_frames_are_remembered(monkeypatch):
    env = gym.make("BabyAI-GoToLocal-v0").unwrapped
    env.reset(seed=FRESH_SEED)
    frames = [env.get_frame(highlight=True, tile_size=8)]
    for action in (0, 2, 2, 1):
        env.step(action)
        frames.append(env.get_frame(highlight=True, tile_size=8))
    frames = np.stack(frames)
    captioner, fresh = LearnedCaptioner.default(), LearnedCaptioner.default()
    parsed = []
    parse = captioner._parse
    monkeypatch.setattr(captioner, "_parse", lambda tiles, ego: parsed.append(len(tiles)) or parse(tiles, ego))
    first = captioner.scenes(frames[:3], tile_size=8)
    assert parsed == [3]
    # the known frames are read from the memo (repeats too), only the new ones are parsed
    again = captioner.scenes(np.concatenate([frames, frames[:2]]), tile_size=8)
    assert parsed == [3, 2]
    expected = fresh.scenes(np.concatenate([frames, frames[:2]]), tile_size=8)
    assert len(again) == 7 and all(a.same(b) for a, b in zip(again, expected))
    assert all(a.same(b) for a, b in zip(first, expected))
    # the same pixels read as another view are parsed anew
    captioner.scenes(frames[:1], tile_size=8, egocentric=True)
    assert parsed == [3, 2, 1]
    # the memo is bounded: past MEMO_FRAMES it starts again
    monkeypatch.setattr("fmbench.studies.fomo.captioner.MEMO_FRAMES", 6)
    captioner.scenes(frames[:1][:, :, ::-1].copy(), tile_size=8)
    assert len(captioner._memo) == 1
