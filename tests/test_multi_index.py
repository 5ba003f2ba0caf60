"""Multi-index hashing: the same ids and distances as the linear scan and a NumPy stable sort."""

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from ltcmh_jax import multi_index
from ltcmh_jax.index import HammingIndex, pack_codes

# Every word layout: under a word, one word, two (copied into the tables), three and more (read
# through the ids), and the largest code length the project supports.
BITS = [1, 2, 7, 16, 31, 63, 64, 65, 100, 128, 129, 200, 256, 32767]


def reference_search(queries, db, k):
    """Stable argsort of the Hamming distances: the linear scan's order, ties by id."""
    distances = (db.shape[1] - queries.astype(np.int64) @ db.astype(np.int64).T) // 2
    ids = np.argsort(distances, axis=1, kind="stable")[:, :k]
    return np.take_along_axis(distances, ids, axis=1), ids


def reference_range(queries, db, radius):
    distances = (db.shape[1] - queries.astype(np.int64) @ db.astype(np.int64).T) // 2
    found = [np.argsort(row, kind="stable")[: int((row <= radius).sum())] for row in distances]
    offsets = np.concatenate([[0], np.cumsum([len(ids) for ids in found])])
    all_ids = np.concatenate(found)
    all_distances = np.concatenate([row[ids] for row, ids in zip(distances, found, strict=True)])
    return offsets, all_distances, all_ids


def clustered_codes(rng, rows, bits, *, num_centres, flip_rate):
    """{-1, +1} codes near a few centres: heavy ties, and exact duplicates when flip_rate is 0."""
    centres = np.where(rng.random((num_centres, bits)) < 0.5, -1, 1).astype(np.int8)
    codes = centres[rng.integers(0, num_centres, rows)]
    return np.where(rng.random((rows, bits)) < flip_rate, -codes, codes).astype(np.int8)


def probe_without_giving_up(index, queries, k):
    """`multi_index.top_k` itself, with no budget, so the fallback scan cannot hide an error."""
    index.build_multi_index()
    tables = index.multi_index_tables
    query_words = pack_codes(queries)
    keys = np.empty((query_words.shape[0], k), np.int64)
    complete = multi_index.top_k(
        query_words, index.words, *tables[:5], tables.num_indexed, index.bits, 2**62, keys
    )
    assert complete.all()
    return keys >> multi_index.ID_BITS, keys & multi_index.ID_MASK


@settings(max_examples=30, deadline=None)
@given(
    seed=st.integers(0, 2**32 - 1),
    bits=st.sampled_from(BITS),
    num_db=st.integers(1, 60),
    k=st.integers(1, 70),
    num_centres=st.integers(1, 4),
    flip_rate=st.sampled_from([0.0, 0.02, 0.2, 0.5]),
    num_substrings=st.none() | st.integers(1, 40),
)
def test_property_multi_index_equals_the_linear_scan(
    seed, bits, num_db, k, num_centres, flip_rate, num_substrings
):
    rng = np.random.default_rng(seed)
    bits = min(bits, 4000) if num_db > 20 else bits  # keeps 32767-bit examples small
    db = clustered_codes(rng, num_db, bits, num_centres=num_centres, flip_rate=flip_rate)
    queries = np.concatenate([db[:2], clustered_codes(rng, 2, bits, num_centres=1, flip_rate=0.5)])
    if num_substrings is not None and bits <= 256:
        num_substrings = max(min(num_substrings, bits), -(-bits // multi_index.MAX_SUBSTRING_BITS))
    else:
        num_substrings = None
    scan = HammingIndex(db, mode="linear")
    multi = HammingIndex(db, mode="multi_index", num_substrings=num_substrings)
    expected = reference_search(queries, db, min(k, num_db))
    for found in (scan.search(queries, k), multi.search(queries, k)):
        np.testing.assert_array_equal(found[0], expected[0])
        np.testing.assert_array_equal(found[1], expected[1])
    probed = probe_without_giving_up(multi, queries, min(k, num_db))
    np.testing.assert_array_equal(probed[0], expected[0])
    np.testing.assert_array_equal(probed[1], expected[1])
    radius = int(rng.integers(0, bits + 1))
    expected_range = reference_range(queries, db, radius)
    for found in (scan.range_search(queries, radius), multi.range_search(queries, radius)):
        for left, right in zip(found, expected_range, strict=True):
            np.testing.assert_array_equal(left, right)


@pytest.mark.parametrize("bits", [16, 64, 128])
def test_thousands_of_duplicates_keep_the_id_order(bits):
    rng = np.random.default_rng(bits)
    db = clustered_codes(rng, 3000, bits, num_centres=3, flip_rate=0.0)
    queries = np.concatenate([db[:3], clustered_codes(rng, 3, bits, num_centres=1, flip_rate=0.5)])
    index = HammingIndex(db, mode="multi_index")
    for k in (1, 10, 1500, 3000):
        expected = reference_search(queries, db, k)
        for found in (index.search(queries, k), probe_without_giving_up(index, queries, k)):
            np.testing.assert_array_equal(found[0], expected[0])
            np.testing.assert_array_equal(found[1], expected[1])
    np.testing.assert_array_equal(
        index.search(db[:1], 5)[1], [np.flatnonzero((db == db[0]).all(axis=1))[:5]]
    )


def test_codes_added_after_the_tables_are_scanned_then_indexed():
    rng = np.random.default_rng(3)
    db = clustered_codes(rng, 4000, 64, num_centres=20, flip_rate=0.1)
    queries = clustered_codes(rng, 6, 64, num_centres=20, flip_rate=0.1)
    index = HammingIndex(db[:3000], mode="multi_index")
    index.build_multi_index()
    index.add(db[3000:3500])  # a tail of 1/6: scanned, the tables kept
    expected = reference_search(queries, db[:3500], 40)
    np.testing.assert_array_equal(index.search(queries, 40)[1], expected[1])
    assert index.multi_index_tables.num_indexed == 3000
    index.add(db[3500:])
    expected = reference_search(queries, db, 40)
    np.testing.assert_array_equal(index.search(queries, 40)[1], expected[1])
    assert index.multi_index_tables.num_indexed == 4000  # a tail of 1/3: rebuilt first
    index = HammingIndex(db[:3000], mode="multi_index")
    index.build_multi_index()
    index.add(db[3000:])
    tables = index.multi_index_tables
    keys = np.empty((queries.shape[0], 40), np.int64)
    multi_index.top_k(
        pack_codes(queries), index.words, *tables[:5], tables.num_indexed, 64, 2**62, keys
    )
    np.testing.assert_array_equal(keys & multi_index.ID_MASK, expected[1])


def test_a_query_far_from_every_code_gives_up_and_is_scanned():
    rng = np.random.default_rng(4)
    db = clustered_codes(rng, 2000, 32, num_centres=1, flip_rate=0.02)
    far = -db[:1]  # every code is ~30 bits away: probing would visit every bucket
    index = HammingIndex(db, mode="multi_index")
    index.build_multi_index()
    tables = index.multi_index_tables
    keys = np.empty((1, 5), np.int64)
    complete = multi_index.top_k(
        pack_codes(far), index.words, *tables[:5], tables.num_indexed, 32, 100, keys
    )
    assert not complete[0]
    expected = reference_search(far, db, 5)
    np.testing.assert_array_equal(index.search(far, 5)[1], expected[1])
    np.testing.assert_array_equal(index.search(far, 5)[0], expected[0])


@pytest.mark.parametrize(
    "num_codes, bits, expected",
    [
        # s = log2(n / 128) bits per substring: 16.3 at 1e7, 19.6 at 1e8, 10.6 at NUS-WIDE size.
        (10_000_000, 64, 4),
        (100_000_000, 64, 3),
        (195_834, 64, 6),
        (195_834, 128, 12),
        (100, 64, 16),  # substrings of at least 4 bits
        (100, 2, 1),  # one 2-bit substring
        (10**12, 128, 6),  # at most 24 bits per substring: ceil(128 / 24) = 6
    ],
)
def test_substring_count(num_codes, bits, expected):
    assert multi_index.substring_count(num_codes, bits) == expected


def test_substring_bounds_partition_the_bits():
    starts, lengths = multi_index.substring_bounds(64, 3)
    np.testing.assert_array_equal(starts, [0, 22, 43])
    np.testing.assert_array_equal(lengths, [22, 21, 21])


def test_tables_list_each_code_once_per_substring_in_id_order():
    codes = np.array([[1, 1, -1, -1], [-1, 1, 1, -1], [1, 1, 1, 1], [1, 1, -1, 1]])
    tables = multi_index.build_tables(np.asarray(pack_codes(codes)), 4, 2)
    # Substring 0 is bits 0-1: key 3 for rows 0, 2, 3 and key 2 for row 1. Substring 1 is bits 2-3:
    # keys 0, 1, 3, 2 for rows 0, 1, 2, 3.
    np.testing.assert_array_equal(tables.offsets[0], [0, 0, 0, 1, 4])
    np.testing.assert_array_equal(tables.ids[0], [1, 0, 2, 3])
    np.testing.assert_array_equal(tables.offsets[1], [0, 1, 2, 3, 4])
    np.testing.assert_array_equal(tables.ids[1], [0, 1, 3, 2])
    assert tables.nbytes == 2 * 5 * 4 + 2 * 4 * 4 + 2 * 4 * 8


def test_tables_too_large_for_the_codes_are_refused():
    with pytest.raises(
        ValueError, match="num_substrings: m=100 substrings of 24 bits need 6.3 GiB"
    ):
        multi_index.build_tables(np.zeros((10, 38), np.uint64), 2400, 100)


def test_memory_is_reported_after_the_tables_are_built():
    index = HammingIndex(np.ones((1000, 64), np.int8), mode="multi_index", num_substrings=4)
    assert index.multi_index_bytes == 0
    index.search(np.ones((1, 64), np.int8), 3)
    # 4 tables: 2^16 + 1 uint32 offsets, 1000 uint32 ids and 1000 copied uint64 codes each.
    assert index.multi_index_bytes == 4 * ((2**16 + 1) * 4 + 1000 * 4 + 1000 * 8)


def test_range_search_checks_its_radius():
    index = HammingIndex(np.ones((5, 8), np.int8))
    for radius in (-1, 9, 1.5, True):
        with pytest.raises(ValueError, match=r"radius: expected an integer in 0\.\.8"):
            index.range_search(np.ones((1, 8), np.int8), radius)
    offsets, distances, ids = index.range_search(np.ones((2, 8), np.int8), 0)
    np.testing.assert_array_equal(offsets, [0, 5, 10])
    np.testing.assert_array_equal(ids, [0, 1, 2, 3, 4] * 2)
    assert distances.dtype == np.int32 and ids.dtype == np.int64


def test_auto_mode_scans_small_indexes_and_probes_large_ones():
    small = HammingIndex(np.ones((195_834, 8), np.int8))
    assert not small.uses_multi_index(100)
    large = HammingIndex(np.zeros((1 << 22, 1), np.uint64))
    assert large.uses_multi_index(100)
    assert not large.uses_multi_index(1 << 20)
    assert not HammingIndex(np.zeros((1 << 22, 1), np.uint64), mode="linear").uses_multi_index(1)
