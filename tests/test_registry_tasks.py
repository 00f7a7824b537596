"""Checks every registered task: deterministic data, pinned hashes, baselines, valid results."""

from __future__ import annotations

import json

import numpy as np
import pytest

import fmbench
from fmbench.models import load_model
from fmbench.registry import superseded_by, task_spec
from fmbench.results import check_against_registry, check_schema
from fmbench.runner import run_evaluation

TASKS = fmbench.list_tasks()


def test_each_task_pins_golden_hashes_unless_it_reads_the_users_data():
    """The spec schema requires data_hashes or user_data; user_data must be what the task reads."""
    for tid in TASKS:
        spec = task_spec(tid)
        assert spec.user_data == fmbench.make_task(tid).user_data(), tid
        assert bool(spec.data_hashes) != bool(spec.user_data), tid


# Tasks whose two seeds take several seconds to generate (BabyAI-bot runs, superpixels, 1,200-graph BA sets)
SLOW_DATA = {
    "fmbench/FoMoRewardCompositional-v0",
    "fmbench/FoMoRewardOpen-v0",
    "fmbench/FoMoRewardPutNext-v0",
    "fmbench/GraphFashionSuperpixels-v0",
    "fmbench/GraphMotifsBAX4-v1",
    "fmbench/GraphMotifsBAX8-v1",
}


@pytest.fixture(
    scope="module",
    # a superseded version's data checks run with the slow tests only (its data cannot change: its hashes are pinned)
    # so does a task in SLOW_DATA
    params=[pytest.param(t, marks=[pytest.mark.slow] * bool(superseded_by(t) or t in SLOW_DATA)) for t in TASKS],
)
def task(request, user_data):
    return fmbench.make_task(request.param)


def test_data_hashes_are_the_golden_ones_and_differ_by_seed(task):
    """A change of these hashes changes scores: add a new task version instead of editing the spec's hashes.

    The golden values were computed on other runs and machines, so equality also proves determinism;
    data the user brings (unpinned) is checked against a fresh instance instead.
    """
    hashes = {"0": task.data_hash(0), "1": task.data_hash(1)}
    assert hashes["0"] != hashes["1"]
    if task.spec.data_hashes:
        assert hashes == task.spec.data_hashes
    else:
        assert fmbench.make_task(task.id).data_hash(0) == hashes["0"]


def same_column(a: np.ndarray, b: np.ndarray) -> bool:
    """Whether two export columns hold the same values (a ragged column holds one array per item)."""
    if a.dtype == object or b.dtype == object:
        return len(a) == len(b) and all(same_column(np.asarray(x), np.asarray(y)) for x, y in zip(a, b))
    return a.shape == b.shape and np.array_equal(a, b)


def test_different_seeds_give_different_data(task):
    for split in task.splits:
        a = next(iter(task.export_chunks(split, 0)))
        b = next(iter(task.export_chunks(split, 1)))
        assert any(not same_column(a[k], b[k]) for k in a), split


@pytest.mark.slow  # regenerates a seed's first chunk twice per task; the golden hashes cover pinned seeds fast
def test_an_unpinned_seed_gives_the_same_data_on_a_fresh_instance(task):
    fresh = fmbench.make_task(task.id)
    for split in task.splits:
        first, again = next(iter(task.export_chunks(split, 3))), next(iter(fresh.export_chunks(split, 3)))
        assert len(first["ids"]) <= task.split_size(split) and first.keys() == again.keys()
        for k in first:
            assert same_column(first[k], again[k]), (split, k)


def test_spec_contract(task):
    s = task.spec
    assert s.primary_metric in s.metrics and s.min_seeds >= 1 and s.baselines
    assert any(h["version"] == s.version for h in s.history)
    info = task.describe()
    json.dumps(info)
    for key in (
        "studies",
        "summary",
        "params",
        "metrics",
        "interface",
        "interface_description",
        "baselines",
        "version_history",
        "input_format",
    ):
        assert info[key] not in (None, "", {}), key


def _loads_smollm2(tid: str, baseline: str) -> bool:
    """Whether a baseline runs a local LM: a reward model on SmolLM2, or an ICL task's ``lm`` (a minute to load)."""
    entry = task_spec(tid).baselines[baseline]
    return "smollm2" in entry.get("reward", "") or "lm" in entry


def _left_to_study_tests(tid: str, baseline: str) -> bool:
    """ICL LM baselines other than SmolLM2 on the judgment task (one next-token pass per item): sampling and
    the probability tree take minutes per LM even at the minimum limit, and Gemma's first load de-quantises
    for minutes. Their paths are tested in tests/test_icl.py (SmolLM2 on concepts and judgment) and
    tests/test_causal_lm.py (sampling, trees, both LMs' locators). FoMo reward models on Gemma-3-270M likewise
    (the same scorer as their SmolLM2 rows, which run here; the name is tested in tests/test_fomo_compositional.py),
    and the FoMo ``contrastive`` rewards: one LM pass per candidate instruction (74 s for PutNext at the minimum
    limit); their formula is tested in tests/test_fomo.py::test_normalisations and the task path by the ``sum``
    rows, which run here."""
    entry = task_spec(tid).baselines[baseline]
    if "+gemma3" in entry.get("reward", "") or entry.get("reward", "").endswith("+contrastive"):
        return True
    return "lm" in entry and (entry["lm"] != "smollm2" or not tid.startswith("fmbench/ICLRandomnessJudgment"))


def _trains_at_load(tid: str, baseline: str) -> bool:
    """The SSL-landscape ``gd`` baselines: gradient descent on the expected loss when loaded (seconds; their
    agreement with theory is tested in tests/test_ssl_landscape_training.py); the mode-connectivity CIFAR task's
    baselines, trained from the user's copy on first use (2-5 s with torch's first optimizer; the data, the cache
    and the errors are tested fast in tests/test_mode_connectivity_cifar.py)."""
    if tid == "fmbench/MMCCifarBoxFT-v0":
        return True
    return baseline == "gd" and task_spec(tid).entry_point.startswith("fmbench.studies.ssl_landscape.")


def _samples_a_diffusion_model(tid: str, baseline: str) -> bool:
    """The compositional-diffusion DDPM: 50 DDIM steps per image, ~5 s even at the minimum limit (16 images);
    its path is tested in tests/test_compositional_diffusion.py."""
    return tid.startswith("fmbench/ConceptGen") and baseline == "ddpm"


LM_SKIP = "an LM run of minutes (ICL LMs, FoMo on Gemma, FoMo contrastive); see _left_to_study_tests"


def _repeats_the_mmc_evaluator(tid: str, baseline: str) -> bool:
    """The mode-connectivity p-sweep and dominoes tasks: the evaluator of fmbench/MMCFashionBoxFT-v0 (all of whose
    baselines run here) on other data. Their shipped cue-reliant model runs here; the fine-tuned ones (~0.5 s each,
    20 of them) run with the slow tests (their checkpoints' keys are checked against the shipped rows fast)."""
    return tid.startswith("fmbench/MMCFashion") and tid != "fmbench/MMCFashionBoxFT-v0" and baseline != "cue-reliant"


def _repeats_the_tracr_evaluator(tid: str, baseline: str) -> bool:
    """The Tracr Max-identifier tasks: the Tracr Counter tasks' evaluator (all of whose baselines run here) on
    another compiled program, ~1.5-2.5 s per baseline at the minimum limit; their twelve baselines run with the
    slow tests (their data and the compiled Max are tested fast in tests/test_finetuning_tracr.py)."""
    return tid.startswith("fmbench/TracrMaxFineTuneMin")


BASELINES = [
    pytest.param(
        t,
        b,
        # a superseded version's baselines run with the slow tests: its task class and loaders are the current
        # version's, its data is pinned, and its leaderboard rows are checked by test_shipped_leaderboards
        marks=[pytest.mark.slow]
        * (
            _loads_smollm2(t, b)
            or _trains_at_load(t, b)
            or _samples_a_diffusion_model(t, b)
            or _repeats_the_mmc_evaluator(t, b)
            or _repeats_the_tracr_evaluator(t, b)
            or superseded_by(t) is not None
        )
        + [pytest.mark.skip(reason=LM_SKIP)] * _left_to_study_tests(t, b),
    )
    for t in TASKS
    for b in task_spec(t).baselines
]


@pytest.mark.parametrize("tid,baseline", BASELINES)
def test_every_baseline_evaluates_to_a_valid_record(tid, baseline, user_data):
    task = fmbench.make_task(tid)
    model = load_model(f"baseline:{baseline}", task)
    record = run_evaluation(
        task, model, seeds=[0], device="cpu", limit=max(2, task.min_limit), progress=False, log=lambda _: None
    )
    check_schema(record)
    check_against_registry(record)
    assert set(task.spec.metrics) <= set(record["metrics"])
    for m in record["metrics"].values():
        assert np.isfinite(m["mean"])
