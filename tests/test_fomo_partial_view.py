"""Partial views and appearance shift: egocentric scenes, frames, captions, parser and tasks."""

import gymnasium as gym
import minigrid  # noqa: F401  (registers the BabyAI levels)
import numpy as np
import pytest
from minigrid.core.grid import Grid

import fmbench
from fmbench.errors import InputError
from fmbench.studies.fomo.appearance import shift_appearance
from fmbench.studies.fomo.captioner import LearnedCaptioner
from fmbench.studies.fomo.captions import caption, events
from fmbench.studies.fomo.frames import egocentric_frame
from fmbench.studies.fomo.rollouts import run_policy
from fmbench.studies.fomo.scene import egocentric_scene, scene_of
from fmbench.studies.fomo.trajectory import Trajectory, TrajectoryError

PARTIAL = "fmbench/FoMoRewardPartialView-v0"


@pytest.mark.parametrize("level", ["BabyAI-PickupDist-v0", "BabyAI-OpenDoorColor-v0"])
def test_egocentric_frames_are_minigrids_view_where_the_agent_sees(level):
    # minigrid's get_pov_render also draws, unlit, what lies behind walls; here those cells are empty
    env = gym.make(level).unwrapped
    rng = np.random.default_rng(0)
    obs, _ = env.reset(seed=0)
    empty = {ts: Grid.render_tile(None, highlight=False, tile_size=ts).astype(np.uint8) for ts in (8, 32)}
    for _ in range(40):
        scene = egocentric_scene(obs["image"])
        for tile_size in (8, 32):
            frame, pov = egocentric_frame(scene, tile_size), env.get_pov_render(tile_size)
            seen = np.kron((scene.grid[..., 0] != 0).T, np.ones((tile_size, tile_size), bool))
            assert frame.shape == pov.shape
            assert np.array_equal(frame[seen], pov[seen])
            for y, x in zip(*np.nonzero(scene.grid[..., 0].T == 0)):
                tile = frame[y * tile_size : (y + 1) * tile_size, x * tile_size : (x + 1) * tile_size]
                assert np.array_equal(tile, empty[tile_size])
        obs, *_ = env.step(int(rng.integers(0, 6)))


def test_egocentric_scene_shows_what_the_agent_carries():
    run = run_policy("PickupDist", 0)  # the bot picks its object up
    ego = run_policy("PickupDist", 0, actions=run.actions, view="egocentric")
    assert [s.carried for s in ego.scenes[:-1]] == [None] * (len(ego.scenes) - 1)
    assert ego.scenes[-1].carried is not None and ego.scenes[-1].egocentric
    # the view shows the carried object, so even the last view alone says what was picked up
    assert "carries" in caption(ego.scenes, "final") and "carries" not in caption(run.scenes, "final")
    assert caption(ego.scenes).startswith(caption(run.scenes).split(" At the end")[0])


def test_egocentric_events_tell_moves_from_interactions():
    run = run_policy("OpenDoorColor", 0)
    ego = run_policy("OpenDoorColor", 0, actions=run.actions, view="egocentric")
    texts = [e.text for e in events(ego.scenes)]
    # opening the door shows the room behind it: still an interaction, not a move
    assert texts == [e.text for e in events(run.scenes)] and texts[-1].startswith("opened")
    # turning on the spot changes the view: facing nothing is no event, a failed move neither
    env = gym.make("BabyAI-GoToRedBallNoDists-v0").unwrapped
    obs, _ = env.reset(seed=0)
    views = [egocentric_scene(obs["image"])]
    for action in (0, 0, 0, 0):
        obs, *_ = env.step(action)
        views.append(egocentric_scene(obs["image"]))
    assert all(not e.text.startswith(("picked", "put", "opened")) for e in events(views))


@pytest.mark.parametrize("tile_size", [8, 16, 32])
def test_egocentric_parser_reads_clean_views(tile_size):
    parser = LearnedCaptioner.default("egocentric")
    for level, seed in (("ComposedLocal", 3), ("PutNextLocal", 1)):
        run = run_policy(level, seed, view="egocentric", frames=True, tile_size=tile_size)
        parsed = parser.scenes(run.frames, tile_size, egocentric=True)
        assert all(p.same(s) for p, s in zip(parsed, run.scenes, strict=True))


def test_parser_errors():
    with pytest.raises(ValueError, match="view must be one of"):
        LearnedCaptioner.default("sideways")
    with pytest.raises(ValueError, match="square"):
        LearnedCaptioner.default("egocentric").scenes(np.zeros((1, 56, 64, 3), np.uint8), 8, egocentric=True)
    with pytest.raises(ValueError, match=r"\(v, v, 3\)"):
        egocentric_scene(np.zeros((7, 5, 3), np.uint8))
    with pytest.raises(ValueError, match="view must be one of"):
        run_policy("GoToLocal", 0, view="sideways")
    with pytest.raises(ValueError, match="egocentric_frame draws an egocentric scene"):
        env = gym.make("BabyAI-GoToLocal-v0").unwrapped
        env.reset(seed=0)
        egocentric_frame(scene_of(env), 8)


def test_shift_appearance():
    frames = np.random.default_rng(0).integers(0, 256, (3, 16, 16, 3), dtype=np.uint8)
    assert np.array_equal(shift_appearance(frames, 0.0, 0.0, seed=1), frames)
    a, b = shift_appearance(frames, 0.2, 0.03, seed=[1, 2]), shift_appearance(frames, 0.2, 0.03, seed=[1, 2])
    assert np.array_equal(a, b) and not np.array_equal(a, shift_appearance(frames, 0.2, 0.03, seed=[1, 3]))
    balance = shift_appearance(np.full((2, 4, 4, 3), 100, np.uint8), 0.2, 0.0, seed=5)
    assert np.array_equal(balance[0], balance[1]) and len(np.unique(balance[0, 0, 0])) == 3
    with pytest.raises(ValueError, match=r"\(T, H, W, 3\) uint8"):
        shift_appearance(frames.astype(np.float32), 0.2, 0.0, seed=0)
    bad_values = [
        (2.0, 0.0, "jitter"),
        (-0.1, 0.0, "jitter"),
        ("0.2", 0.0, "jitter"),
        (0.2, -0.03, "noise"),
        (0.2, np.nan, "noise"),
    ]
    for jitter, noise, bad in bad_values:
        with pytest.raises(InputError, match=rf"appearance {bad} must be in \[0, 1\], got"):
            shift_appearance(frames, jitter, noise, seed=0)


def test_trajectory_view_is_checked():
    run = run_policy("GoToLocal", 0)
    ego = run_policy("GoToLocal", 0, actions=run.actions, view="egocentric")
    with pytest.raises(TrajectoryError, match="scenes of the other view"):
        Trajectory(run.mission, run.scenes, view="egocentric").check()
    with pytest.raises(TrajectoryError, match="scenes of the other view"):
        Trajectory(run.mission, ego.scenes).check()
    with pytest.raises(TrajectoryError, match="view must be"):
        Trajectory(run.mission, run.scenes, view="sideways").check()


def test_partial_view_tasks_score_the_compositional_runs_seen_differently():
    top = fmbench.make_task("fmbench/FoMoRewardCompositional-v0")
    ego = fmbench.make_task(PARTIAL)
    jitter = fmbench.make_task("fmbench/FoMoRewardPartialViewJitter-v0")
    tile12 = fmbench.make_task("fmbench/FoMoRewardPartialViewTile12-v0")
    assert np.array_equal(ego.layout_seeds(1), top.layout_seeds(1))
    lay = ego.layouts(0, limit=1)[0]
    plain, shifted, small = (t.trajectories(lay, needs_frames=True) for t in (ego, jitter, tile12))
    for p, s, m in zip(plain, shifted, small, strict=True):
        assert p.view == s.view == m.view == "egocentric" and p.scenes[0].grid.shape == (7, 7, 3)
        assert all(a.same(b) for a, b in zip(p.scenes, s.scenes))
        assert p.frames.shape[1:] == s.frames.shape[1:] == (224, 224, 3) and m.frames.shape[1:] == (84, 84, 3)
        assert not np.array_equal(p.frames, s.frames)
        p.check(need_frames=True), s.check(need_frames=True), m.check(need_frames=True)
    assert "egocentric" in ego.input_format() and "jitter 0.2" in jitter.input_format()
    assert ego.stats(0)["view"] == "egocentric"


def test_shortcut_audit_known_answers():
    from fmbench.studies.fomo.audit import audit

    result = audit(fmbench.make_task("fmbench/FoMoRewardGoTo-v0"), seeds=[0], limit=6)
    # shorter and longer order every pair oppositely (ties count 1/2 to both)
    for key, value in result["shorter"].items():
        if key.startswith("ranking_accuracy"):
            assert value + result["longer"][key] == pytest.approx(1.0)
    # a random walk is as long as the expert's run: length cannot tell them apart
    assert result["shorter"]["ranking_accuracy|family=random"] == 0.5
    # the bot's run on "go to X" always ends facing X
    assert result["ends-facing-named"]["ranking_accuracy|family=truncated"] == 1.0
