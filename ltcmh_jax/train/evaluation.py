"""Retrieval evaluation of trained codes: query split against database split."""

from __future__ import annotations

import numpy as np

from ltcmh_jax import metrics


def binary_codes(meta: np.ndarray) -> np.ndarray:
    """sign(M) with sign(0) = +1 as int8 `[n, k]` in {-1, +1}, the form codes are stored in."""
    return np.where(np.asarray(meta) >= 0, 1, -1).astype(np.int8)


def retrieval_scores(
    codes: dict[str, np.ndarray], *, head_labels: np.ndarray | None = None
) -> dict[str, float]:
    """MAP of each retrieval direction the codes allow.

    Args:
      codes: "query_<modality>_codes", "db_<modality>_codes" `[n, k]` int8 per modality, and
        "query_labels", "db_labels" `[n, c]`.
      head_labels: label ids of the head; when given, head and tail MAP too.

    Returns:
      Cross-modal: `metrics.evaluate`'s `map_i2t`, `map_t2i` (+ `_head`, `_tail`); image only:
      `map_i2i` (+ `_head`, `_tail`).
    """
    query_labels, db_labels = codes["query_labels"], codes["db_labels"]
    if "db_text_codes" in codes:
        return metrics.evaluate(
            codes["query_image_codes"],
            codes["query_text_codes"],
            codes["db_image_codes"],
            codes["db_text_codes"],
            query_labels,
            db_labels,
            head_labels=head_labels,
        )
    query, database = codes["query_image_codes"], codes["db_image_codes"]
    scores = {"map_i2i": metrics.mean_average_precision(query, database, query_labels, db_labels)}
    if head_labels is not None:
        parts = metrics.head_tail_map(query, database, query_labels, db_labels, head_labels)
        scores.update(map_i2i_head=parts["head"], map_i2i_tail=parts["tail"])
    return scores


def evaluate_codes(
    codes: dict[str, np.ndarray], dataset, split, *, head_labels: np.ndarray | None = None
) -> tuple[dict[str, float], dict[str, np.ndarray]]:
    """`(scores, codes)` of query / database codes of the split: `retrieval_scores`, and the
    codes with the labels and data set rows added (what `codes.npz` holds)."""
    query, database = np.asarray(split.query), np.asarray(split.database)
    query_labels = np.asarray(dataset.labels[query])
    db_labels = np.asarray(dataset.labels[database])
    scores = retrieval_scores(
        {**codes, "query_labels": query_labels, "db_labels": db_labels}, head_labels=head_labels
    )
    codes = dict(
        codes,
        query_labels=query_labels.astype(np.uint8),
        db_labels=db_labels.astype(np.uint8),
        query_indices=query,
        db_indices=database,
    )
    return scores, codes
