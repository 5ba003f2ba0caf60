"""Search speed: `HammingIndex` (linear scan, multi-index, auto) against faiss `IndexBinaryFlat` and
`IndexBinaryMultiHash`, top-k for each `--top_k` and thread count; same codes, same run.

Run from the repository root:
  python -m benchmarks.search                                   # NUS-WIDE size, top-1000
  python -m benchmarks.search --num_db=10000000 --num_query=200 --top_k=10,100
faiss-cpu is optional (`pip install faiss-cpu`); without it those comparisons are skipped and said
so. Timings are the fastest of `--repeats` interleaved rounds, for each count in `--threads`
(numba and faiss OpenMP set alike). At up to `--full_ranking_max_db` codes the full ranking is also
timed against NumPy XOR + popcount + stable argsort.
"""

import functools
import logging
import time

import numba
import numpy as np
from absl import app, flags

from ltcmh_jax.index import HammingIndex, PackedCodes, auto_uses_multi_index, pack_codes

_NUM_QUERY = flags.DEFINE_integer("num_query", 2000, "Queries, drawn from the database rows.")
_NUM_DB = flags.DEFINE_integer("num_db", 195_834, "Database codes (default: NUS-WIDE size).")
_BITS = flags.DEFINE_integer("bits", 64, "Code length k.")
_TOP_K = flags.DEFINE_list("top_k", ["1000"], "Neighbours per query, one run each.")
_THREADS = flags.DEFINE_list(
    "threads", None, "Thread counts to time (default: 1 and every core numba sees)."
)
_MULTIHASH = flags.DEFINE_bool(
    "multihash", True, "Also time faiss IndexBinaryMultiHash (approximate) and print its recall."
)
_FAISS_USE_HEAP = flags.DEFINE_list(
    "faiss_use_heap", ["true", "false"], "IndexBinaryFlat settings of use_heap to time."
)
_AUTO = flags.DEFINE_bool(
    "auto", True, "Also time mode='auto' (its own copy of the tables when it probes them)."
)
_RANK_QUERIES = flags.DEFINE_integer(
    "rank_queries", 64, "Queries for the full ranking (its output is [queries, num_db])."
)
_FULL_RANKING_MAX_DB = flags.DEFINE_integer(
    "full_ranking_max_db", 1_000_000, "Skip the full ranking above this many codes (memory)."
)
_REPEATS = flags.DEFINE_integer(
    "repeats", 5, "Interleaved timed rounds; the fastest of each is reported."
)
_SEED = flags.DEFINE_integer("seed", 0, "Seed of the synthetic codes.")

# Rows drawn per chunk, so 1e8 codes never exist as a float [n, k] array.
_CHUNK_ROWS = 1 << 18


def synthetic_codes(num_db, bits, seed, num_labels=21):
    """Packed codes `[num_db, ceil(k / 64)]` from label-correlated projections, so distances cluster
    and tie as a trained model's do (the recipe of benchmarks/metrics.py).

    Drawn in chunks of `_CHUNK_ROWS` rows (labels, then noise); the first chunk draws the
    projection between its labels and its noise, so up to `_CHUNK_ROWS` codes are exactly the
    one-shot draw this benchmark used before.
    """
    rng = np.random.default_rng(seed)
    label_rates = 0.4 * np.arange(1, num_labels + 1) ** -1.0
    projection = None
    chunks = []
    for start in range(0, num_db, _CHUNK_ROWS):
        rows = min(_CHUNK_ROWS, num_db - start)
        labels = (rng.random((rows, num_labels)) < label_rates).astype(np.int8)
        if projection is None:
            projection = rng.standard_normal((num_labels, bits))
        noise = 1.5 * rng.standard_normal((rows, bits))
        chunks.append(np.asarray(pack_codes(np.where(labels @ projection + noise > 0, 1, -1))))
    return PackedCodes(np.concatenate(chunks), bits)


def _best_times(functions, repeats):
    """Minimum wall time of each function over `repeats` interleaved rounds, and its last result.

    Interleaving and taking the minimum keeps a busy shared machine from favouring either side.
    """
    best = {name: float("inf") for name in functions}
    results = {}
    for _ in range(repeats):
        for name, function in functions.items():
            start = time.perf_counter()
            results[name] = function()
            best[name] = min(best[name], time.perf_counter() - start)
    return best, results


def numpy_full_ranking(query_words, db_words):
    """Per query: XOR, `np.bitwise_count`, row sums, stable argsort (ties by id); the same outputs
    as `HammingIndex.search` (`distances [q, n]` int32, `ids [q, n]` int64)."""
    distances = np.empty((query_words.shape[0], db_words.shape[0]), np.int32)
    ids = np.empty((query_words.shape[0], db_words.shape[0]), np.int64)
    for query in range(query_words.shape[0]):
        distance = np.bitwise_count(db_words ^ query_words[query]).sum(axis=1, dtype=np.uint16)
        ids[query] = np.argsort(distance, kind="stable")
        distances[query] = distance[ids[query]]
    return distances, ids


def _faiss_or_none():
    # faiss' loader logs each SIMD variant it tries through the root logger.
    logging.getLogger("faiss.loader").setLevel(logging.WARNING)
    try:
        import faiss  # optional, benchmark-only
    except ImportError:
        print("faiss-cpu not installed: faiss comparisons skipped (pip install faiss-cpu)")
        return None
    print(f"faiss {faiss.__version__} ({faiss.get_compile_options().strip()})")
    return faiss


def _faiss_layout(codes, bits):
    """faiss' binary layout, `[n, ceil(k / 8)]` uint8: the same bit order as our little-endian
    words, so the distances agree."""
    as_bytes = np.asarray(codes).astype("<u8", copy=False).view(np.uint8)
    return np.ascontiguousarray(as_bytes[:, : (bits + 7) // 8])


def _faiss_search(index, use_heap, query_bytes, k):
    if use_heap is not None:
        index.use_heap = use_heap
    return index.search(query_bytes, k)


def _set_threads(threads, faiss):
    numba.set_num_threads(threads)
    if faiss is not None:
        faiss.omp_set_num_threads(threads)


def main(argv):
    del argv
    num_db, bits = _NUM_DB.value, _BITS.value
    start = time.perf_counter()
    codes = synthetic_codes(num_db, bits, _SEED.value)
    rng = np.random.default_rng(_SEED.value + 1)
    queries = codes[rng.choice(num_db, _NUM_QUERY.value, replace=False)]
    print(
        f"{_NUM_QUERY.value} queries x {num_db:,} codes of k={bits} bits, drawn in "
        f"{time.perf_counter() - start:.1f} s; numba sees {numba.config.NUMBA_NUM_THREADS} threads"
    )
    linear = HammingIndex(codes, mode="linear")
    multi = HammingIndex(codes, mode="multi_index")
    auto = HammingIndex(codes) if _AUTO.value else None
    start = time.perf_counter()
    multi.build_multi_index()
    print(
        f"multi-index: m={multi.num_substrings} substrings, tables built in "
        f"{time.perf_counter() - start:.2f} s, {multi.multi_index_bytes / num_db:.1f} bytes per "
        f"code ({multi.multi_index_bytes / 2**20:,.0f} MiB) on top of the codes' "
        f"{linear.words.nbytes / num_db:.0f}"
    )
    faiss = _faiss_or_none()
    query_bytes = _faiss_layout(queries, bits)
    faiss_indexes = {}
    if faiss is not None:
        faiss_db = _faiss_layout(codes, bits)
        flat = faiss.IndexBinaryFlat(bits)
        flat.add(faiss_db)
        # use_heap=True (the default) keeps a heap per query; False counts per distance, as we do.
        for use_heap in (value.lower() == "true" for value in _FAISS_USE_HEAP.value):
            faiss_indexes[f"faiss IndexBinaryFlat use_heap={use_heap}"] = (flat, use_heap)
        if _MULTIHASH.value:
            substring_bits = bits // multi.num_substrings
            start = time.perf_counter()
            multihash = faiss.IndexBinaryMultiHash(bits, multi.num_substrings, substring_bits)
            multihash.nflip = 2
            multihash.add(faiss_db)
            print(
                f"faiss IndexBinaryMultiHash(nhash={multi.num_substrings}, b={substring_bits}, "
                f"nflip=2) built in {time.perf_counter() - start:.1f} s"
            )
            faiss_indexes["faiss IndexBinaryMultiHash"] = (multihash, None)
        del faiss_db

    thread_counts = [int(t) for t in _THREADS.value or [1, numba.config.NUMBA_NUM_THREADS]]
    for top_k in (int(k) for k in _TOP_K.value):
        print(
            f"\n== top-{top_k}; auto mode chooses "
            f"{'multi_index' if auto_uses_multi_index(num_db, top_k) else 'linear'} here"
        )
        for threads in dict.fromkeys(thread_counts):
            _set_threads(threads, faiss)
            searches = {
                "linear": lambda k=top_k: linear.search(queries, k),
                "multi_index": lambda k=top_k: multi.search(queries, k),
            }
            if auto is not None:
                searches["auto"] = lambda k=top_k: auto.search(queries, k)
            for name, (faiss_index, use_heap) in faiss_indexes.items():
                searches[name] = functools.partial(
                    _faiss_search, faiss_index, use_heap, query_bytes, top_k
                )
            for function in searches.values():
                function()  # compile, build tables, warm caches
            times, results = _best_times(searches, _REPEATS.value)
            exact_distances, exact_ids = results["linear"]
            print(f"-- {threads} thread(s); {_NUM_QUERY.value} queries")
            for name, seconds in times.items():
                distances, ids = results[name]
                if name == "faiss IndexBinaryMultiHash":
                    # Not exact for k-NN: it only checks codes within nflip bits of a substring.
                    kth = exact_distances[:, -1:]
                    recall = np.mean((distances <= kth) & (ids >= 0))
                    check = f"recall@{top_k} {recall:.3f} (not exact)"
                elif name.startswith("faiss"):
                    check = (
                        f"same distances as linear: {np.array_equal(distances, exact_distances)}"
                    )
                else:
                    same = np.array_equal(distances, exact_distances) and np.array_equal(
                        ids, exact_ids
                    )
                    check = f"same ids and distances as linear: {same}"
                print(
                    f"{name:38s} {seconds:8.3f} s = {_NUM_QUERY.value / seconds:10,.0f} queries/s"
                    f" = {1e3 * seconds / _NUM_QUERY.value:8.3f} ms/query; {check}"
                )
            flat_times = [s for n, s in times.items() if n.startswith("faiss IndexBinaryFlat")]
            print(
                f"ratio multi_index / linear: {times['linear'] / times['multi_index']:.2f}x"
                + (f"; auto / linear: {times['linear'] / times['auto']:.2f}x" if auto else "")
                + (
                    f"; multi_index / faiss IndexBinaryFlat (its faster setting): "
                    f"{min(flat_times) / times['multi_index']:.2f}x; linear / faiss flat: "
                    f"{min(flat_times) / times['linear']:.2f}x"
                    if flat_times
                    else ""
                )
            )

    if num_db > _FULL_RANKING_MAX_DB.value:
        print(f"\nfull ranking skipped: {num_db:,} codes > --full_ranking_max_db")
        return
    _set_threads(thread_counts[-1], faiss)
    num_rank = min(_RANK_QUERIES.value, _NUM_QUERY.value)
    rank_queries = queries[:num_rank]
    times, results = _best_times(
        {
            "ours": lambda: linear.search(rank_queries, len(linear)),
            "numpy": lambda: numpy_full_ranking(np.asarray(rank_queries), np.asarray(linear.words)),
        },
        _REPEATS.value,
    )
    print(
        f"\nfull ranking of {num_rank} queries: HammingIndex {times['ours']:.3f} s, NumPy XOR + "
        f"bitwise_count + stable argsort {times['numpy']:.3f} s; identical ids and distances: "
        f"{all(map(np.array_equal, results['ours'], results['numpy']))}; ratio "
        f"{times['numpy'] / times['ours']:.2f}x"
    )


if __name__ == "__main__":
    app.run(main)
