"""FoMo rewards (arXiv:2312.03881): captions, siblings, rollouts, LM scoring, rewards, metrics."""

from __future__ import annotations

import re

import numpy as np
import pytest
import torch

from fmbench.errors import ModelError
from fmbench.studies.fomo.captions import caption, events, prefix_captions
from fmbench.studies.fomo.instructions import candidates, siblings
from fmbench.studies.fomo.levels import LEVELS, make_level, reset_quietly
from fmbench.studies.fomo.lm import LMScorer
from fmbench.studies.fomo.rewards import FMReward, RandomReward, build_reward
from fmbench.studies.fomo.rollouts import Run, random_actions, replay, run_policy
from fmbench.studies.fomo.scene import OBJECT_TO_IDX, Scene
from fmbench.studies.fomo.task import Layout, reward_metrics
from fmbench.studies.fomo.trajectory import Trajectory, TrajectoryError
from fmbench.studies.fomo.vision import OracleVision

BALL, KEY, DOOR = OBJECT_TO_IDX["ball"], OBJECT_TO_IDX["key"], OBJECT_TO_IDX["door"]


def _room(objects: dict, pos=(1, 1), direction=0) -> Scene:
    grid = np.zeros((5, 5, 3), np.uint8)
    grid[..., 0] = OBJECT_TO_IDX["empty"]
    grid[0, :, 0] = grid[-1, :, 0] = grid[:, 0, 0] = grid[:, -1, 0] = OBJECT_TO_IDX["wall"]
    for (x, y), cell in objects.items():
        grid[x, y] = cell
    return Scene(grid, pos, direction)


# ---- captions -----------------------------------------------------------------------
def test_events_read_off_scenes():
    red_ball, blue_key = (BALL, 0, 0), (KEY, 2, 0)
    start = _room({(2, 1): red_ball, (3, 3): blue_key})  # facing the red ball
    held = _room({(3, 3): blue_key})  # it vanished: picked up
    turned = _room({(3, 3): blue_key}, direction=1)  # faces (1, 2): nothing
    dropped = _room({(3, 3): blue_key, (3, 2): red_ball}, pos=(2, 2), direction=0)
    texts = [e.text for e in events([start, held, turned, dropped])]
    assert texts == ["picked up the red ball", "put the red ball next to the blue key"]
    final = caption([start, held, turned, dropped])
    assert final.endswith("At the end, the agent faces the red ball. The red ball is next to the blue key.")
    assert caption([start, held]).endswith("At the end, the agent faces nothing and carries the red ball.")
    # a frame does not show what the agent carries: the final-state-only caption cannot say it
    assert caption([start, held], "final") == "At the end, the agent faces nothing."
    assert caption([start, held, turned, dropped], "final") == (
        "At the end, the agent faces the red ball. The red ball is next to the blue key."
    )
    # "faced": the last frame less what the faced object lies next to
    assert caption([start, held, turned, dropped], "faced") == "At the end, the agent faces the red ball."


def test_opening_a_door_and_going_to_objects():
    closed, opened = (DOOR, 3, 1), (DOOR, 3, 0)
    away = _room({(1, 2): closed}, direction=0)
    facing = _room({(1, 2): closed}, direction=1)
    done = _room({(1, 2): opened}, direction=1)
    assert [e.text for e in events([away, facing, done])] == ["went to the purple door", "opened the purple door"]
    assert caption([away, facing, done], "final").endswith("The purple door is open.")
    faced = "At the end, the agent faces the purple door. The purple door is open."
    assert caption([away, facing, done], "faced") == faced
    assert caption([away, facing, done], "events") == "The agent went to the purple door, then opened the purple door."


def test_prefix_captions_match_captions_of_prefixes():
    run = run_policy("PickupDist", seed=3)
    assert prefix_captions(run.scenes) == [caption(run.scenes[: k + 1]) for k in range(len(run.scenes))]
    with pytest.raises(ValueError, match="caption content"):
        caption(run.scenes, "everything")


@pytest.mark.parametrize("level", ["GoToLocal", "PutNextLocal"])
def test_faced_caption_is_the_final_one_without_its_next_to_sentence(level):
    runs = [run_policy(level, seed) for seed in range(4)]
    runs += [run_policy(level, seed, actions=random_actions(40, seed)) for seed in range(4)]
    for run in runs:
        final, faced = prefix_captions(run.scenes, "final"), prefix_captions(run.scenes, "faced")
        assert faced == [" ".join(s for s in re.split(r"(?<=\.) ", f) if " is next to " not in s) for f in final]
    assert any(" is next to " in caption(run.scenes, "final") for run in runs)  # the check saw the sentence dropped


def test_a_repeated_scene_object_reads_as_its_copies_do():
    # a parser's memo hands back one Scene object per distinct frame; skipping a scene that is
    # the previous one itself must give the events of distinct but equal scenes
    rng = np.random.default_rng(0)
    runs = (("PickupDist", 3, "top-down"), ("GoToLocal", 5, "top-down"), ("PickupDist", 3, "egocentric"))
    for level, seed, view in runs:
        run = run_policy(level, seed=seed, view=view)
        repeated = [s for s in run.scenes for _ in range(int(rng.integers(1, 4)))]
        copies = [Scene(s.grid.copy(), s.agent_pos, s.agent_dir, s.egocentric) for s in repeated]
        assert any(a is b for a, b in zip(repeated, repeated[1:]))
        assert events(repeated) == events(copies) and caption(repeated) == caption(copies)


# ---- instructions and rollouts ------------------------------------------------------
@pytest.mark.parametrize("level", sorted(LEVELS))
def test_expert_succeeds_and_siblings_differ(level):
    for seed in range(3):
        run = run_policy(level, seed)
        assert run.success and run.true_return > 0
        assert replay(level, seed, run.actions) == (True, run.true_return)
        env = make_level(level)
        reset_quietly(env, seed)
        cands = candidates(env, env.instrs)
        assert env.mission in cands and len(set(cands)) == len(cands)
        for family, instr in siblings(env, env.instrs):
            assert instr.surface(env) != env.mission, family


def test_random_and_truncated_runs_fail_a_hard_level():
    run = run_policy("PutNextLocal", 0, actions=random_actions(10, seed=0), policy="random")
    assert len(run.actions) == 10 and not run.success and run.true_return == 0.0


# ---- trajectories --------------------------------------------------------------------
def test_bad_trajectories_are_refused():
    run = run_policy("GoToRedBall", 0, frames=True, tile_size=8)
    good = Trajectory(run.mission, run.scenes, run.frames, tile_size=8)
    good.check(need_frames=True)
    with pytest.raises(TrajectoryError, match="empty trajectory"):
        Trajectory(run.mission, []).check()
    with pytest.raises(TrajectoryError, match="no mission"):
        Trajectory("", run.scenes).check()
    with pytest.raises(TrajectoryError, match="uint8"):
        Trajectory(run.mission, run.scenes, run.frames.astype(np.float32), tile_size=8).check()
    with pytest.raises(TrajectoryError, match=r"\(T, H, W, 3\)"):
        Trajectory(run.mission, run.scenes, run.frames[..., 0], tile_size=8).check()
    with pytest.raises(TrajectoryError, match="do not fit"):
        Trajectory(run.mission, run.scenes, run.frames, tile_size=16).check()
    with pytest.raises(TrajectoryError, match="no frames"):
        Trajectory(run.mission, run.scenes).check(need_frames=True)
    with pytest.raises(TrajectoryError, match="Trajectory objects"):
        RandomReward().score(["go to the red ball"])


# ---- the language-model stage --------------------------------------------------------
@pytest.fixture(scope="module")
def smollm2() -> LMScorer:
    return LMScorer.default(batch_size=4)


TEXTS = [
    "The agent went to the red ball. At the end, the agent faces the red ball.",
    "The agent went to the blue key. At the end, the agent faces the blue key.",
]
INSTRUCTIONS = ["go to the red ball", "go to the blue key", "pick up the red ball"]


@pytest.mark.slow  # loads SmolLM2
def test_cached_batched_scores_equal_one_full_pass(smollm2):
    pairs = [(t, i) for t in [*TEXTS, None] for i in INSTRUCTIONS]
    cached = smollm2.logprobs(pairs)
    assert np.allclose(cached, [smollm2.logprob_uncached(*p) for p in pairs], atol=1e-4)
    assert np.array_equal(smollm2.logprobs(pairs), cached)  # memoised: same inputs, same scores
    fresh = LMScorer(smollm2.model, smollm2.tokenizer, "smollm2", batch_size=1)
    assert np.allclose(fresh.logprobs(pairs), cached, atol=1e-4)
    # the instruction that the text describes is the likeliest
    assert cached[0] > cached[1] and cached[4] > cached[3]


@pytest.mark.slow  # loads SmolLM2
def test_normalisations(smollm2):
    trajectories = [Trajectory("go to the red ball", [], candidates=tuple(INSTRUCTIONS))]
    texts, instr = TEXTS, ["go to the red ball"] * 2
    cands = [INSTRUCTIONS] * 2
    scores = {
        n: FMReward(OracleVision(), smollm2, n).score_texts(texts, instr, cands)
        for n in ("sum", "mean", "pmi", "contrastive", "posterior")
    }
    lp, n_tok = smollm2.logprobs(list(zip(texts, instr)), with_lengths=True)
    assert np.allclose(scores["sum"], lp) and np.allclose(scores["mean"], lp / n_tok)
    assert np.allclose(scores["pmi"], lp - smollm2.logprobs([(None, instr[0])])[0])
    full = smollm2.logprobs([(t, c) for t in texts for c in INSTRUCTIONS]).reshape(2, 3)
    assert np.allclose(scores["contrastive"], lp - np.logaddexp.reduce(full, axis=1))
    assert (scores["contrastive"] <= 0).all()
    assert np.allclose(scores["posterior"], np.exp(scores["contrastive"]))
    # the posterior is a distribution over the candidates: each text's scores of all of them sum to 1
    for text in texts:
        each = FMReward(OracleVision(), smollm2, "posterior").score_texts([text] * 3, INSTRUCTIONS, cands + cands[:1])
        assert each.sum() == pytest.approx(1.0, abs=1e-6)
    # for one fixed instruction, sum / mean / pmi rank trajectories identically
    order = [np.argsort(scores[n]).tolist() for n in ("sum", "mean", "pmi")]
    assert order[0] == order[1] == order[2]
    for n in ("contrastive", "posterior"):
        with pytest.raises(TrajectoryError, match=f"the {n} normalisation needs .* candidate"):
            FMReward(OracleVision(), smollm2, n).score_texts(texts, instr, [(), ()])
    assert trajectories[0].instruction in trajectories[0].candidates


@pytest.mark.slow  # loads SmolLM2
def test_fm_reward_prefers_the_desired_run(smollm2):
    reward = FMReward(OracleVision(), smollm2, "sum")
    env = make_level("PickupDist")
    reset_quietly(env, 0)
    wrong = dict(siblings(env, env.instrs))["action"]  # go to the object without picking it up
    desired, incorrect = run_policy("PickupDist", 0), run_policy("PickupDist", 0, instr=wrong)
    t = [Trajectory(desired.mission, r.scenes) for r in (desired, incorrect)]
    s = reward.score(t)
    assert s[0] > s[1]
    dense = reward.score_prefixes(t[0])
    assert len(dense) == len(t[0]) and dense[-1] == pytest.approx(s[0])


def test_unknown_names_and_missing_models_are_refused():
    with pytest.raises(ModelError, match="not found"):
        LMScorer.from_path("/nonexistent/model.gguf")
    with pytest.raises(ModelError, match="unknown vision stage"):
        build_reward("camera+smollm2")
    with pytest.raises(ModelError, match="unknown language model"):
        build_reward("oracle+gpt9")
    with pytest.raises(ModelError, match="normalisation"):
        build_reward("oracle+smollm2+median")


@pytest.fixture(scope="module")
def tiny_lm(tmp_path_factory):
    """A randomly initialised Llama with a word-level tokenizer that lacks the word 'ball'."""
    from tokenizers import Tokenizer, models, pre_tokenizers
    from transformers import LlamaConfig, LlamaForCausalLM, PreTrainedTokenizerFast

    words = [
        "[UNK]",
        "Description",
        "of",
        "what",
        "the",
        "agent",
        "did",
        ":",
        "The",
        "instruction",
        "was",
        "following",
        "went",
        "to",
        "key",
        "go",
        "red",
        "blue",
        "At",
        "end",
        ",",
        "faces",
        ".",
    ]
    tok = Tokenizer(models.WordLevel({w: i for i, w in enumerate(words)}, unk_token="[UNK]"))
    tok.pre_tokenizer = pre_tokenizers.Whitespace()
    folder = tmp_path_factory.mktemp("tiny-lm")
    PreTrainedTokenizerFast(tokenizer_object=tok, unk_token="[UNK]").save_pretrained(folder)
    torch.manual_seed(0)
    cfg = LlamaConfig(
        vocab_size=len(words),
        hidden_size=16,
        intermediate_size=32,
        num_hidden_layers=2,
        num_attention_heads=2,
        num_key_value_heads=1,
        max_position_embeddings=128,
    )
    LlamaForCausalLM(cfg).save_pretrained(folder)
    return folder


class _Payload:
    """Pickles as a call to ``print``: what a hostile ``pytorch_model.bin`` could hold instead of tensors."""

    def __reduce__(self):
        return (print, ("this must never run",))


def test_a_pickled_payload_in_pytorch_model_bin_is_one_line(tiny_lm, tmp_path, capsys):
    import shutil

    from fmbench.causal_lm import load_causal_lm

    folder = tmp_path / "pickled-lm"
    shutil.copytree(tiny_lm, folder)
    (folder / "model.safetensors").unlink()
    torch.save({"model.embed_tokens.weight": _Payload()}, folder / "pytorch_model.bin")
    with pytest.raises(ModelError, match="cannot load language model"):
        load_causal_lm(str(folder))
    assert "this must never run" not in capsys.readouterr().out


def test_any_local_causal_lm_folder_works(tiny_lm):
    scorer = LMScorer.from_path(tiny_lm)
    pairs = [("The agent went to the red key .", "go to the red key"), (None, "go to the blue key")]
    assert np.allclose(scorer.logprobs(pairs), [scorer.logprob_uncached(*p) for p in pairs], atol=1e-4)
    reward = build_reward(f"oracle+hf:{tiny_lm}+pmi")
    assert reward.name == "oracle+tiny-lm0+pmi"


def test_tokenizer_without_the_needed_tokens_is_refused(tiny_lm):
    scorer = LMScorer.from_path(tiny_lm)
    with pytest.raises(ModelError, match="no tokens for"):
        scorer.logprobs([("The agent went to the red key .", "go to the red ball")])


def test_an_env_says_once_per_process_that_its_language_model_is_loading(tiny_lm, capfd):
    import gymnasium as gym

    from fmbench.causal_lm import load_causal_lm
    from fmbench.studies.fomo.rewards import shared_scorer

    load_causal_lm.cache_clear(), shared_scorer.cache_clear()  # as in a fresh process
    for _ in range(2):  # a second env reuses the loaded model, silently
        env = gym.make("fmbench/FoMoGoToRedBall-v0", reward=f"oracle+hf:{tiny_lm}+sum")
        env.reset(seed=0)
        env.step(0)
        env.close()
    err = capfd.readouterr().err
    assert err.count(f"fmbench: loading language model {tiny_lm.name} ") == 1
    assert err.count(f"fmbench: loaded language model {tiny_lm.name} ") == 1


# ---- metrics -------------------------------------------------------------------------
def _layouts(n: int, families=("colour", "random")) -> list[Layout]:
    out = []
    for i in range(n):
        runs = [Run("GoToLocal", i, "expert", "m", [], [], success=True, true_return=0.9)]
        runs += [Run("GoToLocal", i, f, "m", [], [], success=False, true_return=0.0) for f in families]
        out.append(Layout(i, "m", ("m",), runs))
    return out


def test_metrics_on_a_perfect_a_reversed_and_a_constant_reward():
    lays = _layouts(4)
    perfect = reward_metrics(lays, [np.array([1.0, 0.0, 0.0])] * 4)
    assert perfect["ranking_accuracy"] == perfect["auroc"] == perfect["success_auroc"] == 1.0
    assert perfect["ranking_accuracy|family=colour"] == 1.0 and perfect["spearman"] == pytest.approx(1.0)
    reversed_ = reward_metrics(lays, [np.array([0.0, 1.0, 1.0])] * 4)
    assert reversed_["ranking_accuracy"] == reversed_["auroc"] == 0.0 and reversed_["reward_gap"] < 0
    constant = reward_metrics(lays, [np.zeros(3)] * 4)
    assert constant["ranking_accuracy"] == constant["auroc"] == 0.5 and constant["spearman"] == 0.0


def test_metrics_drop_incorrect_runs_that_satisfy_the_instruction():
    lays = _layouts(3)
    lays[0].runs[1].success = True  # this "colour" run happened to do the true mission
    m = reward_metrics(lays, [np.array([1.0, 2.0, 0.0])] + [np.array([1.0, 0.0, 0.0])] * 2)
    assert m["dropped_pairs"] == 1.0 and m["dropped_pairs|family=colour"] == 1.0
    assert m["ranking_accuracy|family=colour"] == 1.0  # the dropped pair is not counted against the reward
    assert m["success_auroc"] == 1.0  # ...but it is a success: it scored with the successes


# ---- the task's model checks ---------------------------------------------------------
class ConstantReward:
    """A reward model returning one value for every trajectory (NaN to test the refusal)."""

    name, needs_frames = "constant", False

    def __init__(self, value: float) -> None:
        self.value = value

    def score(self, trajectories):
        return np.full(len(trajectories), self.value)


def test_reward_specs_and_non_finite_scores():
    import fmbench
    from fmbench.models import LoadedModel, load_model

    task = fmbench.make_task("fmbench/FoMoRewardOpen-v0")
    model = load_model("reward:oracle-final+minilm", task)
    assert model.interface == "reward-model" and model.name == "oracle-final+minilm"
    with pytest.raises(ModelError, match="does not score reward models"):
        load_model("reward:random", fmbench.make_task("fmbench/ComposeDirect-v0"))
    nan = LoadedModel(ConstantReward(float("nan")), "python:x:nan", "nan", "reward-model", None, None, "none")
    with pytest.raises(ModelError, match="non-finite"):
        task.check_model(nan)
    flat = LoadedModel(ConstantReward(1.0), "python:x:flat", "flat", "reward-model", None, None, "none")
    scores = task.evaluate(flat, seed=0, limit=3)
    assert scores["ranking_accuracy"] == 0.5 and scores["auroc"] == 0.5
