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


def test_similarity_by_relation():
    similarity = np.array([[1.0, 0.8, 0.1], [0.8, 1.0, 0.3], [0.1, 0.3, 1.0]])
    related = np.array([[True, True, False], [True, True, False], [False, False, True]])
    got = diagnostics.similarity_by_relation(similarity, related)
    assert got == {"related": pytest.approx(0.8), "unrelated": pytest.approx(0.2)}
