"""The FM-reward PPO example (fmbench.studies.fomo.rl): a few hundred steps on the true reward, never a full run."""

from __future__ import annotations

import dataclasses
import json
import warnings

import gymnasium as gym
import numpy as np
import pytest
import torch
from gymnasium.utils.env_checker import check_env
from minigrid.core.constants import IDX_TO_COLOR, IDX_TO_OBJECT

pytest.importorskip("stable_baselines3")

from stable_baselines3 import PPO  # noqa: E402

from fmbench.errors import InputError  # noqa: E402
from fmbench.studies.fomo.rl import (  # noqa: E402
    FRAME_TILE,
    PPOConfig,
    TargetCells,
    combine,
    episode_window,
    main,
    make_env,
    output_files,
    policy_keys,
    ppo_success,
    random_success,
    run,
    summarize,
    train_ppo,
)

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
    assert set(obs) == set(policy_keys("GoToRedBall")) == {"view", "direction"} and obs["view"].shape == (147,)
    assert info["mission"] == "go to the red ball"


def test_policy_sees_the_mission_where_it_varies():
    env = make_env(level="GoToLocal")
    missions = {env.reset(seed=s)[1]["mission"] for s in range(5)}
    obs, _ = env.reset(seed=0)
    assert set(obs) == {"view", "direction", "mission"} and obs["mission"].shape == (32,)
    assert len(missions) > 1 and all(m.startswith("go to ") for m in missions)


def _named(view_cell) -> str:
    kind, colour, _ = (int(v) for v in view_cell)
    return f"{IDX_TO_COLOR[colour]} {IDX_TO_OBJECT[kind]}"


@pytest.mark.parametrize(
    "level, seed, mission, marked",
    [
        ("GoToLocal", 0, "go to a blue key", ["blue key"]),
        ("PickupDist", 8, "pick up a box", ["purple box", "red box"]),  # a type alone: every box
        ("PickupDist", 24, "pick up a grey object", ["grey ball"]),  # a colour alone: objects only, not grey walls
        ("PutNextLocal", 1, "put the purple ball next to the blue ball", ["blue ball", "purple ball"]),  # both
    ],
)
def test_target_cells_mark_the_objects_the_mission_names(level, seed, mission, marked):
    obs, info = make_env(level=level, target_cells=True).reset(seed=seed)
    view = obs["view"].reshape(-1, 3)
    assert info["mission"] == mission
    assert sorted(_named(view[i]) for i in obs["target"].nonzero()[0]) == marked
    assert {k: obs[k] for k in policy_keys(level)}.keys() == make_env(level=level).reset(seed=seed)[0].keys()


def test_target_cells_follow_the_view_and_pass_the_env_checker():
    env = make_env(level="GoToLocal", target_cells=True)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        warnings.filterwarnings("ignore", message=".*different from the unwrapped version")  # it is a wrapper
        check_env(env, skip_render_check=True)
    obs, info = env.reset(seed=3)
    target = info["mission"].removeprefix("go to ").split(" ", 1)[1]
    rng = np.random.default_rng(0)
    for _ in range(60):
        view, marks = obs["view"].reshape(-1, 3), obs["target"].astype(bool)
        assert obs["target"].dtype == np.int8 and env.observation_space.contains(obs)
        assert all(_named(c) == target for c in view[marks]) and not any(_named(c) == target for c in view[~marks])
        obs, _, terminated, truncated, info = env.step(int(rng.integers(3)))
        if terminated or truncated:
            obs, info = env.reset(seed=4)
            target = info["mission"].removeprefix("go to ").split(" ", 1)[1]
    assert isinstance(env, TargetCells) and isinstance(env.observation_space["target"], gym.spaces.MultiBinary)


def test_unknown_level_is_one_line_error(capsys, tmp_path):
    with pytest.raises(InputError, match="no FoMo env for level 'GoToMars'.*GoToLocal"):
        make_env(level="GoToMars")
    with pytest.raises(InputError, match="'ComposedLocal'"):  # a level without a registered env
        train_ppo("true", seed=0, cfg=TINY, level="ComposedLocal")
    with pytest.raises(SystemExit) as exit_info:
        main(["--level", "GoToMars", "--out", str(tmp_path)])
    assert exit_info.value.code == 2
    assert (
        capsys.readouterr()
        .err.splitlines()[-1]
        .endswith(
            "no FoMo env for level 'GoToMars'; RL runs on "
            + str(["GoToRedBall", "GoToLocal", "PickupDist", "OpenDoorColor", "PutNextLocal"])
        )
    )
    assert not list(tmp_path.iterdir())


@pytest.mark.skipif(torch.cuda.is_available(), reason="checks the refusal where CUDA is absent")
def test_cuda_device_without_cuda_is_one_line_error(capsys, tmp_path):
    with pytest.raises(SystemExit) as exit_info:
        main(["--device", "cuda", "--out", str(tmp_path)])
    assert exit_info.value.code == 2
    assert capsys.readouterr().err.splitlines()[-1].endswith("--device cuda: CUDA is not available here")
    assert not list(tmp_path.iterdir())


class FramesReward:
    """A reward model that reads frames and scores every trajectory 0."""

    name, needs_frames = "frames", True

    def score(self, trajectories):
        return np.zeros(len(trajectories))


def test_fm_reward_frames_are_drawn_at_frame_tile():
    env = make_env("frames", FramesReward())
    env.reset(seed=0)
    env.step(2)
    trajectory = env.unwrapped.trajectory()
    assert trajectory.tile_size == FRAME_TILE == 8
    assert trajectory.frames.shape == (2, 8 * FRAME_TILE, 8 * FRAME_TILE, 3)


def test_episode_window_known_answers():
    w = episode_window([2.0, -1.0, 0.5, 3.0, 0.5], [True, False, False, True, True])
    assert w["episodes"] == 5 and w["success"] == 0.6
    assert w["reward_success"] == pytest.approx(11 / 6) and w["reward_failure"] == -0.25
    assert w["reward_auroc"] == pytest.approx(5.5 / 6)  # the tie (0.5 vs 0.5) counts one half
    assert episode_window([1.0, 2.0], [False, False]) == {
        "episodes": 2,
        "success": 0.0,
        "reward_success": None,
        "reward_failure": 1.5,
        "reward_auroc": None,
    }
    assert episode_window([], [])["success"] is None


def fake_results(seeds, aurocs=((0.5, None), (0.75, 0.25)), ppo=None):
    """Results of PPO runs as :func:`run` records them, with made-up numbers (one FM and one true run per seed)."""

    def ppo_run(condition, seed, window_aurocs):
        windows = [
            {"episodes": 4, "success": 0.5, "reward_success": 1.0, "reward_failure": 0.0, "reward_auroc": a}
            for a in window_aurocs
        ]
        final = 1.0 if condition == "fm" else 0.5
        return {
            "condition": condition,
            "seed": seed,
            "eval_steps": [0, 8, 16],
            "success": [0.0, 0.5, final],
            "final_success": final,
            "steps_to_0.9": 16 if final > 0.9 else None,
            "train_windows": windows,
            "wall_s": 2.0 if condition == "fm" else 1.0,
        }

    runs = [ppo_run(c, s, a) for s, a in zip(seeds, aurocs) for c in ("fm", "true")]
    return {
        "env": "fmbench/FoMoGoToLocal-v0",
        "level": "GoToLocal",
        "fm_reward": "random",
        "seeds": list(seeds),
        "ppo": ppo or {"steps": 16},
        "eval": {"episodes": 2},
        "wall_s": {"fm": 2.0 * len(seeds), "true": 1.0 * len(seeds), "random": 0.5, "total": 9.0},
        "runs": runs,
        "random": [{"seed": s, "success": 0.25 + 0.5 * (s % 2)} for s in seeds],
        "load_average_1_5_15_min": {"start": [0.5, 0.5, 0.5], "end": [1.0 + seeds[0], 1.0, 1.0]},
        "environment": {"torch": "2.14.1", "cpu_capability": f"AVX{seeds[0]}"},
    }


def test_summary_of_fm_reward_accuracy():
    summary = summarize(fake_results([0, 1]))
    assert summary["fm"]["reward_auroc"] == {"mean": 0.5, "std": 0.0, "n": 2}  # window means 0.5 and 0.5
    assert summary["fm"]["mean"] == 1.0 and summary["true"]["mean"] == 0.5 and summary["random"]["mean"] == 0.5
    assert "reward_auroc" not in summarize(fake_results([0], [(None, None)]))["fm"]  # no window had both classes


def test_combine_runs_on_disjoint_seeds(tmp_path, capsys):
    joined = combine([fake_results([2], [(0.5, 0.5)]), fake_results([0, 1])])
    assert joined["seeds"] == [0, 1, 2] and [r["seed"] for r in joined["random"]] == [0, 1, 2]
    assert [(r["seed"], r["condition"]) for r in joined["runs"]][:2] == [(0, "true"), (0, "fm")]
    assert joined["wall_s"] == {"fm": 6.0, "true": 3.0, "random": 1.0, "total": 18.0, "fm_over_true": 2.0}
    again = combine([joined, fake_results([3])])  # a combined result joined again: still one load entry per part
    assert again["seeds"] == [0, 1, 2, 3] and again["load_average_1_5_15_min"] == [
        *joined["load_average_1_5_15_min"],
        fake_results([3])["load_average_1_5_15_min"],
    ]
    assert all(isinstance(load, dict) for load in again["load_average_1_5_15_min"])
    assert [env["cpu_capability"] for env in again["environment"]] == ["AVX2", "AVX0", "AVX3"]
    older = {k: v for k, v in fake_results([4]).items() if k != "environment"}  # results from before it was recorded
    assert len(combine([again, older])["environment"]) == 3
    with pytest.raises(
        InputError, match=r"a seed's condition appears twice: \[\(0, 'fm'\), \(0, 'random'\), \(0, 'true'\)\]"
    ):
        combine([fake_results([0]), fake_results([0, 1])])
    with pytest.raises(InputError, match="different ppo"):
        combine([fake_results([0]), fake_results([1], ppo={"steps": 32})])
    with pytest.raises(InputError, match="different fm_reward_device"):  # CPU and GPU seconds do not add up
        combine([fake_results([0]), {**fake_results([1]), "fm_reward_device": "cuda"}])
    part = tmp_path / "part.json"
    part.write_text(json.dumps({**fake_results([0]), "eval": {"episodes": 3}}))
    (tmp_path / "other.json").write_text(json.dumps(fake_results([1])))
    with pytest.raises(SystemExit):
        main(
            [
                "--level",
                "GoToLocal",
                "--out",
                str(tmp_path / "out"),
                "--combine",
                str(part),
                str(tmp_path / "other.json"),
            ]
        )
    assert capsys.readouterr().err.splitlines()[-1].endswith("cannot combine runs with different eval")
    with pytest.raises(SystemExit):  # GoToLocal runs written as GoToRedBall's (the default level) would replace rl.json
        main(["--out", str(tmp_path / "out"), "--combine", str(tmp_path / "other.json")])
    assert "runs are on fmbench/FoMoGoToLocal-v0, not on level 'GoToRedBall'" in capsys.readouterr().err
    assert not (tmp_path / "out").exists()


def only(results, conditions, fm_reward="random"):
    """``results`` cut to some conditions, recorded as :func:`run` records a run of those only."""
    runs = [r for r in results["runs"] if r["condition"] in conditions]
    wall = {k: w for k, w in results["wall_s"].items() if k in (*conditions, "total")}
    with_fm = "fm" in conditions
    return {
        **results,
        "fm_reward": fm_reward if with_fm else None,
        "fm_reward_device": "cuda" if with_fm else None,
        "runs": runs,
        "random": results["random"] if "random" in conditions else [],
        "wall_s": wall,
    }


def test_combine_runs_of_conditions_made_apart():
    """FM runs of a new reward joined to true-reward and random runs made before (per seed, per condition)."""
    base = [only(fake_results([s]), ("true", "random")) for s in (0, 1)]
    fm = [only(fake_results([s]), ("fm",), "learned+smollm2+posterior") for s in (0, 1)]
    joined = combine([*base, *fm])
    assert joined["fm_reward"] == "learned+smollm2+posterior" and joined["fm_reward_device"] == "cuda"
    assert [(r["seed"], r["condition"]) for r in joined["runs"]] == [(0, "true"), (0, "fm"), (1, "true"), (1, "fm")]
    assert joined["seeds"] == [0, 1] and [r["seed"] for r in joined["random"]] == [0, 1]
    assert joined["wall_s"] == {"fm": 4.0, "true": 2.0, "random": 1.0, "total": 36.0, "fm_over_true": 2.0}
    assert set(summarize(joined)) == {"fm", "true", "random"}
    alone = combine(base)  # no FM runs: no FM fields, no ratio, no FM summary
    assert alone["fm_reward"] is None and "fm_over_true" not in alone["wall_s"] and "fm" not in summarize(alone)
    with pytest.raises(InputError, match="different fm_reward$"):  # two FM rewards cannot share one curve
        combine([*base, fm[0], only(fake_results([1]), ("fm",), "learned+smollm2+pmi")])


def test_conditions_must_be_distinct_known_names(tmp_path, capsys):
    for bad in ([], ["true", "true"], ["fm", "sparse"]):
        with pytest.raises(InputError, match="conditions must be distinct names among"):
            run([0], TINY, "random", tmp_path, conditions=bad)
    with pytest.raises(SystemExit):
        main(["--conditions", "true", "true", "--out", str(tmp_path)])
    assert "--conditions names a condition twice" in capsys.readouterr().err
    assert not any(tmp_path.iterdir())


@pytest.mark.slow  # PPO training
def test_run_without_fm_loads_no_reward_model(tmp_path):
    results = run([0], TINY, "learned+hf:/no/such/model+pmi", tmp_path, conditions=["true"])  # never built
    assert [r["condition"] for r in results["runs"]] == ["true"] and results["random"] == []
    assert results["fm_reward"] is None and set(results["wall_s"]) == {"true", "total"}
    assert set(results["summary"]) == {"true"} and (tmp_path / "rl_curve.png").is_file()


@pytest.mark.slow  # PPO training
def test_train_ppo_record(tmp_path):
    record = train_ppo("true", seed=0, cfg=TINY)
    assert record["reward"] == "true" and record["seed"] == 0
    assert record["eval_steps"] == [0, 128, 256]
    assert len(record["success"]) == 3 and record["final_success"] == record["success"][-1]
    assert all(0.0 <= s <= 1.0 and s * 3 == round(s * 3) for s in record["success"])
    assert record["steps_to_0.9"] in (None, *record["eval_steps"])
    assert record["wall_s"] >= 0 and "fm_reward_calls" not in record
    windows = record["train_windows"]
    assert len(windows) == 2 and sum(w["episodes"] for w in windows) > 0
    # the true reward is 0 on a failure and positive on a success: a perfect separator
    assert all(w["reward_failure"] in (None, 0.0) and (w["reward_success"] or 1) > 0 for w in windows)
    again = train_ppo("true", seed=0, cfg=TINY, save=tmp_path / "ppo.zip")
    assert again["success"] == record["success"]  # reproducible, saved or not
    saved = PPO.load(tmp_path / "ppo.zip", device="cpu")  # the trained policy, evaluated as the run did
    assert ppo_success(saved, TINY.eval_episodes, seed=0) == record["final_success"]


@pytest.mark.slow  # PPO training
def test_train_ppo_with_target_cells_evaluates_the_policy_it_trained(tmp_path):
    cfg = dataclasses.replace(TINY, target_cells=True)
    record = train_ppo("true", seed=0, cfg=cfg, level="GoToLocal", save=tmp_path / "ppo.zip")
    saved = PPO.load(tmp_path / "ppo.zip", device="cpu")
    assert "target" in saved.observation_space.spaces  # it trained on the marks
    assert ppo_success(saved, cfg.eval_episodes, 0, "GoToLocal", target_cells=True) == record["final_success"]
    with pytest.raises(InputError, match=r"trained on observations \['direction', 'mission', 'target', 'view'\]"):
        ppo_success(saved, cfg.eval_episodes, 0, "GoToLocal")  # the env must give the marks it was trained on


def test_random_success_is_a_seeded_rate():
    rate = random_success(seed=0, episodes=3)
    assert 0.0 <= rate <= 1.0 and rate == random_success(seed=0, episodes=3)


def test_unwritable_save_path_is_refused_before_training(tmp_path):
    (tmp_path / "file").write_text("kept")
    with pytest.raises(InputError, match="cannot save the policy to"):
        train_ppo("true", seed=0, cfg=TINY, save=tmp_path / "file" / "ppo.zip")
    assert (tmp_path / "file").read_text() == "kept"


def test_eval_interval_must_divide_into_env_steps():
    with pytest.raises(ValueError, match="multiple of n_envs"):
        train_ppo("true", seed=0, cfg=PPOConfig(steps=64, n_envs=3, eval_every=64))


@pytest.mark.slow  # PPO training
def test_fm_reward_ppo_scores_episode_ends_in_batches():
    record = train_ppo("random", seed=0, cfg=TINY)  # a cheap reward model through the same FoMoVecEnv path
    vector_steps = TINY.steps // TINY.n_envs
    assert 0 < record["fm_reward_batches"] <= min(record["fm_reward_calls"], vector_steps)


@pytest.mark.slow  # PPO training
def test_run_on_another_level_writes_its_own_files(tmp_path):
    results = run([0], TINY, "random", tmp_path, level="GoToLocal")  # a cheap reward model, the policy reads missions
    assert sorted(p.name for p in tmp_path.iterdir()) == list(output_files("GoToLocal"))
    assert (tmp_path / "rl_gotolocal_curve.png").read_bytes()[:4] == b"\x89PNG"
    assert results["env"] == "fmbench/FoMoGoToLocal-v0" and [r["condition"] for r in results["runs"]] == ["true", "fm"]
    fm = results["runs"][1]
    assert len(fm["train_windows"]) == len(fm["eval_steps"]) - 1 == 2
    assert sum(w["episodes"] for w in fm["train_windows"]) == fm["fm_reward_calls"]  # every scored episode is logged
