"""Tests for `ltcmh_jax.losses.hsic` (Eq. 5) against a NumPy reference with A built."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from jax.test_util import check_grads

from ltcmh_jax import losses
from ltcmh_jax.losses import independence

# Jitted once per shape: eager dispatch of the bisection loop is what would make these tests slow.
hsic = jax.jit(losses.hsic)


def reference_median(points):
    """Median of the nonzero squared distances over pairs a < b, by loops (1 if none)."""
    points = np.asarray(points, np.float64)
    n = len(points)
    values = [np.sum((points[a] - points[b]) ** 2) for a in range(n) for b in range(a + 1, n)]
    values = [v for v in values if v > 1e-9 * max(1.0, np.max(np.abs(points)) ** 2)]
    return float(np.median(values)) if values else 1.0


def reference_hsic(x, y, sigma_x=None, sigma_y=None):
    """(n-1)^-2 tr(K^x A K^y A) exactly as Eq. 5 writes it, in float64."""
    x = np.asarray(x, np.float64)
    y = np.asarray(y, np.float64)
    n = len(x)
    sigma_x = reference_median(x) if sigma_x is None else sigma_x
    sigma_y = reference_median(y) if sigma_y is None else sigma_y
    kernel_x = np.zeros((n, n))
    kernel_y = np.zeros((n, n))
    for a in range(n):
        for b in range(n):
            kernel_x[a, b] = np.exp(-np.sum((x[a] - x[b]) ** 2) / sigma_x)
            kernel_y[a, b] = np.exp(-np.sum((y[a] - y[b]) ** 2) / sigma_y)
    centring = np.eye(n) - np.ones((n, n)) / n
    return np.trace(kernel_x @ centring @ kernel_y @ centring) / (n - 1) ** 2


def dependent_pair(n, dim_x=5, dim_y=3, seed=0):
    rng = np.random.default_rng(seed)
    x = rng.standard_normal((n, dim_x)).astype(np.float32)
    y = (np.tanh(x[:, :dim_y]) + 0.3 * rng.standard_normal((n, dim_y))).astype(np.float32)
    return x, y


@pytest.mark.parametrize("sigmas", [(None, None), (2.0, 0.7), (None, 5.0)])
def test_matches_reference(sigmas):
    x, y = dependent_pair(23)
    got = hsic(x, y, sigma_x=sigmas[0], sigma_y=sigmas[1])
    want = reference_hsic(x, y, *sigmas)
    np.testing.assert_allclose(got, want, rtol=2e-4, atol=1e-7)


def test_dependent_exceeds_independent():
    x, y = dependent_pair(64)
    shuffled = np.random.default_rng(1).permutation(y)
    assert hsic(x, y) > 3 * hsic(x, shuffled)


def test_two_samples():
    x = np.array([[0.0, 1.0], [2.0, 0.0]], np.float32)
    y = np.array([[1.0], [3.0]], np.float32)
    np.testing.assert_allclose(hsic(x, y), reference_hsic(x, y), rtol=1e-5)


def test_one_sample_raises():
    with pytest.raises(ValueError, match=r"hsic: needs at least 2 samples.*\(1, 2\)"):
        hsic(np.ones((1, 2)), np.ones((1, 3)))


def test_shape_mismatch_raises_with_both_shapes():
    with pytest.raises(ValueError, match=r"x \(4, 2\) and y \(5, 2\)"):
        hsic(np.ones((4, 2)), np.ones((5, 2)))


def test_constant_input_is_exactly_zero_with_finite_gradient():
    x = np.full((9, 4), 3.7, np.float32)
    _, y = dependent_pair(9, dim_x=4)
    value, gradients = jax.value_and_grad(hsic, argnums=(0, 1))(x, y)
    assert value == 0.0
    assert all(np.isfinite(g).all() for g in gradients)


def test_duplicate_rows_match_reference():
    x, y = dependent_pair(12)
    x[5] = x[2]
    x[7] = x[2]
    y[3] = y[0]
    np.testing.assert_allclose(hsic(x, y), reference_hsic(x, y), rtol=2e-4)
    gradients = jax.grad(hsic, argnums=(0, 1))(x, y)
    assert all(np.isfinite(g).all() for g in gradients)


@pytest.mark.parametrize("count", [2, 5])
def test_median_heuristic_even_odd_and_ties(count):
    # Points on a line: pair distances have ties; the median must average the middle two for an
    # even number of pairs, like np.median.
    points = np.arange(count + 1, dtype=np.float32)[:, None] ** 1.5
    points[-1] = points[0]  # a coincident pair, excluded as zero
    median = jax.jit(
        lambda p: independence._median_heuristic(independence._centred_squared_distances(p))
    )
    np.testing.assert_allclose(median(points), reference_median(points), rtol=1e-5)


def test_median_heuristic_scale_free_in_float32():
    x, y = dependent_pair(40)
    base = hsic(x, y)
    for scale, shift in ((1e-4, 0.0), (1e4, 0.0), (1.0, 1e3)):
        value = hsic(x * scale + shift, y * scale + shift)
        assert np.isfinite(value)
        np.testing.assert_allclose(value, base, rtol=2e-3)


def test_extreme_widths_stay_finite():
    x, y = dependent_pair(16)
    for sigma in (1e-30, 1e30):
        value, gradient = jax.value_and_grad(hsic)(x, y, sigma_x=sigma, sigma_y=sigma)
        assert np.isfinite(value) and np.isfinite(gradient).all()


def test_gradients_match_finite_differences():
    with jax.enable_x64(True):
        x, y = dependent_pair(7)
        args = (jnp.asarray(x, jnp.float64), jnp.asarray(y, jnp.float64))
        widths = (jnp.asarray(2.5), jnp.asarray(0.8))

        def with_widths(x, y, sigma_x, sigma_y):
            return hsic(x, y, sigma_x=sigma_x, sigma_y=sigma_y)

        check_grads(jax.jit(with_widths), args + widths, order=2, modes=("rev",))


def test_median_heuristic_has_no_gradient():
    # sigma=None is the median under stop_gradient: the gradient equals the one at that fixed
    # width (finite differences would also move the width, so compare with the fixed width).
    with jax.enable_x64(True):
        x, y = (jnp.asarray(a, jnp.float64) for a in dependent_pair(8))
        sigma_x, sigma_y = reference_median(x), reference_median(y)
        free = jax.grad(hsic, argnums=(0, 1))(x, y)
        fixed = jax.grad(lambda a, b: hsic(a, b, sigma_x=sigma_x, sigma_y=sigma_y), argnums=(0, 1))(
            x, y
        )
        for got, want in zip(free, fixed, strict=True):
            np.testing.assert_allclose(got, want, rtol=1e-9, atol=1e-12)


def test_jit_and_vmap_over_pairs():
    pairs = [dependent_pair(10, seed=seed) for seed in range(3)]
    xs = np.stack([p[0] for p in pairs])
    ys = np.stack([p[1] for p in pairs])
    batched = jax.jit(jax.vmap(losses.hsic))(xs, ys)
    expected = [reference_hsic(x, y) for x, y in pairs]
    np.testing.assert_allclose(batched, expected, rtol=2e-4)
    np.testing.assert_allclose(jax.jit(losses.hsic)(xs[0], ys[0]), expected[0], rtol=2e-4)


def test_normalized_hsic_matches_reference_and_is_scale_free():
    # Jitted: op by op, the median heuristic's sort and check_grads' evaluations took 17 s.
    normalized_hsic = jax.jit(losses.normalized_hsic)
    x, y = dependent_pair(40)
    expected = reference_hsic(x, y) / np.sqrt(reference_hsic(x, x) * reference_hsic(y, y))
    got = normalized_hsic(x, y)
    np.testing.assert_allclose(got, expected, rtol=1e-4)
    np.testing.assert_allclose(normalized_hsic(100 * x, 0.01 * y), got, rtol=1e-4)
    np.testing.assert_allclose(normalized_hsic(x, x), 1.0, rtol=1e-5)
    independent = np.random.default_rng(9).standard_normal(y.shape)
    assert float(normalized_hsic(x, independent)) < float(got)
    check_grads(lambda a: normalized_hsic(a, y), (x.astype(np.float64),), order=1, modes=["rev"])


def test_normalized_hsic_constant_input_is_zero():
    x, _ = dependent_pair(10)
    value, grad = jax.jit(jax.value_and_grad(lambda a: losses.normalized_hsic(a, x)))(
        np.ones_like(x)
    )
    assert float(value) == 0.0
    assert np.all(np.isfinite(np.asarray(grad)))
