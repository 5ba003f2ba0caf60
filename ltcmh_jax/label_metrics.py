"""Per-label retrieval metrics of hash codes: per-label MAP, head/tail MAP, tail-only AP.

Codes, labels, ranking and AP as in `ltcmh_jax.metrics`. Two relevances:
- `per_label_map`, `head_tail_map`: relevance is unchanged (any shared label); the per-query AP is
  averaged over the queries carrying each label.
- `label_ap`, `tail_only_map`: relevance is "carries this label", so a tail query gets no credit for
  items that share only a head label with it.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from ltcmh_jax.ranking import (
    Ranking,
    check_tie_break,
    check_top_k,
    pack_label_words,
    prepare_ranking,
    ranked_relevance,
)


def per_label_mean(per_query: np.ndarray, query_labels: np.ndarray) -> np.ndarray:
    """`[c]` mean of `per_query` `[num_query]` over the queries carrying each label, NaN if none.

    `query_labels` is `[num_query, c]` bool; a query with several labels counts for each.
    """
    counts = query_labels.sum(axis=0)
    sums = per_query @ query_labels.astype(np.float64)
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(counts > 0, sums / np.maximum(counts, 1), np.nan)


def head_mask(head_labels, num_labels: int) -> np.ndarray:
    """`[c]` bool mask of the head from label ids or a `[c]` bool mask; ValueError naming
    `head_labels` otherwise."""
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


def head_tail_means(per_label: np.ndarray, head: np.ndarray) -> tuple[float, float]:
    """`(head, tail)` means of `per_label` `[c]` over the non-NaN labels in and outside `head`."""

    def mean_present(values):
        values = values[~np.isnan(values)]
        return float(values.mean()) if values.size else float("nan")

    return mean_present(per_label[head]), mean_present(per_label[~head])


def per_label_map(
    query_codes, db_codes, query_labels, db_labels, *, top_k=None, tie_break="index"
) -> np.ndarray:
    """MAP over the queries annotated with each label: `[c]` float64, NaN for a label no query has.

    A query with several labels counts towards each of them; relevance is unchanged (any shared
    label), so this is the per-class MAP the MetaCMH and LtCMH head/tail analyses start from.
    """
    top_k = check_top_k(top_k)
    tie_break = check_tie_break(tie_break)
    ranking = prepare_ranking(query_codes, db_codes, query_labels, db_labels)
    per_query = ranked_relevance(ranking, top_k, tie_break)[0]
    return per_label_mean(per_query, ranking.query_labels)


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
    top_k = check_top_k(top_k)
    tie_break = check_tie_break(tie_break)
    ranking = prepare_ranking(query_codes, db_codes, query_labels, db_labels)
    head = head_mask(head_labels, ranking.query_labels.shape[1])
    per_query = ranked_relevance(ranking, top_k, tie_break)[0]
    head_map, tail_map = head_tail_means(per_label_mean(per_query, ranking.query_labels), head)
    return {"head": head_map, "tail": tail_map}


def label_ap_of_ranking(
    ranking: Ranking, label_ids: np.ndarray, top_k: int | None, tie_break: str
) -> np.ndarray:
    """`label_ap` of a prepared ranking for `label_ids` `[m]`: `[m]` float64, NaN if no query."""
    per_label = np.full(label_ids.size, np.nan)
    for position, label in enumerate(label_ids):
        rows = np.flatnonzero(ranking.query_labels[:, label])
        if not rows.size:
            continue
        # One label column on both sides: "shares a label" becomes "carries this label".
        query_column = ranking.query_labels[rows][:, [label]]
        db_column = ranking.db_labels[:, [label]]
        single = Ranking(
            ranking.query_words[rows],
            pack_label_words(query_column),
            ranking.db_words,
            pack_label_words(db_column),
            ranking.bits,
            query_column,
            db_column,
        )
        per_label[position] = ranked_relevance(single, top_k, tie_break)[0].mean()
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
    top_k = check_top_k(top_k)
    tie_break = check_tie_break(tie_break)
    ranking = prepare_ranking(query_codes, db_codes, query_labels, db_labels)
    num_labels = ranking.query_labels.shape[1]
    label_ids = np.arange(num_labels) if labels is None else np.asarray(labels)
    if label_ids.ndim != 1 or (label_ids.size and not np.issubdtype(label_ids.dtype, np.integer)):
        raise ValueError(f"labels: expected a list of label ids (ints), got {labels!r}")
    if label_ids.size and (label_ids.min() < 0 or label_ids.max() >= num_labels):
        raise ValueError(f"labels: ids must be in [0, {num_labels}), got {label_ids.tolist()}")
    return label_ap_of_ranking(ranking, label_ids, top_k, tie_break)


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
