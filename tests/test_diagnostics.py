"""Tests for the mechanism diagnostics against hand-computed values."""

import numpy as np
import pytest

from ltcmh_jax import diagnostics


def test_flipped_bit_share_counts_sign_changes():
    direct = np.array([[1.0, -1.0, 0.5, -0.5]])
    meta = np.array([[2.0, 1.0, -0.1, -3.0]])
    assert diagnostics.flipped_bit_share(direct, meta) == 0.5
    assert diagnostics.flipped_bit_share(direct, direct) == 0.0
    with pytest.raises(ValueError, match="differ"):
        diagnostics.flipped_bit_share(direct, meta[:, :2])


def test_correlation_is_one_for_a_scaled_copy_and_near_zero_for_noise():
    rng = np.random.default_rng(0)
    values = rng.standard_normal((500, 8))
    assert diagnostics.correlation(values, 3.0 * values + 7.0) == pytest.approx(1.0)
    assert diagnostics.correlation(values, -values) == pytest.approx(-1.0)
    assert abs(diagnostics.correlation(values, rng.standard_normal((500, 8)))) < 0.05
    assert diagnostics.correlation(values, np.ones_like(values)) == 0.0


def test_label_variance_share():
    rng = np.random.default_rng(1)
    labels = np.eye(3)[rng.integers(0, 3, 300)]
    centres = np.array([[0.0, 0.0], [3.0, 0.0], [0.0, 3.0]])
    exact = labels @ centres
    assert diagnostics.label_variance_share(exact, labels) == pytest.approx(1.0)
    noisy = exact + rng.standard_normal(exact.shape)
    # Between-class variance 2 per dimension out of 2 + 1.
    assert diagnostics.label_variance_share(noisy, labels) == pytest.approx(2 / 3, abs=0.05)
    assert diagnostics.label_variance_share(rng.standard_normal((300, 2)), labels) < 0.03


def direct_label_variance_share(values, labels):
    """R^2 of the least-squares fit on `[labels, 1]` by one `lstsq` over all rows."""
    design = np.concatenate([labels, np.ones((len(values), 1))], axis=1)
    coefficients, *_ = np.linalg.lstsq(design, values, rcond=None)
    residual = values - design @ coefficients
    return 1.0 - np.sum(residual**2) / np.sum((values - values.mean(axis=0)) ** 2)


@pytest.mark.parametrize(
    ("num_rows", "num_labels", "rate"),
    [(512, 1000, None), (300, 8, 0.3), (200, 400, 0.01), (60, 5, None)],
)
def test_label_variance_share_matches_the_direct_fit(num_rows, num_labels, rate):
    # One label per row (including c > n) takes the group-mean path; multi-hot rows, some with
    # no label, the weighted fit of the group means.
    rng = np.random.default_rng(num_labels)
    if rate is None:
        labels = np.eye(num_labels)[rng.integers(0, num_labels, num_rows)]
    else:
        labels = (rng.random((num_rows, num_labels)) < rate).astype(np.float64)
    values = labels @ rng.standard_normal((num_labels, 6)) + rng.standard_normal((num_rows, 6))
    assert diagnostics.label_variance_share(values, labels) == pytest.approx(
        direct_label_variance_share(values, labels), abs=1e-9
    )


def test_label_variance_share_constant_values_and_bad_shapes():
    labels = np.eye(3)[[0, 1, 2, 0]]
    assert diagnostics.label_variance_share(np.ones((4, 2)), labels) == 0.0
    with pytest.raises(ValueError, match="differ in n"):
        diagnostics.label_variance_share(np.ones((3, 2)), labels)


def test_similarity_by_relation():
    similarity = np.array([[1.0, 0.8, 0.1], [0.8, 1.0, 0.3], [0.1, 0.3, 1.0]])
    related = np.array([[True, True, False], [True, True, False], [False, False, True]])
    got = diagnostics.similarity_by_relation(similarity, related)
    assert got == {"related": pytest.approx(0.8), "unrelated": pytest.approx(0.2)}


def test_the_probes_on_device_flip_share_is_the_numpy_one():
    from ltcmh_jax.train import mechanism

    rng = np.random.default_rng(0)
    direct, meta = rng.normal(size=(50, 8)), rng.normal(size=(50, 8))
    meta[:, :4] = direct[:, :4] * 2.0  # half the columns keep their signs
    assert float(mechanism._meta_effect(direct, meta)[0]) == pytest.approx(
        diagnostics.flipped_bit_share(direct, meta)
    )


def test_meta_sign_agreement_counts_the_changed_entries_that_keep_the_sign():
    direct = np.array([[1.0, -2.0, 3.0, -1.0]])
    meta = np.array([[2.0, -1.0, 3.0, 0.5]])  # +1 agrees, +1 disagrees, unchanged, +1.5 disagrees
    assert diagnostics.meta_sign_agreement(direct, meta) == pytest.approx(1 / 3)
    assert np.isnan(diagnostics.meta_sign_agreement(direct, direct))
    with pytest.raises(ValueError, match="differ"):
        diagnostics.meta_sign_agreement(direct, meta[:, :2])
    from ltcmh_jax.train import mechanism

    rng = np.random.default_rng(1)
    direct, meta = rng.normal(size=(40, 8)), rng.normal(size=(40, 8))
    assert float(mechanism._meta_effect(direct, meta)[1]) == pytest.approx(
        diagnostics.meta_sign_agreement(direct, meta)
    )
    assert np.isnan(float(mechanism._meta_effect(direct, direct)[1]))
