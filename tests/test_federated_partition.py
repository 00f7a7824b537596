"""Client partitions (fmbench.studies.federated.partition): guarantees, seeding, alpha, errors, flwr-datasets."""

from __future__ import annotations

import numpy as np
import pytest

from fmbench.errors import FmbenchError
from fmbench.studies.federated import partition as P
from fmbench.studies.federated.partition import (
    PARTITIONERS,
    Partition,
    PartitionError,
    balanced_dirichlet,
    dirichlet,
    iid,
    make_partition,
    pathological,
)

# 10 classes of unequal size (150 ... 420 samples), 2850 in all: N is not a multiple of the client counts used
SIZES = np.arange(150, 450, 30)
LABELS = np.random.default_rng(0).permutation(np.repeat(np.arange(10), SIZES))
CASES = [
    ("balanced-dirichlet", {"alpha": 0.1}),
    ("balanced-dirichlet", {"alpha": 10.0}),
    ("dirichlet", {"alpha": 0.1}),
    ("dirichlet", {"alpha": 1.0, "min_size": 20}),
    ("iid", {}),
    ("pathological", {"classes_per_client": 2}),
]


def _classes_per_client(part: Partition, labels: np.ndarray) -> float:
    return float((part.class_counts(labels) > 0).sum(1).mean())


# ---- Partition --------------------------------------------------------------------------------


def test_partition_accessors():
    part = Partition(np.array([2, 0, -1, 2, 0, 2]), n_clients=4)
    assert part.sizes.tolist() == [2, 0, 3, 0] and part.unassigned == 1
    assert part.indices(2).tolist() == [0, 3, 5] and part.indices(1).tolist() == []
    assert part.class_counts(np.array([0, 1, 1, 2, 0, 2])).tolist() == [[1, 1, 0], [0, 0, 0], [1, 0, 2], [0, 0, 0]]
    assert part.client_of.dtype == np.int64 and not part.client_of.flags.writeable
    assert part == Partition([2, 0, -1, 2, 0, 2], 4) and part != Partition([2, 0, -1, 2, 0, 2], 5)


@pytest.mark.parametrize(
    "client_of, n_clients, message",
    [
        (np.array([[0]]), 1, "1-D integer array"),
        (np.array([0.0]), 1, "1-D integer array"),
        (np.array([0, 2]), 2, r"must lie in \[-1, 2\)"),
        (np.array([-2]), 1, "must lie in"),
        (np.array([0]), 0, "n_clients must be an integer >= 1"),
    ],
)
def test_partition_rejects_bad_fields(client_of, n_clients, message):
    with pytest.raises(PartitionError, match=message):
        Partition(client_of, n_clients)


def test_partition_rejects_bad_queries():
    part = Partition(np.array([0, 1]), 2)
    with pytest.raises(PartitionError, match=r"client must be an integer in \[0, 2\), got 2"):
        part.indices(2)
    with pytest.raises(PartitionError, match="labels has 3 entries, the partition 2"):
        part.class_counts(np.array([0, 1, 1]))


# ---- every partitioner ------------------------------------------------------------------------


@pytest.mark.parametrize("name, params", CASES)
def test_seeded(name, params):
    a = make_partition(name, LABELS, 12, seed=3, **params)
    assert a == make_partition(name, LABELS, 12, seed=3, **params)
    assert a != make_partition(name, LABELS, 12, seed=4, **params)


@pytest.mark.parametrize("name, params", CASES)
@pytest.mark.parametrize("n_clients", [1, 7, 40])
def test_disjoint_and_covering(name, params, n_clients):
    part = make_partition(name, LABELS, n_clients, seed=0, **params)
    parts = [part.indices(k) for k in range(n_clients)]
    assert all((np.diff(p) > 0).all() for p in parts)  # sorted, no repeats
    every = np.concatenate(parts)
    assert len(np.unique(every)) == len(every) == len(LABELS) - part.unassigned
    if name == "pathological" and n_clients * params["classes_per_client"] < 10:
        assert part.unassigned > 0  # fewer (client, class) slots than classes: some classes are left out
    else:
        assert part.unassigned == 0 and (part.class_counts(LABELS).sum(0) == SIZES).all()


@pytest.mark.parametrize("n_clients", [3, 10, 40, 100])
@pytest.mark.parametrize("alpha", [1e-3, 0.1, 1.0, 100.0])
def test_balanced_client_sizes_are_within_one(n_clients, alpha):
    part = balanced_dirichlet(LABELS, n_clients, alpha, seed=1)
    low = len(LABELS) // n_clients
    assert set(part.sizes.tolist()) <= {low, low + 1} and part.sizes.sum() == len(LABELS)


@pytest.mark.parametrize("seed", range(5))
def test_balanced_converges_at_alpha_1e_3_with_100_clients_10_classes(seed):
    labels = np.repeat(np.arange(10), 6000)
    train, test = balanced_dirichlet(labels, 100, 1e-3, seed, test_labels=np.repeat(np.arange(10), 1000))
    assert (train.sizes == 600).all() and (test.sizes == 100).all()
    assert _classes_per_client(train, labels) < 2.5  # nearly one class per client


def test_balanced_iid_limit_gives_every_client_the_class_frequencies():
    part = balanced_dirichlet(LABELS, 9, 1e5, seed=0)
    assert np.abs(part.class_counts(LABELS) - SIZES / 9).max() < 2  # floor/ceil of a share within 1e-2 of n_c / K


def test_balanced_test_split_follows_the_train_matrix():
    test_labels = np.repeat(np.arange(10), SIZES // 3)
    for alpha in (0.1, 1.0):
        train, test = balanced_dirichlet(LABELS, 20, alpha, seed=2, test_labels=test_labels)
        assert test.unassigned == 0 and set(test.sizes.tolist()) <= {47, 48}  # 945 / 20, same class frequencies
        # both are floor/ceil of the same shares times the class sizes, so scaled counts agree within 2
        assert np.abs(test.class_counts(test_labels) - train.class_counts(LABELS) / 3).max() < 2


def test_balanced_test_split_by_other_class_frequencies():
    test_labels = np.repeat(np.arange(10), 20)  # uniform, unlike the train classes
    train, test = balanced_dirichlet(LABELS, 8, 0.5, seed=0, test_labels=test_labels)
    assert test.unassigned == 0 and test.sizes.sum() == 200
    # test sizes are floor/ceil of sum_c D[k, c] * m_c / p_c; train counts give that sum to within 10 * 20 / 150
    expected = (train.class_counts(LABELS) * 20 / SIZES).sum(1)
    assert np.abs(test.sizes - expected).max() < 1 + 10 * 20 / 150


def test_balanced_refuses_test_classes_absent_from_training():
    with pytest.raises(PartitionError, match=r"no training sample: \[3, 12\]"):
        balanced_dirichlet(LABELS[LABELS != 3], 5, 1.0, 0, test_labels=np.array([0, 3, 12]))


def test_balanced_names_alpha_when_it_does_not_converge(monkeypatch):
    monkeypatch.setattr(P, "_NEWTON_STEPS", 1)
    with pytest.raises(PartitionError, match=r"could not balance .* at alpha=0\.01"):
        balanced_dirichlet(LABELS, 50, 0.01, 0)


@pytest.mark.parametrize("shape", [(100, 10), (10, 10), (7, 3), (3, 50)])
@pytest.mark.parametrize("alpha", [1e-4, 1e-2, 1.0, 1e6])
def test_balancing_meets_both_margins(shape, alpha):
    rng = np.random.default_rng(7)
    cols = rng.random(shape[1]) + 0.2
    cols /= cols.sum()
    rows = np.full(shape[0], 1 / shape[0])
    d = P._balance(P._log_gamma(rng, alpha, shape), rows, cols, alpha)
    assert np.abs(d.sum(1) / rows - 1).max() < 1e-9 and np.abs(d.sum(0) / cols - 1).max() < 1e-9


@pytest.mark.parametrize("seed", range(20))
def test_controlled_rounding_guarantee(seed):
    rng = np.random.default_rng(seed)
    k, c = rng.integers(1, 30, 2)
    target = rng.random((k, c)) ** 3
    target *= rng.integers(1, 50, c) / target.sum(0)  # integral column sums
    counts = P._round_matrix(target, target.sum(1))
    assert (counts.sum(0) == np.rint(target.sum(0))).all()
    assert ((counts == np.floor(target)) | (counts == np.ceil(target))).all()
    rows = target.sum(1)
    assert ((counts.sum(1) >= np.floor(rows + 1e-6)) & (counts.sum(1) <= np.ceil(rows - 1e-6))).all()


def test_controlled_rounding_repairs_rows_the_first_pass_misses(monkeypatch):
    target = np.array([[2, 4, 9, 5], [0, 0, 3, 7], [5, 0, 0, 0], [0, 2, 1, 8], [3, 4, 7, 0]]) / 10  # found by search
    moves, move_one = [], P._move_one
    monkeypatch.setattr(P, "_move_one", lambda *a: moves.append(1) or move_one(*a))
    counts = P._round_matrix(target, target.sum(1))
    assert moves and counts.sum(0).tolist() == [1, 1, 2, 2]
    assert ((counts == np.floor(target)) | (counts == np.ceil(target))).all()
    assert (np.abs(counts.sum(1) - target.sum(1)) < 1).all()


def test_controlled_rounding_refuses_row_sums_unlike_the_targets():
    with pytest.raises(RuntimeError, match="no rounding path"):
        P._round_matrix(np.array([[1.5, 0.5], [0.5, 1.5]]), np.array([4.0, 0.0]))


@pytest.mark.parametrize("fn", [balanced_dirichlet, dirichlet])
def test_small_alpha_concentrates_classes(fn):
    few = np.mean([_classes_per_client(fn(LABELS, 20, 0.1, s), LABELS) for s in range(3)])
    many = np.mean([_classes_per_client(fn(LABELS, 20, 100.0, s), LABELS) for s in range(3)])
    assert few < 5 and many == 10


@pytest.mark.parametrize("alpha, min_size", [(0.05, 20), (0.5, 60), (10.0, 130)])
def test_dirichlet_min_size(alpha, min_size):
    part = dirichlet(LABELS, 20, alpha, seed=0, min_size=min_size)
    assert part.sizes.min() >= min_size and part.unassigned == 0


def test_dirichlet_gives_up_after_max_draws_naming_the_best():
    with pytest.raises(PartitionError, match=r"min_size=142 at alpha=0\.01 in 1000 draws \(best smallest client: "):
        dirichlet(LABELS, 20, 0.01, seed=0, min_size=142)


def test_dirichlet_refuses_unreachable_min_size():
    with pytest.raises(PartitionError, match=r"min_size=143 is unreachable: 20 clients x 143 > 2850 samples"):
        dirichlet(LABELS, 20, 1.0, seed=0, min_size=143)


def test_iid_sizes():
    part = iid(LABELS, 40, seed=0)
    assert part.sizes.tolist() == [72] * 10 + [71] * 30
    assert 7 <= _classes_per_client(part, LABELS) <= 10


@pytest.mark.parametrize("n_clients, k", [(10, 1), (10, 2), (7, 3), (40, 5), (100, 10), (3, 10)])
def test_pathological_gives_exactly_k_classes(n_clients, k):
    part = pathological(LABELS, n_clients, k, seed=1)
    assert ((part.class_counts(LABELS) > 0).sum(1) == k).all() and part.unassigned == 0


def test_pathological_sizes_are_equal_when_shards_divide():
    labels = np.repeat(np.arange(10), 600)
    for n_clients, k in [(100, 2), (30, 3), (20, 5)]:
        sizes = pathological(labels, n_clients, k, seed=0).sizes
        assert sizes.max() - sizes.min() <= k  # shards differ by at most one sample


def test_pathological_leaves_out_classes_without_a_slot():
    part = pathological(LABELS, 2, 3, seed=0)  # 6 slots for 10 classes
    assert ((part.class_counts(LABELS) > 0).sum(1) == 3).all()
    assert part.unassigned == len(LABELS) - part.sizes.sum() > 0


def test_pathological_refuses_too_small_classes():
    with pytest.raises(PartitionError, match="need 6 non-empty shards, but the classes can fill only 5"):
        pathological(np.array([0, 1, 2, 2, 2, 2, 2]), 3, 2, seed=0)  # at most min(n_c, K) = 1, 1, 3 shards


# ---- argument checks --------------------------------------------------------------------------


@pytest.mark.parametrize(
    "labels, message",
    [
        (np.zeros((2, 2), dtype=int), "1-D array of non-negative integers"),
        (np.array([0.0, 1.0]), "1-D array of non-negative integers"),
        (np.array([True, False]), "1-D array of non-negative integers"),
        (np.array([], dtype=int), "labels is empty"),
        (np.array([0, -1, 2]), "labels must be non-negative, got -1"),
    ],
)
@pytest.mark.parametrize("name, params", CASES[::2] + [("pathological", {"classes_per_client": 1})])
def test_bad_labels(labels, message, name, params):
    with pytest.raises(PartitionError, match=message):
        make_partition(name, labels, 1, seed=0, **params)


@pytest.mark.parametrize(
    "n_clients, message",
    [
        (0, "n_clients must be an integer >= 1, got 0"),
        (True, "n_clients must be an integer >= 1, got True"),
        (2.0, "n_clients must be an integer"),
        (2851, r"more clients \(2851\) than samples \(2850\)"),
    ],
)
@pytest.mark.parametrize("name, params", CASES[::2] + [("pathological", {"classes_per_client": 1})])
def test_bad_client_counts(n_clients, message, name, params):
    with pytest.raises(PartitionError, match=message):
        make_partition(name, LABELS, n_clients, seed=0, **params)


@pytest.mark.parametrize("alpha", [0, -1.0, 1e-310, float("nan"), float("inf"), True, "1"])
@pytest.mark.parametrize("fn", [balanced_dirichlet, dirichlet])
def test_bad_alpha(alpha, fn):
    with pytest.raises(PartitionError, match=f"alpha must be a finite number >= 1e-300, got {alpha!r}"):
        fn(LABELS, 4, alpha, 0)


@pytest.mark.parametrize(
    "k, message",
    [
        (0, "classes_per_client must be an integer >= 1, got 0"),
        (11, r"classes_per_client must be in \[1, 10\] \(the classes present\), got 11"),
    ],
)
def test_bad_classes_per_client(k, message):
    with pytest.raises(PartitionError, match=message):
        pathological(LABELS, 4, k, seed=0)


def test_bad_min_size_and_seed():
    with pytest.raises(PartitionError, match="min_size must be an integer >= 0, got -1"):
        dirichlet(LABELS, 4, 1.0, seed=0, min_size=-1)
    with pytest.raises(ValueError, match="seed must be a non-negative integer, got -1"):
        iid(LABELS, 4, seed=-1)


def test_registry_dispatch_and_errors():
    assert set(PARTITIONERS) == {"balanced-dirichlet", "dirichlet", "iid", "pathological"}
    assert make_partition("dirichlet", LABELS, 5, seed=2, alpha=0.3) == dirichlet(LABELS, 5, 0.3, 2)
    train, test = make_partition("balanced-dirichlet", LABELS, 5, seed=2, alpha=0.3, test_labels=LABELS[:100])
    assert train == balanced_dirichlet(LABELS, 5, 0.3, 2) and test.sizes.sum() == 100
    with pytest.raises(PartitionError, match="unknown partitioner 'shards'; known: balanced-dirichlet, dirichlet, "):
        make_partition("shards", LABELS, 5, seed=0)
    with pytest.raises(PartitionError, match="iid: unknown parameter.s. alpha; it takes none"):
        make_partition("iid", LABELS, 5, seed=0, alpha=1.0)
    with pytest.raises(PartitionError, match="dirichlet: unknown parameter.s. beta; it takes alpha, min_size"):
        make_partition("dirichlet", LABELS, 5, seed=0, alpha=1.0, beta=2)
    with pytest.raises(PartitionError, match="pathological: missing parameter.s. classes_per_client"):
        make_partition("pathological", LABELS, 5, seed=0)
    assert issubclass(PartitionError, FmbenchError) and issubclass(PartitionError, ValueError)


# ---- flwr-datasets ----------------------------------------------------------------------------


def test_flwr_datasets_partitioner_plugs_in():
    pytest.importorskip("flwr_datasets")
    import datasets

    from fmbench.studies.federated.flwr import FmbenchPartitioner

    rows = datasets.Dataset.from_dict({"label": LABELS, "row": np.arange(len(LABELS))})
    partitioner = FmbenchPartitioner("balanced-dirichlet", 12, seed=5, alpha=0.3)
    partitioner.dataset = rows
    assert partitioner.num_partitions == 12
    loaded = [partitioner.load_partition(k) for k in range(12)]
    expected = balanced_dirichlet(LABELS, 12, 0.3, 5)
    assert partitioner.partition == expected
    for k, client in enumerate(loaded):
        columns = client.to_dict()
        assert (
            columns["row"] == expected.indices(k).tolist() and columns["label"] == LABELS[expected.indices(k)].tolist()
        )
    union = np.concatenate([client.to_dict()["row"] for client in loaded])
    assert np.array_equal(np.sort(union), np.arange(len(LABELS)))  # every sample, once: the balanced guarantee
    assert {len(c) for c in loaded} <= {237, 238}


def test_flwr_datasets_partitioner_reads_views_and_string_labels():
    pytest.importorskip("flwr_datasets")
    import datasets

    from fmbench.studies.federated.flwr import FmbenchPartitioner

    view = datasets.Dataset.from_dict({"label": LABELS}).select(np.arange(len(LABELS))[::-1])
    partitioner = FmbenchPartitioner("pathological", 10, classes_per_client=1)
    partitioner.dataset = view
    assert partitioner.partition == pathological(LABELS[::-1], 10, 1, 0)
    named = FmbenchPartitioner("pathological", 10, partition_by="name", classes_per_client=1)
    named.dataset = datasets.Dataset.from_dict({"name": [f"class{c}" for c in LABELS]})
    assert named.partition == pathological(LABELS, 10, 1, 0)  # "class0" < "class1" < ... as the labels


def test_flwr_datasets_partitioner_errors():
    pytest.importorskip("flwr_datasets")
    import datasets

    from fmbench.studies.federated.flwr import FmbenchPartitioner

    with pytest.raises(PartitionError, match="dirichlet: unknown parameter.s. beta"):
        FmbenchPartitioner("dirichlet", 4, alpha=1.0, beta=1)
    with pytest.raises(PartitionError, match="test_labels is not accepted"):
        FmbenchPartitioner("balanced-dirichlet", 4, alpha=1.0, test_labels=LABELS)
    partitioner = FmbenchPartitioner("iid", 4, partition_by="y")
    partitioner.dataset = datasets.Dataset.from_dict({"label": [0, 1, 0, 1]})
    with pytest.raises(PartitionError, match=r"partition_by='y' is not a column of the data set \(label\)"):
        partitioner.load_partition(0)
