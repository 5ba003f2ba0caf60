"""Precision-recall curves of hash codes by Hamming radius: retrieve every item within r, r = 0..k.

Codes, labels and relevance (one shared label) as in `ltcmh_jax.metrics`.
"""

from __future__ import annotations

from typing import NamedTuple

import numpy as np

from ltcmh_jax import hamming
from ltcmh_jax.ranking import prepare_ranking, query_chunk


class PRCurve(NamedTuple):
    """Precision and recall when every item within Hamming radius r is retrieved, r = 0..k.

    `precision[r]` is the mean over the queries that retrieve at least one item at radius r (NaN
    when none does); `recall[r]` the mean over the queries with at least one relevant item.
    """

    radius: np.ndarray
    precision: np.ndarray
    recall: np.ndarray


def pr_curve_by_radius(query_codes, db_codes, query_labels, db_labels) -> PRCurve:
    """Precision and recall at each Hamming radius 0..k (retrieve every item within the radius).

    Returns:
      `PRCurve(radius [k + 1], precision [k + 1], recall [k + 1])`, each a mean over queries as
      described in `PRCurve`. Ties do not matter here: a radius retrieves whole buckets.
    """
    ranking = prepare_ranking(query_codes, db_codes, query_labels, db_labels)
    num_query = ranking.query_words.shape[0]
    num_radii = ranking.bits + 1
    precision_sum = np.zeros(num_radii)
    precision_count = np.zeros(num_radii)
    recall_sum = np.zeros(num_radii)
    recall_count = 0
    chunk_size = query_chunk(ranking.bits)
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
