"""Checks every registered task: deterministic data, pinned hashes, baselines, valid results."""

from __future__ import annotations

import json

import numpy as np
import pytest

import fmbench
from fmbench.models import load_model
from fmbench.registry import task_spec
from fmbench.results import check_against_registry, check_schema
from fmbench.runner import run_evaluation

TASKS = fmbench.list_tasks()

# sha256 of each task's data for seeds 0 and 1. A change here changes scores: bump the
# task's version (a new spec entry) instead of editing these. Tasks on data the user brings
# (CIFAR, md5-checked on load) are missing: that data is not on this machine, so their
# hashes are not pinned; the other checks run on stand-in copies (conftest.user_data).
GOLDEN = {
    "fmbench/FedFashionA0p1C10-v0": ("d272d4573b6856df2afefcf70ad903d2ab804d9160ca3de219f8dace2f50fcc8",
                                     "49e21bba7b1a9b2073e9641888210ae5789c6f21088add098ee4e364100c440f"),
    "fmbench/FedFashionA0p1C100-v0": ("301f70258c8b2072201b82deaf51a22125ff447b8249b0db655a473b5b7aa15f",
                                      "43c442ced5e5fd07679a555018b50297a01d3009d8017472f0f031dae1168149"),
    "fmbench/FedFashionA0p1C100E10-v0": ("40a1dfcc3835ce3030e575465696456a1731e8a297027409eccca9bfae7a3057",
                                       "73ae75d572e4c01eefb235cda626737fc892468c1aea49df147a0fd2f60fe978"),
    "fmbench/FedFashionA0p1C100P0p1-v0": ("9901ec0af6325234841f15933577d17d222e163a0eec63ff162a3fb9be4704dc",
                                        "aaba4df476f237d638632f9ffaa6bac1a0cd25186a0a0977e9a73735db2c2661"),
    "fmbench/FedFashionA1C100E10-v0": ("55ceb2646ac4b7331096966516ccaff84b62882869883fb7b48c43c4dd914682",
                                     "56dfb889d420ffd743cb97d7da02152a34aeff169a736a87d22e54568e20827c"),
    "fmbench/FedFashionA1e5C100E10-v0": ("1f4ae0e23f945e978f61433ae575ffa4082e8428f65b42df6e050027fdafb30f",
                                       "e9ec163a579de9df2bea184a5f332cfa14ee927cbef4de11799fe2ffe2d55618"),
    "fmbench/FedFashionA1C10-v0": ("deb60357dcc0e5891c98d74735e95b03daca67c51826c5c8d5479f425cb8bddc",
                                   "2cfe6ec16a985ba20effaca5eae431226ed3968b0712813e8972b8a759bac6da"),
    "fmbench/FedFashionA1C100-v0": ("1ab7f2b6e929d47af967df6bd8d6934c0ae561da198ff0ab146690528d5ac31a",
                                    "758593f54844ffdb42ce873cda181af823100b03675db2e0e5c17f848d355c2b"),
    "fmbench/FedFashionA1e5C10-v0": ("7c450ea9ee94785cec25d83b6eed6192803085f35666343de166f579b2d761be",
                                     "90c19cd73dd0a61b0d84b85e581b2e5c286e0a3e1fb108cc3de88e91a2fe5999"),
    "fmbench/FedFashionA1e5C100-v0": ("e760b7768c16ee334b087f194406049eb04235ee332bab2cd2d1ed8bfc6b9139",
                                      "dc181d5b600225b2786ae9dc330382c3025a71d34b15c44be35dd09dda8a7077"),
    "fmbench/GraphFashionSuperpixels-v0": ("5d69d5022101f4cf8639abfcb1a52542a7f902f18ea17b720d878879cc418f10",
                                           "3912417881471b0613a9c3ff91249d2cdd4954020da035ccd61f854bc618640b"),
    "fmbench/GraphMotifsBAX1-v0": ("f1b12e0af94c444cfadd2a709fd0670a003dd72c4061b6a1a35968a2f45915f2",
                                   "c517132cd7eec0577527910172c4c660676180ec9dd0e48457136300f079e31a"),
    "fmbench/GraphMotifsBAX2-v0": ("c602f661e1637b034c112b124753a1fc5da77fdecc8a4fd3dfb0d6ec6d8644a2",
                                   "78a802fe4c5f8688938a390b8000328b7b7f57935ab46430ec1a140ee312ddb1"),
    "fmbench/GraphMotifsBAX4-v0": ("114b2eb90455571adca888823a7b4fc59953eda215ef83c9c88772b304e823b1",
                                   "43085549d03239479d3d97b60ca21a7b4365f49533424ae3c2e15a59410bf2ca"),
    "fmbench/GraphMotifsBAX8-v0": ("533395ff1b60842592a350cf3db71167643f7903d92a1f8fec4a78082192916d",
                                   "01d796112cec31ec879a55b5cd23679db06af85cba8afc6869e72d3f1fd514ff"),
    "fmbench/GraphMotifsTreeX1-v0": ("d6a73d59e5f6db902f1c3a873901dc35a0202cf9ded25c913cfff562fcb6b6d5",
                                     "1524b1b1b92cadaf71da6ee3eaebb76dd40c5d7646f678d506bf302e2e4c7cea"),
    "fmbench/GraphMotifsTreeX2-v0": ("3f463d02e4b3c2c603321785532ceb75ed17f303feeab936f1c3afe63c6dda49",
                                     "afa57d0d07ac8cff377a8893f9813d21a7896372892319660c3416ec16571324"),
    "fmbench/GraphMotifsTreeX4-v0": ("c93fa1784408645616b5e6139f9b27a28051a5dee4cd610045050c03d1f00658",
                                     "318a1ce90fed8ba87a2e994370d19327a89bba4b1e83fd910cfc61ca7725b848"),
    "fmbench/GraphMotifsTreeX8-v0": ("0764d14f7aa091c95c81351049ff5fd861aa7c0c0ae69af4681b5bc75352bca4",
                                     "99316d4dc0502e14cd3a998384a59149de3c8b1089c5ded878d1969ba356b1af"),
    "fmbench/FoMoRewardGoTo-v0": ("01721b19058c5a09c7053384834698e84f789872f83a06493d3ca24dfe029d19",
                                  "27ea4a6cf0f8b2202fa3a1a20e70953b2e4cb9c33c4206b1f158c2f0d6286b91"),
    "fmbench/FoMoRewardPickup-v0": ("0714eca7fd00adeffd74a010969217dd5759b011ed911607c861210810455424",
                                    "8a2189a22bda19879b7181faa1987f1b2b1eb8b3cfbf9a687271bbbee78ae433"),
    "fmbench/FoMoRewardOpen-v0": ("a3f75f0eeaf74aa70aa19022c02bc5462cf425a9104fbfc989936d018c2150c5",
                                  "9e06bc59e5f0b58ac94d8c40f8504096ea87c2efe02eea8678221c970bc26a5f"),
    "fmbench/FoMoRewardPutNext-v0": ("e76c5dfe465c50ec116f8e7ec86ddf91221620417806c9f73228665487582ffd",
                                     "6336ff1d39d6bd63cfc72d6e693aca460b57c65f3eb504341068f596c722a5e4"),
    "fmbench/ComposeTokensPolicy-v0": ("e7811f15acda41be717053946acf3e8c5cc029b3b004be1f780a8288a6c2dfb1",
                                       "22ebb5e7ea12d3eeebd1ba1cded3ff015636ee014f5146656ac3c0f047b7a549"),
    "fmbench/ComposeBase-v0": ("b5f8a8be374d964e39465ac7a02a54ca209166010a15adf3a49c20396486b2bd",
                               "746e3f579c76f63ff107cf47a4ac1dc82333c44111cbf2f209a69032c750296e"),
    "fmbench/ComposeDirect-v0": ("8871771138933b53b6aad1f262a96fe53b28931cf2f1e162eb1bc820190d97e2",
                                 "8d0bd10e57ba61ba4626afa5a9f83d0e3001e0c1837a79ba3f26f233f667c972"),
    "fmbench/ComposeOutOfOrder-v0": ("330fd04732e6e95bcc5100cb11deab5f69d3c5e9900a1c9ef054012e738e4375",
                                     "3344c45090099483e06881081065a506d4b5feb320dbc1ea0a7a0a055a26bff9"),
    "fmbench/ComposePermuteStepByStep-v0": ("32d68ac55bcc4b9a685e87fff036c14baea7dabb159d9d46f2d7131eae8f3283",
                                            "6e6f12331bc1ec122d17d1dcd3a1a795332bf01f206d863a13e0ed947af9b826"),
    "fmbench/ComposeStepByStep-v0": ("5c56968cebfd2416d19b55e7131d2e74aa573864a13f24432c30d8661fffa44e",
                                     "97c7b7998511b6b12054a30bcd6801d9f7d9a48cab0f7ca58b1de2f5769ef118"),
}


def test_every_task_on_installable_data_has_a_golden_hash():
    assert set(GOLDEN) == {t for t in TASKS if fmbench.make_task(t).user_data() is None}


@pytest.fixture(scope="module", params=TASKS)
def task(request, user_data):
    return fmbench.make_task(request.param)


def test_same_seed_same_hash_and_golden(task):
    assert task.data_hash(0) == task.data_hash(0) == fmbench.make_task(task.id).data_hash(0)
    if task.id not in GOLDEN:
        pytest.skip(f"{task.id}: hashes of the user's own data (${task.user_data()}) are not pinned")
    assert (task.data_hash(0), task.data_hash(1)) == GOLDEN[task.id]


def test_different_seeds_give_different_data(task):
    assert task.data_hash(0) != task.data_hash(1)
    for split in task.splits:
        a = next(iter(task.export_chunks(split, 0)))
        b = next(iter(task.export_chunks(split, 1)))
        assert any(not (a[k].shape == b[k].shape and np.array_equal(a[k], b[k])) for k in a), split


def test_splits_are_random_access(task):
    for split in task.splits:
        first = next(iter(task.export_chunks(split, 3)))
        assert len(first["ids"]) <= task.split_size(split)
        assert np.array_equal(first["ids"], next(iter(task.export_chunks(split, 3)))["ids"])


def test_spec_contract(task):
    s = task.spec
    assert s.primary_metric in s.metrics and s.min_seeds >= 1 and s.baselines
    assert any(h["version"] == s.version for h in s.history)
    info = task.describe()
    json.dumps(info)
    for key in ("study", "title", "params", "metrics", "interface", "baselines", "version_history", "input_format"):
        assert info[key] not in (None, "", {}), key


@pytest.mark.parametrize("tid,baseline", [(t, b) for t in TASKS for b in task_spec(t).baselines])
def test_every_baseline_evaluates_to_a_valid_record(tid, baseline, user_data):
    task = fmbench.make_task(tid)
    model = load_model(f"baseline:{baseline}", task)
    record = run_evaluation(task, model, seeds=[0], device="cpu", limit=2, progress=False, log=lambda _: None)
    check_schema(record)
    check_against_registry(record)
    assert set(task.spec.metrics) <= set(record["metrics"])
    for m in record["metrics"].values():
        assert np.isfinite(m["mean"])
