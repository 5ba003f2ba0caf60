"""Tests of ltcmh_jax/train/evaluation.py: int8 codes and the MAP of each retrieval direction."""

import numpy as np

from ltcmh_jax import metrics
from ltcmh_jax.train.evaluation import binary_codes, retrieval_scores


def test_binary_codes_map_zero_to_plus_one():
    codes = binary_codes(np.array([[-2.0, -0.0, 0.0, 3.0]], np.float32))
    assert codes.dtype == np.int8
    np.testing.assert_array_equal(codes, [[-1, 1, 1, 1]])


def test_scores_follow_the_modalities_of_the_codes():
    rng = np.random.default_rng(0)
    codes = {
        name: np.where(rng.random((n, 8)) < 0.5, -1, 1).astype(np.int8)
        for name, n in (
            ("query_image_codes", 6),
            ("query_text_codes", 6),
            ("db_image_codes", 30),
            ("db_text_codes", 30),
        )
    }
    labels = {"query_labels": rng.random((6, 4)) < 0.5, "db_labels": rng.random((30, 4)) < 0.5}
    labels["query_labels"][:, 0] = labels["db_labels"][:, 0] = True
    both = retrieval_scores({**codes, **labels}, head_labels=np.array([0, 1]))
    expected = metrics.evaluate(
        *(codes[key] for key in ("query_image_codes", "query_text_codes")),
        *(codes[key] for key in ("db_image_codes", "db_text_codes")),
        labels["query_labels"],
        labels["db_labels"],
        head_labels=np.array([0, 1]),
    )
    assert both == expected
    image_only = {key: value for key, value in codes.items() if "image" in key}
    scores = retrieval_scores({**image_only, **labels})
    assert scores == {
        "map_i2i": metrics.mean_average_precision(
            codes["query_image_codes"],
            codes["db_image_codes"],
            labels["query_labels"],
            labels["db_labels"],
        )
    }
