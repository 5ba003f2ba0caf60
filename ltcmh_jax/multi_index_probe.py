"""One multi-index query: probe the substring tables at growing radius (see `multi_index`).

`probe` returns the sorted `distance << ID_BITS | id` keys of one query; `multi_index` runs it over
the queries in parallel.
"""

import numba
import numpy as np
from llvmlite import ir
from numba import types
from numba.core import cgutils
from numba.extending import intrinsic

from ltcmh_jax.hamming import popcount

ID_BITS = 48
ID_MASK = (1 << ID_BITS) - 1
_PREFETCH_ENTRIES = 256


@numba.njit(cache=True, inline="always")
def substring(words, row, start, length):
    """Bits `start .. start + length - 1` of code `row` as an integer (`length` <= 64)."""
    word = start >> 6
    shift = start & 63
    value = words[row, word] >> np.uint64(shift)
    if shift + length > 64:
        value |= words[row, word + 1] << np.uint64(64 - shift)
    return value & ((np.uint64(1) << np.uint64(length)) - np.uint64(1))


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
                    query_substrings[other] ^ substring(source, row, starts[other], lengths[other])
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
def probe(query, words, starts, lengths, offsets, ids, codes, num_indexed, k, radius, budget):
    """Sorted `distance << 48 | id` keys of every code within the final cut of one query, and
    whether it finished within `budget` (bucket entries and keys visited).

    k >= 1: k-NN, the cut is the k-th smallest distance (at most `radius`); k = 0: range search,
    the cut is `radius`.
    """
    num_substrings = starts.shape[0]
    query_substrings = np.empty(num_substrings, np.uint64)
    for table in range(num_substrings):
        query_substrings[table] = substring(query, 0, starts[table], lengths[table])
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
