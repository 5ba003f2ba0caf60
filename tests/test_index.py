"""Packing, `HammingIndex` search against a sort, and the checked file format."""

import hashlib
import os
import struct

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from ltcmh_jax import hamming, index_file
from ltcmh_jax.index import HammingIndex, PackedCodes, as_packed_codes, pack_codes, unpack_codes


def random_codes(rows, bits, seed=0):
    return np.where(np.random.default_rng(seed).random((rows, bits)) < 0.5, -1, 1).astype(np.int8)


def reference_search(queries, db, k):
    distances = (db.shape[1] - queries.astype(np.int64) @ db.astype(np.int64).T) // 2
    ids = np.argsort(distances, axis=1, kind="stable")[:, :k]
    return np.take_along_axis(distances, ids, axis=1), ids


@pytest.mark.parametrize("bits", [1, 7, 63, 64, 65, 128, 200])
def test_pack_unpack_round_trip(bits):
    codes = random_codes(9, bits, seed=bits)
    packed = pack_codes(codes)
    assert isinstance(packed, PackedCodes) and isinstance(packed, np.ndarray)
    assert packed.dtype == np.uint64
    assert packed.shape == (9, (bits + 63) // 64)
    assert packed.bits == bits
    np.testing.assert_array_equal(unpack_codes(packed), codes)
    assert unpack_codes(packed, dtype=np.int8).dtype == np.int8
    assert pack_codes(packed).bits == bits  # packed input passes through


def test_bit_layout_is_bit_j_of_word_j_div_64():
    codes = -np.ones((1, 130), np.float32)
    codes[0, [0, 5, 64, 129]] = 1
    packed = pack_codes(codes)
    np.testing.assert_array_equal(
        np.asarray(packed)[0], np.array([1 | (1 << 5), 1, 1 << 1], dtype=np.uint64)
    )


def test_row_slices_keep_bits_and_plain_words_mean_whole_words():
    packed = pack_codes(random_codes(5, 20))
    assert packed[1:3].bits == 20
    assert as_packed_codes(packed[1:3]).bits == 20
    assert as_packed_codes(np.asarray(packed)).bits == 64
    assert as_packed_codes(np.asarray(packed), bits=20).bits == 20


@pytest.mark.parametrize(
    "codes, message",
    [
        (np.array([[1, 0, -1]]), r"codes: codes must be -1 or \+1, found 0 at row 0, column 1"),
        (np.array([[1.0, np.nan]]), r"codes must be -1 or \+1, found nan"),
        (np.array([[True, False]]), "dtype bool"),
        (np.array([[1, 1]], np.uint8), "dtype uint8"),
        (np.array([1, -1]), r"expected codes \[n, k\]"),
        (np.ones((2, 0)), r"k >= 1"),
        (PackedCodes(np.ones((2, 1), np.uint64), 70), "1 uint64 words per code do not hold k=70"),
        (PackedCodes(np.full((2, 1), 1 << 40, np.uint64), 32), "row 0 has bits set beyond k=32"),
    ],
)
def test_bad_codes_raise_a_clear_error(codes, message):
    with pytest.raises(ValueError, match=message):
        as_packed_codes(codes)


@pytest.mark.parametrize("bits", [8, 64, 100])
@pytest.mark.parametrize("k", [1, 5, 37, 40, 100])
def test_search_matches_a_stable_sort(bits, k):
    db = random_codes(40, bits, seed=1)
    queries = random_codes(6, bits, seed=2)
    distances, ids = HammingIndex(db).search(queries, k)
    expected_distances, expected_ids = reference_search(queries, db, min(k, 40))
    assert distances.shape == ids.shape == (6, min(k, 40))
    np.testing.assert_array_equal(ids, expected_ids)
    np.testing.assert_array_equal(distances, expected_distances)


def test_ties_are_broken_by_id():
    db = np.array([[1, 1], [-1, -1], [1, 1], [1, -1], [1, 1]])
    distances, ids = HammingIndex(db).search(np.array([[1, 1]]), 4)
    np.testing.assert_array_equal(ids, [[0, 2, 4, 3]])
    np.testing.assert_array_equal(distances, [[0, 0, 0, 1]])


def test_add_continues_ids_and_matches_one_build():
    db = random_codes(50, 24, seed=3)
    queries = random_codes(4, 24, seed=4)
    grown = HammingIndex(db[:7])
    grown.add(pack_codes(db[7:20]))
    grown.add(db[20:])
    assert len(grown) == 50
    whole = HammingIndex(db)
    for left, right in zip(grown.search(queries, 15), whole.search(queries, 15), strict=True):
        np.testing.assert_array_equal(left, right)
    empty = HammingIndex(PackedCodes(np.zeros((0, 1), np.uint64), 24))
    with pytest.raises(ValueError, match="index is empty"):
        empty.search(queries, 3)
    empty.add(db)
    np.testing.assert_array_equal(empty.search(queries, 3)[1], whole.search(queries, 3)[1])


def test_queries_with_another_k_name_both():
    index = HammingIndex(random_codes(10, 64))
    with pytest.raises(ValueError, match="queries: codes have k=32 bits but the index holds k=64"):
        index.search(random_codes(2, 32), 3)
    with pytest.raises(ValueError, match="codes: codes have k=16 bits but the index holds k=64"):
        index.add(random_codes(2, 16))
    small = HammingIndex(random_codes(10, 20))
    with pytest.raises(ValueError, match="k=64 bits but the index holds k=20.*PackedCodes"):
        small.search(np.asarray(pack_codes(random_codes(2, 20))), 3)
    for bad_k in (0, -1, 2.0, True):
        with pytest.raises(ValueError, match="k: expected a positive integer"):
            index.search(random_codes(1, 64), bad_k)


def test_save_load_round_trip(tmp_path):
    index = HammingIndex(random_codes(33, 70, seed=5))
    path = tmp_path / "codes.index"
    index.save(path)
    loaded = HammingIndex.load(path)
    assert loaded.bits == 70 and len(loaded) == 33
    np.testing.assert_array_equal(loaded.words, index.words)
    queries = random_codes(3, 70, seed=6)
    for left, right in zip(loaded.search(queries, 9), index.search(queries, 9), strict=True):
        np.testing.assert_array_equal(left, right)
    assert [name for name in os.listdir(tmp_path)] == ["codes.index"]  # no temporary left


def _saved(tmp_path):
    path = tmp_path / "db.index"
    HammingIndex(random_codes(12, 64, seed=7)).save(path)
    return path, path.read_bytes()


@pytest.mark.parametrize(
    "damage, message",
    [
        (lambda data: data[:-1], "truncated or padded HammingIndex file"),
        (lambda data: data[:40], "truncated or padded HammingIndex file"),
        (lambda data: data + b"\0", "truncated or padded HammingIndex file"),
        (lambda data: data[:10], "not a HammingIndex file"),
        (lambda data: b"NOTANIDX" + data[8:], "not a HammingIndex file"),
        (lambda data: data[:8] + b"\x03" + data[9:], "format version 3; this reader supports 1, 2"),
        (lambda data: data[:12] + b"\x00" + data[13:], r"corrupt header \(k=0"),
        (lambda data: data[:50] + bytes([data[50] ^ 1]) + data[51:], "checksum mismatch"),
        (lambda data: data[:-3] + bytes([data[-3] ^ 0xFF]) + data[-2:], "checksum mismatch"),
    ],
)
def test_corrupt_files_are_refused_naming_the_file(tmp_path, damage, message):
    path, data = _saved(tmp_path)
    path.write_bytes(damage(data))
    with pytest.raises(ValueError, match=message) as error:
        HammingIndex.load(path)
    assert str(path) in str(error.value)


def test_version_1_files_still_load_as_auto(tmp_path):
    codes = pack_codes(random_codes(6, 70, seed=8))
    header = struct.pack("<8sIIIIQ", b"LTCMHIDX", 1, 70, 2, 0, 6)
    payload = np.asarray(codes).astype("<u8").tobytes()
    path = tmp_path / "old.index"
    path.write_bytes(header + payload + hashlib.sha256(header + payload).digest())
    loaded = HammingIndex.load(path)
    assert (loaded.bits, len(loaded), loaded.mode) == (70, 6, "auto")
    np.testing.assert_array_equal(loaded.words, codes)


def test_mode_and_forced_substrings_survive_save_and_load(tmp_path):
    path = tmp_path / "mi.index"
    HammingIndex(random_codes(20, 64, seed=9), mode="multi_index", num_substrings=5).save(path)
    loaded = HammingIndex.load(path)
    assert (loaded.mode, loaded.num_substrings) == ("multi_index", 5)
    HammingIndex(random_codes(20, 64, seed=9), mode="linear").save(path)
    assert HammingIndex.load(path).mode == "linear"


def test_an_unknown_mode_in_a_checksummed_file_is_refused(tmp_path):
    path = tmp_path / "bad_mode.index"
    index_file.write(path, words=np.zeros((2, 1), np.uint64), bits=8, mode=7, num_substrings=0)
    with pytest.raises(ValueError, match=r"bad_mode.index: corrupt header \(mode 7"):
        HammingIndex.load(path)


def test_a_failed_save_leaves_no_temporary(tmp_path, monkeypatch):
    def fail(*args):
        raise OSError("disk full")

    monkeypatch.setattr(os, "fsync", fail)
    with pytest.raises(OSError, match="disk full"):
        HammingIndex(random_codes(4, 16)).save(tmp_path / "x.index")
    assert os.listdir(tmp_path) == []


@pytest.mark.parametrize(
    "options, message",
    [
        ({"mode": "fast"}, "mode: expected one of"),
        ({"num_substrings": 0}, "num_substrings: expected an integer m in 1..64"),
        ({"num_substrings": 65}, "num_substrings: expected an integer m in 1..64"),
        ({"num_substrings": 2}, "substrings of at most 24 bits"),
        ({"num_substrings": True}, "num_substrings"),
    ],
)
def test_bad_options_name_the_option(options, message):
    with pytest.raises(ValueError, match=message):
        HammingIndex(random_codes(4, 64), **options)


@settings(max_examples=50, deadline=None)
@given(st.binary(max_size=200), st.integers(0, 10_000))
def test_random_bytes_are_refused(tmp_path_factory, payload, seed):
    path = tmp_path_factory.mktemp("random") / f"{seed}.index"
    path.write_bytes(payload)
    with pytest.raises(ValueError, match=str(path)):
        HammingIndex.load(path)


@settings(max_examples=40, deadline=None)
@given(st.integers(0, 2**32 - 1), st.integers(1, 140), st.integers(1, 30), st.integers(1, 40))
def test_property_search_equals_sort(seed, bits, num_db, k):
    db = random_codes(num_db, bits, seed=seed)
    queries = random_codes(3, bits, seed=seed + 1)
    distances, ids = HammingIndex(db).search(queries, k)
    expected_distances, expected_ids = reference_search(queries, db, min(k, num_db))
    np.testing.assert_array_equal(ids, expected_ids)
    np.testing.assert_array_equal(distances, expected_distances)


def _codes_at_distances(distances, bits=8):
    """Rows whose Hamming distance to the all-ones query is `distances[row]`."""
    codes = np.ones((len(distances), bits), np.int8)
    for row, distance in enumerate(distances):
        codes[row, :distance] = -1
    return codes


@pytest.mark.parametrize(
    "name, distances, k",
    [
        # The sampled rows (every 16th) look close, but too few are: the guessed cut is too tight.
        (
            "too_tight",
            [0 if row % 16 == 0 and row < 16 * 40 else 1 + row % 3 for row in range(1600)],
            100,
        ),
        # Every sampled row is far, so the guess keeps more rows than the candidate buffer holds.
        ("too_loose", [3 if row % 16 == 0 else row % 3 for row in range(6000)], 10),
    ],
)
def test_top_k_falls_back_to_sorting_every_row_when_the_sampled_cut_misses(name, distances, k):
    db = _codes_at_distances(distances)
    query = np.ones((1, 8), np.int8)
    padded = np.full((len(db) + 7) // 8 * 8, 128, np.uint8)
    padded[: len(db)] = distances
    candidates = np.empty(min(len(db), 4 * k + 4096), np.int64)
    cut = hamming._top_k_from_candidates(
        padded,
        len(db),
        8,
        k,
        np.empty(9, np.int64),
        np.empty(9, np.int64),
        candidates,
        np.empty(k, np.int64),
    )
    assert cut == -1, name
    found_distances, ids = HammingIndex(db).search(query, k)
    expected_distances, expected_ids = reference_search(query, db, k)
    np.testing.assert_array_equal(ids, expected_ids)
    np.testing.assert_array_equal(found_distances, expected_distances)


@pytest.mark.parametrize("bits, k", [(16, 5), (32, 100), (64, 125), (127, 50), (128, 50)])
def test_search_on_a_larger_database_matches_a_stable_sort(bits, k):
    # num_db >= 16 k: the sampled-cut path for bits < 128, the full counting sort at 128 bits.
    db = random_codes(2000, bits, seed=bits)
    queries = random_codes(5, bits, seed=bits + 1)
    distances, ids = HammingIndex(db).search(queries, k)
    expected_distances, expected_ids = reference_search(queries, db, k)
    np.testing.assert_array_equal(ids, expected_ids)
    np.testing.assert_array_equal(distances, expected_distances)
