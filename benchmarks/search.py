"""Search speed: `HammingIndex` top-1000 against faiss `IndexBinaryFlat`, and a full ranking against
NumPy XOR + popcount + stable argsort; same codes, same run.

Run from the repository root:
  python -m benchmarks.search
faiss-cpu is optional (`pip install faiss-cpu`); without it that comparison is skipped and said so.
Both libraries use every core they see; the thread counts are printed. Timings are the fastest
of `--repeats` interleaved rounds.
"""

import logging
import time

import numba
import numpy as np
from absl import app, flags

from ltcmh_jax.index import HammingIndex, pack_codes

_NUM_QUERY = flags.DEFINE_integer("num_query", 2000, "Queries for the top-k search.")
_NUM_DB = flags.DEFINE_integer("num_db", 195_834, "Database items (NUS-WIDE size).")
_BITS = flags.DEFINE_integer("bits", 64, "Code length k.")
_TOP_K = flags.DEFINE_integer("top_k", 1000, "Neighbours per query.")
_RANK_QUERIES = flags.DEFINE_integer(
    "rank_queries", 64, "Queries for the full ranking (its output is [queries, num_db])."
)
_REPEATS = flags.DEFINE_integer(
    "repeats", 5, "Interleaved timed rounds; the fastest of each is reported."
)
_SEED = flags.DEFINE_integer("seed", 0, "Seed of the synthetic codes.")


def synthetic_codes(num_db, bits, seed, num_labels=21):
    """{-1, +1} codes `[num_db, k]` from label-correlated projections, so distances cluster and tie
    as a trained model's do (the same recipe as benchmarks/metrics.py)."""
    rng = np.random.default_rng(seed)
    label_rates = 0.4 * np.arange(1, num_labels + 1) ** -1.0
    labels = (rng.random((num_db, num_labels)) < label_rates).astype(np.int8)
    projection = rng.standard_normal((num_labels, bits))
    noise = 1.5 * rng.standard_normal((num_db, bits))
    return np.where(labels @ projection + noise > 0, 1, -1).astype(np.int8)


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


def main(argv):
    del argv
    codes = synthetic_codes(_NUM_DB.value, _BITS.value, _SEED.value)
    rng = np.random.default_rng(_SEED.value + 1)
    queries = codes[rng.choice(_NUM_DB.value, _NUM_QUERY.value, replace=False)]
    index = HammingIndex(codes)
    packed_queries = pack_codes(queries)
    top_k = _TOP_K.value
    print(
        f"{_NUM_QUERY.value} queries x {_NUM_DB.value} codes, k={_BITS.value} bits, "
        f"top-{top_k}; numba threads: {numba.get_num_threads()}"
    )
    start = time.perf_counter()
    index.search(packed_queries[:2], top_k)
    print(
        f"numba first call (compile or cache load, excluded below): "
        f"{time.perf_counter() - start:.2f} s"
    )

    searches = {"ours": lambda: index.search(packed_queries, top_k)}
    # faiss' loader logs each SIMD variant it tries through the root logger.
    logging.getLogger("faiss.loader").setLevel(logging.WARNING)
    try:
        import faiss  # optional, benchmark-only
    except ImportError:
        faiss = None
        print("faiss-cpu not installed: IndexBinaryFlat comparison skipped (pip install faiss-cpu)")
    else:
        print(
            f"faiss {faiss.__version__} ({faiss.get_compile_options().strip()}), omp threads "
            f"{faiss.omp_get_max_threads()}"
        )
        faiss_queries = np.packbits(queries > 0, axis=1)
        # use_heap=True (the default) keeps a heap per query; False counts per distance, as we do.
        for use_heap in (True, False):
            faiss_index = faiss.IndexBinaryFlat(_BITS.value)
            faiss_index.add(np.packbits(codes > 0, axis=1))
            faiss_index.use_heap = use_heap
            faiss_index.search(faiss_queries[:2], top_k)
            searches[f"faiss use_heap={use_heap}"] = lambda faiss_index=faiss_index: (
                faiss_index.search(faiss_queries, top_k)
            )
    times, results = _best_times(searches, _REPEATS.value)
    ours_distances = results["ours"][0]
    print(
        f"HammingIndex.search top-{top_k}: {times['ours']:.3f} s = "
        f"{_NUM_QUERY.value / times['ours']:,.0f} queries/s"
    )
    if faiss is not None:
        for name in searches:
            if name == "ours":
                continue
            same = np.array_equal(results[name][0], ours_distances)
            print(
                f"faiss IndexBinaryFlat top-{top_k}, {name.removeprefix('faiss ')}: "
                f"{times[name]:.3f} s = {_NUM_QUERY.value / times[name]:,.0f} queries/s; "
                f"same distances as ours: {same}"
            )
        fastest_faiss = min(seconds for name, seconds in times.items() if name != "ours")
        print(
            f"throughput ratio ours / faiss (its faster setting): "
            f"{fastest_faiss / times['ours']:.2f}x (target >= 1)"
        )

    num_rank = min(_RANK_QUERIES.value, _NUM_QUERY.value)
    rank_queries = packed_queries[:num_rank]
    times, results = _best_times(
        {
            "ours": lambda: index.search(rank_queries, len(index)),
            "numpy": lambda: numpy_full_ranking(np.asarray(rank_queries), np.asarray(index.words)),
        },
        _REPEATS.value,
    )
    full_time, numpy_time = times["ours"], times["numpy"]
    full_ranking, numpy_ranking = results["ours"], results["numpy"]
    print(
        f"full ranking of {num_rank} queries: HammingIndex {full_time:.3f} s, NumPy XOR + "
        f"bitwise_count + stable argsort {numpy_time:.3f} s; identical ids and distances: "
        f"{all(map(np.array_equal, full_ranking, numpy_ranking))}"
    )
    print(f"full ranking ratio ours / NumPy: {numpy_time / full_time:.2f}x (target >= 1)")


if __name__ == "__main__":
    app.run(main)
