"""Tests of ltcmh_jax/hamming.py: the numba kernels against plain NumPy."""

import math

import numpy as np
import pytest

from ltcmh_jax import hamming
from ltcmh_jax.index import pack_codes


def _numpy_top_k(query_codes, db_codes, k):
    """Distances `(k - <q, d>) / 2` of {-1, +1} codes, ranked by (distance, row)."""
    bits = query_codes.shape[1]
    distances = (bits - query_codes.astype(np.int64) @ db_codes.T.astype(np.int64)) // 2
    order = np.argsort(distances, axis=1, kind="stable")[:, :k]
    return np.take_along_axis(distances, order, axis=1), order


@pytest.mark.parametrize("bits, num_db, k", [(16, 500, 10), (64, 3000, 7), (130, 300, 300)])
def test_top_k_by_counting_is_the_stable_numpy_ranking(bits, num_db, k):
    rng = np.random.default_rng(bits)
    # Few distinct codes, so distances tie and the (distance, row) order is what is tested.
    pool = np.where(rng.random((12, bits)) < 0.5, -1, 1).astype(np.int8)
    db_codes = pool[rng.integers(0, 12, num_db)]
    query_codes = pool[rng.integers(0, 12, 9)]
    distances = np.empty((9, k), np.int32)
    ids = np.empty((9, k), np.int64)
    hamming.top_k_by_counting(
        np.asarray(pack_codes(query_codes)), np.asarray(pack_codes(db_codes)), bits, distances, ids
    )
    expected_distances, expected_ids = _numpy_top_k(query_codes, db_codes, k)
    np.testing.assert_array_equal(distances, expected_distances)
    np.testing.assert_array_equal(ids, expected_ids)


@pytest.mark.parametrize("before, count", [(0, 1), (3, 64), (10, 65), (1000, 200000)])
def test_harmonic_difference_is_the_direct_sum(before, count):
    exact = math.fsum(1.0 / (before + p) for p in range(1, count + 1))
    assert hamming.harmonic_difference(before, count) == pytest.approx(exact, rel=1e-13)
