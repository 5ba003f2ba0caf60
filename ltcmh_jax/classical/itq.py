"""Iterative quantisation (ITQ; Gong and Lazebnik, CVPR 2011; Gong et al., TPAMI 2013)."""

from __future__ import annotations

import numpy as np


def random_rotation(bits: int, *, seed: int) -> np.ndarray:
    """A Haar-random orthogonal matrix `[k, k]` (QR of a Gaussian with the signs of R fixed)."""
    gaussian = np.random.default_rng(seed).standard_normal((bits, bits))
    orthonormal, triangle = np.linalg.qr(gaussian)
    return orthonormal * np.where(np.diag(triangle) < 0, -1.0, 1.0)


def quantization_loss(projected: np.ndarray, rotation: np.ndarray) -> float:
    """`||B - V R||_F^2` with `B = sign(V R)`, for `V` `[n, k]` and `R` `[k, k]`."""
    rotated = projected @ rotation
    return float(np.sum((np.where(rotated >= 0, 1.0, -1.0) - rotated) ** 2))


def itq_rotation(projected, *, iterations: int = 50, seed: int = 0):
    """The orthogonal `R` that ITQ learns to quantise zero-centred `V` `[n, k]` with little loss.

    `min_{B, R} ||B - V R||_F^2`, `B in {-1, +1}^{n x k}`, `R^T R = I`, by alternating
    - `B = sign(V R)`;
    - `R = S_hat S^T` from the SVD `B^T V = S Omega S_hat^T` (the orthogonal Procrustes problem),
    from a random orthogonal start, `iterations` times (the paper uses 50). Each step can only
    lower the loss, so the recorded losses never increase.

    Args:
      projected: `V` `[n, k]`, zero-centred real projections (e.g. PCA or CCA outputs).
      iterations: alternations after the start.
      seed: the random start.

    Returns:
      `(rotation [k, k], losses [iterations + 1])`, `losses[t]` the loss after `t` updates of R.
    """
    projected = np.asarray(projected, np.float64)
    if projected.ndim != 2 or projected.shape[1] == 0:
        raise ValueError(f"projected: expected a [n, k] array, got shape {projected.shape}")
    if isinstance(iterations, bool) or not isinstance(iterations, int) or iterations < 0:
        raise ValueError(f"iterations: expected an integer >= 0, got {iterations!r}")
    rotation = random_rotation(projected.shape[1], seed=seed)
    losses = [quantization_loss(projected, rotation)]
    for _ in range(iterations):
        codes = np.where(projected @ rotation >= 0, 1.0, -1.0)
        left, _, right_t = np.linalg.svd(codes.T @ projected)
        rotation = right_t.T @ left.T
        losses.append(quantization_loss(projected, rotation))
    return rotation, np.asarray(losses)
