"""The FoMo model backends on tiny, randomly initialised models: they check wiring, not quality.

* :class:`HFCaptionVision` on a tiny VisionEncoderDecoder (ViT encoder, GPT-2 decoder, a
  word-level tokenizer built offline) saved to a tmp folder;
* :class:`CLIPReward` on a tiny open_clip architecture registered from a JSON config, with
  ``:random`` weights.

Nothing is downloaded; the random models' captions and scores mean nothing.
"""

from __future__ import annotations

import json

import numpy as np
import pytest

from fmbench.errors import ModelError
from fmbench.studies.fomo.hf_vision import HFCaptionVision, join_captions, keyframe_indices
from fmbench.studies.fomo.rollouts import run_policy
from fmbench.studies.fomo.trajectory import Trajectory, TrajectoryError

WORDS = ["[PAD]", "[BOS]", "[EOS]", "[UNK]", "a", "the", "agent", "red", "blue", "ball", "key", "grid"]
TINY_CLIP = "fmbench-test-tiny-clip"


@pytest.fixture(scope="module")
def trajectories() -> list[Trajectory]:
    runs = [run_policy("GoToRedBall", seed=s, frames=True) for s in (0, 1)]
    return [Trajectory(r.mission, r.scenes, r.frames) for r in runs]


@pytest.fixture(scope="module")
def captioner_dir(tmp_path_factory) -> str:
    """A tiny random image-to-text model (weights scaled up so that captions vary with the image)."""
    pytest.importorskip("transformers")
    import torch
    from tokenizers import Tokenizer, models, pre_tokenizers
    from transformers import (
        GPT2Config,
        PreTrainedTokenizerFast,
        VisionEncoderDecoderConfig,
        VisionEncoderDecoderModel,
        ViTConfig,
        ViTImageProcessor,
    )

    words = Tokenizer(models.WordLevel({w: i for i, w in enumerate(WORDS)}, unk_token="[UNK]"))
    words.pre_tokenizer = pre_tokenizers.Whitespace()
    tokenizer = PreTrainedTokenizerFast(
        tokenizer_object=words, pad_token="[PAD]", bos_token="[BOS]", eos_token="[EOS]", unk_token="[UNK]"
    )
    encoder = ViTConfig(
        image_size=32,
        patch_size=8,
        hidden_size=16,
        num_hidden_layers=1,
        num_attention_heads=2,
        intermediate_size=32,
        initializer_range=1.0,
    )
    decoder = GPT2Config(
        vocab_size=len(WORDS),
        n_positions=32,
        n_embd=16,
        n_layer=1,
        n_head=2,
        bos_token_id=1,
        eos_token_id=2,
        pad_token_id=0,
        initializer_range=1.0,
    )
    config = VisionEncoderDecoderConfig.from_encoder_decoder_configs(encoder, decoder)
    config.decoder_start_token_id, config.pad_token_id, config.eos_token_id = 1, 0, 2
    torch.manual_seed(0)
    model = VisionEncoderDecoderModel(config)
    model.generation_config.decoder_start_token_id = 1
    model.generation_config.pad_token_id, model.generation_config.eos_token_id = 0, 2
    folder = tmp_path_factory.mktemp("captioner") / "tiny-captioner"
    model.save_pretrained(folder)
    tokenizer.save_pretrained(folder)
    ViTImageProcessor(size={"height": 32, "width": 32}).save_pretrained(folder)
    return str(folder)


@pytest.fixture(scope="module")
def vision(captioner_dir) -> HFCaptionVision:
    return HFCaptionVision(captioner_dir, max_new_tokens=6)


def test_keyframes_and_caption_format():
    assert keyframe_indices(8, 4) == [0, 2, 5, 7]
    assert keyframe_indices(1, 4) == [0] and keyframe_indices(3, 4) == [0, 1, 2]
    text = join_captions(["a grid.", " a grid", "a key", "a grid"])
    assert text == "At first: a grid. Then: a key. At the end: a grid."
    assert join_captions(["a ball", "a ball"]) == "At the end: a ball."


def test_hf_caption_vision_wiring(vision, captioner_dir, trajectories):
    t = trajectories[0]
    assert vision.name == "hf-tiny-captioner" and vision.needs_frames
    text = vision.text(t)
    assert text.startswith(("At first: ", "At the end: ")) and text.endswith(".")
    assert HFCaptionVision(captioner_dir, max_new_tokens=6).text(t) == text  # deterministic across loads
    prefixes = vision.prefix_texts(t)
    assert len(prefixes) == len(t.frames) and prefixes[-1] == text
    assert all(isinstance(p, str) and p for p in prefixes)


def test_hf_caption_vision_memo(vision, trajectories, monkeypatch):
    t = trajectories[0]
    before = (vision.text(t), vision.prefix_texts(t))
    assert len(vision._memo) <= len(t.frames)

    def no_generate(*args, **kwargs):
        raise AssertionError("a memoised frame was captioned again")

    monkeypatch.setattr(vision.model, "generate", no_generate)
    assert (vision.text(t), vision.prefix_texts(t)) == before


def test_hf_caption_vision_errors(vision, trajectories, tmp_path):
    with pytest.raises(ModelError, match="not found: .*no-such-model"):
        HFCaptionVision(str(tmp_path / "no-such-model"))
    with pytest.raises(ModelError, match="cannot load"):
        HFCaptionVision(str(tmp_path))
    t = trajectories[0]
    for frames in (t.frames.astype(np.float32), t.frames[..., :2], None):
        bad = Trajectory(t.instruction, t.scenes, frames)
        with pytest.raises(TrajectoryError):
            vision.text(bad)
        with pytest.raises(TrajectoryError):
            vision.prefix_texts(bad)


@pytest.fixture(scope="module")
def clip_name(tmp_path_factory) -> str:
    """Registers a tiny open_clip architecture (stock BPE tokenizer, so the full vocabulary)."""
    open_clip = pytest.importorskip("open_clip")
    config = {
        "embed_dim": 16,
        "vision_cfg": {"image_size": 32, "layers": 1, "width": 32, "head_width": 16, "patch_size": 16},
        "text_cfg": {"context_length": 16, "vocab_size": 49408, "width": 32, "heads": 2, "layers": 1},
    }
    path = tmp_path_factory.mktemp("clip") / f"{TINY_CLIP}.json"
    path.write_text(json.dumps(config))
    open_clip.add_model_config(path)
    return TINY_CLIP


def _direct(reward, trajectories: list[Trajectory], alpha: float) -> np.ndarray:
    """The VLM-RM reward on the model's last-frame embeddings, with P as an explicit matrix."""
    x = reward.image_embeddings([t.frames[-1] for t in trajectories])
    g = reward.text_embeddings([t.instruction for t in trajectories])
    b = reward.text_embeddings([reward.baseline])[0]
    out = []
    for xi, gi in zip(x, g):
        d = (gi - b)[:, None]
        p = alpha * (d @ d.T) / (d.T @ d) + (1 - alpha) * np.eye(len(b))
        out.append(1 - np.sum(((xi - gi)[None, :] @ p) ** 2) / 2)
    return np.array(out)


def test_clip_reward_scores(clip_name, trajectories):
    from fmbench.studies.fomo.clip_reward import CLIPReward

    reward = CLIPReward.from_spec(f"{clip_name}:random")
    assert reward.name == f"clip-{clip_name}" and reward.needs_frames
    scores = reward.score(trajectories)
    assert scores.shape == (2,) and scores.dtype == np.float64 and np.isfinite(scores).all()
    np.testing.assert_array_equal(reward.score(trajectories), scores)
    np.testing.assert_array_equal(CLIPReward.from_spec(f"{clip_name}:random").score(trajectories), scores)
    np.testing.assert_allclose(scores, _direct(reward, trajectories, 0.5), atol=1e-12)
    mean = CLIPReward(clip_name, None, frame="mean").score(trajectories)
    assert mean.shape == (2,) and np.isfinite(mean).all()


def test_clip_reward_alpha(clip_name, trajectories):
    from fmbench.studies.fomo.clip_reward import CLIPReward, goal_baseline_reward

    plain = CLIPReward(clip_name, None, alpha=0.0)
    x = plain.image_embeddings([t.frames[-1] for t in trajectories])
    g = plain.text_embeddings([t.instruction for t in trajectories])
    # alpha = 0: plain CLIP cosine similarity, whatever the baseline prompt.
    np.testing.assert_allclose(plain.score(trajectories), (x * g).sum(axis=1), atol=1e-12)
    other = CLIPReward(clip_name, None, alpha=0.0, baseline="something else entirely")
    np.testing.assert_allclose(other.score(trajectories), plain.score(trajectories), atol=1e-12)
    # alpha = 1: only the component along d = g - b counts.
    full = CLIPReward(clip_name, None, alpha=1.0)
    np.testing.assert_allclose(full.score(trajectories), _direct(full, trajectories, 1.0), atol=1e-12)
    b = full.text_embeddings([full.baseline])[0]
    d = g - b
    ortho = np.random.default_rng(0).normal(size=x.shape)
    ortho -= (ortho * d).sum(axis=1, keepdims=True) / (d * d).sum(axis=1, keepdims=True) * d
    np.testing.assert_allclose(goal_baseline_reward(x + ortho, g, b, 1.0), goal_baseline_reward(x, g, b, 1.0))
    assert not np.allclose(goal_baseline_reward(x + ortho, g, b, 0.5), goal_baseline_reward(x, g, b, 0.5))


def test_clip_reward_errors(clip_name, trajectories, tmp_path):
    from fmbench.studies.fomo.clip_reward import CLIPReward

    with pytest.raises(ModelError, match="not found: .*missing.pt"):
        CLIPReward.from_spec(f"{clip_name}:{tmp_path / 'missing.pt'}")
    with pytest.raises(ModelError, match="list_models"):
        CLIPReward.from_spec("no-such-architecture:random")
    with pytest.raises(ModelError, match=":random"):
        CLIPReward.from_spec(clip_name)
    (tmp_path / "tiny.pt").write_bytes(bytes(1000))
    with pytest.raises(ModelError, match=r"tiny.pt: 1000 bytes cannot hold the \d+ parameters of CLIP model"):
        CLIPReward.from_spec(f"{clip_name}:{tmp_path / 'tiny.pt'}")
    t = trajectories[0]
    with pytest.raises(TrajectoryError):
        CLIPReward(clip_name, None).score([Trajectory(t.instruction, t.scenes, t.frames.astype(np.float32))])
