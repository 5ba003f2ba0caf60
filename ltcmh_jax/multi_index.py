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

from ltcmh_jax.hamming import popcount

# Direct-address tables hold 2^s + 1 offsets; above 2^24 the offsets outgrow the ids they index.
MAX_SUBSTRING_BITS = 24
ID_BITS = 48
ID_MASK = (1 << ID_BITS) - 1


class Tables(NamedTuple):
    """The m substring tables over the first `num_indexed` codes (see the module docstring)."""

    starts: np.ndarray  # [m] int64
    lengths: np.ndarray  # [m] int64
    offsets: np.ndarray  # [m, 2^max(lengths) + 1], uint32 below 2^32 codes, else int64
    ids: np.ndarray  # [m, num_indexed], same dtype as offsets
    num_indexed: int

    @property
    def nbytes(self) -> int:
        return self.offsets.nbytes + self.ids.nbytes


def substring_count(num_codes: int, bits: int) -> int:
    """m, the paper's choice of substrings: m = round(bits / log2(n)), so a substring has about
    log2(n) bits and a bucket about one code (TPAMI 2014, Sec. 4.2); at least enough substrings
    to keep each within `MAX_SUBSTRING_BITS`, at most `bits`."""
    by_size = bits / math.log2(max(num_codes, 2))
    fewest = -(-bits // MAX_SUBSTRING_BITS)
    return int(min(bits, max(fewest, round(by_size), 1)))


def substring_bounds(bits: int, num_substrings: int) -> tuple[np.ndarray, np.ndarray]:
    """`(starts [m], lengths [m])`: m contiguous substrings whose widths differ by at most 1."""
    lengths = np.full(num_substrings, bits // num_substrings, np.int64)
    lengths[: bits % num_substrings] += 1
    starts = np.concatenate([[0], np.cumsum(lengths)[:-1]]).astype(np.int64)
    return starts, lengths


@numba.njit(cache=True, inline="always")
def _substring(words, row, start, length):
    word = start >> 6
    shift = start & 63
    value = words[row, word] >> np.uint64(shift)
    if shift + length > 64:
        value |= words[row, word + 1] << np.uint64(64 - shift)
    return value & ((np.uint64(1) << np.uint64(length)) - np.uint64(1))


@numba.njit(parallel=True, cache=True)
def _fill_tables(words, starts, lengths, offsets, ids):
    """Counting sort of the rows by each substring; rows stay ascending within a bucket."""
    for table in prange(starts.shape[0]):
        start = starts[table]
        length = lengths[table]
        counts = offsets[table]
        counts[:] = 0
        for row in range(ids.shape[1]):
            counts[np.int64(_substring(words, row, start, length)) + 1] += 1
        for key in range(1, counts.shape[0]):
            counts[key] += counts[key - 1]
        cursor = counts[:-1].copy()
        for row in range(ids.shape[1]):
            key = np.int64(_substring(words, row, start, length))
            ids[table, cursor[key]] = row
            cursor[key] += 1


def build_tables(words: np.ndarray, bits: int, num_substrings: int) -> Tables:
    """Tables over all rows of `words [n, num_words]`, with m = `num_substrings`."""
    starts, lengths = substring_bounds(bits, num_substrings)
    num_codes = words.shape[0]
    dtype = np.uint32 if num_codes < 2**32 else np.int64
    offsets = np.empty((num_substrings, (1 << int(lengths.max())) + 1), dtype)
    ids = np.empty((num_substrings, num_codes), dtype)
    _fill_tables(words, starts, lengths, offsets, ids)
    return Tables(starts, lengths, offsets, ids, num_codes)


@numba.njit(cache=True, inline="always")
def _cut_distance(counts, k, limit):
    """The smallest distance at which `counts` reaches k codes, or `limit` if that is smaller."""
    total = 0
    for distance in range(min(limit, counts.shape[0] - 1) + 1):
        total += counts[distance]
        if total >= k:
            return distance
    return limit


@numba.njit(cache=True)
def _keep(keys, found, key, limit):
    """Appends `key` to `keys[:found]`, first dropping keys past `limit` or doubling when full."""
    if found == keys.shape[0]:
        kept = 0
        for index in range(found):
            if keys[index] >> ID_BITS <= limit:
                keys[kept] = keys[index]
                kept += 1
        found = kept
        if found > keys.shape[0] // 2:
            grown = np.empty(2 * keys.shape[0], np.int64)
            grown[:found] = keys[:found]
            keys = grown
    keys[found] = key
    return keys, found + 1


@numba.njit(cache=True)
def _probe(query, words, starts, lengths, offsets, ids, num_indexed, k, radius, budget):
    """Sorted `distance << 48 | id` keys of every code within the final cut of one query, and
    whether it finished within `budget` (bucket entries and keys visited).

    k >= 1: k-NN, the cut is the k-th smallest distance (at most `radius`); k = 0: range search,
    the cut is `radius`.
    """
    num_substrings = starts.shape[0]
    query_substrings = np.empty(num_substrings, np.uint64)
    for table in range(num_substrings):
        query_substrings[table] = _substring(query, 0, starts[table], lengths[table])
    counts = np.zeros(radius + 1, np.int64)
    keys = np.empty(4 * k + 256, np.int64)
    found = 0
    limit = radius
    for row in range(num_indexed, words.shape[0]):
        distance = 0
        for word in range(words.shape[1]):
            distance += popcount(query[0, word] ^ words[row, word])
        if distance <= limit:
            counts[distance] += 1
            keys, found = _keep(keys, found, (distance << ID_BITS) | row, limit)
            if k > 0:
                limit = _cut_distance(counts, k, limit)
    visited = words.shape[0] - num_indexed
    one = np.uint64(1)
    sub_radius = 0
    done = False
    while not done:
        for table in range(num_substrings):
            length = lengths[table]
            if sub_radius <= length:
                mask = (one << np.uint64(sub_radius)) - one
                end = one << np.uint64(length)
                while True:
                    key = np.int64(query_substrings[table] ^ mask)
                    visited += 1
                    for slot in range(
                        np.int64(offsets[table, key]), np.int64(offsets[table, key + 1])
                    ):
                        row = np.int64(ids[table, slot])
                        visited += 1
                        distance = 0
                        first = True
                        for other in range(num_substrings):
                            if other == table:
                                part = sub_radius
                            else:
                                part = popcount(
                                    query_substrings[other]
                                    ^ _substring(words, row, starts[other], lengths[other])
                                )
                                # Reached before, at a smaller radius or an earlier table.
                                if part < sub_radius or (part == sub_radius and other < table):
                                    first = False
                                    break
                            distance += part
                        if first and distance <= limit:
                            counts[distance] += 1
                            keys, found = _keep(keys, found, (distance << ID_BITS) | row, limit)
                            if k > 0:
                                limit = _cut_distance(counts, k, limit)
                    if visited > budget:
                        return keys[:0], False
                    if sub_radius == 0:
                        break
                    # Gosper's hack: the next larger mask with the same number of set bits.
                    lowest = mask & (~mask + one)
                    ripple = mask + lowest
                    mask = (((ripple ^ mask) >> np.uint64(2)) // lowest) | ripple
                    if mask >= end:
                        break
            if limit <= num_substrings * sub_radius + table:
                done = True
                break
        sub_radius += 1
    selected = np.empty(found, np.int64)
    num_selected = 0
    for index in range(found):
        if keys[index] >> ID_BITS <= limit:
            selected[num_selected] = keys[index]
            num_selected += 1
    return np.sort(selected[:num_selected]), True


@numba.njit(parallel=True, cache=True)
def top_k(query_words, words, starts, lengths, offsets, ids, num_indexed, bits, budget, keys_out):
    """k-NN by multi-index probing: per query `keys_out[q, :k]` (distance << 48 | id, sorted), and
    `[num_query]` bool, False where the query gave up past `budget` (keys_out row left unset)."""
    num_query = query_words.shape[0]
    k = keys_out.shape[1]
    complete = np.zeros(num_query, np.bool_)
    for query in prange(num_query):
        keys, ok = _probe(
            query_words[query : query + 1],
            words,
            starts,
            lengths,
            offsets,
            ids,
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
    query_words, words, starts, lengths, offsets, ids, num_indexed, radius, budget
):
    """Per query, codes within `radius` (`[num_query]` int64), -1 where it gave up past `budget`."""
    num_query = query_words.shape[0]
    found = np.empty(num_query, np.int64)
    for query in prange(num_query):
        keys, ok = _probe(
            query_words[query : query + 1],
            words,
            starts,
            lengths,
            offsets,
            ids,
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
        keys, _ = _probe(
            query_words[query : query + 1],
            words,
            starts,
            lengths,
            offsets,
            ids,
            num_indexed,
            0,
            radius,
            words.shape[0] * (starts.shape[0] + 1) + offsets.shape[0] * offsets.shape[1],
        )
        start = out_starts[query]
        for position in range(keys.shape[0]):
            distances[start + position] = keys[position] >> ID_BITS
            out_ids[start + position] = keys[position] & ID_MASK
