"""Nuisance structure shared by both versions of the synthetic set: what no label explains.

Image: a cluster centre, a low-rank factor mix and isotropic noise per sample (like photographic
style). Text: words of one random topic (like camera or user tags) and Zipf background words.
docs/DESIGN.md gives the reasons.
"""

from __future__ import annotations

import math

import numpy as np

# Nuisance-topic words take a quarter of the vocabulary.
TOPIC_VOCABULARY_SHARE = 0.25
NUM_TEXT_TOPICS = 8
_NUM_IMAGE_CLUSTERS = 8
_NUM_IMAGE_FACTORS = 8


def unit_rows(rng: np.random.Generator, rows: int, dim: int) -> np.ndarray:
    """`[rows, dim]` random directions, each of norm 1."""
    vectors = rng.standard_normal((rows, dim))
    return vectors / np.linalg.norm(vectors, axis=1, keepdims=True)


def image_nuisance(
    rng: np.random.Generator, num_samples: int, image_dim: int, image_noise: float
) -> np.ndarray:
    """`[n, image_dim]`: a cluster centre, a low-rank factor mix and isotropic noise per sample."""
    centres = 1.5 * unit_rows(rng, _NUM_IMAGE_CLUSTERS, image_dim)
    cluster = rng.integers(_NUM_IMAGE_CLUSTERS, size=num_samples)
    factor_directions = unit_rows(rng, _NUM_IMAGE_FACTORS, image_dim)
    factors = rng.standard_normal((num_samples, _NUM_IMAGE_FACTORS))
    noise = rng.standard_normal((num_samples, image_dim)) * (image_noise / math.sqrt(image_dim))
    return centres[cluster] + factors @ factor_directions + noise


def scatter_words(text: np.ndarray, rows: np.ndarray, words: np.ndarray) -> None:
    """Marks word `words[i]` present in row `rows[i]` of `text` (`[n, d_t]`), in place."""
    text[rows, words] = 1.0


def add_nuisance_words(
    rng: np.random.Generator,
    text: np.ndarray,
    topic_vocabulary: np.ndarray,
    background_words: float,
) -> None:
    """Adds to `text` (`[n, d_t]`) `Poisson(4)` words of one random topic per sample (rows of
    `topic_vocabulary`, `[topics, words]`) and `Poisson(background_words)` background words."""
    num_samples, text_dim = text.shape
    num_topics, per_topic = topic_vocabulary.shape
    topic = rng.integers(num_topics, size=num_samples)
    rows = np.repeat(np.arange(num_samples), rng.poisson(4.0, size=num_samples))
    scatter_words(
        text, rows, topic_vocabulary[topic[rows], rng.integers(per_topic, size=rows.size)]
    )

    # Zipf background over a random order of the whole vocabulary: frequent filler tags, some of
    # them label words, which is what makes a single tag weak evidence.
    background = rng.permutation(1.0 / np.arange(1, text_dim + 1))
    rows = np.repeat(np.arange(num_samples), rng.poisson(background_words, size=num_samples))
    scatter_words(text, rows, rng.choice(text_dim, size=rows.size, p=background / background.sum()))
