"""Tests for ltcmh_jax/data/longtail.py: Zipf counts, long-tail and balanced splits, Table 1."""

import math
import os
import subprocess
import sys

import numpy as np
import pytest

from ltcmh_jax.data import (
    SYNTHETIC_SPLIT,
    MultiModalDataset,
    Split,
    balanced_split,
    describe,
    longtail_split,
    make_synthetic_longtail,
    zipf_counts,
)

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def reference_zipf(num_labels, z1, imbalance_factor):
    """The paper's z_a = z1 * a^-mu, mu = ln(IF) / ln(c), rounded half up."""
    mu = math.log(imbalance_factor) / math.log(num_labels)
    return [math.floor(z1 * a**-mu + 0.5) for a in range(1, num_labels + 1)]


@pytest.fixture(scope="module")
def synthetic():
    return make_synthetic_longtail()


@pytest.fixture(scope="module")
def synthetic_split(synthetic):
    return longtail_split(synthetic.labels, **SYNTHETIC_SPLIT, seed=0)


def correlated_labels(num_samples, seed):
    """Labels with topic-driven co-occurrence (about 4 per sample): harder than independent ones."""
    rng = np.random.default_rng(seed)
    num_labels = 24
    topics = rng.random((6, num_labels)) < 0.25
    in_topic = rng.random((num_samples, 6)) < 0.2
    base = 0.4 * np.arange(1, num_labels + 1) ** -0.9
    labels = (rng.random((num_samples, num_labels)) < base) | (
        ((in_topic @ topics) > 0) & (rng.random((num_samples, num_labels)) < 0.5)
    )
    labels[~labels.any(axis=1), 0] = True
    return labels.astype(np.float32)


# zipf_counts


@pytest.mark.parametrize(
    "num_labels, z1, imbalance_factor, head, tail",
    [(24, 3000, 50, 3000, 60), (21, 5000, 50, 5000, 100), (10, 500, 1, 500, 500)],
)
def test_zipf_counts_endpoints_match_table1(num_labels, z1, imbalance_factor, head, tail):
    counts = zipf_counts(num_labels, z1, imbalance_factor)
    assert counts.shape == (num_labels,)
    assert counts.dtype == np.int64
    assert (counts[0], counts[-1]) == (head, tail)


@pytest.mark.parametrize("num_labels, z1, imbalance_factor", [(24, 3000, 50), (7, 123, 9.5)])
def test_zipf_counts_follow_the_equation_and_decrease(num_labels, z1, imbalance_factor):
    counts = zipf_counts(num_labels, z1, imbalance_factor)
    np.testing.assert_array_equal(counts, reference_zipf(num_labels, z1, imbalance_factor))
    assert (np.diff(counts) <= 0).all()
    assert counts[0] / counts[-1] == pytest.approx(imbalance_factor, rel=0.05)


def test_zipf_counts_single_label():
    np.testing.assert_array_equal(zipf_counts(1, 40, 1), [40])


@pytest.mark.parametrize(
    "args, argument",
    [
        ((0, 100, 10), "num_labels"),
        ((2.5, 100, 10), "num_labels"),
        ((24, 0, 10), "z1"),
        ((24, -5, 10), "z1"),
        ((24, 100, 0.5), "imbalance_factor"),
        ((24, 100, float("nan")), "imbalance_factor"),
        ((1, 100, 2), "imbalance_factor"),
        ((24, 10, 50), "imbalance_factor"),  # the tail would round to 0 samples
    ],
)
def test_zipf_counts_rejects_bad_arguments(args, argument):
    with pytest.raises(ValueError, match=f"^{argument}:"):
        zipf_counts(*args)


def test_issue_command_prints_counts_without_importing_jax():
    code = (
        "import sys; import ltcmh_jax.data as d; print(d.zipf_counts(24, 3000, 50)); "
        "print('jax' in sys.modules)"
    )
    env = dict(os.environ, PYTHONPATH=ROOT + os.pathsep + os.environ.get("PYTHONPATH", ""))
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True, env=env, cwd=ROOT
    )
    printed, jax_imported = result.stdout.rsplit("\n", 2)[:2]
    numbers = [int(x) for x in printed.replace("[", " ").replace("]", " ").split()]
    assert numbers == reference_zipf(24, 3000, 50)
    assert (numbers[0], numbers[-1]) == (3000, 60)
    assert jax_imported == "False"


# longtail_split


def test_longtail_split_partitions_the_samples(synthetic, synthetic_split):
    split = synthetic_split
    n = synthetic.num_samples
    for indices in (split.query, split.database, split.train):
        assert indices.dtype == np.int64
        assert (np.diff(indices) > 0).all()  # sorted, no repeats
    assert split.query.size == SYNTHETIC_SPLIT["num_query"]
    assert np.intersect1d(split.query, split.database).size == 0
    np.testing.assert_array_equal(np.union1d(split.query, split.database), np.arange(n))
    assert np.isin(split.train, split.database).all()


def test_longtail_split_hits_the_zipf_targets_on_the_synthetic_set(synthetic, synthetic_split):
    split = synthetic_split
    labels = synthetic.labels
    database_counts = labels[split.database].sum(axis=0)
    # Labels are ranked by their frequency in the database, and the rank-r label gets z_r.
    assert (np.diff(database_counts[split.label_order]) <= 0).all()
    np.testing.assert_array_equal(
        split.target_counts[split.label_order],
        zipf_counts(
            synthetic.num_labels, SYNTHETIC_SPLIT["z1"], SYNTHETIC_SPLIT["imbalance_factor"]
        ),
    )
    np.testing.assert_array_equal(split.achieved_counts, labels[split.train].sum(axis=0))
    relative = np.abs(split.achieved_counts - split.target_counts) / split.target_counts
    assert relative.max() <= 0.15


@pytest.mark.parametrize("version", [1, 2])
def test_fair_sampler_keeps_the_database_label_mix(version, synthetic, synthetic_split):
    if version == 2:
        synthetic = make_synthetic_longtail(version=2)
        synthetic_split = longtail_split(synthetic.labels, **SYNTHETIC_SPLIT, seed=0)
    table = describe(synthetic, synthetic_split)
    assert table["labels_per_sample_train"] == pytest.approx(
        table["labels_per_sample_base"], rel=0.10
    )
    assert table["head_given_tail_train"] <= table["head_given_tail_base"] + 0.02
    # The Zipf targets are still met, exactly on these sets.
    np.testing.assert_array_equal(synthetic_split.achieved_counts, synthetic_split.target_counts)


def test_fewest_rows_sampler_is_the_biased_one_it_replaces(synthetic):
    # The LP without fairness constraints takes as few rows as it can: multi-label rows, and tail
    # samples that all carry a head label (2.25 labels per sample against 1.87; 1.00 against 0.70).
    split = longtail_split(synthetic.labels, **SYNTHETIC_SPLIT, seed=0, sampler="fewest_rows")
    table = describe(synthetic, split)
    assert table["labels_per_sample_train"] > 1.15 * table["labels_per_sample_base"]
    assert table["head_given_tail_train"] > table["head_given_tail_base"] + 0.2
    relative = np.abs(split.achieved_counts - split.target_counts) / split.target_counts
    assert relative.max() <= 0.15


def test_fair_sampler_puts_counts_before_cardinality_on_label_dense_data():
    # About 4.5 labels per sample: a Zipf training set drops head labels, so it cannot also keep
    # the database's cardinality; the counts win, and no tail label gains head labels.
    labels = correlated_labels(6000, seed=1)
    split = longtail_split(labels, z1=900, imbalance_factor=30, num_query=500, seed=3)
    np.testing.assert_array_equal(split.achieved_counts, split.target_counts)
    dataset = MultiModalDataset(
        image=np.zeros((6000, 1), np.float32), text=np.zeros((6000, 1), np.float32), labels=labels
    )
    table = describe(dataset, split)
    assert table["head_given_tail_train"] <= table["head_given_tail_base"] + 0.02


def test_longtail_split_is_close_on_strongly_correlated_labels():
    labels = correlated_labels(6000, seed=1)
    split = longtail_split(labels, z1=900, imbalance_factor=30, num_query=500, seed=3)
    relative = np.abs(split.achieved_counts - split.target_counts) / split.target_counts
    assert relative.max() <= 0.15


def test_longtail_split_finds_the_minimax_compromise_when_exact_counts_are_impossible():
    # Label 0 is on every sample of labels 1 and 2 (a parent label, like "water" over "sea" and
    # "lake"), and labels 1 and 2 never co-occur. With targets (100, 100, 100) any subset has
    # count_0 >= count_1 + count_2, so the best worst relative error is 1/3 (67, 67, 133).
    rows = [[1, 1, 0]] * 400 + [[1, 0, 1]] * 400 + [[1, 0, 0]] * 400
    labels = np.array(rows, dtype=np.float32)
    split = longtail_split(labels, z1=100, imbalance_factor=1, num_query=30, seed=0)
    relative = np.abs(split.achieved_counts - split.target_counts) / split.target_counts
    assert relative.max() == pytest.approx(1 / 3, abs=0.02)
    assert split.achieved_counts[0] > 100 > split.achieved_counts[1]


def test_longtail_split_is_exact_when_an_exact_subset_exists():
    rng = np.random.default_rng(0)
    labels = (rng.random((3000, 6)) < [0.5, 0.4, 0.3, 0.2, 0.1, 0.05]).astype(np.float32)
    split = longtail_split(labels, z1=600, imbalance_factor=12, num_query=100, seed=4)
    np.testing.assert_array_equal(split.achieved_counts, split.target_counts)


def test_longtail_split_is_deterministic_per_seed():
    labels = correlated_labels(3000, seed=2)
    kwargs = dict(z1=500, imbalance_factor=20, num_query=300)
    first = longtail_split(labels, **kwargs, seed=7)
    again = longtail_split(labels, **kwargs, seed=7)
    other = longtail_split(labels, **kwargs, seed=8)
    for name in ("query", "database", "train", "label_order", "target_counts", "achieved_counts"):
        np.testing.assert_array_equal(getattr(first, name), getattr(again, name))
    assert not np.array_equal(first.query, other.query)
    assert not np.array_equal(first.train, other.train)


def test_longtail_split_never_takes_unlabelled_samples():
    rng = np.random.default_rng(5)
    labels = (rng.random((2000, 4)) < [0.5, 0.3, 0.2, 0.1]).astype(np.float32)
    split = longtail_split(labels, z1=300, imbalance_factor=6, num_query=100, seed=0)
    assert labels[split.train].any(axis=1).all()
    assert (~labels[split.database].any(axis=1)).any()  # there were some to avoid


def test_longtail_split_rejects_a_label_too_rare_in_the_database():
    rng = np.random.default_rng(0)
    labels = (rng.random((2000, 5)) < 0.4).astype(np.float32)
    labels[:, 3] = 0
    labels[:10, 3] = 1  # rank 5 of 5; the split below asks 100 / 4 = 25 of it
    with pytest.raises(ValueError, match=r"^labels: label 3 \(rank 5 of 5\) has \d+ database"):
        longtail_split(labels, z1=100, imbalance_factor=4, num_query=100, seed=0)


@pytest.mark.parametrize(
    "kwargs, argument",
    [
        (dict(imbalance_factor=0.9), "imbalance_factor"),
        (dict(z1=0), "z1"),
        (dict(z1=-3), "z1"),
        (dict(num_query=0), "num_query"),
        (dict(num_query=200), "num_query"),  # = n
        (dict(num_query=500), "num_query"),
        (dict(num_query=10.5), "num_query"),
        (dict(sampler="greedy"), "sampler"),
        (dict(num_head=5), "num_head"),
        (dict(num_head=-1), "num_head"),
    ],
)
def test_longtail_split_rejects_bad_arguments(kwargs, argument):
    labels = np.eye(4, dtype=np.float32)[np.arange(200) % 4]
    arguments = dict(z1=20, imbalance_factor=2, num_query=20, seed=0) | kwargs
    with pytest.raises(ValueError, match=f"^{argument}:"):
        longtail_split(labels, **arguments)


@pytest.mark.parametrize(
    "labels, message",
    [
        (np.ones(10), r"^labels: expected a \[n, c\]"),
        (np.array([[0, 1], [2, 0], [1, 1]]), "^labels: row 1 has values outside"),
    ],
)
def test_splits_reject_bad_labels(labels, message):
    with pytest.raises(ValueError, match=message):
        longtail_split(labels, z1=1, imbalance_factor=1, num_query=1, seed=0)
    with pytest.raises(ValueError, match=message):
        balanced_split(labels, num_query=1, num_train=1, seed=0)


# balanced_split


def test_balanced_split_is_dcmh_protocol():
    labels = correlated_labels(2000, seed=3)
    split = balanced_split(labels, num_query=200, num_train=500, seed=1)
    assert (split.query.size, split.database.size, split.train.size) == (200, 1800, 500)
    assert np.intersect1d(split.query, split.database).size == 0
    np.testing.assert_array_equal(np.union1d(split.query, split.database), np.arange(2000))
    assert np.isin(split.train, split.database).all()
    assert (np.diff(split.train) > 0).all()
    assert split.target_counts is None
    np.testing.assert_array_equal(split.achieved_counts, labels[split.train].sum(axis=0))
    assert (np.diff(labels[split.database].sum(axis=0)[split.label_order]) <= 0).all()


def test_balanced_split_train_is_a_uniform_sample_of_the_database():
    # Uniform: label frequencies of train follow the database's (no Zipf reshaping).
    labels = correlated_labels(6000, seed=4)
    split = balanced_split(labels, num_query=500, num_train=3000, seed=2)
    train_freq = labels[split.train].mean(axis=0)
    database_freq = labels[split.database].mean(axis=0)
    np.testing.assert_allclose(train_freq, database_freq, atol=0.03)


def test_balanced_split_is_deterministic_per_seed():
    labels = correlated_labels(1000, seed=5)
    first = balanced_split(labels, num_query=100, num_train=300, seed=3)
    again = balanced_split(labels, num_query=100, num_train=300, seed=3)
    other = balanced_split(labels, num_query=100, num_train=300, seed=4)
    np.testing.assert_array_equal(first.train, again.train)
    np.testing.assert_array_equal(first.query, again.query)
    assert not np.array_equal(first.train, other.train)


@pytest.mark.parametrize(
    "kwargs, argument",
    [
        (dict(num_train=0), "num_train"),
        (dict(num_train=91), "num_train"),  # database has 90
        (dict(num_query=100), "num_query"),
        (dict(num_query=-1), "num_query"),
    ],
)
def test_balanced_split_rejects_bad_arguments(kwargs, argument):
    labels = np.eye(2, dtype=np.float32)[np.arange(100) % 2]
    arguments = dict(num_query=10, num_train=50, seed=0) | kwargs
    with pytest.raises(ValueError, match=f"^{argument}:"):
        balanced_split(labels, **arguments)


# describe


def test_describe_reports_table1_for_the_split_built(synthetic, synthetic_split):
    table = describe(synthetic, synthetic_split)
    labels = synthetic.labels > 0
    counts = labels[synthetic_split.train].sum(axis=0)
    head = synthetic_split.label_order[:14]  # default_num_head(24): 60% of 24, rounded
    tail = synthetic_split.label_order[14:]

    def head_given_tail(rows):
        tail_rows = labels[rows][:, tail].any(axis=1)
        return labels[rows][tail_rows][:, head].any(axis=1).mean()

    def tail_partner_share(rows):
        # By brute force over the full S of the training set.
        members = labels[rows]
        similar = (members.astype(np.int32) @ members.T.astype(np.int32)) > 0
        np.fill_diagonal(similar, False)
        shares = []
        for label in tail:
            partners = similar[members[:, label]]
            shares.append((partners & members[:, label][None, :]).sum() / partners.sum())
        return np.mean(shares)

    assert table == {
        "n_base": synthetic.num_samples - SYNTHETIC_SPLIT["num_query"],
        "n_query": SYNTHETIC_SPLIT["num_query"],
        "n_train": synthetic_split.train.size,
        "z1": int(counts.max()),
        "zc": int(counts.min()),
        "c": synthetic.num_labels,
        "imbalance_factor": counts.max() / counts.min(),
        "labels_per_sample_train": pytest.approx(labels[synthetic_split.train].sum(1).mean()),
        "labels_per_sample_base": pytest.approx(labels[synthetic_split.database].sum(1).mean()),
        "head_given_tail_train": pytest.approx(head_given_tail(synthetic_split.train)),
        "head_given_tail_base": pytest.approx(head_given_tail(synthetic_split.database)),
        "tail_partner_share_train": pytest.approx(tail_partner_share(synthetic_split.train)),
    }
    # Most of a tail sample's similar partners are similar through a head label only.
    assert table["tail_partner_share_train"] < 0.1
    assert table["z1"] == pytest.approx(SYNTHETIC_SPLIT["z1"], rel=0.15)
    assert table["imbalance_factor"] == pytest.approx(SYNTHETIC_SPLIT["imbalance_factor"], rel=0.3)


def test_describe_fairness_figures_by_hand():
    # Label 0 (4 samples) is head, labels 1 and 2 (2 and 1 samples) tail with num_head=1.
    labels = np.array([[1, 1, 0], [1, 0, 0], [0, 1, 1], [1, 0, 0], [1, 0, 0], [0, 0, 0]])
    dataset = MultiModalDataset(
        image=np.zeros((6, 2), np.float32), text=np.zeros((6, 2), np.float32), labels=labels
    )
    split = Split(
        query=np.array([5]),
        database=np.arange(5),
        train=np.array([0, 2]),
        label_order=np.array([0, 1, 2]),
        target_counts=None,
        achieved_counts=np.array([1, 2, 1]),
    )
    table = describe(dataset, split, num_head=1)
    # Database: 1 + 2 + 2 + 1 + 1 labels on 5 rows; tail rows 0 and 2, of which row 0 has label 0.
    assert table["labels_per_sample_base"] == pytest.approx(7 / 5)
    assert table["head_given_tail_base"] == pytest.approx(1 / 2)
    # Train: rows 0 (2 labels) and 2 (2 labels), both tail rows, one with the head label.
    assert table["labels_per_sample_train"] == pytest.approx(2.0)
    assert table["head_given_tail_train"] == pytest.approx(1 / 2)
    # Rows 0 and 2 share tail label 1, so each is the other's one similar partner: label 1's share
    # is 1; row 2 alone carries label 2, and its partner (row 0) does not: 0. Mean 1/2.
    assert table["tail_partner_share_train"] == pytest.approx(1 / 2)
    no_tail = describe(dataset, split, num_head=3)
    assert math.isnan(no_tail["head_given_tail_train"])
    assert math.isnan(no_tail["tail_partner_share_train"])


def test_describe_tail_partner_share_is_one_for_single_label_data():
    # With one label per sample, S_ij = 1 only for two samples of the same label.
    labels = np.eye(4, dtype=np.float32)[np.repeat(np.arange(4), [8, 4, 3, 2])]
    dataset = MultiModalDataset(
        image=np.zeros((17, 2), np.float32), text=np.zeros((17, 2), np.float32), labels=labels
    )
    split = Split(
        query=np.array([0]),
        database=np.arange(1, 17),
        train=np.arange(1, 17),
        label_order=np.arange(4),
        target_counts=None,
        achieved_counts=np.array([7, 4, 3, 2]),
    )
    assert describe(dataset, split, num_head=2)["tail_partner_share_train"] == 1.0


def test_describe_balanced_split_and_absent_label():
    labels = np.zeros((50, 3), dtype=np.float32)
    labels[:, 0] = 1
    labels[::2, 1] = 1  # label 2 never occurs
    dataset = MultiModalDataset(
        image=np.zeros((50, 4), np.float32), text=np.zeros((50, 2), np.float32), labels=labels
    )
    split = balanced_split(labels, num_query=10, num_train=20, seed=0)
    table = describe(dataset, split)
    assert (table["n_base"], table["n_query"], table["n_train"], table["c"]) == (40, 10, 20, 3)
    assert (table["z1"], table["zc"]) == (20, 0)
    assert table["imbalance_factor"] == math.inf


def test_describe_rejects_a_split_of_another_dataset(synthetic_split):
    small = MultiModalDataset(
        image=np.zeros((5, 2), np.float32), text=np.zeros((5, 2), np.float32), labels=np.eye(5)
    )
    with pytest.raises(ValueError, match=r"^split\.query: indices outside \[0, 5\)"):
        describe(small, synthetic_split)
