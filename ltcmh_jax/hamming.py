"""Numba kernels over bit-packed Hamming codes: distance histograms, exact AP and top-k by counting.

With k-bit codes a query sees only k + 1 distinct distances, so ranking a database is a counting
sort: one pass computes every distance (XOR + popcount of packed uint64 words) and a histogram, and
the rank of an item follows from the bucket offsets. No comparison sort, no `[num_query, num_db]`
array. Queries run in parallel (numba `prange`), each block of queries with its own `[num_db]`
scratch buffer.

Conventions shared by the kernels:
- `query_words [num_query, num_words]`, `db_words [num_db, num_words]`: uint64, bit j of a code is
  bit j % 64 of word j // 64, padding bits are 0 (so they never add to a distance).
- `query_label_words [num_query, num_label_words]`, `db_label_words [num_db, num_label_words]`: the
  multi-hot labels packed the same way; an item is relevant when it shares a set bit with the query.
- `bits`: k, the code length; distances are in `0..bits`.
- A "rank code" is `2 * distance + relevant`, stored as uint16, so `bits` must be below 32768.
"""

import math

import numba
import numpy as np
from numba import prange, types
from numba.extending import intrinsic

# Queries handled by one parallel task; each task allocates one `[num_db]` scratch buffer.
_QUERY_BLOCK = 8
# Tie buckets up to this size are summed term by term; larger ones use the digamma expansion.
_DIRECT_SUM_MAX = 64
# The asymptotic digamma series below is accurate to ~1e-15 from here on.
_DIGAMMA_ASYMPTOTIC_FROM = 32.0
MAX_BITS = 32767
# Top-k search: the cut is guessed from every 16th row; distances of codes up to 127 bits fit a
# byte, and 128 pads the byte array to whole words (above any such cut).
_SAMPLE_STRIDE = 16
_PAD_DISTANCE = 128
_LANE_ONES = np.uint64(0x0101010101010101)
_LANE_HIGHS = np.uint64(0x8080808080808080)


@intrinsic
def popcount(typingctx, word):
    """LLVM `ctpop`: one POPCNT instruction on x86-64 (numba has no popcount of its own)."""
    if word != types.uint64:
        return None

    def codegen(context, builder, signature, args):
        return builder.ctpop(args[0])

    # The i64 result is at most 64, so it is returned as a signed int64: uint64 + int64 would
    # otherwise promote the running distance to float64 in numba.
    return types.int64(types.uint64), codegen


@numba.njit(cache=True, inline="always")
def _distance(query_words, db_words, row):
    total = 0
    for word in range(query_words.shape[0]):
        total += popcount(query_words[word] ^ db_words[row, word])
    return total


@numba.njit(cache=True, inline="always")
def _shares_label(query_label_words, db_label_words, row):
    for word in range(query_label_words.shape[0]):
        if query_label_words[word] & db_label_words[row, word]:
            return 1
    return 0


@numba.njit(cache=True)
def _fill_rank_codes(query_words, query_label_words, db_words, db_label_words, rank_codes):
    """`rank_codes[row] = 2 * distance + relevant` for every database row."""
    if db_words.shape[1] == 1 and db_label_words.shape[1] == 1:
        # One word of code and of labels (k <= 64, c <= 64): flat arrays and no inner loops, so
        # LLVM vectorises the row loop (vpopcntq where the CPU has it).
        query_word = query_words[0]
        query_label_word = query_label_words[0]
        db_flat = db_words.reshape(-1)
        db_label_flat = db_label_words.reshape(-1)
        for row in range(db_flat.shape[0]):
            relevant = 1 if (query_label_word & db_label_flat[row]) != 0 else 0
            rank_codes[row] = (popcount(query_word ^ db_flat[row]) << 1) | relevant
    else:
        for row in range(db_words.shape[0]):
            rank_codes[row] = 2 * _distance(query_words, db_words, row) + _shares_label(
                query_label_words, db_label_words, row
            )


@numba.njit(cache=True)
def _fill_distances(query_words, db_words, distances):
    if db_words.shape[1] == 1:
        query_word = query_words[0]
        db_flat = db_words.reshape(-1)
        for row in range(db_flat.shape[0]):
            distances[row] = popcount(query_word ^ db_flat[row])
    else:
        for row in range(db_words.shape[0]):
            distances[row] = _distance(query_words, db_words, row)


@numba.njit(cache=True)
def _count_values(values, partial_counts, counts):
    """`counts[v]` = occurrences of v in `values`.

    Four interleaved partial histograms, so runs of equal values do not serialise on one counter.
    """
    partial_counts[:] = 0
    num_values = values.shape[0]
    end = num_values - num_values % 4
    for row in range(0, end, 4):
        partial_counts[0, values[row]] += 1
        partial_counts[1, values[row + 1]] += 1
        partial_counts[2, values[row + 2]] += 1
        partial_counts[3, values[row + 3]] += 1
    for row in range(end, num_values):
        partial_counts[0, values[row]] += 1
    for value in range(counts.shape[0]):
        counts[value] = (
            partial_counts[0, value]
            + partial_counts[1, value]
            + partial_counts[2, value]
            + partial_counts[3, value]
        )


@numba.njit(parallel=True, cache=True)
def rank_code_histograms(query_words, query_label_words, db_words, db_label_words, bits):
    """Per-query counts of (distance, relevant): `[num_query, 2 * (bits + 1)]` int64.

    Entry `2 * d + 1` counts the relevant items at distance d, entry `2 * d` the irrelevant ones.
    """
    num_query = query_words.shape[0]
    num_codes = 2 * (bits + 1)
    histograms = np.zeros((num_query, num_codes), np.int64)
    num_blocks = (num_query + _QUERY_BLOCK - 1) // _QUERY_BLOCK
    for block in prange(num_blocks):
        rank_codes = np.empty(db_words.shape[0], np.uint16)
        partial_counts = np.empty((4, num_codes), np.int64)
        for query in range(block * _QUERY_BLOCK, min(num_query, (block + 1) * _QUERY_BLOCK)):
            _fill_rank_codes(
                query_words[query], query_label_words[query], db_words, db_label_words, rank_codes
            )
            _count_values(rank_codes, partial_counts, histograms[query])
    return histograms


@numba.njit(cache=True)
def _precision_sum(ranked_relevant, inverse_position, limit):
    """`(sum over relevant positions p <= limit of relevant_so_far / p, relevant_so_far)`.

    Branch-free, four partial sums so the float additions do not form one latency chain.
    """
    found = 0
    sum0 = 0.0
    sum1 = 0.0
    sum2 = 0.0
    sum3 = 0.0
    end = limit - limit % 4
    for position in range(0, end, 4):
        relevant0 = np.int64(ranked_relevant[position])
        relevant1 = np.int64(ranked_relevant[position + 1])
        relevant2 = np.int64(ranked_relevant[position + 2])
        relevant3 = np.int64(ranked_relevant[position + 3])
        found0 = found + relevant0
        found1 = found0 + relevant1
        found2 = found1 + relevant2
        found = found2 + relevant3
        sum0 += (relevant0 * found0) * inverse_position[position]
        sum1 += (relevant1 * found1) * inverse_position[position + 1]
        sum2 += (relevant2 * found2) * inverse_position[position + 2]
        sum3 += (relevant3 * found) * inverse_position[position + 3]
    for position in range(end, limit):
        relevant0 = np.int64(ranked_relevant[position])
        found += relevant0
        sum0 += (relevant0 * found) * inverse_position[position]
    return (sum0 + sum1) + (sum2 + sum3), found


@numba.njit(parallel=True, cache=True)
def index_order_average_precision(
    query_words, query_label_words, db_words, db_label_words, bits, top_k
):
    """AP per query with ties in database order (what a stable sort gives).

    A counting sort: the rank of an item is (items at a smaller distance) + (items at the same
    distance with a smaller database index) + 1, so scattering each row's relevance flag to
    `next_slot[distance]++` lays out the ranking; one scan then sums precision at the relevant
    positions.

    Returns:
      `(average_precision [num_query] float64, relevant_in_top_k [num_query] int64)`. AP sums the
      precision at each relevant item ranked within `top_k` and divides by how many there are
      (0 when none); with `top_k >= num_db` this is AP over the whole ranking.
    """
    num_query = query_words.shape[0]
    num_db = db_words.shape[0]
    num_codes = 2 * (bits + 1)
    limit = min(top_k, num_db)
    inverse_position = 1.0 / np.arange(1, limit + 1)
    average_precision = np.zeros(num_query, np.float64)
    relevant_in_top_k = np.zeros(num_query, np.int64)
    num_blocks = (num_query + _QUERY_BLOCK - 1) // _QUERY_BLOCK
    for block in prange(num_blocks):
        rank_codes = np.empty(num_db, np.uint16)
        ranked_relevant = np.empty(num_db, np.uint8)
        partial_counts = np.empty((4, num_codes), np.int64)
        counts = np.empty(num_codes, np.int64)
        next_slot = np.empty(bits + 1, np.int64)
        for query in range(block * _QUERY_BLOCK, min(num_query, (block + 1) * _QUERY_BLOCK)):
            _fill_rank_codes(
                query_words[query], query_label_words[query], db_words, db_label_words, rank_codes
            )
            _count_values(rank_codes, partial_counts, counts)
            items = 0
            relevant = 0
            cut = bits
            for distance in range(bits + 1):
                next_slot[distance] = items
                items += counts[2 * distance] + counts[2 * distance + 1]
                relevant += counts[2 * distance + 1]
                if items >= limit:
                    cut = distance
                    break
            if relevant == 0:
                continue
            for row in range(num_db):
                code = rank_codes[row]
                distance = code >> 1
                if distance <= cut:
                    slot = next_slot[distance]
                    next_slot[distance] = slot + 1
                    # Slots past `limit` inside the cut bucket are written but never scanned.
                    ranked_relevant[slot] = code & 1
            precision_sum, found = _precision_sum(ranked_relevant, inverse_position, limit)
            relevant_in_top_k[query] = found
            if found > 0:
                average_precision[query] = precision_sum / found
    return average_precision, relevant_in_top_k


@numba.njit(cache=True)
def harmonic_difference(before, count):
    """`sum_{p=1}^{count} 1 / (before + p)` = H(before + count) - H(before), accurate to ~1e-15.

    Summed directly for small counts; otherwise digamma(before + count + 1) - digamma(before + 1)
    from the asymptotic series, whose leading term is a `log1p` so no large harmonic numbers are
    subtracted (a cumulative table would lose ~1e-10 at 200k items).
    """
    if count <= _DIRECT_SUM_MAX:
        total = 0.0
        for p in range(1, count + 1):
            total += 1.0 / (before + p)
        return total
    total = 0.0
    low = float(before + 1)
    high = float(before + count + 1)
    while low < _DIGAMMA_ASYMPTOTIC_FROM:
        total += 1.0 / low
        low += 1.0
    total += math.log1p((high - low) / low)
    for x, sign in ((high, 1.0), (low, -1.0)):
        inverse_square = 1.0 / (x * x)
        series = -0.5 / x - inverse_square * (
            1.0 / 12.0 - inverse_square * (1.0 / 120.0 - inverse_square / 252.0)
        )
        total += sign * series
    return total


@numba.njit(cache=True, inline="always")
def _tie_sums(before, count):
    """`(S0, S1)`: S0 = sum_p 1 / (before + p), S1 = sum_p (p - 1) / (before + p), p = 1..count."""
    if count <= _DIRECT_SUM_MAX:
        s0 = 0.0
        s1 = 0.0
        for p in range(1, count + 1):
            inverse = 1.0 / (before + p)
            s0 += inverse
            s1 += (p - 1) * inverse
        return s0, s1
    s0 = harmonic_difference(before, count)
    return s0, count - (before + 1) * s0


@numba.njit(cache=True, inline="always")
def _expected_bucket_sum(items_before, relevant_before, positions, relevant, s0, s1):
    """E[sum of precision at the relevant items] for `relevant` of them spread uniformly over the
    first `positions` slots of a tie bucket that starts after `items_before` items.

    A relevant item sits at slot p with probability relevant / positions and then has on average
    (p - 1)(relevant - 1)/(positions - 1) other relevant items ahead of it in the bucket, so
    E = relevant / positions * ((relevant_before + 1) * S0 + (relevant - 1)/(positions - 1) * S1).
    """
    if relevant == 0:
        return 0.0
    value = (relevant_before + 1) * s0
    if positions > 1:
        value += (relevant - 1) / (positions - 1) * s1
    return relevant / positions * value


@numba.njit(cache=True)
def _expected_cut_bucket(
    precision_sum, items_before, relevant_before, bucket_size, bucket_relevant, positions
):
    """E[AP@k] when the top-k cut falls inside a tie bucket after `positions` of its slots.

    The number h of relevant items among those slots is hypergeometric; given h the AP is
    (precision_sum + E[bucket part | h]) / (relevant_before + h), averaged over h.
    Hypergeometric weights come from the ratio recurrence started at the mode and normalised at the
    end, which avoids large binomials.
    """
    s0, s1 = _tie_sums(items_before, positions)
    irrelevant = bucket_size - bucket_relevant
    low = max(0, positions - irrelevant)
    high = min(positions, bucket_relevant)
    mode = ((positions + 1) * (bucket_relevant + 1)) // (bucket_size + 2)
    mode = min(max(mode, low), high)
    weight_total = 0.0
    weighted_value = 0.0
    # Upwards from the mode: P(h + 1) / P(h) = (r - h)(m - h) / ((h + 1)(n - r - m + h + 1)).
    weight = 1.0
    found = mode
    while True:
        denominator = relevant_before + found
        if denominator > 0:
            part = _expected_bucket_sum(items_before, relevant_before, positions, found, s0, s1)
            weighted_value += weight * (precision_sum + part) / denominator
        weight_total += weight
        if found == high:
            break
        weight *= (
            (bucket_relevant - found)
            * (positions - found)
            / ((found + 1) * (irrelevant - positions + found + 1))
        )
        found += 1
        if weight == 0.0:
            break
    # Downwards: P(h - 1) / P(h) = h (n - r - m + h) / ((r - h + 1)(m - h + 1)).
    weight = 1.0
    found = mode
    while found > low:
        weight *= (
            found
            * (irrelevant - positions + found)
            / ((bucket_relevant - found + 1) * (positions - found + 1))
        )
        found -= 1
        if weight == 0.0:
            break
        denominator = relevant_before + found
        if denominator > 0:
            part = _expected_bucket_sum(items_before, relevant_before, positions, found, s0, s1)
            weighted_value += weight * (precision_sum + part) / denominator
        weight_total += weight
    return weighted_value / weight_total


@numba.njit(parallel=True, cache=True)
def expected_average_precision(histograms, top_k):
    """Tie-aware AP per query: the expectation over a uniformly random order within each tie bucket.

    Args:
      histograms: `[num_query, 2 * (bits + 1)]` from `rank_code_histograms`.
      top_k: AP over the first `top_k` ranks (`>= num_db` for AP over the whole ranking).

    Returns:
      `(average_precision [num_query] float64, expected_relevant_in_top_k [num_query] float64)`.
      Closed form per bucket (McSherry & Najork, ECIR 2008, for tied scores): see
      `_expected_bucket_sum`; a cut inside a bucket averages over the hypergeometric number of its
      relevant items that land above the cut.
    """
    num_query, num_codes = histograms.shape
    num_buckets = num_codes // 2
    average_precision = np.zeros(num_query, np.float64)
    relevant_in_top_k = np.zeros(num_query, np.float64)
    for query in prange(num_query):
        num_db = 0
        for code in range(num_codes):
            num_db += histograms[query, code]
        limit = min(top_k, num_db)
        items_before = 0
        relevant_before = 0
        precision_sum = 0.0
        result = -1.0
        for distance in range(num_buckets):
            relevant = histograms[query, 2 * distance + 1]
            bucket_size = histograms[query, 2 * distance] + relevant
            if bucket_size == 0:
                continue
            if items_before + bucket_size > limit:
                positions = limit - items_before
                relevant_in_top_k[query] = relevant_before + positions * relevant / bucket_size
                result = _expected_cut_bucket(
                    precision_sum, items_before, relevant_before, bucket_size, relevant, positions
                )
                break
            s0, s1 = _tie_sums(items_before, bucket_size)
            precision_sum += _expected_bucket_sum(
                items_before, relevant_before, bucket_size, relevant, s0, s1
            )
            items_before += bucket_size
            relevant_before += relevant
            if items_before == limit:
                break
        if result < 0.0:
            relevant_in_top_k[query] = relevant_before
            result = precision_sum / relevant_before if relevant_before > 0 else 0.0
        average_precision[query] = result
    return average_precision, relevant_in_top_k


@numba.njit(cache=True)
def _slots_from_counts(counts, k, next_slot):
    """First output slot of each distance; returns the cut, the distance that reaches `k` items."""
    filled = 0
    for distance in range(counts.shape[0]):
        next_slot[distance] = filled
        filled += counts[distance]
        if filled >= k:
            return distance
    return counts.shape[0] - 1


@numba.njit(cache=True)
def _top_k_from_all_rows(row_distances, k, partial_counts, counts, next_slot, local_ids):
    """Counting sort of every row: histogram, bucket offsets, one scatter pass up to the cut."""
    _count_values(row_distances, partial_counts, counts)
    cut = _slots_from_counts(counts, k, next_slot)
    written = 0
    for row in range(row_distances.shape[0]):
        distance = row_distances[row]
        if distance <= cut:
            slot = next_slot[distance]
            if slot < k:
                local_ids[slot] = row
                next_slot[distance] = slot + 1
                written += 1
                if written == k:
                    break
    return cut


@numba.njit(cache=True)
def _top_k_from_candidates(
    padded_distances, num_db, bits, k, counts, next_slot, candidates, local_ids
):
    """Top-k when k is small next to num_db: guess the cut from a sample, keep only the rows within
    it, counting-sort those. Returns the cut, or -1 when the guess was too tight or too loose
    (the caller then sorts all rows).

    `padded_distances` is uint8, padded to whole uint64 words with `_PAD_DISTANCE`, so eight rows
    are tested against the guess at once (SWAR): a lane holds d + (127 - guess) <= 254 without a
    carry, and its high bit is set exactly when d > guess.
    """
    counts[:] = 0
    sample_size = 0
    for row in range(0, num_db, _SAMPLE_STRIDE):
        counts[padded_distances[row]] += 1
        sample_size += 1
    # Twice the sample rows expected above the true cut, plus slack for small samples.
    needed = 2.0 * k * sample_size / num_db + 16.0
    guess = bits
    cumulative = 0
    for distance in range(bits + 1):
        cumulative += counts[distance]
        if cumulative >= needed:
            guess = distance
            break
    counts[:] = 0
    found = 0
    words = padded_distances.view(np.uint64)
    offset = np.uint64(127 - guess) * _LANE_ONES
    for word in range(words.shape[0]):
        if ((words[word] + offset) & _LANE_HIGHS) == _LANE_HIGHS:
            continue
        for row in range(8 * word, min(8 * word + 8, num_db)):
            distance = padded_distances[row]
            if distance <= guess:
                if found == candidates.shape[0]:
                    return -1
                candidates[found] = row
                found += 1
                counts[distance] += 1
    if found < k:
        return -1
    # counts now holds the exact count of every distance <= guess, and the cut is <= guess.
    cut = _slots_from_counts(counts, k, next_slot)
    for index in range(found):
        row = candidates[index]
        distance = padded_distances[row]
        if distance <= cut:
            slot = next_slot[distance]
            if slot < k:
                local_ids[slot] = row
                next_slot[distance] = slot + 1
    return cut


@numba.njit(parallel=True, cache=True)
def top_k_by_counting(query_words, db_words, bits, distances, ids):
    """The `k` nearest database rows per query, ordered by (distance, row): a counting sort.

    Writes `distances [num_query, k]` int32 and `ids [num_query, k]` int64, which the caller
    allocates with NumPy: NumPy asks the kernel for huge pages on large arrays, numba's allocator
    does not, and page faults on a full-ranking output would otherwise cost more than the sort.
    Requires `1 <= k <= num_db`.
    """
    num_query = query_words.shape[0]
    num_db = db_words.shape[0]
    k = ids.shape[1]
    byte_distances = bits < _PAD_DISTANCE
    use_candidates = byte_distances and k * _SAMPLE_STRIDE <= num_db
    num_blocks = (num_query + _QUERY_BLOCK - 1) // _QUERY_BLOCK
    for block in prange(num_blocks):
        padded_distances = np.full(
            ((num_db + 7) // 8) * 8 if byte_distances else 8, _PAD_DISTANCE, np.uint8
        )
        wide_distances = np.empty(1 if byte_distances else num_db, np.uint16)
        partial_counts = np.empty((4, bits + 1), np.int64)
        counts = np.empty(bits + 1, np.int64)
        next_slot = np.empty(bits + 1, np.int64)
        candidates = np.empty(min(num_db, 4 * k + 4096) if use_candidates else 1, np.int64)
        # Scattering into a small private buffer and copying the finished row out keeps the
        # writes to the (possibly huge, freshly allocated) output sequential.
        local_ids = np.empty(k, np.int64)
        for query in range(block * _QUERY_BLOCK, min(num_query, (block + 1) * _QUERY_BLOCK)):
            if byte_distances:
                _fill_distances(query_words[query], db_words, padded_distances[:num_db])
                cut = -1
                if use_candidates:
                    cut = _top_k_from_candidates(
                        padded_distances, num_db, bits, k, counts, next_slot, candidates, local_ids
                    )
                if cut < 0:
                    cut = _top_k_from_all_rows(
                        padded_distances[:num_db], k, partial_counts, counts, next_slot, local_ids
                    )
            else:
                _fill_distances(query_words[query], db_words, wide_distances)
                cut = _top_k_from_all_rows(
                    wide_distances, k, partial_counts, counts, next_slot, local_ids
                )
            ids[query, :] = local_ids
            start = 0
            for distance in range(cut + 1):
                end = min(start + counts[distance], k)
                distances[query, start:end] = distance
                start = end


@numba.njit(parallel=True, cache=True)
def count_within_radius(query_words, db_words, radius):
    """Per query, the database rows within Hamming distance `radius`: `[num_query]` int64."""
    num_query = query_words.shape[0]
    found = np.zeros(num_query, np.int64)
    for query in prange(num_query):
        total = 0
        for row in range(db_words.shape[0]):
            if _distance(query_words[query], db_words, row) <= radius:
                total += 1
        found[query] = total
    return found


@numba.njit(parallel=True, cache=True)
def fill_within_radius(query_words, db_words, radius, starts, distances, ids):
    """Writes the rows within `radius` of query q, ordered by (distance, row), to
    `distances[starts[q]:]` int32 and `ids[starts[q]:]` int64 (sizes from `count_within_radius`).

    A counting sort per query: one pass for the histogram of distances <= radius, one to scatter.
    """
    for query in prange(query_words.shape[0]):
        counts = np.zeros(radius + 1, np.int64)
        for row in range(db_words.shape[0]):
            distance = _distance(query_words[query], db_words, row)
            if distance <= radius:
                counts[distance] += 1
        next_slot = np.empty(radius + 1, np.int64)
        filled = starts[query]
        for distance in range(radius + 1):
            next_slot[distance] = filled
            filled += counts[distance]
        for row in range(db_words.shape[0]):
            distance = _distance(query_words[query], db_words, row)
            if distance <= radius:
                slot = next_slot[distance]
                next_slot[distance] = slot + 1
                distances[slot] = distance
                ids[slot] = row
