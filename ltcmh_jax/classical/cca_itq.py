"""CCA-ITQ: canonical correlation analysis between the two views, then an ITQ rotation.

Gong, Lazebnik, Gordo and Perronnin (TPAMI 2013) pair CCA with ITQ (their "CCA-ITQ"); the
cross-modal hashing literature runs it with image features and text tags as the two views. The
method is unsupervised here: the labels are not used.
"""

from __future__ import annotations

from typing import NamedTuple

import numpy as np

from ltcmh_jax.classical import canonical, moments
from ltcmh_jax.classical.hashing import LinearHashing, linear_hashing
from ltcmh_jax.classical.itq import itq_rotation


class CanonicalPairs(NamedTuple):
    """Regularised CCA of two views: `w_x^T Sigma_xx w_x = w_y^T Sigma_yy w_y = 1` per column.

    image_mean `[d_x]`, image_directions `[d_x, m]`, text_mean `[d_y]`, text_directions
    `[d_y, m]`, correlations `[m]` descending (the regularised canonical correlations).
    """

    image_mean: np.ndarray
    image_directions: np.ndarray
    text_mean: np.ndarray
    text_directions: np.ndarray
    correlations: np.ndarray


def canonical_correlation(image, text, *, dims: int, regularization: float) -> CanonicalPairs:
    """The top `dims` canonical pairs of `image` `[n, d_x]` and `text` `[n, d_y]`.

    `max w_x^T Sigma_xy w_y` s.t. `w_x^T (Sigma_xx + r_x I) w_x = w_y^T (Sigma_yy + r_y I) w_y = 1`,
    `Sigma` the centred covariances, `r = regularization * tr(Sigma) / d` per view (a ridge that
    keeps the problem well posed when `d` approaches `n` or tags never occur in training).

    Raises:
      ValueError: one line naming the argument (rows, non-finite values, `dims` > min(d_x, d_y),
        a singular covariance with `regularization` 0).
    """
    image = moments.check_features(image, "image")
    text = moments.check_features(text, "text", num_rows=image.shape[0])
    dims = moments.check_bits(
        dims,
        limit=min(image.shape[1], text.shape[1]),
        reason=f"the number of canonical pairs min(d_x, d_y) of d_x={image.shape[1]}, "
        f"d_y={text.shape[1]}",
    )
    moments.check_regularization(regularization)
    num_rows = image.shape[0]
    image_mean, text_mean = moments.column_mean(image), moments.column_mean(text)
    image_factor = canonical.cholesky_factor(
        moments.regularized_covariance(
            moments.centred_cross_product(image, image_mean, image, image_mean),
            num_rows,
            regularization,
        ),
        name="image",
    )
    text_factor = canonical.cholesky_factor(
        moments.regularized_covariance(
            moments.centred_cross_product(text, text_mean, text, text_mean),
            num_rows,
            regularization,
        ),
        name="text",
    )
    cross = moments.centred_cross_product(image, image_mean, text, text_mean) / num_rows
    whitened = canonical.whiten(image_factor, canonical.whiten(text_factor, cross.T).T)
    left, correlations, right = canonical.top_pairs_of_matrix(whitened, dims)
    return CanonicalPairs(
        image_mean,
        canonical.unwhiten(image_factor, left),
        text_mean,
        canonical.unwhiten(text_factor, right),
        correlations,
    )


def fit_cca_itq(
    image,
    text,
    *,
    bits: int,
    iterations: int = 50,
    regularization: float = 1e-2,
    seed: int = 0,
) -> LinearHashing:
    """CCA to `bits` dimensions, then one ITQ rotation shared by both views.

    `V_x = (X - 1 m_x^T) W_x`, `V_y = (Y - 1 m_y^T) W_y` with `W` the top `bits` canonical
    directions (`canonical_correlation`, unscaled: unit variance per direction); `R` from
    `itq_rotation` on the rows of both views stacked, `[V_x; V_y]` `[2n, k]`; codes
    `sign(V_x R)`, `sign(V_y R)`.

    Why stacked rows rather than the sum `V_x + V_y`: at query time each sample is encoded from one
    view alone, so the rotation should put each view's own projections near the corners of the
    cube; the sum is a vector no query ever has. Paired rows are close after CCA, so one rotation
    serves both.

    Args:
      image: `[n, d_x]` training features.
      text: `[n, d_y]` training features (e.g. a 0/1 bag of words).
      bits: `k <= min(d_x, d_y)`, the number of canonical pairs (a hard limit: a ValueError).
      iterations: ITQ alternations (the paper's 50).
      regularization: relative ridge of both covariances (see `canonical_correlation`). The
        default is a mild ridge picked before any measurement, not tuned on a benchmark.
      seed: ITQ's random initial rotation.

    Raises:
      ValueError: one line naming the argument.
    """
    pairs = canonical_correlation(image, text, dims=bits, regularization=regularization)
    image_projected = moments.centred_times(image, pairs.image_mean, pairs.image_directions)
    text_projected = moments.centred_times(text, pairs.text_mean, pairs.text_directions)
    rotation, _ = itq_rotation(
        np.concatenate([image_projected, text_projected]), iterations=iterations, seed=seed
    )
    return linear_hashing(
        pairs.image_mean,
        pairs.image_directions @ rotation,
        pairs.text_mean,
        pairs.text_directions @ rotation,
    )
