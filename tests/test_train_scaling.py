"""Tests for the input scaling fitted on the training split."""

import numpy as np
import pytest

from ltcmh_jax.train.scaling import SPREAD_FLOOR, fit_input_scaling


@pytest.mark.parametrize("overall", [1e-3, 1.0, 1e3])
def test_per_feature_z_scores_each_column_whatever_its_scale(overall):
    rng = np.random.default_rng(0)
    values = overall * (rng.standard_normal((400, 3)) * [0.2, 1.0, 5.0] + [5.0, -2.0, 1e2])
    scaled = fit_input_scaling(values, mode="per_feature").apply(values)
    np.testing.assert_allclose(scaled.mean(axis=0), 0, atol=1e-3)
    np.testing.assert_allclose(scaled.std(axis=0), 1, rtol=1e-3)


def test_per_feature_floors_near_constant_columns():
    rng = np.random.default_rng(1)
    values = np.concatenate([rng.standard_normal((300, 4)), np.full((300, 1), 0.5)], axis=1)
    values[0, 4] = 0.5 + 1e-6
    scaling = fit_input_scaling(values, mode="per_feature")
    typical = np.median(values.std(axis=0))
    np.testing.assert_allclose(scaling.scale[4], 1 / (SPREAD_FLOOR * typical), rtol=1e-3)
    assert np.abs(scaling.apply(values)[:, 4]).max() < 1e-4


def test_global_keeps_relative_scales():
    values = np.array([[0.0, 0.0], [2.0, 20.0], [4.0, 40.0]])
    scaling = fit_input_scaling(values, mode="global")
    scaled = scaling.apply(values)
    np.testing.assert_allclose(scaled[:, 1] / scaled[2, 1], scaled[:, 0] / scaled[2, 0] * 1)
    np.testing.assert_allclose(np.mean(scaled**2), 1.0, rtol=1e-5)


def test_sparse_binary_bag_is_unchanged_and_counts_are_rescaled():
    bag = (np.random.default_rng(2).random((50, 30)) < 0.1).astype(np.float32)
    scaling = fit_input_scaling(bag, mode="per_feature", sparse=True)
    np.testing.assert_array_equal(scaling.apply(bag), bag)
    counts = 1e3 * bag
    np.testing.assert_allclose(
        fit_input_scaling(counts, mode="per_feature", sparse=True).apply(counts), bag, rtol=1e-6
    )


def test_bad_mode_names_the_flag():
    with pytest.raises(ValueError, match="--input_scaling"):
        fit_input_scaling(np.ones((3, 2)), mode="minmax")
