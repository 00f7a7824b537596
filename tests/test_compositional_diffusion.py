"""The compositional-diffusion study: renderer, splits, probes, evaluator, bad input, checkpoint series."""

from __future__ import annotations

import numpy as np
import pytest
import torch

import fmbench
from fmbench.checkpoints import save_checkpoint
from fmbench.errors import InputError, ModelError
from fmbench.interfaces import IMAGE_GENERATOR
from fmbench.models import LoadedModel
from fmbench.studies.compositional_diffusion.concept_probes import check_images, load_probes, predict
from fmbench.studies.compositional_diffusion.concepts import (
    COLOURS,
    FOUR,
    SIZES,
    THREE,
    THREE_CUBE,
    distances,
    space_of,
    train_ids,
)
from fmbench.studies.compositional_diffusion.model import ConceptUNet, ConceptUNetConfig
from fmbench.studies.compositional_diffusion.render import render
from fmbench.studies.compositional_diffusion.series import checkpoint_steps, evaluate_series, first_step

MAIN = "fmbench/ConceptGenH32Train1-v0"


@pytest.fixture(scope="module")
def task():
    return fmbench.make_task(MAIN)


# ---- renderer ---------------------------------------------------------------------------------------
def test_renders_are_seeded_random_access_and_in_range():
    ids = np.arange(64) % 8
    a = render(THREE, ids, key=3, index=np.arange(64))
    assert a.shape == (64, 3, 28, 28) and a.dtype == np.float32 and 0 <= a.min() and a.max() <= 1
    assert np.array_equal(render(THREE, ids[10:12], key=3, index=np.arange(10, 12)), a[10:12])
    assert not np.array_equal(render(THREE, ids, key=4, index=np.arange(64)), a)  # jitter depends on the key


def test_renders_carry_the_papers_colours_and_size_ratio():
    n = 256
    images = render(THREE, np.zeros(n, int) + 0b000, key=1, index=np.arange(n))  # large red circles
    small = render(THREE, np.zeros(n, int) + 0b011, key=1, index=np.arange(n))  # small blue circles
    coverage = lambda x: (x.max(axis=1) > 0.2).sum(axis=(1, 2)).mean()  # noqa: E731
    area_ratio = coverage(images) / coverage(small)
    assert area_ratio == pytest.approx((SIZES[0] / SIZES[1]) ** 2, rel=0.1)
    inside = images[:, :, 14, 14].mean(0) / images[:, :, 14, 14].mean(0).max()  # centre pixel, normalised
    assert np.allclose(inside, np.array(COLOURS[0]) / max(COLOURS[0]), atol=0.02)
    four = render(FOUR, np.array([0b0001]), key=1, index=np.arange(1))
    assert four[0, :, 0, 0].tolist() == pytest.approx([0.3, 0.3, 0.3])  # grey background in the corner


def test_classes_outside_the_concept_space_are_refused():
    with pytest.raises(InputError, match="outside the concept space: 0..8, expected 0..7"):
        render(THREE, np.array([0, 8]), key=0, index=np.arange(2))
    with pytest.raises(InputError, match="unknown split 'H99'"):
        space_of("H99")
    for name in ("100", "300", "2x1", "20"):  # a cone, an undefined 4th shape, a bad digit, too short
        with pytest.raises(InputError, match=f"class '{name}' is not in the space"):
            THREE_CUBE.class_id(name)


def test_the_cube_is_a_square_with_the_same_circumradius():
    ids = np.full(64, 0b100)  # large red: cube in the H23 space, cone in the H32 one
    square, triangle = (
        render(THREE_CUBE, ids, key=2, index=np.arange(64)),
        render(THREE, ids, key=2, index=np.arange(64)),
    )
    coverage = lambda x: (x.max(axis=1) > 0.2).sum(axis=(1, 2)).mean()  # noqa: E731
    r = SIZES[0] * 3.0  # the renderer's circumradius in px
    assert coverage(square) == pytest.approx(2 * r**2, rel=0.1)  # side r * sqrt(2)
    assert not np.array_equal(square, triangle)
    assert np.array_equal(
        render(THREE_CUBE, np.arange(4), 2, np.arange(4)), render(THREE, np.arange(4), 2, np.arange(4))
    )


# ---- splits -----------------------------------------------------------------------------------------
def test_concept_distances_of_the_authors_splits():
    main = distances("H32-train1")
    assert {c for c, d in main.items() if d == 0} == {"000", "001", "010", "100"} and main["111"] == 2
    assert set(distances("H32-train6").values()) == {0, 1}
    assert distances("H32-fail1")["111"] == 0 and distances("H32-fail1")["011"] == 1
    four = distances("H42-train1")
    assert four["1111"] == 3 and sum(d == 2 for d in four.values()) == 4
    assert [c for c, d in distances("H32-train10").items() if d] == ["111"]
    cube = distances("H23-train1")  # the authors' digits: shape 2 is the cube
    assert (
        cube["200"] == 1 and cube["000"] == 2 and "100" not in cube and train_ids("H23-train1").tolist() == [3, 5, 6, 7]
    )
    assert distances("H23-train2")["000"] == 1


def test_train_split_exports_only_training_classes(task):
    chunk = next(iter(task.export_chunks("train", 0)))
    assert set(chunk["class"]) == {"000", "001", "010", "100"}
    assert chunk["image"].dtype == np.uint8 and chunk["image"].shape[1:] == (3, 28, 28)
    ev = next(iter(task.export_chunks("eval", 0)))
    assert len(ev["ids"]) == task.split_size("eval") == 8 * 64 and ev["distance"].max() == 2


def test_data_export_cli_writes_the_training_set(fmbench_cli, tmp_path):
    out = tmp_path / "train.pt"
    r = fmbench_cli("data", "export", MAIN, "--split", "train", "--seed", "0", "--format", "pt", "--out", out)
    assert r.returncode == 0, r.stderr
    data = torch.load(out, weights_only=True)
    assert tuple(data["image"].shape) == (2048, 3, 28, 28)


# ---- probes and scoring -----------------------------------------------------------------------------
def test_shipped_probes_read_fresh_renders_and_report_their_accuracy():
    for space in (THREE, FOUR, THREE_CUBE):
        ids = np.arange(space.n_classes * 8) % space.n_classes
        images = render(space, ids, key=12345, index=np.arange(len(ids)))
        assert (predict(load_probes(space), images) == space.values(ids)).mean() > 0.99
        assert set(load_probes(space).held_out) == set(space.names) and min(load_probes(space).held_out.values()) > 0.99


@pytest.mark.parametrize(
    "images,message",
    [
        (np.zeros((2, 3, 32, 32), np.float32), "shape \\(2, 3, 32, 32\\)"),
        (np.zeros((2, 1, 28, 28), np.float32), "expected \\(N, 3, 28, 28\\) RGB"),
        (np.zeros((2, 3, 28, 28), np.uint8), "dtype uint8"),
        (np.full((2, 3, 28, 28), 2.0, np.float32), "values in \\[2, 2\\]"),
        (np.full((2, 3, 28, 28), np.nan, np.float32), "NaN"),
    ],
)
def test_bad_images_are_refused_in_one_line(images, message):
    with pytest.raises(InputError, match=message) as e:
        check_images(images)
    assert "\n" not in str(e.value)


def test_baselines_bound_the_score(task):
    renderer = task.evaluate(task.load_baseline("renderer"), seed=0)
    assert renderer["accuracy"] == renderer["accuracy_seen"] == 1.0
    chance = task.evaluate(task.load_baseline("random-class"), seed=0)
    assert 0.05 < chance["accuracy"] < 0.2 and abs(chance["colour_accuracy"] - 0.5) < 0.1
    assert {"accuracy|distance=2", "accuracy|class=111", "size_accuracy|class=011"} <= set(chance)


def _generator(fn) -> LoadedModel:
    class G:
        def generate(self, conditions, seed):
            return fn(conditions, seed)

    return LoadedModel(G(), "python:g", "g", "image-generator", None, None, "none")


@pytest.mark.parametrize(
    "fn,message",
    [
        (lambda c, s: torch.rand(len(c), 3, 32, 32, generator=torch.Generator().manual_seed(s)), "shape"),
        (lambda c, s: torch.zeros(len(c), 1, 28, 28), "shape"),
        (lambda c, s: torch.zeros(len(c), 3, 28, 28, dtype=torch.uint8), "floating point"),
        (lambda c, s: torch.full((len(c), 3, 28, 28), 255.0), "expected \\[0, 1\\]"),
        (lambda c, s: torch.full((len(c), 3, 28, 28), float("nan")), "NaN"),
        (lambda c, s: torch.rand(len(c), 3, 28, 28), "same seed"),
    ],
)
def test_bad_generators_are_refused_in_one_line(task, fn, message):
    with pytest.raises(ModelError, match=message) as e:
        task.check_model(_generator(fn))
    assert "\n" not in str(e.value)


def test_conditions_outside_the_concept_space_are_refused(task):
    for name in ("renderer", "noise"):
        with pytest.raises(ModelError, match="outside the concept space"):
            IMAGE_GENERATOR.generate(task.load_baseline(name), torch.tensor([9]), 0, (3, 28, 28))
    with pytest.raises(InputError, match="outside the concept space"):
        ConceptUNet(ConceptUNetConfig(width=8, sample_steps=1)).generate(torch.tensor([-1]), seed=0)


# ---- the DDPM and the checkpoint series ---------------------------------------------------------------
@pytest.mark.slow  # two DDIM samplings of 50 steps: ~4 s
def test_shipped_ddpm_is_a_seeded_image_generator(task):
    model = task.load_baseline("ddpm")
    task.check_model(model)  # generates twice with one seed
    assert model.model.config.width == 16 and model.n_params < 60_000


@pytest.fixture
def tiny_series(tmp_path):
    torch.manual_seed(0)
    for step in (5, 10):
        save_checkpoint(ConceptUNet(ConceptUNetConfig(width=8, sample_steps=1)), tmp_path / f"s{step}.safetensors")
    return tmp_path


def test_checkpoint_series_reports_curves_and_first_steps_and_resumes(task, tiny_series):
    series = evaluate_series(task, tiny_series, limit=16, log=lambda _: None)
    assert series["steps"] == [5, 10] and len(series["classes"]) == 8
    one = series["classes"]["111"]
    assert one["distance"] == 2 and len(one["accuracy"]) == 2 and set(one["concepts"]) == {"shape", "colour", "size"}
    assert first_step([1, 2, 3], [0.5, 0.79, 0.99]) == {"50": 1, "80": 3, "99": 3}
    # resumed: the steps a previous series holds are taken from it, not scored again
    series["classes"]["000"]["accuracy"][0] = 0.123  # a score it can only have taken from the previous series
    again = evaluate_series(task, tiny_series, limit=16, log=lambda _: None, previous=series)
    assert again["classes"]["000"]["accuracy"][0] == 0.123 and again["steps"] == series["steps"]


def test_checkpoint_series_refuses_an_empty_folder(tmp_path):
    with pytest.raises(InputError, match="no .safetensors checkpoints"):
        checkpoint_steps(tmp_path)


def test_a_generator_ignoring_its_condition_scores_only_the_class_it_draws(task):
    """Audit: always drawing 111 gets every held-out class but 111 wrong: accuracy 1/4, seen classes 0."""
    always = _generator(lambda c, s: torch.from_numpy(render(THREE, np.full(len(c), 7), s % 997, np.arange(len(c)))))
    scores = task.evaluate(always, seed=0)
    assert scores["accuracy"] == 0.25 and scores["accuracy_seen"] == 0.0 and scores["accuracy|distance=2"] == 1.0
