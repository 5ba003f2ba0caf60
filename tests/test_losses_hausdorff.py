"""Tests for `average_hausdorff` and `label_similarity` (Eq. 4) against NumPy loops."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from jax.test_util import check_grads

from ltcmh_jax import losses
from ltcmh_jax.losses import hausdorff

average_hausdorff = jax.jit(losses.average_hausdorff, static_argnames="block_size")
label_similarity = jax.jit(losses.label_similarity)


def reference_hausdorff(features, labels):
    """H_ab of Eq. 4 by loops over labels and samples, float64; inf where a set is empty."""
    features = np.asarray(features, np.float64)
    num_labels = labels.shape[1]
    result = np.full((num_labels, num_labels), np.inf)
    for a in range(num_labels):
        for b in range(num_labels):
            set_a = np.flatnonzero(labels[:, a])
            set_b = np.flatnonzero(labels[:, b])
            if len(set_a) == 0 or len(set_b) == 0:
                continue
            distance = np.array(
                [[np.linalg.norm(features[i] - features[j]) for j in set_b] for i in set_a]
            )
            total = distance.min(axis=1).sum() + distance.min(axis=0).sum()
            result[a, b] = total / (len(set_a) + len(set_b))
    return result


def reference_hausdorff_many(features, labels):
    """H_ab of Eq. 4 for many labels: one float64 distance matrix, then per pair a <= b the two
    directed sums of minima over its `[|a|, |b|]` block; inf where a set is empty."""
    features = np.asarray(features, np.float64)
    distances = np.linalg.norm(features[:, None] - features[None], axis=-1)
    sets = [np.flatnonzero(labels[:, a]) for a in range(labels.shape[1])]
    result = np.full((len(sets), len(sets)), np.inf)
    for a, set_a in enumerate(sets):
        for b in range(a, len(sets)):
            set_b = sets[b]
            if len(set_a) and len(set_b):
                block = distances[np.ix_(set_a, set_b)]
                total = block.min(axis=1).sum() + block.min(axis=0).sum()
                result[a, b] = result[b, a] = total / (len(set_a) + len(set_b))
    return result


def many_label_data(n, num_labels, labels_per_row, dim=4, seed=0):
    """Rows with `labels_per_row` labels each (Zipf-like: low labels are frequent), about a
    tenth of the labels empty, and exact duplicate points inside and across labels."""
    rng = np.random.default_rng(seed)
    used = int(0.9 * num_labels)
    weights = 1.0 / np.arange(1, used + 1)
    labels = np.zeros((n, num_labels), np.float32)
    for row in range(n):
        chosen = rng.choice(used, labels_per_row, replace=False, p=weights / weights.sum())
        labels[row, rng.permutation(num_labels)[:used][chosen]] = 1
    centres = 3.0 * rng.standard_normal((num_labels, dim))
    features = labels @ centres / labels_per_row + rng.standard_normal((n, dim))
    features[1::17] = features[0::17][: len(features[1::17])]
    return features.astype(np.float32), labels


@pytest.mark.parametrize(
    ("n", "num_labels", "labels_per_row", "chunk"),
    [(700, 320, 1, 512), (700, 320, 1, 5), (400, 300, 3, 512), (400, 300, 3, 7)],
)
def test_many_labels_match_reference(n, num_labels, labels_per_row, chunk, monkeypatch):
    # Hundreds of small labels: a chunk of pairs spans many labels (chunk 512) or a label spans
    # several chunks (5, 7); empty labels, duplicates, blocks of 64 rows with a padded last one.
    monkeypatch.setattr(hausdorff, "_PAIR_CHUNK", chunk)
    features, labels = many_label_data(n, num_labels, labels_per_row)
    assert not labels.any(axis=0).all()
    got = np.asarray(
        jax.jit(losses.average_hausdorff, static_argnames="block_size")(
            features, labels, block_size=64
        )
    )
    want = reference_hausdorff_many(features, labels)
    np.testing.assert_array_equal(np.isinf(got), np.isinf(want))
    finite = np.isfinite(want)
    np.testing.assert_allclose(got[finite], want[finite], rtol=1e-5, atol=1e-5)
    present = labels.any(axis=0)
    assert np.all(np.diag(got)[present] == 0.0)
    np.testing.assert_array_equal(got, got.T)


def test_nearest_member_ties_go_to_the_lowest_index_across_chunks(monkeypatch):
    # Label 1 holds the same point at rows 3, 5, 9 and 12; with chunks of 2 pairs the copies
    # fall into different chunks (and two share one). Every other row must pick row 3.
    monkeypatch.setattr(hausdorff, "_PAIR_CHUNK", 2)
    rng = np.random.default_rng(7)
    features = rng.standard_normal((14, 3)).astype(np.float32)
    features[[5, 9, 12]] = features[3]
    features[[3, 5, 9, 12]] *= 0.01  # nearest to everything
    labels = np.zeros((14, 3), bool)
    labels[[3, 5, 9, 12], 1] = True
    labels[[0, 1, 2, 4], 0] = True
    labels[[6, 7, 8, 10, 11, 13], 2] = True
    members = jnp.asarray(labels)
    ranks, count = hausdorff._membership_ranks(members)
    ids = jax.jit(
        lambda p, m, r, k: hausdorff._nearest_member_ids(p, m, r, k, 4)  # noqa: B023
    )(jnp.asarray(features - features.mean(0)), members, ranks, count)
    outside = np.flatnonzero(~labels[:, 1])
    np.testing.assert_array_equal(np.asarray(ids)[1, outside], 3)
    np.testing.assert_array_equal(np.asarray(ids)[1, [3, 5, 9, 12]], [3, 5, 9, 12])


@pytest.mark.parametrize("labels_per_row", [1, 2])
def test_many_labels_gradients_match_finite_differences(labels_per_row):
    # c = 300 labels over 60 rows (most labels empty or with one or two members), float64,
    # forward and reverse mode; the sums' derivative is the dense matmul.
    with jax.enable_x64(True):
        rng = np.random.default_rng(labels_per_row)
        features = rng.standard_normal((60, 3))
        labels = np.zeros((60, 300))
        for row in range(60):
            labels[row, rng.choice(300, labels_per_row, replace=False)] = 1
        weights = jnp.asarray(rng.random((300, 300)))

        def weighted(points):
            distances = losses.average_hausdorff(points, labels, block_size=16)
            return jnp.sum(weights * jnp.where(jnp.isfinite(distances), distances, 0.0))

        check_grads(jax.jit(weighted), (jnp.asarray(features),), order=1)


def test_many_labels_gradient_finite_with_duplicates_and_empty_labels():
    features, labels = many_label_data(300, 320, 2, seed=3)

    def total(points):
        distances = losses.average_hausdorff(points, labels)
        return jnp.sum(jnp.where(jnp.isfinite(distances), distances, 0.0))

    assert np.isfinite(jax.jit(jax.grad(total))(features)).all()


def reference_similarity(hausdorff_matrix, sigma=None):
    """R = exp(-H / sigma^2), sigma the mean of the finite off-diagonal H by default."""
    h = np.asarray(hausdorff_matrix, np.float64)
    if sigma is None:
        values = [
            h[a, b] for a in range(len(h)) for b in range(len(h)) if a != b and np.isfinite(h[a, b])
        ]
        sigma = np.mean(values) if values and np.mean(values) > 0 else 1.0
    return np.where(np.isfinite(h), np.exp(-np.where(np.isfinite(h), h, 0) / sigma**2), 0.0)


def multilabel_data(n=40, num_labels=5, dim=3, seed=0, rate=0.3):
    rng = np.random.default_rng(seed)
    labels = (rng.random((n, num_labels)) < rate).astype(np.float32)
    features = (rng.standard_normal((n, dim)) + 2 * labels[:, :dim]).astype(np.float32)
    return features, labels


@pytest.mark.parametrize(("block_size", "chunk"), [(1, 3), (7, 3), (7, 512), (1024, 512)])
def test_matches_reference(block_size, chunk, monkeypatch):
    # Small pair chunks and blocks exercise labels split across chunks, padded last chunks and
    # padded row blocks.
    monkeypatch.setattr(hausdorff, "_PAIR_CHUNK", chunk)
    features, labels = multilabel_data()
    got = jax.jit(losses.average_hausdorff, static_argnames="block_size")(
        features, labels, block_size=block_size
    )
    np.testing.assert_allclose(got, reference_hausdorff(features, labels), rtol=1e-5)


def test_row_outside_a_small_label_is_not_its_own_member():
    # Regression: padding slots of the last chunk must never count as members, also not for
    # row 0 (whose index the padding once shared).
    features, labels = multilabel_data(n=30)
    labels[:, 1] = 0
    labels[5:8, 1] = 1
    labels[0, 1] = 0
    got = average_hausdorff(features, labels)
    np.testing.assert_allclose(got, reference_hausdorff(features, labels), rtol=1e-5)


def test_empty_label_is_inf_including_diagonal():
    features, labels = multilabel_data()
    labels[:, 2] = 0
    got = np.asarray(average_hausdorff(features, labels))
    assert np.isinf(got[2]).all() and np.isinf(got[:, 2]).all()
    keep = [0, 1, 3, 4]
    np.testing.assert_allclose(
        got[np.ix_(keep, keep)],
        reference_hausdorff(features, labels[:, keep]),
        rtol=1e-5,
    )


def test_diagonal_is_exactly_zero_and_symmetric():
    features, labels = multilabel_data(n=60, seed=3)
    got = np.asarray(average_hausdorff(features, labels))
    assert np.all(np.diag(got) == 0.0)
    np.testing.assert_array_equal(got, got.T)


def test_single_sample_per_label_is_the_pairwise_distance():
    rng = np.random.default_rng(1)
    features = rng.standard_normal((4, 6)).astype(np.float32)
    labels = np.eye(4, dtype=np.float32)
    distances = np.linalg.norm(features[:, None] - features[None], axis=-1)
    np.testing.assert_allclose(average_hausdorff(features, labels), distances, rtol=1e-5)


def test_one_sample():
    got = average_hausdorff(np.ones((1, 3), np.float32), np.array([[1.0, 0.0]]))
    np.testing.assert_array_equal(got, [[0.0, np.inf], [np.inf, np.inf]])


def test_duplicate_points_give_exact_zero():
    # Labels 0 and 1 hold the same point at different rows: H_01 must be exactly 0, which the
    # expansion ||x||^2 + ||y||^2 - 2 x.y alone would not give.
    rng = np.random.default_rng(2)
    features = rng.standard_normal((6, 4)).astype(np.float32) * 100 + 1e3
    features[3] = features[0]
    labels = np.zeros((6, 3), np.float32)
    labels[0, 0] = labels[3, 1] = 1
    labels[[1, 2, 4, 5], 2] = 1
    got = np.asarray(average_hausdorff(features, labels))
    assert got[0, 1] == 0.0 and got[1, 0] == 0.0
    np.testing.assert_allclose(got, reference_hausdorff(features, labels), rtol=1e-5)


def test_float32_far_from_origin_and_large_scale():
    features, labels = multilabel_data(seed=4)
    want = reference_hausdorff(features, labels)
    shifted = average_hausdorff(features + np.float32(1e4), labels)
    np.testing.assert_allclose(shifted, want, rtol=2e-3)
    scaled = average_hausdorff(features * np.float32(1e15), labels)
    np.testing.assert_allclose(np.asarray(scaled) / 1e15, want, rtol=1e-5)


def test_bool_labels():
    features, labels = multilabel_data()
    want = average_hausdorff(features, labels)
    np.testing.assert_array_equal(average_hausdorff(features, labels.astype(bool)), want)


def test_gradients_match_finite_differences():
    with jax.enable_x64(True):
        features, labels = multilabel_data(n=9, num_labels=3, dim=2, seed=5, rate=0.5)
        weights = jnp.asarray(np.random.default_rng(0).random((3, 3)))

        def weighted(points):
            distances = losses.average_hausdorff(points, labels)
            return jnp.sum(weights * jnp.where(jnp.isfinite(distances), distances, 0.0))

        check_grads(jax.jit(weighted), (jnp.asarray(features, jnp.float64),), order=1)


def test_gradient_finite_with_duplicates_and_empty_label():
    features, labels = multilabel_data(n=12)
    features[4] = features[1]
    labels[:, 3] = 0

    def total(points):
        distances = losses.average_hausdorff(points, labels)
        return jnp.sum(jnp.where(jnp.isfinite(distances), distances, 0.0))

    assert np.isfinite(jax.jit(jax.grad(total))(features)).all()


def test_vmap_over_feature_sets():
    sets = np.stack([multilabel_data(seed=seed)[0] for seed in range(3)])
    labels = multilabel_data()[1]
    batched = jax.jit(jax.vmap(losses.average_hausdorff, in_axes=(0, None)))(sets, labels)
    for got, features in zip(batched, sets, strict=True):
        np.testing.assert_allclose(got, reference_hausdorff(features, labels), rtol=1e-5)


def test_memory_stays_far_below_n_squared():
    n, dim, num_labels = 20_000, 64, 24
    # Compiled for the backend the suite runs on. A GPU's buffer assignment needs more than a
    # CPU's (51 MB on an H200, 23 MB on a CPU), hence its looser bound; compiling for the CPU
    # from a GPU process instead did not finish in 50 s there (jax 0.11.2, session 12), where
    # it takes 1 s on a CPU-only jax 0.10.2.
    compiled = (
        jax.jit(losses.average_hausdorff)
        .lower(
            jax.ShapeDtypeStruct((n, dim), jnp.float32),
            jax.ShapeDtypeStruct((n, num_labels), jnp.float32),
        )
        .compile()
    )
    temporary = compiled.memory_analysis().temp_size_in_bytes
    # n*n*4 is 1.6 GB; block_size * n * 4 alone would be 82 MB.
    fraction = 40 if jax.default_backend() == "cpu" else 25
    assert temporary < n * n * 4 / fraction, temporary


@pytest.mark.parametrize(
    ("features", "labels", "block_size", "message"),
    [
        (np.ones((4, 2)), np.ones((5, 3)), 8, r"features \(4, 2\) and labels \(5, 3\)"),
        (np.ones((4,)), np.ones((4, 3)), 8, r"features \(4,\)"),
        (np.ones((0, 2)), np.ones((0, 3)), 8, "no rows"),
        (np.ones((4, 2)), np.ones((4, 3)), 0, "block_size must be >= 1"),
    ],
)
def test_bad_input_raises(features, labels, block_size, message):
    with pytest.raises(ValueError, match=message):
        losses.average_hausdorff(features, labels, block_size=block_size)


def test_too_many_membership_slots_raises():
    # Checked from the shapes alone, before anything of that size is built.
    with pytest.raises(
        ValueError, match=r"n \* c must be below 2\^31, got labels \(65536, 32768\)"
    ):
        jax.eval_shape(
            losses.average_hausdorff,
            jax.ShapeDtypeStruct((2**16, 2), jnp.float32),
            jax.ShapeDtypeStruct((2**16, 2**15), jnp.float32),
        )


def test_label_similarity_matches_reference():
    features, labels = multilabel_data()
    labels[:, 4] = 0
    distances = np.asarray(average_hausdorff(features, labels))
    got = np.asarray(label_similarity(distances))
    np.testing.assert_allclose(got, reference_similarity(distances), rtol=1e-5)
    assert np.all(got[4] == 0.0) and np.all(got[:, 4] == 0.0)
    np.testing.assert_allclose(
        label_similarity(distances, sigma=0.5), reference_similarity(distances, 0.5), rtol=1e-5
    )


def test_label_similarity_defaults_to_one_without_finite_off_diagonal():
    single = np.array([[0.0]], np.float32)
    np.testing.assert_array_equal(label_similarity(single), [[1.0]])
    coincident = np.zeros((3, 3), np.float32)
    np.testing.assert_array_equal(label_similarity(coincident), np.ones((3, 3)))


def test_label_similarity_depends_on_scale():
    # The documented caveat: with sigma = mean(H), R is not invariant to scaling the features.
    distances = np.array([[0.0, 1.0, 3.0], [1.0, 0.0, 2.0], [3.0, 2.0, 0.0]], np.float32)
    assert not np.allclose(label_similarity(distances), label_similarity(10 * distances))


def test_label_similarity_gradients():
    with jax.enable_x64(True):
        distances = jnp.asarray([[0.0, 1.0, 3.0], [1.0, 0.0, 2.5], [3.0, 2.5, 0.0]])
        check_grads(jax.jit(losses.label_similarity), (distances,), order=1)
        check_grads(jax.jit(lambda h: losses.label_similarity(h, sigma=1.5)), (distances,), order=1)
    with_inf = jnp.asarray([[0.0, 1.0, np.inf], [1.0, 0.0, np.inf], [np.inf, np.inf, np.inf]])
    gradient = jax.grad(lambda h: jnp.sum(losses.label_similarity(h)))(with_inf)
    assert np.isfinite(gradient).all()


def test_label_similarity_rejects_non_square():
    with pytest.raises(ValueError, match=r"label_similarity: hausdorff must be \[c, c\]"):
        losses.label_similarity(np.zeros((2, 3)))


def test_label_similarity_float32_extremes():
    base = np.array([[0.0, 1.0, 3.0], [1.0, 0.0, 2.0], [3.0, 2.0, 0.0]], np.float32)
    want = reference_similarity(base)
    for scale in (1e-18, 1e18):
        # H / sigma^2 = base / (4 scale), with sigma^2 near float32's limits at both ends.
        sigma = np.float32(2.0 * scale)
        got = label_similarity(base * np.float32(scale), sigma=sigma)
        np.testing.assert_allclose(got, reference_similarity(base, 2.0) ** (1 / scale), rtol=1e-4)
        assert np.isfinite(label_similarity(base * np.float32(scale))).all()
    np.testing.assert_allclose(label_similarity(base), want, rtol=1e-6)


def test_diagonal_is_exactly_zero_with_near_duplicate_members():
    # Members 1e-3 apart at norm 1e3 are within the expansion's rounding, so the search alone
    # could pick a neighbour over the row itself; a member must still be its own nearest member.
    rng = np.random.default_rng(6)
    centre = rng.standard_normal(8).astype(np.float32) * 1e3
    features = centre + 1e-3 * rng.standard_normal((20, 8)).astype(np.float32)
    features[10:] = -features[10:]
    labels = np.zeros((20, 2), np.float32)
    labels[:10, 0] = labels[10:, 1] = 1
    got = np.asarray(average_hausdorff(features, labels))
    np.testing.assert_array_equal(np.diag(got), [0.0, 0.0])


def related_and_unrelated_labels(scale=1.0, seed=0):
    """Labels 0 and 1 share a concept (their samples lie around nearby centres); 2 and 3 are
    unrelated to everything. Label 0 is frequent, the others rare, as in a long tail."""
    rng = np.random.default_rng(seed)
    centres = 4.0 * rng.standard_normal((4, 8))
    centres[1] = centres[0] + 0.8 * rng.standard_normal(8)
    sizes = (60, 8, 8, 8)
    features, labels = [], []
    for label, size in enumerate(sizes):
        features.append(centres[label] + rng.standard_normal((size, 8)))
        labels.append(np.repeat(np.eye(4)[label][None], size, axis=0))
    return scale * np.concatenate(features).astype(np.float32), np.concatenate(labels)


@pytest.mark.parametrize("scale", [1e-3, 1.0, 1e3])
def test_scale_free_similarity_ranks_related_labels_first_at_any_feature_scale(scale):
    features, labels = related_and_unrelated_labels(scale)
    distances = losses.average_hausdorff(features, labels)
    similarity = np.asarray(losses.label_similarity(distances, scale="scale_free"))
    related = similarity[0, 1]
    unrelated = [similarity[a, b] for a in range(4) for b in range(a + 1, 4) if (a, b) != (0, 1)]
    assert related > max(unrelated)
    # The same R at every scale: it follows the label geometry, not the feature scale.
    base_features, _ = related_and_unrelated_labels(1.0)
    base = np.asarray(
        losses.label_similarity(losses.average_hausdorff(base_features, labels), scale="scale_free")
    )
    np.testing.assert_allclose(similarity, base, rtol=2e-3, atol=1e-5)


def test_scale_free_similarity_formula_and_bad_scale():
    distances = np.array([[0.0, 1.0, 3.0], [1.0, 0.0, 2.0], [3.0, 2.0, 0.0]], np.float32)
    expected = np.exp(-distances / 2.0)  # sigma = mean off-diagonal H = 2
    np.testing.assert_allclose(
        losses.label_similarity(distances, scale="scale_free"), expected, rtol=1e-6
    )
    with pytest.raises(ValueError, match="scale"):
        losses.label_similarity(distances, scale="square")
