"""The Hamming ranking behind every retrieval metric: validated, packed inputs and per-query AP.

`prepare_ranking` checks codes and labels and packs both into uint64 words; `ranked_relevance`
ranks the database for each query with the numba kernels of `ltcmh_jax.hamming` and returns each
query's AP and relevant count within the cut. `ltcmh_jax.metrics` holds the definitions (ties,
AP@top_k, queries with nothing relevant) and the public API built on these.
"""

from __future__ import annotations

from typing import NamedTuple

import numpy as np

from ltcmh_jax import hamming
from ltcmh_jax.index import as_packed_codes, bits_hint

TIE_BREAKS = ("index", "expected")
# Queries per kernel call, and at most this many histogram entries per call: bounds the
# `[chunk, 2 (k + 1)]` int64 histograms of the tie-aware path and PR curves to 32 MiB at any k.
QUERY_CHUNK = 4096
_HISTOGRAM_ENTRIES = 1 << 22


def query_chunk(bits: int, *, most: int = QUERY_CHUNK) -> int:
    """Queries per kernel call at `bits` bits: at most `most`, and within the histogram bound."""
    return max(1, min(most, _HISTOGRAM_ENTRIES // (2 * (bits + 1))))


class Ranking(NamedTuple):
    """Validated inputs of one ranking: codes and labels packed into uint64 words."""

    query_words: np.ndarray
    query_label_words: np.ndarray
    db_words: np.ndarray
    db_label_words: np.ndarray
    bits: int
    query_labels: np.ndarray  # `[num_query, c]` bool, for per-label averages
    db_labels: np.ndarray  # `[num_db, c]` bool, for per-label relevance


def _as_labels(labels, name: str, num_rows: int, codes_name: str) -> np.ndarray:
    labels = np.asarray(labels)
    if labels.ndim != 2:
        raise ValueError(f"{name}: expected multi-hot labels [n, c], got shape {labels.shape}")
    if labels.shape[0] != num_rows:
        raise ValueError(
            f"{name}: has {labels.shape[0]} rows but {codes_name} has {num_rows}; one label row "
            "per code"
        )
    if labels.shape[1] == 0:
        raise ValueError(f"{name}: has no label columns")
    if labels.dtype != np.bool_:
        if not (
            np.issubdtype(labels.dtype, np.integer) or np.issubdtype(labels.dtype, np.floating)
        ):
            raise ValueError(f"{name}: dtype {labels.dtype} is not a multi-hot label array")
        bad = (labels != 0) & (labels != 1)
        if bad.any():
            row, column = np.argwhere(bad)[0]
            value = labels[row, column].item()
            raise ValueError(
                f"{name}: labels must be 0 or 1, found {value!r} at row {row}, column {column}"
            )
    return labels.astype(bool, copy=False)


def pack_label_words(labels: np.ndarray) -> np.ndarray:
    """`[n, c]` bool labels -> `[n, ceil(c / 64)]` uint64 words, label j at bit j % 64."""
    num_rows, num_labels = labels.shape
    as_bytes = np.packbits(labels, axis=1, bitorder="little")
    padded = np.zeros((num_rows, 8 * ((num_labels + 63) // 64)), np.uint8)
    padded[:, : as_bytes.shape[1]] = as_bytes
    return np.ascontiguousarray(padded.view("<u8").astype(np.uint64, copy=False))


def prepare_ranking(
    query_codes,
    db_codes,
    query_labels,
    db_labels,
    *,
    query_name: str = "query_codes",
    db_name: str = "db_codes",
) -> Ranking:
    """Checks codes `[num_query, k]`, `[num_db, k]` and labels `[num_query, c]`, `[num_db, c]`.

    Raises:
      ValueError: naming the argument (`query_name` / `db_name` for the codes), for codes or labels
        outside their documented form, k or c that differ between query and database, no queries
        or an empty database.
    """
    query_words, query_bits = as_packed_codes(query_codes, name=query_name)
    db_words, db_bits = as_packed_codes(db_codes, name=db_name)
    if query_bits != db_bits:
        raise ValueError(
            f"{query_name} have k={query_bits} bits but {db_name} have k={db_bits}"
            + (bits_hint(query_codes) or bits_hint(db_codes))
        )
    if query_words.shape[0] == 0:
        raise ValueError(f"{query_name}: no queries")
    if db_words.shape[0] == 0:
        raise ValueError(f"{db_name}: the database is empty")
    query_labels = _as_labels(query_labels, "query_labels", query_words.shape[0], query_name)
    db_labels = _as_labels(db_labels, "db_labels", db_words.shape[0], db_name)
    if query_labels.shape[1] != db_labels.shape[1]:
        raise ValueError(
            f"query_labels have c={query_labels.shape[1]} labels but db_labels have "
            f"c={db_labels.shape[1]}"
        )
    return Ranking(
        query_words,
        pack_label_words(query_labels),
        db_words,
        pack_label_words(db_labels),
        query_bits,
        query_labels,
        db_labels,
    )


def check_top_k(top_k, *, required: bool = False) -> int | None:
    """`top_k` as an int (None passes unless `required`); ValueError naming `top_k` otherwise."""
    if top_k is None and not required:
        return None
    if isinstance(top_k, bool) or not isinstance(top_k, int | np.integer) or top_k < 1:
        raise ValueError(f"top_k: expected a positive integer, got {top_k!r}")
    return int(top_k)


def check_tie_break(tie_break) -> str:
    """`tie_break` if it is one of `TIE_BREAKS`; ValueError naming `tie_break` otherwise."""
    if tie_break not in TIE_BREAKS:
        raise ValueError(f"tie_break: expected one of {TIE_BREAKS}, got {tie_break!r}")
    return tie_break


def ranked_relevance(
    ranking: Ranking, top_k: int | None, tie_break: str, *, most_queries: int = QUERY_CHUNK
):
    """`(average_precision [num_query], relevant_in_top_k [num_query] float)`, query chunks.

    `most_queries` caps the queries per kernel call (see `query_chunk`); the result does not
    depend on it.
    """
    num_query = ranking.query_words.shape[0]
    num_db = ranking.db_words.shape[0]
    limit = num_db if top_k is None else min(top_k, num_db)
    average_precision = np.empty(num_query, np.float64)
    relevant_in_top_k = np.empty(num_query, np.float64)
    chunk_size = query_chunk(ranking.bits, most=most_queries)
    for start in range(0, num_query, chunk_size):
        chunk = slice(start, start + chunk_size)
        if tie_break == "index":
            chunk_ap, chunk_found = hamming.index_order_average_precision(
                ranking.query_words[chunk],
                ranking.query_label_words[chunk],
                ranking.db_words,
                ranking.db_label_words,
                ranking.bits,
                limit,
            )
        else:
            histograms = hamming.rank_code_histograms(
                ranking.query_words[chunk],
                ranking.query_label_words[chunk],
                ranking.db_words,
                ranking.db_label_words,
                ranking.bits,
            )
            chunk_ap, chunk_found = hamming.expected_average_precision(histograms, limit)
        average_precision[chunk] = chunk_ap
        relevant_in_top_k[chunk] = chunk_found
    return average_precision, relevant_in_top_k
