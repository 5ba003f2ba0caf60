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
from llvmlite import ir
from numba import prange, types
from numba.core import cgutils
from numba.extending import intrinsic

from ltcmh_jax.hamming import popcount

# Direct-address tables hold 2^s + 1 offsets; above 2^24 the offsets outgrow the ids they index.
MAX_SUBSTRING_BITS = 24
MIN_SUBSTRING_BITS = 4
# Codes up to this many words are copied into the tables; longer ones are read through `ids`.
INLINE_MAX_WORDS = 2
CODES_PER_BUCKET = 128
ID_BITS = 48
ID_MASK = (1 << ID_BITS) - 1
_PREFETCH_ENTRIES = 256
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


@numba.njit(cache=True, inline="always")
def _substring(words, row, start, length):
    word = start >> 6
    shift = start & 63
    value = words[row, word] >> np.uint64(shift)
    if shift + length > 64:
        value |= words[row, word + 1] << np.uint64(64 - shift)
    return value & ((np.uint64(1) << np.uint64(length)) - np.uint64(1))


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
            counts[np.int64(_substring(words, row, start, length)) + 1] += 1
        for key in range(1, counts.shape[0]):
            counts[key] += counts[key - 1]
        cursor = counts[:-1].copy()
        for row in range(ids.shape[1]):
            key = np.int64(_substring(words, row, start, length))
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


@intrinsic
def prefetch(typingctx, array, index):
    """Hints the CPU to load `array[index]` into cache (LLVM `prefetch`, read, high locality)."""
    if not (isinstance(array, types.Array) and array.ndim == 1):
        return None
    if not isinstance(index, types.Integer):
        return None

    def codegen(context, builder, signature, args):
        array_type = signature.args[0]
        array_struct = context.make_array(array_type)(context, builder, args[0])
        pointer = cgutils.get_item_pointer(
            context, builder, array_type, array_struct, [args[1]], wraparound=False
        )
        byte_pointer = ir.IntType(8).as_pointer()
        int32 = ir.IntType(32)
        function = cgutils.get_or_insert_function(
            builder.module,
            ir.FunctionType(ir.VoidType(), [byte_pointer, int32, int32, int32]),
            "llvm.prefetch.p0i8",
        )
        arguments = [builder.bitcast(pointer, byte_pointer)] + [
            ir.Constant(int32, value) for value in (0, 3, 1)
        ]
        builder.call(function, arguments)
        return context.get_dummy_value()

    return types.none(array, index), codegen


@numba.njit(cache=True, inline="always")
def _distance(query, table_codes, slot):
    distance = 0
    for word in range(table_codes.shape[1]):
        distance += popcount(query[0, word] ^ table_codes[slot, word])
    return distance


@numba.njit(cache=True, inline="always")
def _row(ids, slot, inline):
    """Where entry `slot` of a table is in its code source: itself if inline, else its id."""
    return slot if inline else np.int64(ids[slot])


@numba.njit(cache=True, inline="always")
def _next_within(query, source, ids, inline, slot, end, limit):
    """The first entry from `slot` on within `limit` of the query, or `end`: the hot loop, as most
    entries of a probed bucket are too far."""
    if inline and source.shape[1] == 1:
        query_word = query[0, 0]
        while slot < end:
            if popcount(query_word ^ source[slot, 0]) <= limit:
                return slot
            slot += 1
        return end
    while slot < end:
        if _distance(query, source, _row(ids, slot, inline)) <= limit:
            return slot
        slot += 1
    return end


@numba.njit(cache=True, inline="always")
def _tighten(counts, within, limit, k):
    """Lowers `limit` while k codes stay within it; `within` counts the kept codes <= `limit`.

    Returns `(within, limit)`; a range search (k = 0) keeps its limit."""
    if k > 0:
        while limit > 0 and within - counts[limit] >= k:
            within -= counts[limit]
            limit -= 1
    return within, limit


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


@numba.njit(cache=True, inline="always")
def _next_mask(mask):
    """Gosper's hack: the next larger integer with as many set bits as `mask` (> 0)."""
    lowest = mask & (~mask + np.uint64(1))
    ripple = mask + lowest
    return (((ripple ^ mask) >> np.uint64(2)) // lowest) | ripple


@numba.njit(cache=True, inline="always")
def _prefetch_bucket(table_codes, first_slot, end_slot):
    # The first 2 KiB of the next bucket: its DRAM latency then overlaps this bucket's scan.
    flat = table_codes.reshape(-1)
    num_words = table_codes.shape[1]
    end = min(end_slot, first_slot + _PREFETCH_ENTRIES // num_words)
    for position in range(first_slot * num_words, end * num_words, 8):
        prefetch(flat, position)


@numba.njit(cache=True)
def _probe_table(query, query_substrings, starts, lengths, table, sub_radius, state):
    """Visits every bucket of `table` whose key is exactly `sub_radius` bits from the query's
    substring, counting each code at its first visit (see the module docstring)."""
    offsets, ids, source, inline, counts, keys, found, within, limit, k, visited = state
    one = np.uint64(1)
    end = one << np.uint64(lengths[table])
    mask = (one << np.uint64(sub_radius)) - one
    key = np.int64(query_substrings[table] ^ mask)
    first_slot = np.int64(offsets[key])
    end_slot = np.int64(offsets[key + 1])
    while True:
        next_mask = end if sub_radius == 0 else _next_mask(mask)
        if next_mask < end:
            next_key = np.int64(query_substrings[table] ^ next_mask)
            next_first = np.int64(offsets[next_key])
            next_end = np.int64(offsets[next_key + 1])
            if inline:
                _prefetch_bucket(source, next_first, next_end)
        visited += 1 + end_slot - first_slot
        slot = _next_within(query, source, ids, inline, first_slot, end_slot, limit)
        while slot < end_slot:
            row = _row(ids, slot, inline)
            first = True
            for other in range(starts.shape[0]):
                part = popcount(
                    query_substrings[other] ^ _substring(source, row, starts[other], lengths[other])
                )
                # Reached before, at a smaller radius or an earlier table.
                if part < sub_radius or (part == sub_radius and other < table):
                    first = False
                    break
            if first:
                distance = _distance(query, source, row)
                counts[distance] += 1
                result = (distance << ID_BITS) | np.int64(ids[slot])
                keys, found = _keep(keys, found, result, limit)
                within, limit = _tighten(counts, within + 1, limit, k)
            slot = _next_within(query, source, ids, inline, slot + 1, end_slot, limit)
        if next_mask >= end:
            break
        mask = next_mask
        first_slot = next_first
        end_slot = next_end
    return keys, found, within, limit, visited


@numba.njit(cache=True)
def _probe(query, words, starts, lengths, offsets, ids, codes, num_indexed, k, radius, budget):
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
    within = 0
    for row in range(num_indexed, words.shape[0]):
        distance = _distance(query, words, row)
        if distance <= limit:
            counts[distance] += 1
            keys, found = _keep(keys, found, (distance << ID_BITS) | row, limit)
            within, limit = _tighten(counts, within + 1, limit, k)
    visited = words.shape[0] - num_indexed
    inline = codes.shape[1] > 0
    sub_radius = 0
    done = False
    while not done:
        for table in range(num_substrings):
            if sub_radius <= lengths[table]:
                source = codes[table] if inline else words
                state = (offsets[table], ids[table], source, inline, counts, keys, found, within)
                keys, found, within, limit, visited = _probe_table(
                    query,
                    query_substrings,
                    starts,
                    lengths,
                    table,
                    sub_radius,
                    (*state, limit, k, visited),
                )
                if visited > budget:
                    return keys[:0], False
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
def top_k(
    query_words, words, starts, lengths, offsets, ids, codes, num_indexed, bits, budget, keys_out
):
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
        keys, ok = _probe(
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
        keys, _ = _probe(
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
