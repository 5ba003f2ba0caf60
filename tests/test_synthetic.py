"""Tests for ltcmh_jax/data/synthetic.py: the embedded default data set."""

import collections
import hashlib

import jax.numpy as jnp
import numpy as np
import pytest

from ltcmh_jax import metrics
from ltcmh_jax.data import (
    SYNTHETIC_SPLIT,
    VISIBILITY_KINDS,
    describe,
    label_visibility,
    longtail_split,
    make_synthetic_longtail,
)
from ltcmh_jax.data.synthetic import DOMINANCE_KINDS, label_structure
from ltcmh_jax.losses import average_hausdorff

SMALL = dict(num_samples=400, num_labels=9, image_dim=32, text_dim=60)
# sha256 of image, text, labels bytes and the joined label names of version 1, taken from the
# generator as of commit d298db8, before version 2 existed.
VERSION_1_SHA256 = {
    "default": "fb2854221c659fdaee2b326e0b6e6e5daafeaad3460a4c10c6ec32f6ede9aebb",
    "small_seed_3": "4df64e7ce7e10b7b86135a6d8945792ccd9becde8de703761951a734fa0d14c8",
}
# The same for version 2 as first committed: runs that used it can be rebuilt.
VERSION_2_SHA256 = "d788b077b0ff8180657f33eb693956dc60cc610522e89ac8ebd1ea997d8fc51b"
# Ridge penalty of the linear probes and the linear floor on version 2.
PROBE_PENALTY = 10.0


@pytest.fixture(scope="module")
def default():
    return make_synthetic_longtail()


@pytest.fixture(scope="module")
def version_two():
    return make_synthetic_longtail(version=2)


@pytest.fixture(scope="module")
def version_two_split(version_two):
    return longtail_split(version_two.labels, **SYNTHETIC_SPLIT, seed=0)


def sha256(dataset):
    digest = hashlib.sha256()
    for array in (dataset.image, dataset.text, dataset.labels):
        digest.update(np.ascontiguousarray(array).tobytes())
    digest.update("|".join(dataset.label_names).encode())
    return digest.hexdigest()


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


def label_average_precision(scores, positive):
    """AP of ranking all rows by `scores`, relevant = `positive`."""
    hits = positive[np.argsort(-scores, kind="stable")]
    ranks = np.flatnonzero(hits) + 1.0
    return float((np.arange(1, ranks.size + 1) / ranks).mean())


def linear_floor_codes(dataset, train, *, bits=64, seed=0):
    """The linear floor: ridge of each view onto the labels on `train`, one Gaussian projection
    `[c, bits]` of both views' label scores, sign. Returns image and text codes `[n, bits]`."""
    projection = np.random.default_rng(seed).standard_normal((dataset.num_labels, bits))
    everything = np.arange(dataset.num_samples)
    codes = []
    for view in (dataset.image, dataset.text):
        scores = ridge_scores(view, dataset.labels, train, everything, penalty=PROBE_PENALTY)
        codes.append(np.where(scores @ projection >= 0, 1, -1).astype(np.int8))
    return codes


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


@pytest.mark.parametrize(
    "kwargs, argument",
    [
        (dict(version=3), "version"),
        (dict(parent_cooccurrence=0.5), "parent_cooccurrence"),  # version 1 has no parents
        (dict(version=2, parent_cooccurrence=1.0), "parent_cooccurrence"),
        (dict(version=2, weak_evidence=0.0), "weak_evidence"),
        (dict(version=2, concept_share=1.5), "concept_share"),
        (dict(version=2, num_labels=2), "num_labels"),
    ],
)
def test_rejects_bad_version_arguments(kwargs, argument):
    with pytest.raises(ValueError, match=f"^{argument}:"):
        make_synthetic_longtail(**(SMALL | kwargs))


# Version 1 stays reproducible


def test_version_1_is_bit_identical_to_the_generator_before_version_2(default):
    assert sha256(default) == VERSION_1_SHA256["default"]
    assert sha256(make_synthetic_longtail(**SMALL, seed=3)) == VERSION_1_SHA256["small_seed_3"]
    assert sha256(make_synthetic_longtail(**SMALL, seed=3, version=1)) == sha256(
        make_synthetic_longtail(**SMALL, seed=3)
    )


# Version 2: shared concepts, co-occurrence, modality dominance


def test_version_2_is_pinned(version_two):
    digest = hashlib.sha256()
    for array in (version_two.image, version_two.text, version_two.labels):
        digest.update(np.ascontiguousarray(array).tobytes())
    assert digest.hexdigest() == VERSION_2_SHA256


def test_version_2_keeps_the_interface(version_two):
    assert version_two.image.shape == (12000, 512)
    assert version_two.text.shape == (12000, 1000)
    assert version_two.labels.shape == (12000, 24)
    assert (version_two.image >= 0).all() and 0.2 < (version_two.image > 0).mean() < 0.8
    assert set(np.unique(version_two.text)) == {0.0, 1.0}
    assert 0.005 < (version_two.text > 0).mean() < 0.05
    assert version_two.labels.any(axis=1).all()
    assert 1.5 < version_two.labels.sum(axis=1).mean() < 2.5
    structure = label_structure(24, seed=0)
    assert version_two.label_names == tuple(
        f"{kind}_{label:02d}" for label, kind in enumerate(structure.dominance)
    )
    small = make_synthetic_longtail(**SMALL, seed=5, version=2)
    again = make_synthetic_longtail(**SMALL, seed=5, version=2)
    other = make_synthetic_longtail(**SMALL, seed=6, version=2)
    for name in ("image", "text", "labels"):
        np.testing.assert_array_equal(getattr(small, name), getattr(again, name))
        assert not np.array_equal(getattr(small, name), getattr(other, name))


def test_label_structure_builds_labels_from_shared_concepts():
    structure = label_structure(24, seed=0)
    tiers = np.array(structure.tier)
    by_rank = tiers[np.argsort(structure.rank_of_label)]
    assert list(by_rank) == ["head"] * 8 + ["middle"] * 8 + ["tail"] * 8
    head = np.flatnonzero(tiers == "head")
    composite = np.flatnonzero(tiers != "head")
    assert (structure.parent[head] == -1).all() and (structure.second[head] == -1).all()
    assert np.isin(structure.parent[composite], head).all()
    # Each head concept is the parent of one middle and one tail label; each latent concept is
    # the second concept of one middle and one tail label.
    for field in (structure.parent, structure.second):
        for concept in np.unique(field[composite]):
            holders = composite[field[composite] == concept]
            assert sorted(tiers[holders]) == ["middle", "tail"]
    assert set(structure.dominance) <= set(DOMINANCE_KINDS)
    dominant = np.array(structure.dominance) != "both"
    assert dominant[tiers == "head"].mean() == 0.25
    assert dominant[tiers == "tail"].mean() == 0.75
    assert label_structure(24, seed=0).dominance == structure.dominance
    assert label_structure(24, seed=1).dominance != structure.dominance


def test_version_2_tail_labels_mostly_come_with_their_parent(version_two):
    structure = label_structure(24, seed=0)
    labels = version_two.labels > 0
    for label in np.flatnonzero(structure.parent >= 0):
        with_parent = labels[labels[:, label], structure.parent[label]].mean()
        assert 0.7 < with_parent < 0.9, (label, with_parent)  # parent_cooccurrence = 0.8
        # More than the parent's own frequency: co-occurrence, not chance.
        assert with_parent > 2 * labels[:, structure.parent[label]].mean()
    frequency = np.sort(labels.mean(axis=0))[::-1]
    slope = np.polyfit(np.log(np.arange(1, 25)), np.log(frequency), 1)[0]
    assert slope == pytest.approx(-np.log(10) / np.log(24), abs=0.2)


def test_version_2_modality_dominance_is_not_exclusivity(version_two):
    """Every label is readable from both modalities; its dominant one reads it better."""
    structure = label_structure(24, seed=0)
    dominance = np.array(structure.dominance)
    half = version_two.num_samples // 2
    test_labels = version_two.labels[half:] > 0
    areas = {}
    for modality in ("image", "text"):
        scores = ridge_scores(
            getattr(version_two, modality),
            version_two.labels,
            np.arange(half),
            np.arange(half, version_two.num_samples),
        )
        areas[modality] = np.array([auc(scores[:, a], test_labels[:, a]) for a in range(24)])
    for modality, other in (("image", "text"), ("text", "image")):
        weak = dominance == other  # `modality` is the weaker one for these labels
        # Version 1 leaves such labels at chance (|AUC - 0.5| < 0.07); here they are readable.
        assert areas[modality][weak].min() > 0.6, areas[modality][weak]
        assert (areas[other][weak] > areas[modality][weak]).all()


def test_version_2_zipf_training_costs_the_tail_of_a_linear_probe(version_two, version_two_split):
    """A label-balanced training set and a Zipf one of the same size differ in tail-label AP."""
    labels = version_two.labels
    zipf = version_two_split
    slots = int(labels[zipf.train].sum())
    balanced = longtail_split(
        labels,
        z1=round(slots / version_two.num_labels),
        imbalance_factor=1.0,
        num_query=SYNTHETIC_SPLIT["num_query"],
        seed=0,
    )
    size = min(zipf.train.size, balanced.train.size)
    rng = np.random.default_rng(0)
    sets = [np.sort(rng.choice(split.train, size, replace=False)) for split in (balanced, zipf)]
    held_out = np.setdiff1d(np.arange(version_two.num_samples), np.union1d(*sets))
    tail = zipf.label_order[14:]
    both_views = np.concatenate([version_two.image, version_two.text], axis=1)
    tail_ap = []
    for train in sets:
        scores = ridge_scores(both_views, labels, train, held_out, penalty=PROBE_PENALTY)
        tail_ap.append(
            np.mean([label_average_precision(scores[:, b], labels[held_out, b] > 0) for b in tail])
        )
    assert tail_ap[0] - tail_ap[1] >= 0.05, tail_ap


def test_version_2_average_hausdorff_separates_related_labels(version_two, version_two_split):
    structure = label_structure(24, seed=0)
    composite = structure.parent >= 0
    related = np.zeros((24, 24), dtype=bool)
    for a in np.flatnonzero(composite):
        related[a, structure.parent[a]] = related[structure.parent[a], a] = True
        related[a] |= composite & (
            (structure.parent == structure.parent[a]) | (structure.second == structure.second[a])
        )
    related[np.diag_indices(24)] = False
    pairs = np.triu_indices(24, 1)
    rows = version_two_split.train[::2]  # half the Zipf training set keeps the test quick
    for modality in ("image", "text"):
        distance = np.asarray(
            average_hausdorff(
                jnp.asarray(getattr(version_two, modality)[rows]),
                jnp.asarray(version_two.labels[rows]),
            )
        )[pairs]
        near, far = distance[related[pairs]], distance[~related[pairs]]
        # The share of (related, unrelated) pairs in the right order (an AUC).
        assert (near[:, None] < far[None, :]).mean() > 0.65, modality
        assert near.mean() < far.mean() - 0.3, modality


def test_version_2_linear_floor_reaches_map_one_half(version_two, version_two_split):
    split = version_two_split
    image_codes, text_codes = linear_floor_codes(version_two, split.train)
    labels = version_two.labels
    query, base = split.query, split.database
    image_to_text = metrics.mean_average_precision(
        image_codes[query], text_codes[base], labels[query], labels[base]
    )
    text_to_image = metrics.mean_average_precision(
        text_codes[query], image_codes[base], labels[query], labels[base]
    )
    assert image_to_text >= 0.5 and text_to_image >= 0.5, (image_to_text, text_to_image)


def test_version_2_keeps_the_synthetic_split_feasible(version_two, version_two_split):
    """The main job's split parameters still give a Zipf training set (fairness: test_longtail)."""
    table = describe(version_two, version_two_split)
    relative = (
        np.abs(version_two_split.achieved_counts - version_two_split.target_counts)
        / version_two_split.target_counts
    )
    assert relative.max() <= 0.15
    assert 20 <= table["imbalance_factor"] <= 60
