"""Exact retrieval metrics of hash codes: MAP (tie-aware), precision@k, PR by radius, head/tail.

Ranking: the database is ranked by Hamming distance to each query. An item is relevant to a query
when they share at least one label. Codes are {-1, +1} arrays `[n, k]` or packed uint64 words (see
`ltcmh_jax.index`); labels are multi-hot `[n, c]` in {0, 1}.

Ties (k-bit codes have only k + 1 distances, so ties are the rule, not the exception):
- `tie_break="index"`: equal distances keep database order, what a stable sort gives.
- `tie_break="expected"`: the expectation over a uniformly random order inside each tie bucket, in
  closed form, so the figure does not depend on how the database happens to be ordered.

AP of one query (`top_k=None`, MAP@all): the mean of precision@rank over its relevant items. With
`top_k`: the same mean over the relevant items ranked within the first `top_k` (normalised by how
many are found there, not by all relevant items). A query with no relevant item (or none in the top
`top_k`) has AP 0 and still counts in the mean, as in DCMH. See docs/DESIGN.md, "Evaluation", for
how this differs from the DCMH ports' `calc_map` / `calc_map_k`.

Everything runs on the host in NumPy + numba (`ltcmh_jax.hamming`): a counting design, parallel over
queries, memory `O(num_query + threads * num_db)`.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import NamedTuple

import numpy as np

from ltcmh_jax import hamming
from ltcmh_jax.index import as_packed_codes, bits_hint

TIE_BREAKS = ("index", "expected")
# Queries per kernel call, and at most this many histogram entries per call: bounds the
# `[chunk, 2 (k + 1)]` int64 histograms of the tie-aware path and PR curves to 32 MiB at any k.
_QUERY_CHUNK = 4096
_HISTOGRAM_ENTRIES = 1 << 22


def _query_chunk(bits: int) -> int:
    return max(1, min(_QUERY_CHUNK, _HISTOGRAM_ENTRIES // (2 * (bits + 1))))


class PRCurve(NamedTuple):
    """Precision and recall when every item within Hamming radius r is retrieved, r = 0..k.

    `precision[r]` is the mean over the queries that retrieve at least one item at radius r (NaN
    when none does); `recall[r]` the mean over the queries with at least one relevant item.
    """

    radius: np.ndarray
    precision: np.ndarray
    recall: np.ndarray


class _Ranking(NamedTuple):
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


def _pack_label_words(labels: np.ndarray) -> np.ndarray:
    num_rows, num_labels = labels.shape
    as_bytes = np.packbits(labels, axis=1, bitorder="little")
    padded = np.zeros((num_rows, 8 * ((num_labels + 63) // 64)), np.uint8)
    padded[:, : as_bytes.shape[1]] = as_bytes
    return np.ascontiguousarray(padded.view("<u8").astype(np.uint64, copy=False))


def _prepare(
    query_codes,
    db_codes,
    query_labels,
    db_labels,
    *,
    query_name: str = "query_codes",
    db_name: str = "db_codes",
) -> _Ranking:
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
    return _Ranking(
        query_words,
        _pack_label_words(query_labels),
        db_words,
        _pack_label_words(db_labels),
        query_bits,
        query_labels,
        db_labels,
    )


def _check_top_k(top_k, *, required: bool = False) -> int | None:
    if top_k is None and not required:
        return None
    if isinstance(top_k, bool) or not isinstance(top_k, int | np.integer) or top_k < 1:
        raise ValueError(f"top_k: expected a positive integer, got {top_k!r}")
    return int(top_k)


def _check_tie_break(tie_break) -> str:
    if tie_break not in TIE_BREAKS:
        raise ValueError(f"tie_break: expected one of {TIE_BREAKS}, got {tie_break!r}")
    return tie_break


def _ranked_relevance(ranking: _Ranking, top_k: int | None, tie_break: str):
    """`(average_precision [num_query], relevant_in_top_k [num_query] float)`, query chunks."""
    num_query = ranking.query_words.shape[0]
    num_db = ranking.db_words.shape[0]
    limit = num_db if top_k is None else min(top_k, num_db)
    average_precision = np.empty(num_query, np.float64)
    relevant_in_top_k = np.empty(num_query, np.float64)
    chunk_size = _query_chunk(ranking.bits)
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


def average_precision(
    query_codes, db_codes, query_labels, db_labels, *, top_k=None, tie_break="index"
) -> np.ndarray:
    """AP of each query, `[num_query]` float64 (see the module docstring for the definition).

    Args:
      query_codes: `[num_query, k]` {-1, +1} or packed codes.
      db_codes: `[num_db, k]` {-1, +1} or packed codes.
      query_labels: `[num_query, c]` multi-hot.
      db_labels: `[num_db, c]` multi-hot.
      top_k: None for AP over the whole ranking; else AP@top_k (above num_db: the whole ranking).
      tie_break: "index" or "expected".

    Raises:
      ValueError: naming the argument, for codes or labels outside their documented form, k or c
        that differ between query and database, no queries, an empty database, a bad top_k or
        tie_break.
    """
    top_k = _check_top_k(top_k)
    tie_break = _check_tie_break(tie_break)
    ranking = _prepare(query_codes, db_codes, query_labels, db_labels)
    return _ranked_relevance(ranking, top_k, tie_break)[0]


def mean_average_precision(
    query_codes, db_codes, query_labels, db_labels, *, top_k=None, tie_break="index"
) -> float:
    """MAP = mean over queries of `average_precision` (queries with no relevant item count as 0).

    `top_k=None` is MAP@all. Arguments and errors as in `average_precision`.
    """
    return float(
        average_precision(
            query_codes, db_codes, query_labels, db_labels, top_k=top_k, tie_break=tie_break
        ).mean()
    )


def precision_at_k(
    query_codes, db_codes, query_labels, db_labels, *, top_k, tie_break="index"
) -> float:
    """Mean over queries of (relevant items among the first `top_k` ranked) / min(top_k, num_db).

    With `tie_break="expected"` the count at a cut inside a tie bucket is its expectation,
    relevant_before + positions * bucket_relevant / bucket_size.
    """
    top_k = _check_top_k(top_k, required=True)
    tie_break = _check_tie_break(tie_break)
    ranking = _prepare(query_codes, db_codes, query_labels, db_labels)
    relevant_in_top_k = _ranked_relevance(ranking, top_k, tie_break)[1]
    return float(relevant_in_top_k.mean() / min(top_k, ranking.db_words.shape[0]))


def pr_curve_by_radius(query_codes, db_codes, query_labels, db_labels) -> PRCurve:
    """Precision and recall at each Hamming radius 0..k (retrieve every item within the radius).

    Returns:
      `PRCurve(radius [k + 1], precision [k + 1], recall [k + 1])`, each a mean over queries as
      described in `PRCurve`. Ties do not matter here: a radius retrieves whole buckets.
    """
    ranking = _prepare(query_codes, db_codes, query_labels, db_labels)
    num_query = ranking.query_words.shape[0]
    num_radii = ranking.bits + 1
    precision_sum = np.zeros(num_radii)
    precision_count = np.zeros(num_radii)
    recall_sum = np.zeros(num_radii)
    recall_count = 0
    chunk_size = _query_chunk(ranking.bits)
    for start in range(0, num_query, chunk_size):
        chunk = slice(start, start + chunk_size)
        histograms = hamming.rank_code_histograms(
            ranking.query_words[chunk],
            ranking.query_label_words[chunk],
            ranking.db_words,
            ranking.db_label_words,
            ranking.bits,
        )
        relevant = histograms[:, 1::2]
        retrieved = np.cumsum(histograms[:, 0::2] + relevant, axis=1)
        relevant_retrieved = np.cumsum(relevant, axis=1)
        has_retrieved = retrieved > 0
        precision_sum += np.where(
            has_retrieved, relevant_retrieved / np.maximum(retrieved, 1), 0.0
        ).sum(axis=0)
        precision_count += has_retrieved.sum(axis=0)
        total_relevant = relevant_retrieved[:, -1:]
        has_relevant = total_relevant[:, 0] > 0
        recall_sum += (relevant_retrieved[has_relevant] / total_relevant[has_relevant]).sum(axis=0)
        recall_count += int(has_relevant.sum())
    with np.errstate(invalid="ignore", divide="ignore"):
        precision = precision_sum / precision_count
        recall = recall_sum / recall_count if recall_count else np.full(num_radii, np.nan)
    return PRCurve(np.arange(num_radii), precision, recall)


def _per_label_mean(per_query: np.ndarray, query_labels: np.ndarray) -> np.ndarray:
    counts = query_labels.sum(axis=0)
    sums = per_query @ query_labels.astype(np.float64)
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(counts > 0, sums / np.maximum(counts, 1), np.nan)


def per_label_map(
    query_codes, db_codes, query_labels, db_labels, *, top_k=None, tie_break="index"
) -> np.ndarray:
    """MAP over the queries annotated with each label: `[c]` float64, NaN for a label no query has.

    A query with several labels counts towards each of them; relevance is unchanged (any shared
    label), so this is the per-class MAP the MetaCMH and LtCMH head/tail analyses start from.
    """
    top_k = _check_top_k(top_k)
    tie_break = _check_tie_break(tie_break)
    ranking = _prepare(query_codes, db_codes, query_labels, db_labels)
    per_query = _ranked_relevance(ranking, top_k, tie_break)[0]
    return _per_label_mean(per_query, ranking.query_labels)


def _head_mask(head_labels, num_labels: int) -> np.ndarray:
    head = np.asarray(head_labels)
    if head.dtype == np.bool_:
        if head.shape != (num_labels,):
            raise ValueError(
                f"head_labels: a boolean mask needs shape ({num_labels},), got {head.shape}"
            )
        return head
    if head.ndim != 1 or (head.size and not np.issubdtype(head.dtype, np.integer)):
        raise ValueError(f"head_labels: expected label ids (ints) or a [c] bool mask, got {head!r}")
    if head.size and (head.min() < 0 or head.max() >= num_labels):
        raise ValueError(
            f"head_labels: label ids must be in [0, {num_labels}), got {head.tolist()}"
        )
    mask = np.zeros(num_labels, bool)
    mask[head.astype(np.int64)] = True
    return mask


def _head_tail_from_per_label(per_label: np.ndarray, head: np.ndarray) -> tuple[float, float]:
    def mean_present(values):
        values = values[~np.isnan(values)]
        return float(values.mean()) if values.size else float("nan")

    return mean_present(per_label[head]), mean_present(per_label[~head])


def head_tail_map(
    query_codes,
    db_codes,
    query_labels,
    db_labels,
    head_labels: Sequence[int] | np.ndarray,
    *,
    top_k=None,
    tie_break="index",
) -> dict[str, float]:
    """Head and tail MAP (the paper's Figure 2): per-label MAP averaged over head and tail labels.

    Args:
      head_labels: label ids of the head (e.g. `split.label_order[:14]` on Flickr25K, `[:15]` on
        NUS-WIDE), or a `[c]` bool mask. Every other label is tail.

    Returns:
      `{"head": float, "tail": float}`: the mean of `per_label_map` over the head (tail) labels that
      have at least one query; NaN when there is none. Averaging per label rather than per query
      keeps the many head queries from drowning the tail, and a multi-label query counts for each
      of its labels.
    """
    top_k = _check_top_k(top_k)
    tie_break = _check_tie_break(tie_break)
    ranking = _prepare(query_codes, db_codes, query_labels, db_labels)
    head = _head_mask(head_labels, ranking.query_labels.shape[1])
    per_query = _ranked_relevance(ranking, top_k, tie_break)[0]
    head_map, tail_map = _head_tail_from_per_label(
        _per_label_mean(per_query, ranking.query_labels), head
    )
    return {"head": head_map, "tail": tail_map}


def _label_ap_of_ranking(
    ranking: _Ranking, label_ids: np.ndarray, top_k: int | None, tie_break: str
) -> np.ndarray:
    per_label = np.full(label_ids.size, np.nan)
    for position, label in enumerate(label_ids):
        rows = np.flatnonzero(ranking.query_labels[:, label])
        if not rows.size:
            continue
        # One label column on both sides: "shares a label" becomes "carries this label".
        query_column = ranking.query_labels[rows][:, [label]]
        db_column = ranking.db_labels[:, [label]]
        single = _Ranking(
            ranking.query_words[rows],
            _pack_label_words(query_column),
            ranking.db_words,
            _pack_label_words(db_column),
            ranking.bits,
            query_column,
            db_column,
        )
        per_label[position] = _ranked_relevance(single, top_k, tie_break)[0].mean()
    return per_label


def label_ap(
    query_codes, db_codes, query_labels, db_labels, *, labels=None, top_k=None, tie_break="index"
) -> np.ndarray:
    """Per-label MAP with relevance "carries this label" (tail-only AP, not any shared label).

    `label_ap[b] = mean over queries q carrying b of AP(q)`, where a database item is relevant to
    q when it carries b. Unlike `per_label_map`, a tail query gets no credit for retrieving items
    that share only a head label with it.

    Args:
      labels: label ids to score (`[m]` ints); None: all `c`.
      Others as in `average_precision`.

    Returns:
      `[m]` float64, NaN for a label no query carries.
    """
    top_k = _check_top_k(top_k)
    tie_break = _check_tie_break(tie_break)
    ranking = _prepare(query_codes, db_codes, query_labels, db_labels)
    num_labels = ranking.query_labels.shape[1]
    label_ids = np.arange(num_labels) if labels is None else np.asarray(labels)
    if label_ids.ndim != 1 or (label_ids.size and not np.issubdtype(label_ids.dtype, np.integer)):
        raise ValueError(f"labels: expected a list of label ids (ints), got {labels!r}")
    if label_ids.size and (label_ids.min() < 0 or label_ids.max() >= num_labels):
        raise ValueError(f"labels: ids must be in [0, {num_labels}), got {label_ids.tolist()}")
    return _label_ap_of_ranking(ranking, label_ids, top_k, tie_break)


def tail_only_map(
    query_codes,
    db_codes,
    query_labels,
    db_labels,
    tail_labels: Sequence[int] | np.ndarray,
    *,
    top_k=None,
    tie_break="index",
) -> float:
    """Mean of `label_ap` over `tail_labels` that some query carries; NaN when none does."""
    per_label = label_ap(
        query_codes,
        db_codes,
        query_labels,
        db_labels,
        labels=tail_labels,
        top_k=top_k,
        tie_break=tie_break,
    )
    present = per_label[~np.isnan(per_label)]
    return float(present.mean()) if present.size else float("nan")


def evaluate(
    query_image_codes,
    query_text_codes,
    db_image_codes,
    db_text_codes,
    query_labels,
    db_labels,
    *,
    head_labels=None,
    top_k=None,
    tie_break="index",
) -> dict[str, float]:
    """Cross-modal MAP in both directions, as the training job and the experiment tables report it.

    I->T ranks the text database codes for each image query; T->I the image database codes for each
    text query.

    Returns:
      `{"map_i2t", "map_t2i"}`, plus `map_i2t_head`, `map_i2t_tail`, `map_t2i_head`, `map_t2i_tail`
      (see `head_tail_map`) and `map_i2t_tail_only`, `map_t2i_tail_only` (`tail_only_map` of the
      labels outside the head) when `head_labels` is given.
    """
    top_k = _check_top_k(top_k)
    tie_break = _check_tie_break(tie_break)
    results = {}
    directions = (
        ("i2t", query_image_codes, db_text_codes, "query_image_codes", "db_text_codes"),
        ("t2i", query_text_codes, db_image_codes, "query_text_codes", "db_image_codes"),
    )
    for direction, query_codes, db_codes, query_name, db_name in directions:
        ranking = _prepare(
            query_codes,
            db_codes,
            query_labels,
            db_labels,
            query_name=query_name,
            db_name=db_name,
        )
        per_query = _ranked_relevance(ranking, top_k, tie_break)[0]
        results[f"map_{direction}"] = float(per_query.mean())
        if head_labels is not None:
            head = _head_mask(head_labels, ranking.query_labels.shape[1])
            head_map, tail_map = _head_tail_from_per_label(
                _per_label_mean(per_query, ranking.query_labels), head
            )
            results[f"map_{direction}_head"] = head_map
            results[f"map_{direction}_tail"] = tail_map
            tail_only = _label_ap_of_ranking(ranking, np.flatnonzero(~head), top_k, tie_break)
            tail_only = tail_only[~np.isnan(tail_only)]
            results[f"map_{direction}_tail_only"] = (
                float(tail_only.mean()) if tail_only.size else float("nan")
            )
    return results


def chance_map(query_labels: np.ndarray, db_labels: np.ndarray, *, chunk: int = 512) -> float:
    """MAP of a random ranking: each query's AP is then (in expectation) its share of relevant
    database items, so the chance level is the mean of those shares.

    `query_labels` `[q, c]`, `db_labels` `[n, c]` multi-hot; relevant means one shared label.
    """
    db = np.asarray(db_labels, np.float32)
    shares = []
    for start in range(0, query_labels.shape[0], chunk):
        block = np.asarray(query_labels[start : start + chunk], np.float32)
        shares.append(((block @ db.T) > 0).mean(axis=1))
    return float(np.concatenate(shares).mean())
