"""Euclidean distances for HSIC (Eq. 5) and the average Hausdorff distance (Eq. 4)."""

import jax
import jax.numpy as jnp
from jax import lax


def squared_distances(x: jax.Array, y: jax.Array) -> jax.Array:
    """All squared Euclidean distances between the rows of two point sets.

    `[n, d]`, `[m, d]` -> `[n, m]`: ||x_i - y_j||^2 = ||x_i||^2 + ||y_j||^2 - 2 x_i . y_j,
    clipped at 0.

    The expansion turns O(n m d) subtractions into one matmul but loses about
    eps * (||x_i||^2 + ||y_j||^2) to cancellation, so callers centre the points first (distances
    are translation invariant). The matmul asks for HIGHEST precision because the default float32
    matmul on recent GPUs rounds its inputs to TF32 (a 10-bit mantissa), which would swamp the
    differences.
    """
    x_sq = jnp.sum(x * x, axis=-1)
    y_sq = jnp.sum(y * y, axis=-1)
    cross = jnp.matmul(x, y.T, precision=lax.Precision.HIGHEST)
    return jnp.maximum(x_sq[:, None] + y_sq[None, :] - 2.0 * cross, 0.0)


def safe_norm(vectors: jax.Array, *, axis: int = -1) -> jax.Array:
    """Euclidean norm along `axis` whose gradient at the zero vector is 0 instead of NaN.

    The double `where` keeps `sqrt` away from 0 in both branches: a single `where` would still
    differentiate `sqrt(0)` in the unused branch and multiply its infinite slope by 0.
    """
    squared = jnp.sum(vectors * vectors, axis=axis)
    positive = squared > 0
    return jnp.where(positive, jnp.sqrt(jnp.where(positive, squared, 1.0)), 0.0)
