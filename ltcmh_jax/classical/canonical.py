"""Generalised eigenproblems of CCA type, solved by whitening and a singular value decomposition.

CCA and SCM both maximise `w_x^T C_xy w_y` subject to `w_x^T Sigma_xx w_x = w_y^T Sigma_yy w_y = 1`.
With Cholesky factors `Sigma_xx = L_x L_x^T`, `Sigma_yy = L_y L_y^T`, the solutions are
`w_x = L_x^{-T} u`, `w_y = L_y^{-T} v` for the singular pairs `(u, sigma, v)` of
`M = L_x^{-1} C_xy L_y^{-T}`: the same vectors as the reference code's
`eig(C_xy Sigma_yy^{-1} C_yx, Sigma_xx)` (eigenvalues `sigma^2`), without forming an inverse.
"""

from __future__ import annotations

import numpy as np
import scipy.linalg

# Singular values below this fraction of the largest are treated as zero (rank deficiency).
_RANK_TOLERANCE = 1e-10


def cholesky_factor(covariance: np.ndarray, *, name: str) -> np.ndarray:
    """Lower `L` `[d, d]` with `L L^T = covariance`; a ValueError naming `regularization` else."""
    try:
        return scipy.linalg.cholesky(covariance, lower=True)
    except np.linalg.LinAlgError:
        raise ValueError(
            f"regularization: the {name} covariance is singular; use a positive regularization"
        ) from None


def whiten(factor: np.ndarray, matrix: np.ndarray) -> np.ndarray:
    """`L^{-1} A` for lower-triangular `L` `[d, d]` and `A` `[d, k]`."""
    return scipy.linalg.solve_triangular(factor, matrix, lower=True)


def unwhiten(factor: np.ndarray, vectors: np.ndarray) -> np.ndarray:
    """`L^{-T} U`: whitened directions `[d, k]` back to feature space."""
    return scipy.linalg.solve_triangular(factor, vectors, lower=True, trans="T")


def top_pairs_of_product(left: np.ndarray, right: np.ndarray, count: int):
    """Leading singular triplets of `left @ right.T`, `left` `[d_x, r]`, `right` `[d_y, r]`.

    Costs `O((d_x + d_y) r^2)` through thin QR factorisations, never forming the `[d_x, d_y]`
    product. Only nonzero singular values are returned, so there may be fewer than `count`.

    Returns:
      `(u [d_x, m], sigma [m], v [d_y, m])`, `sigma` descending, `m <= min(count, r)`.
    """
    left_basis, left_triangle = np.linalg.qr(left)
    right_basis, right_triangle = np.linalg.qr(right)
    small_u, sigma, small_vt = np.linalg.svd(left_triangle @ right_triangle.T)
    keep = int(np.sum(sigma > _RANK_TOLERANCE * max(sigma[0], np.finfo(float).tiny)))
    keep = min(keep, count)
    return left_basis @ small_u[:, :keep], sigma[:keep], right_basis @ small_vt[:keep].T


def top_pairs_of_matrix(matrix: np.ndarray, count: int):
    """Leading `count` singular triplets of a dense `matrix` `[d_x, d_y]`, `count <= min(d)`.

    Through the eigenvectors of the smaller Gram matrix (`O(d^3)`, a subset solver), which for
    `d` in the thousands is several times faster than a full SVD.

    Returns:
      `(u [d_x, count], sigma [count], v [d_y, count])`, `sigma` descending; a pair whose singular
      value is zero has an arbitrary unit `v` (or `u`) orthogonal to the others.
    """
    transposed = matrix.shape[0] > matrix.shape[1]
    if transposed:
        matrix = matrix.T
    size = matrix.shape[0]
    values, small = scipy.linalg.eigh(matrix @ matrix.T, subset_by_index=[size - count, size - 1])
    small = small[:, ::-1]
    sigma = np.sqrt(np.maximum(values[::-1], 0.0))
    other = matrix.T @ small
    norms = np.linalg.norm(other, axis=0)
    live = norms > _RANK_TOLERANCE * max(norms.max(initial=0.0), np.finfo(float).tiny)
    other[:, live] /= norms[live]
    if not live.all():
        other[:, ~live] = orthonormal_completion(other[:, live], int((~live).sum()), seed=0)
    return (other, sigma, small) if transposed else (small, sigma, other)


def orthonormal_completion(basis: np.ndarray, count: int, *, seed: int) -> np.ndarray:
    """`count` random orthonormal columns `[d, count]` orthogonal to the `m` columns of `basis`.

    Raises:
      ValueError: naming `bits` when `m + count > d` (no room left).
    """
    dim = basis.shape[0]
    if basis.shape[1] + count > dim:
        raise ValueError(f"bits: {basis.shape[1] + count} orthonormal directions exceed d={dim}")
    draws = np.random.default_rng(seed).standard_normal((dim, count))
    if basis.shape[1]:
        orthonormal, _ = np.linalg.qr(basis)
        draws -= orthonormal @ (orthonormal.T @ draws)
        # Twice: one Gram-Schmidt pass loses orthogonality when draws lie near span(basis).
        draws -= orthonormal @ (orthonormal.T @ draws)
    completion, _ = np.linalg.qr(draws)
    return completion
