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

Layout: the validated, packed ranking in `ltcmh_jax.ranking`; per-label, head/tail and tail-only
MAP in `ltcmh_jax.label_metrics`; PR curves in `ltcmh_jax.curves`; all re-exported here.
"""

from __future__ import annotations

import numpy as np

from ltcmh_jax.curves import PRCurve as PRCurve
from ltcmh_jax.curves import pr_curve_by_radius as pr_curve_by_radius
from ltcmh_jax.label_metrics import head_mask, head_tail_means, label_ap_of_ranking, per_label_mean
from ltcmh_jax.label_metrics import head_tail_map as head_tail_map
from ltcmh_jax.label_metrics import label_ap as label_ap
from ltcmh_jax.label_metrics import per_label_map as per_label_map
from ltcmh_jax.label_metrics import tail_only_map as tail_only_map
from ltcmh_jax.ranking import (
    QUERY_CHUNK,
    check_tie_break,
    check_top_k,
    prepare_ranking,
    ranked_relevance,
)
from ltcmh_jax.ranking import TIE_BREAKS as TIE_BREAKS

__all__ = [
    "PRCurve",
    "TIE_BREAKS",
    "average_precision",
    "chance_map",
    "direction_maps",
    "evaluate",
    "head_tail_map",
    "label_ap",
    "mean_average_precision",
    "per_label_map",
    "pr_curve_by_radius",
    "precision_at_k",
    "score_map",
    "tail_only_map",
]

# Queries per kernel call for the functions below; a module global so that a test can shrink it
# and cross the chunk seams on a small problem.
_QUERY_CHUNK = QUERY_CHUNK


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
    top_k = check_top_k(top_k)
    tie_break = check_tie_break(tie_break)
    ranking = prepare_ranking(query_codes, db_codes, query_labels, db_labels)
    return ranked_relevance(ranking, top_k, tie_break, most_queries=_QUERY_CHUNK)[0]


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
    top_k = check_top_k(top_k, required=True)
    tie_break = check_tie_break(tie_break)
    ranking = prepare_ranking(query_codes, db_codes, query_labels, db_labels)
    relevant_in_top_k = ranked_relevance(ranking, top_k, tie_break, most_queries=_QUERY_CHUNK)[1]
    return float(relevant_in_top_k.mean() / min(top_k, ranking.db_words.shape[0]))


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
    top_k = check_top_k(top_k)
    tie_break = check_tie_break(tie_break)
    results = {}
    directions = (
        ("i2t", query_image_codes, db_text_codes, "query_image_codes", "db_text_codes"),
        ("t2i", query_text_codes, db_image_codes, "query_text_codes", "db_image_codes"),
    )
    for direction, query_codes, db_codes, query_name, db_name in directions:
        ranking = prepare_ranking(
            query_codes,
            db_codes,
            query_labels,
            db_labels,
            query_name=query_name,
            db_name=db_name,
        )
        per_query = ranked_relevance(ranking, top_k, tie_break, most_queries=_QUERY_CHUNK)[0]
        results[f"map_{direction}"] = float(per_query.mean())
        if head_labels is not None:
            head = head_mask(head_labels, ranking.query_labels.shape[1])
            head_map, tail_map = head_tail_means(
                per_label_mean(per_query, ranking.query_labels), head
            )
            results[f"map_{direction}_head"] = head_map
            results[f"map_{direction}_tail"] = tail_map
            tail_only = label_ap_of_ranking(ranking, np.flatnonzero(~head), top_k, tie_break)
            tail_only = tail_only[~np.isnan(tail_only)]
            results[f"map_{direction}_tail_only"] = (
                float(tail_only.mean()) if tail_only.size else float("nan")
            )
    return results


def direction_maps(
    query_codes: dict, db_codes: dict, query_labels, db_labels, *, tie_break="index"
) -> dict[str, float]:
    """MAP@all in every direction between the modalities, within one included.

    Args:
      query_codes, db_codes: `{"image": [q, k], "text": [q, k]}` and the same for the database
        (`[n, k]`), or the image entry alone.
      query_labels, db_labels: `[q, c]`, `[n, c]` multi-hot.

    Returns:
      `{"i2i", "i2t", "t2i", "t2t"}` (first letters of the query and database modalities), in the
      order of `query_codes`' keys, then `db_codes`'.
    """
    return {
        f"{query[0]}2{target[0]}": mean_average_precision(
            query_codes[query], db_codes[target], query_labels, db_labels, tie_break=tie_break
        )
        for query in query_codes
        for target in db_codes
    }


def score_map(scores, query_labels, db_labels) -> float:
    """MAP@all of a real-valued ranking: each query's database ranked by `scores`, highest first.

    For rankings that are not Hamming distances between codes (a probe's probability that two
    items share a label, an asymmetric or real-valued score), measured like
    `mean_average_precision`: equal scores keep database order (`tie_break="index"`), and a query
    with no relevant item has AP 0 and still counts. Memory is a few `[q, n]` arrays: for a large
    database, call it on chunks of queries and weight each result by its chunk's size.

    Args:
      scores: `[q, n]` finite floats, one row per query.
      query_labels, db_labels: `[q, c]`, `[n, c]` multi-hot.

    Raises:
      ValueError: naming `scores` when its shape does not match the labels or it is not finite.
    """
    scores = np.asarray(scores, np.float64)
    query_labels, db_labels = np.asarray(query_labels), np.asarray(db_labels)
    expected = (query_labels.shape[0], db_labels.shape[0])
    if scores.shape != expected:
        raise ValueError(
            f"scores: expected shape {expected} (queries, database), got {scores.shape}"
        )
    if not np.isfinite(scores).all():
        raise ValueError("scores: every entry must be finite")
    relevant = (query_labels.astype(np.float32) @ db_labels.astype(np.float32).T) > 0
    # A stable sort of -scores: the highest first, ties in database order.
    order = np.argsort(-scores, axis=1, kind="stable")
    ranked = np.take_along_axis(relevant, order, axis=1)
    hits = np.cumsum(ranked, axis=1)
    precision = hits / np.arange(1, scores.shape[1] + 1)
    found = ranked.sum(axis=1)
    ap = np.where(found > 0, (precision * ranked).sum(axis=1) / np.maximum(found, 1), 0.0)
    return float(ap.mean())


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
