"""Tests for ltcmh_jax/data/synthetic.py: the embedded default data set."""

import collections

import numpy as np
import pytest

from ltcmh_jax.data import (
    SYNTHETIC_SPLIT,
    VISIBILITY_KINDS,
    describe,
    label_visibility,
    longtail_split,
    make_synthetic_longtail,
)

SMALL = dict(num_samples=400, num_labels=9, image_dim=32, text_dim=60)


@pytest.fixture(scope="module")
def default():
    return make_synthetic_longtail()


def ridge_scores(features, targets, train, test, *, penalty=100.0):
    """Linear probe: ridge regression on `train` rows, scores `[len(test), c]` on `test` rows."""
    with_bias = np.concatenate([features, np.ones((features.shape[0], 1))], axis=1).astype(
        np.float64
    )
    x = with_bias[train]
    weights = np.linalg.solve(x.T @ x + penalty * np.eye(x.shape[1]), x.T @ targets[train])
    return with_bias[test] @ weights


def auc(scores, positive):
    """Area under the ROC curve by the rank-sum formula (no ties in continuous scores)."""
    ranks = np.argsort(np.argsort(scores)) + 1.0
    num_positive = positive.sum()
    num_negative = positive.size - num_positive
    return (ranks[positive].sum() - num_positive * (num_positive + 1) / 2) / (
        num_positive * num_negative
    )


def mean_average_precision(query_scores, database_scores, query_labels, database_labels):
    """MAP of ranking the database by inner product; relevant = shares at least one label."""
    similarity = query_scores @ database_scores.T
    precisions = []
    for row, query in enumerate(query_labels):
        relevant = (database_labels @ query > 0)[np.argsort(-similarity[row], kind="stable")]
        hits = np.flatnonzero(relevant)
        if hits.size:
            precisions.append((np.arange(1, hits.size + 1) / (hits + 1)).mean())
    return float(np.mean(precisions))


def test_default_shapes_and_types(default):
    assert default.image.shape == (12000, 512)
    assert default.text.shape == (12000, 1000)
    assert default.labels.shape == (12000, 24)
    assert default.image.dtype == np.float32 and default.text.dtype == np.float32
    assert not default.has_raw_images


def test_sizes_are_arguments():
    data = make_synthetic_longtail(**SMALL, seed=3)
    assert data.image.shape == (400, 32)
    assert data.text.shape == (400, 60)
    assert data.labels.shape == (400, 9)


def test_features_look_like_fc7_and_tags(default):
    assert (default.image >= 0).all()  # ReLU outputs
    assert 0.2 < (default.image > 0).mean() < 0.8
    assert set(np.unique(default.text)) == {0.0, 1.0}  # binary tag bag
    assert 0.005 < (default.text > 0).mean() < 0.05  # a few percent dense


def test_labels_are_multi_label_with_zipf_frequencies(default):
    labels = default.labels
    assert labels.any(axis=1).all()  # every sample is labelled
    assert 1.3 < labels.sum(axis=1).mean() < 3.0
    assert (labels.sum(axis=1) >= 2).mean() > 0.3
    frequency = np.sort(labels.mean(axis=0))[::-1]
    assert frequency[0] == pytest.approx(0.3, abs=0.03)  # head_frequency
    # Zipf: log frequency is roughly linear in log rank, slope -ln(10) / ln(24).
    slope = np.polyfit(np.log(np.arange(1, 25)), np.log(frequency), 1)[0]
    assert slope == pytest.approx(-np.log(10) / np.log(24), abs=0.15)


def test_generation_is_deterministic_per_seed():
    first = make_synthetic_longtail(**SMALL, seed=5)
    again = make_synthetic_longtail(**SMALL, seed=5)
    other = make_synthetic_longtail(**SMALL, seed=6)
    for name in ("image", "text", "labels"):
        np.testing.assert_array_equal(getattr(first, name), getattr(again, name))
        assert not np.array_equal(getattr(first, name), getattr(other, name))
    assert first.label_names == again.label_names


def test_label_visibility_spreads_kinds_over_the_frequency_ranks(default):
    kinds = label_visibility(24, seed=0)
    assert set(kinds) <= set(VISIBILITY_KINDS)
    assert collections.Counter(kinds) == {"shared": 12, "image": 6, "text": 6}
    assert default.label_names == tuple(f"{kind}_{i:02d}" for i, kind in enumerate(kinds))
    # Head, middle and tail each hold every kind: each run of four ranks has 2 / 1 / 1.
    by_rank = np.array(kinds)[np.argsort(-default.labels.sum(axis=0))]
    head_half = collections.Counter(by_rank[:12])
    assert head_half["image"] >= 2 and head_half["text"] >= 2
    assert label_visibility(24, seed=0) == kinds
    assert label_visibility(24, seed=1) != kinds
    assert len(label_visibility(5, seed=0)) == 5


@pytest.mark.parametrize(
    "modality, readable, hidden", [("image", "image", "text"), ("text", "text", "image")]
)
def test_each_modality_shows_only_its_labels(default, modality, readable, hidden):
    """A linear probe reads shared and own labels from a modality, the other one's not at all."""
    kinds = np.array(label_visibility(24, seed=0))
    half = default.num_samples // 2
    scores = ridge_scores(
        getattr(default, modality), default.labels, np.arange(half), np.arange(half, 12000)
    )
    test_labels = default.labels[half:] > 0
    areas = np.array([auc(scores[:, a], test_labels[:, a]) for a in range(24)])
    assert areas[kinds == "shared"].min() > 0.75
    assert areas[kinds == readable].min() > 0.75
    # No better than chance: the hidden labels leave no trace in this modality.
    assert np.abs(areas[kinds == hidden] - 0.5).max() < 0.07


def test_retrieval_is_neither_trivial_nor_chance(default):
    """Cross-modal MAP of a supervised linear model: well above chance, far from 1."""
    split = longtail_split(default.labels, **SYNTHETIC_SPLIT, seed=0)
    labels = default.labels
    query = split.query[:300]
    image_scores = np.clip(
        ridge_scores(default.image, labels, split.train, np.r_[query, split.database]), 0, 1
    )
    text_scores = np.clip(
        ridge_scores(default.text, labels, split.train, np.r_[query, split.database]), 0, 1
    )
    num_query = query.size
    image_to_text = mean_average_precision(
        image_scores[:num_query], text_scores[num_query:], labels[query], labels[split.database]
    )
    rng = np.random.default_rng(0)
    chance = mean_average_precision(
        rng.standard_normal((num_query, 8)),
        rng.standard_normal((split.database.size, 8)),
        labels[query],
        labels[split.database],
    )
    assert chance < 0.35
    assert chance + 0.05 < image_to_text < 0.8


def test_synthetic_split_gives_a_long_tailed_training_set(default):
    split = longtail_split(default.labels, **SYNTHETIC_SPLIT, seed=1)
    table = describe(default, split)
    assert 1500 <= table["n_train"] <= 6000
    assert table["n_query"] == 1000
    assert 20 <= table["imbalance_factor"] <= 60
    relative = np.abs(split.achieved_counts - split.target_counts) / split.target_counts
    assert relative.max() <= 0.15


@pytest.mark.parametrize(
    "kwargs, argument",
    [
        (dict(num_samples=0), "num_samples"),
        (dict(num_labels=0), "num_labels"),
        (dict(image_dim=0), "image_dim"),
        (dict(text_dim=20), "text_dim"),  # < 4 * 9 labels
        (dict(head_frequency=0.0), "head_frequency"),
        (dict(label_imbalance=0.5), "label_imbalance"),
        (dict(evidence_dropout=1.0), "evidence_dropout"),
        (dict(image_noise=-1.0), "image_noise"),
        (dict(label_words=float("nan")), "label_words"),
    ],
)
def test_rejects_bad_arguments(kwargs, argument):
    with pytest.raises(ValueError, match=f"^{argument}:"):
        make_synthetic_longtail(**(SMALL | kwargs))
