"""HSIC between the individualities P^x and P^y (Eq. 5, the term J2 of Eq. 7)."""

import jax
import jax.numpy as jnp
import numpy as np
from jax import lax

from ltcmh_jax.losses.distances import squared_distances

# Squared distances within this many float rounding units of the largest squared (centred) norm
# are set to 0: the expansion in `squared_distances` cannot tell them from 0, and exact zeros make
# HSIC exactly 0 for constant inputs and keep rounding noise out of the median heuristic.
_COINCIDENT_ULPS = 32


def _centred_squared_distances(points: jax.Array) -> jax.Array:
    """`[n, d]` -> `[n, n]` squared distances, exactly 0 on the diagonal and for coincident rows."""
    centred = points - jnp.mean(points, axis=0)
    distances = squared_distances(centred, centred)
    largest = jnp.max(jnp.sum(centred * centred, axis=1))
    tolerance = _COINCIDENT_ULPS * jnp.finfo(distances.dtype).eps * largest
    coincident = (distances <= tolerance) | jnp.eye(points.shape[0], dtype=bool)
    return jnp.where(coincident, 0.0, distances)


def _kth_smallest(values: jax.Array, k: jax.Array) -> jax.Array:
    """The k-th smallest (0-based) of non-negative `values` (`[m]`, +inf allowed), exactly.

    Bisection on the bit patterns, which order non-negative floats like their values: one
    counting pass per bit (31 for float32) instead of a sort: 3 ms against `jnp.nanmedian`'s
    100 ms on CPU for the half-million pairs of n = 1024.
    """
    int_type = jnp.int32 if values.dtype.itemsize == 4 else jnp.int64
    bits = lax.bitcast_convert_type(values, int_type)

    def halve(_, bounds):
        low, high = bounds
        middle = low + (high - low) // 2
        enough = jnp.sum(bits <= middle) > k
        return jnp.where(enough, low, middle + 1), jnp.where(enough, middle, high)

    infinity = lax.bitcast_convert_type(jnp.array(jnp.inf, values.dtype), int_type)
    start = (jnp.zeros((), int_type), infinity)
    low, _ = lax.fori_loop(0, 8 * values.dtype.itemsize - 1, halve, start)
    return lax.bitcast_convert_type(low, values.dtype)


def _median_heuristic(distances: jax.Array) -> jax.Array:
    """Median of the nonzero pairwise squared distances (upper triangle), 1 if there are none."""
    rows, cols = np.triu_indices(distances.shape[0], k=1)
    pairs = distances[rows, cols]
    positive = pairs > 0
    count = jnp.sum(positive)
    pairs = jnp.where(positive, pairs, jnp.inf)
    lower = _kth_smallest(pairs, (count - 1) // 2)
    # The upper middle (equal to `lower` for an odd count) without a second bisection.
    upper = jnp.where(
        (count % 2 == 1) | (jnp.sum(pairs <= lower) > count // 2),
        lower,
        jnp.min(jnp.where(pairs > lower, pairs, jnp.inf)),
    )
    return jnp.where(count > 0, 0.5 * (lower + upper), 1.0).astype(distances.dtype)


def _double_centre(kernel: jax.Array) -> jax.Array:
    """A K A for a symmetric `[n, n]` K: K minus its row and column means plus its grand mean."""
    means = jnp.mean(kernel, axis=0)
    return kernel - means[None, :] - means[:, None] + jnp.mean(means)


@jax.custom_jvp
def _gaussian_hsic(x: jax.Array, y: jax.Array, sigma_x: jax.Array, sigma_y: jax.Array):
    """Eq. 5 for `[n, d_x]`, `[n, d_y]` points and scalar widths; see `hsic`."""
    kernel_x = jnp.exp(-_centred_squared_distances(x) / sigma_x)
    kernel_y = jnp.exp(-_centred_squared_distances(y) / sigma_y)
    return jnp.sum(_double_centre(kernel_x) * kernel_y) / (x.shape[0] - 1) ** 2


@_gaussian_hsic.defjvp
def _gaussian_hsic_jvp(primals, tangents):
    """The derivative in closed form, about 2.5x faster forward + backward than autodiff of the
    expansion (n = 1024 on CPU), for forward and reverse mode alike.

    With W^x = (A K^y A) o K^x / (sigma_x (n-1)^2) (symmetric), dHSIC/dd^x_ab = -W^x_ab, so
    dHSIC/dx_a = -4 sum_b W^x_ab (x_a - x_b) and dHSIC/dsigma_x = sum_ab W^x_ab d^x_ab / sigma_x.
    """
    x, y, sigma_x, sigma_y = primals
    tangent_x, tangent_y, tangent_sigma_x, tangent_sigma_y = tangents
    normaliser = (x.shape[0] - 1) ** 2
    points_x = x - jnp.mean(x, axis=0)
    points_y = y - jnp.mean(y, axis=0)
    distances_x = _centred_squared_distances(x)
    distances_y = _centred_squared_distances(y)
    kernel_x = jnp.exp(-distances_x / sigma_x)
    kernel_y = jnp.exp(-distances_y / sigma_y)
    centred_x = _double_centre(kernel_x)
    centred_y = _double_centre(kernel_y)
    value = jnp.sum(centred_x * kernel_y) / normaliser

    def slopes(points, distances, kernel, centred_other, sigma):
        weights = centred_other * kernel / (sigma * normaliser)
        pull = jnp.matmul(weights, points, precision=lax.Precision.HIGHEST)
        gradient = -4.0 * (jnp.sum(weights, axis=1)[:, None] * points - pull)
        return gradient, jnp.sum(weights * distances) / sigma

    gradient_x, slope_sigma_x = slopes(points_x, distances_x, kernel_x, centred_y, sigma_x)
    gradient_y, slope_sigma_y = slopes(points_y, distances_y, kernel_y, centred_x, sigma_y)
    tangent = (
        jnp.sum(gradient_x * tangent_x)
        + jnp.sum(gradient_y * tangent_y)
        + slope_sigma_x * tangent_sigma_x
        + slope_sigma_y * tangent_sigma_y
    )
    return value, tangent


def hsic(
    x: jax.Array,
    y: jax.Array,
    *,
    sigma_x: float | jax.Array | None = None,
    sigma_y: float | jax.Array | None = None,
) -> jax.Array:
    """Hilbert-Schmidt independence criterion with Gaussian kernels (Eq. 5).

    HSIC(X, Y) = (n - 1)^-2 tr(K^x A K^y A), K^v_ab = exp(-||v_a - v_b||^2 / sigma_v),
    A = I - e e^T / n.

    A is idempotent and the kernels are symmetric, so tr(K^x A K^y A) = sum_ab (A K^x A)_ab K^y_ab,
    and A K A is K minus its row means and column means plus its grand mean. That is O(n^2 d) work
    and O(n^2) memory; neither A nor an n^3 product is ever formed.

    Args:
      x: `[n, d_x]` samples of the first variable (P^x), one row per sample.
      y: `[n, d_y]` samples of the second variable (P^y), paired row by row with `x`.
      sigma_x: kernel width of `x`: the divisor of the squared distance, as in Eq. 5 (not its
        square root). None: the median heuristic, the median of the nonzero pairwise squared
        distances of `x`, under `stop_gradient` (a data-dependent scale treated as a constant, so
        the gradient is that of HSIC at a fixed width). Pairs within float rounding of 0
        (32 eps max_a ||v_a - mean(v)||^2) count as coincident; the width is 1 when all coincide.
      sigma_y: the same for `y`.

    Returns:
      Scalar HSIC, >= 0 up to rounding; exactly 0 when either input has all rows equal.

    Raises:
      ValueError: if `x` and `y` are not 2-D with the same number of rows, or n < 2 (the
        (n - 1)^-2 normaliser is undefined).
    """
    x = jnp.asarray(x)
    y = jnp.asarray(y)
    if x.ndim != 2 or y.ndim != 2 or x.shape[0] != y.shape[0]:
        raise ValueError(
            f"hsic: x and y must be [n, d] with the same n, got x {x.shape} and y {y.shape}"
        )
    n = x.shape[0]
    if n < 2:
        raise ValueError(f"hsic: needs at least 2 samples, got x {x.shape} and y {y.shape}")
    dtype = jnp.result_type(x, y, jnp.float32)
    x = x.astype(dtype)
    y = y.astype(dtype)

    if sigma_x is None:
        sigma_x = lax.stop_gradient(_median_heuristic(_centred_squared_distances(x)))
    if sigma_y is None:
        sigma_y = lax.stop_gradient(_median_heuristic(_centred_squared_distances(y)))
    return _gaussian_hsic(x, y, jnp.asarray(sigma_x, dtype), jnp.asarray(sigma_y, dtype))


def normalized_hsic(x: jax.Array, y: jax.Array) -> jax.Array:
    """HSIC normalised by the self-dependences (centred kernel alignment), a scale-free J2.

    nHSIC(X, Y) = HSIC(X, Y) / sqrt(HSIC(X, X) HSIC(Y, Y)), each with the median-heuristic
    widths of `hsic`; in [0, 1] whatever the scale of X and Y, so beta weighs it as it weighs a
    bounded term (plain HSIC of two near-independent 64-d sets is of order 1e-3).

    Args:
      x: `[n, d_x]` samples of the first variable (P^x).
      y: `[n, d_y]` samples of the second variable (P^y), paired row by row.

    Returns:
      Scalar in [0, 1] up to rounding; 0 when either input has all rows equal.
    """
    cross = hsic(x, y)
    self_x = hsic(x, x)
    self_y = hsic(y, y)
    product = self_x * self_y
    # Double `where`: constant inputs give 0 (their HSIC is 0), not 0/0, in value and gradient.
    positive = product > 0
    return jnp.where(positive, cross / jnp.sqrt(jnp.where(positive, product, 1.0)), 0.0)
