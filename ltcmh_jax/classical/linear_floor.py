"""The linear floor: ridge regression of each view onto the labels, one shared random projection.

The floor a learned hash has to beat by a margin to have learned anything a linear map on the same
training split cannot: about twenty lines, no iterations, no tuning beyond one ridge.
"""

from __future__ import annotations

import numpy as np
import scipy.linalg

from ltcmh_jax.classical import moments
from ltcmh_jax.classical.hashing import LinearHashing, linear_hashing


def ridge_to_labels(features, mean, labels, *, ridge: float) -> np.ndarray:
    """`W = (Sigma_xx + r I)^{-1} Sigma_xl`, `[d, c]`: ridge regression of centred labels on
    centred features, `r = ridge * tr(Sigma_xx) / d` (relative, like the other floors)."""
    num_rows = features.shape[0]
    gram = moments.centred_cross_product(features, mean, features, mean)
    covariance = moments.regularized_covariance(gram, num_rows, ridge)
    label_mean = labels.mean(axis=0)
    cross = moments.centred_transpose_times(features, mean, labels - label_mean) / num_rows
    try:
        return scipy.linalg.solve(covariance, cross, assume_a="pos")
    except np.linalg.LinAlgError:
        raise ValueError(
            "ridge: the feature covariance is singular; use a positive ridge"
        ) from None


def fit_linear_floor(
    image, text, labels, *, bits: int, ridge: float = 1.0, seed: int = 0
) -> LinearHashing:
    """Codes `sign(l_hat(x) P)`, `l_hat` each view's ridge prediction of the label vector.

    `l_hat_x(x) = (x - m_x) W_x + m_l` (`ridge_to_labels`, `m_l` the training label frequencies),
    the same for text; `P` `[c, k]` standard normal from `seed`, shared by both views, so the
    Hamming distance estimates the angle between predicted label vectors (sign random
    projections). The labels are not centred before the projection: two multi-hot label vectors
    are at an angle below 90 degrees exactly when they share a label, the relevance criterion.
    `bits` may exceed `c`: more random hyperplanes through the same `c`-dimensional scores.

    Args:
      image: `[n, d_x]` training features.
      text: `[n, d_y]` training features.
      labels: `[n, c]` multi-hot in {0, 1}.
      bits: `k`, any positive integer.
      ridge: relative ridge, a multiple of the mean feature variance (1 = as strong as one
        average feature's variance); picked before any measurement, not tuned.
      seed: the random projection `P`.

    Raises:
      ValueError: one line naming the argument.
    """
    image = moments.check_features(image, "image")
    text = moments.check_features(text, "text", num_rows=image.shape[0])
    labels = moments.check_labels(labels, num_rows=image.shape[0])
    bits = moments.check_bits(bits)
    ridge = moments.check_regularization(ridge, name="ridge")
    image_mean, text_mean = moments.column_mean(image), moments.column_mean(text)
    image_weights = ridge_to_labels(image, image_mean, labels, ridge=ridge)
    text_weights = ridge_to_labels(text, text_mean, labels, ridge=ridge)
    projection = np.random.default_rng(seed).standard_normal((labels.shape[1], bits))
    offset = labels.mean(axis=0) @ projection
    return linear_hashing(
        image_mean,
        image_weights @ projection,
        text_mean,
        text_weights @ projection,
        offset=np.stack([offset, offset]),
    )
