"""SCM: semantic correlation maximisation (Zhang and Li, AAAI 2014), SCM-Orth and SCM-Seq.

Notation (the paper's): `X` `[n, d_x]`, `Y` `[n, d_y]` centred features; `L` `[n, c]` multi-hot
labels; `L~` its rows scaled to unit length (a row without labels stays zero); the semantic
similarity `S = 2 L~ L~^T - 1 1^T` in [-1, 1] (cosine similarity of label vectors, stretched);
`k` the code length. SCM asks the code inner products to reconstruct `k S`:

  `min ||sign(X W_x) sign(Y W_y)^T - k S||_F^2`,

relaxed (sign dropped, orthogonality constraints `W_x^T X^T X W_x = n I`, same for `Y`) into a
correlation maximisation, `max tr(W_x^T X^T S Y W_y)`: a CCA with the semantic cross-covariance
`X^T S Y` in place of `X^T Y`. `S` is never formed: `X^T S Y = 2 (X^T L~)(Y^T L~)^T - (X^T 1)(Y^T
1)^T` (the paper's route to linear time in n), so memory is `O(d^2 + n d)`.

The equations are as recalled from the paper (no equation numbers quoted); the algorithm was
checked against a public copy of the authors' MATLAB (`trainSCM_orth.m`, `trainSCM_seq.m`,
`trainCCA.m`), which fixes the ridge at `1e-6 I` on the unnormalised `X^T X`; here the ridge is
relative (see `moments.regularized_covariance`), so that it means the same for any feature scale.
"""

from __future__ import annotations

import numpy as np

from ltcmh_jax.classical import canonical, moments
from ltcmh_jax.classical.hashing import LinearHashing, linear_hashing

SCM_VARIANTS = ("seq", "orth")


def normalized_labels(labels) -> np.ndarray:
    """`L~` `[n, c]` float64: each row of 0/1 `labels` divided by its norm; empty rows stay 0."""
    labels = np.asarray(labels, np.float64)
    norms = np.linalg.norm(labels, axis=1, keepdims=True)
    return labels / np.where(norms > 0, norms, 1.0)


def semantic_cross_covariance_factors(image, image_mean, text, text_mean, labels):
    """Factors of `X^T S Y` for centred `X = image - 1 m_x^T`, `Y = text - 1 m_y^T`.

    `S = 2 L~ L~^T - 1 1^T` (`n x n`, never formed). With centred data `X^T 1 = 0` and the rank
    is at most `c`; the mean term is kept so that the identity holds for any centring.

    Returns:
      `(left [d_x, c + 1], right [d_y, c + 1])` with `left @ right.T == X^T S Y`.
    """
    unit_labels = normalized_labels(labels)
    ones = np.ones((unit_labels.shape[0], 1))
    image_side = moments.centred_transpose_times(image, image_mean, np.hstack([unit_labels, ones]))
    text_side = moments.centred_transpose_times(text, text_mean, np.hstack([unit_labels, ones]))
    left = np.hstack([2.0 * image_side[:, :-1], -image_side[:, -1:]])
    return left, text_side


def fit_scm(
    image,
    text,
    labels,
    *,
    bits: int,
    variant: str = "seq",
    regularization: float = 1e-4,
    seed: int = 0,
) -> LinearHashing:
    """SCM hash functions `sign((x - m_x) W_x)`, `sign((y - m_y) W_y)` from labelled pairs.

    Both variants solve generalised eigenproblems `C Sigma_yy^{-1} C^T w_x = lambda^2 Sigma_xx w_x`,
    `w_y ∝ Sigma_yy^{-1} C^T w_x` (`canonical`; `Sigma` the covariances plus a relative ridge):

    - "orth" (SCM-Orth): `C = k X^T S Y / n`, the top `k` pairs at once. `X^T S Y` has rank at
      most `c` (the number of labels), so beyond `c` bits the objective leaves directions
      undetermined: the reference `eig` returns arbitrary null-space vectors there. Here those
      bits take random orthonormal directions (whitened, from `seed`) in each view independently,
      which carry no cross-modal signal; that is why SCM-Orth loses accuracy at long codes.
    - "seq" (SCM-Seq): one bit at a time against the residual `R_t = k S - sum_{s<t} b_x^s b_y^s^T`
      of the code inner products learned so far, `C_t = X^T R_t Y / n`, updated in closed form
      `C_{t+1} = C_t - (X^T b_x^t)(Y^T b_y^t)^T / n` with `b^t = sign(X w^t)` on the training rows.
      As in the reference code, once the top eigenvalue `lambda_t^2` rises above the previous
      bit's, the remaining bits are the leading plain-CCA pairs (of `X^T Y`) instead.

    Args:
      image: `[n, d_x]` training features.
      text: `[n, d_y]` training features.
      labels: `[n, c]` multi-hot in {0, 1}.
      bits: `k <= min(d_x, d_y)` (a hard limit of the orthogonal directions: a ValueError).
      variant: "seq" or "orth".
      regularization: relative ridge of both covariances; the default is small, in the spirit
        of the reference's `1e-6 I`, and was not tuned on any benchmark.
      seed: the undetermined SCM-Orth directions beyond rank c; unused by "seq".

    Raises:
      ValueError: one line naming the argument.
    """
    image = moments.check_features(image, "image")
    text = moments.check_features(text, "text", num_rows=image.shape[0])
    labels = moments.check_labels(labels, num_rows=image.shape[0])
    bits = moments.check_bits(
        bits,
        limit=min(image.shape[1], text.shape[1]),
        reason=f"SCM's orthogonal directions are at most min(d_x, d_y) of d_x={image.shape[1]}, "
        f"d_y={text.shape[1]}",
    )
    if variant not in SCM_VARIANTS:
        raise ValueError(f"variant: must be one of {SCM_VARIANTS}, got {variant!r}")
    regularization = moments.check_regularization(regularization)

    num_rows = image.shape[0]
    image_mean, text_mean = moments.column_mean(image), moments.column_mean(text)
    image_factor = _covariance_factor(image, image_mean, regularization, name="image")
    text_factor = _covariance_factor(text, text_mean, regularization, name="text")
    left, right = semantic_cross_covariance_factors(image, image_mean, text, text_mean, labels)
    # Centred with the training mean, `X^T 1 = 0` exactly; the last pair is rounding noise that
    # would otherwise count as a (tiny) semantic direction.
    left, right = left[:, :-1], right[:, :-1]
    left_white = canonical.whiten(image_factor, bits * left / num_rows)
    right_white = canonical.whiten(text_factor, right / num_rows)

    if variant == "orth":
        image_white, _, text_white = canonical.top_pairs_of_product(left_white, right_white, bits)
        missing = bits - image_white.shape[1]
        if missing:
            image_white = np.hstack(
                [image_white, canonical.orthonormal_completion(image_white, missing, seed=seed)]
            )
            text_white = np.hstack(
                [text_white, canonical.orthonormal_completion(text_white, missing, seed=seed + 1)]
            )
        image_projection = canonical.unwhiten(image_factor, image_white)
        text_projection = canonical.unwhiten(text_factor, text_white)
    else:
        image_projection, text_projection = _sequential_pairs(
            image,
            image_mean,
            image_factor,
            text,
            text_mean,
            text_factor,
            left_white,
            right_white,
            bits,
        )
    return linear_hashing(image_mean, image_projection, text_mean, text_projection)


def _covariance_factor(features, mean, regularization, *, name):
    gram = moments.centred_cross_product(features, mean, features, mean)
    covariance = moments.regularized_covariance(gram, features.shape[0], regularization)
    return canonical.cholesky_factor(covariance, name=name)


def _sequential_pairs(
    image, image_mean, image_factor, text, text_mean, text_factor, left_white, right_white, bits
):
    """SCM-Seq's `[d_x, k]`, `[d_y, k]` projections; the residual stays in factored form."""
    num_rows = image.shape[0]
    image_columns, text_columns = [], []
    last_value = np.inf
    for _ in range(bits):
        image_white, sigma, text_white = canonical.top_pairs_of_product(left_white, right_white, 1)
        # The reference stops when the leading eigenvalue grows: the sign codes of the last bit
        # no longer lowered the residual.
        if sigma.size == 0 or sigma[0] ** 2 > last_value:
            break
        last_value = sigma[0] ** 2
        image_direction = canonical.unwhiten(image_factor, image_white)
        text_direction = canonical.unwhiten(text_factor, text_white)
        image_columns.append(image_direction[:, 0])
        text_columns.append(text_direction[:, 0])
        image_update = moments.centred_sign_products(image, image_mean, image_direction)
        text_update = moments.centred_sign_products(text, text_mean, text_direction)
        image_update = canonical.whiten(image_factor, image_update[:, None] / num_rows)
        text_update = canonical.whiten(text_factor, text_update[:, None] / num_rows)
        left_white = np.hstack([left_white, -image_update])
        right_white = np.hstack([right_white, text_update])
    missing = bits - len(image_columns)
    if missing:
        cross = moments.centred_cross_product(image, image_mean, text, text_mean) / num_rows
        whitened = canonical.whiten(image_factor, canonical.whiten(text_factor, cross.T).T)
        image_white, _, text_white = canonical.top_pairs_of_matrix(whitened, missing)
        image_columns.extend(canonical.unwhiten(image_factor, image_white).T)
        text_columns.extend(canonical.unwhiten(text_factor, text_white).T)
    return np.stack(image_columns, axis=1), np.stack(text_columns, axis=1)
