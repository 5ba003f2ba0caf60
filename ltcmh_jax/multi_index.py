"""Multi-index hashing: exact Hamming k-NN and range search that reads a small part of the database.

Norouzi, Punjani and Fleet, "Fast Search in Hamming Space with Multi-Index Hashing" (CVPR 2012;
TPAMI 2014). Each k-bit code is cut into m contiguous substrings; table j maps every value of
substring j to the ids that hold it, in CSR form: `ids[j, offsets[j, key]:offsets[j, key + 1]]`,
ascending. By pigeonhole, two codes at Hamming distance D differ in at most floor(D / m) bits of
some substring. Probing the tables at substring radius r = 0, 1, 2, ... (every key at exactly r
bits from the query's substring) therefore finds codes in order of a guaranteed radius: once
tables 0..j are probed at r, a code not yet found differs by >= r + 1 bits in each of them and by
>= r in the others, so every code within `m r + j` of the query has been found (paper Sec. 3-4).
A k-NN query stops as soon as k found codes lie within that guaranteed radius; since every code up
to the cut distance is then known, ties are broken by id exactly as the linear scan breaks them.

A code is counted once, at the first (radius, table) probe that reaches it: the table j of its
smallest substring distance r, lowest j first. Checking that from its substring distances needs no
per-query `[n]` visited set.

This module builds the tables and runs queries in parallel; `multi_index_probe` answers one query.
Conventions: `words [n, num_words]` uint64 as in `hamming`; `starts [m]`, `lengths [m]` int64, the
first bit and the width of each substring; rows `num_indexed..n` are a tail added after the tables
were built, scanned linearly per query. Results are packed as `distance << 48 | id`, so sorting
the integers orders by (distance, id).
"""

import math
from typing import NamedTuple

import numba
import numpy as np
from numba import prange

from ltcmh_jax.multi_index_probe import ID_BITS, ID_MASK, probe, substring

# Direct-address tables hold 2^s + 1 offsets; above 2^24 the offsets outgrow the ids they index.
MAX_SUBSTRING_BITS = 24
MIN_SUBSTRING_BITS = 4
# Codes up to this many words are copied into the tables; longer ones are read through `ids`.
INLINE_MAX_WORDS = 2
CODES_PER_BUCKET = 128
# Offsets beyond this and beyond 16 bytes per code and table are refused, not allocated.
_MAX_OFFSETS_BYTES = 1 << 30


class Tables(NamedTuple):
    """The m substring tables over the first `num_indexed` codes (see the module docstring)."""

    starts: np.ndarray  # [m] int64
    lengths: np.ndarray  # [m] int64
    offsets: np.ndarray  # [m, 2^max(lengths) + 1], uint32 below 2^32 codes, else int64
    ids: np.ndarray  # [m, num_indexed], same dtype as offsets
    codes: np.ndarray  # [m, num_indexed, num_words] uint64, each entry's code; [m, 0, w] if not
    num_indexed: int

    @property
    def nbytes(self) -> int:
        return self.offsets.nbytes + self.ids.nbytes + self.codes.nbytes


def substring_count(num_codes: int, bits: int) -> int:
    """m, the number of substrings, for n codes of `bits` bits.

    The paper (TPAMI 2014, Sec. 4.2) takes substrings of s = log2(n) bits, m = bits / log2(n), so
    a bucket holds about one code: its cost model prices a table lookup and a candidate check
    alike. Here a lookup (a new bucket, a cache miss) costs about as much as checking 128 entries
    streamed from a bucket, so s = log2(n / `CODES_PER_BUCKET`) bits (at least
    `MIN_SUBSTRING_BITS`); measured best at 2e5, 1e6 and 1e7 codes (docs/SCALING.md). At least
    enough substrings to keep each within `MAX_SUBSTRING_BITS`, at most `bits`.
    """
    substring_bits = max(math.log2(max(num_codes, 1) / CODES_PER_BUCKET), MIN_SUBSTRING_BITS)
    fewest = -(-bits // MAX_SUBSTRING_BITS)
    return int(min(bits, max(fewest, round(bits / substring_bits), 1)))


def substring_bounds(bits: int, num_substrings: int) -> tuple[np.ndarray, np.ndarray]:
    """`(starts [m], lengths [m])`: m contiguous substrings whose widths differ by at most 1."""
    lengths = np.full(num_substrings, bits // num_substrings, np.int64)
    lengths[: bits % num_substrings] += 1
    starts = np.concatenate([[0], np.cumsum(lengths)[:-1]]).astype(np.int64)
    return starts, lengths


@numba.njit(parallel=True, cache=True)
def _fill_tables(words, starts, lengths, offsets, ids, codes):
    """Counting sort of the rows by each substring; rows stay ascending within a bucket.

    Each entry carries a copy of its code (up to `INLINE_MAX_WORDS` words), so a probe reads a
    bucket as one sequential run instead of one random access into `words` per entry (that miss
    made probing 5x slower at 1e7 codes).
    """
    for table in prange(starts.shape[0]):
        start = starts[table]
        length = lengths[table]
        counts = offsets[table]
        counts[:] = 0
        for row in range(ids.shape[1]):
            counts[np.int64(substring(words, row, start, length)) + 1] += 1
        for key in range(1, counts.shape[0]):
            counts[key] += counts[key - 1]
        cursor = counts[:-1].copy()
        for row in range(ids.shape[1]):
            key = np.int64(substring(words, row, start, length))
            slot = cursor[key]
            ids[table, slot] = row
            if codes.shape[1]:
                codes[table, slot, :] = words[row, :]
            cursor[key] = slot + 1


def build_tables(words: np.ndarray, bits: int, num_substrings: int) -> Tables:
    """Tables over all rows of `words [n, num_words]`, with m = `num_substrings`."""
    starts, lengths = substring_bounds(bits, num_substrings)
    num_codes = words.shape[0]
    dtype = np.uint32 if num_codes < 2**32 else np.int64
    offsets_bytes = num_substrings * ((1 << int(lengths.max())) + 1) * np.dtype(dtype).itemsize
    if offsets_bytes > max(_MAX_OFFSETS_BYTES, 16 * num_substrings * num_codes):
        raise ValueError(
            f"num_substrings: m={num_substrings} substrings of {lengths.max()} bits need "
            f"{offsets_bytes / 2**30:.1f} GiB of offsets for {num_codes} codes; use a larger m"
        )
    offsets = np.empty((num_substrings, (1 << int(lengths.max())) + 1), dtype)
    ids = np.empty((num_substrings, num_codes), dtype)
    inline_rows = num_codes if words.shape[1] <= INLINE_MAX_WORDS else 0
    codes = np.empty((num_substrings, inline_rows, words.shape[1]), np.uint64)
    _fill_tables(words, starts, lengths, offsets, ids, codes)
    return Tables(starts, lengths, offsets, ids, codes, num_codes)


@numba.njit(parallel=True, cache=True)
def top_k(
    query_words, words, starts, lengths, offsets, ids, codes, num_indexed, bits, budget, keys_out
):
    """k-NN by multi-index probing: per query `keys_out[q, :k]` (distance << 48 | id, sorted), and
    `[num_query]` bool, False where the query gave up past `budget` (keys_out row left unset)."""
    num_query = query_words.shape[0]
    k = keys_out.shape[1]
    complete = np.zeros(num_query, np.bool_)
    for query in prange(num_query):
        keys, ok = probe(
            query_words[query : query + 1],
            words,
            starts,
            lengths,
            offsets,
            ids,
            codes,
            num_indexed,
            k,
            bits,
            budget,
        )
        if ok:
            keys_out[query, :] = keys[:k]
            complete[query] = True
    return complete


@numba.njit(parallel=True, cache=True)
def count_within_radius(
    query_words, words, starts, lengths, offsets, ids, codes, num_indexed, radius, budget
):
    """Per query, codes within `radius` (`[num_query]` int64), -1 where it gave up past `budget`."""
    num_query = query_words.shape[0]
    found = np.empty(num_query, np.int64)
    for query in prange(num_query):
        keys, ok = probe(
            query_words[query : query + 1],
            words,
            starts,
            lengths,
            offsets,
            ids,
            codes,
            num_indexed,
            0,
            radius,
            budget,
        )
        found[query] = keys.shape[0] if ok else -1
    return found


@numba.njit(parallel=True, cache=True)
def fill_within_radius(
    query_words,
    words,
    starts,
    lengths,
    offsets,
    ids,
    codes,
    num_indexed,
    radius,
    selected,
    out_starts,
    distances,
    out_ids,
):
    """For each query q in `selected`, writes its codes within `radius`, by (distance, id), to
    `distances[out_starts[q]:]` int32 and `out_ids[out_starts[q]:]` int64."""
    for index in prange(selected.shape[0]):
        query = selected[index]
        keys, _ = probe(
            query_words[query : query + 1],
            words,
            starts,
            lengths,
            offsets,
            ids,
            codes,
            num_indexed,
            0,
            radius,
            words.shape[0] * (starts.shape[0] + 1) + offsets.size,
        )
        start = out_starts[query]
        for position in range(keys.shape[0]):
            distances[start + position] = keys[position] >> ID_BITS
            out_ids[start + position] = keys[position] & ID_MASK
