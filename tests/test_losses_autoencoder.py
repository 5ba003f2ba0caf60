"""Tests for J1 (Eq. 3), J3 (Eq. 6), the estimate fit and Loss1 (Eq. 7) against NumPy."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from jax.test_util import check_grads

from ltcmh_jax import losses

commonality_regularizer = jax.jit(losses.commonality_regularizer)


def reference_regularizer(commonality, labels, r_x, r_y):
    """1/2 sum_ab ||q_a - q_b||^2 (R^x_ab + R^y_ab) over labels present, q_a the label mean."""
    commonality = np.asarray(commonality, np.float64)
    num_labels = labels.shape[1]
    prototypes = {}
    for a in range(num_labels):
        rows = [i for i in range(len(labels)) if labels[i, a] != 0]
        if rows:
            prototypes[a] = sum(commonality[i] for i in rows) / len(rows)
    total = 0.0
    for a in prototypes:
        for b in prototypes:
            difference = prototypes[a] - prototypes[b]
            total += 0.5 * difference @ difference * (r_x[a, b] + r_y[a, b])
    return total


def regularizer_inputs(n=20, k=6, num_labels=4, seed=0):
    rng = np.random.default_rng(seed)
    commonality = rng.standard_normal((n, k)).astype(np.float32)
    labels = (rng.random((n, num_labels)) < 0.4).astype(np.float32)
    labels[0] = 1  # every label present
    r_x = rng.random((num_labels, num_labels)).astype(np.float32)
    r_y = rng.random((num_labels, num_labels)).astype(np.float32)
    return commonality, labels, (r_x + r_x.T) / 2, (r_y + r_y.T) / 2


def test_regularizer_matches_reference_and_trace_form():
    commonality, labels, r_x, r_y = regularizer_inputs()
    got = commonality_regularizer(commonality, labels, r_x, r_y)
    np.testing.assert_allclose(got, reference_regularizer(commonality, labels, r_x, r_y), rtol=1e-5)
    # Eq. 3's second line: tr(Q^T ((D^x - R^x) + (D^y - R^y)) Q).
    prototypes = (labels.T @ commonality) / labels.sum(axis=0)[:, None]
    weights = (r_x + r_y).astype(np.float64)
    laplacian = np.diag(weights.sum(axis=1)) - weights
    np.testing.assert_allclose(got, np.trace(prototypes.T @ laplacian @ prototypes), rtol=1e-5)


def test_regularizer_absent_labels_take_no_part():
    commonality, labels, r_x, r_y = regularizer_inputs(num_labels=5)
    labels[:, 2] = 0
    r_x[2, :] = r_x[:, 2] = np.nan  # whatever R says about an absent label is ignored
    keep = [0, 1, 3, 4]
    got = commonality_regularizer(commonality, labels, r_x, r_y)
    want = reference_regularizer(
        commonality, labels[:, keep], r_x[np.ix_(keep, keep)], r_y[np.ix_(keep, keep)]
    )
    np.testing.assert_allclose(got, want, rtol=1e-5)
    gradients = jax.jit(jax.grad(losses.commonality_regularizer, argnums=(0, 2, 3)))(
        commonality, labels, r_x, r_y
    )
    assert all(np.isfinite(g).all() for g in gradients)


def test_regularizer_single_sample_per_label_uses_the_rows():
    commonality, _, r_x, r_y = regularizer_inputs(n=4)
    labels = np.eye(4, dtype=np.float32)
    got = commonality_regularizer(commonality, labels, r_x, r_y)
    want = sum(
        0.5 * np.sum((commonality[a] - commonality[b]) ** 2) * (r_x[a, b] + r_y[a, b])
        for a in range(4)
        for b in range(4)
    )
    np.testing.assert_allclose(got, want, rtol=1e-5)


def test_regularizer_zero_when_prototypes_coincide_and_for_one_sample():
    commonality = np.tile(np.arange(5, dtype=np.float32), (6, 1))
    _, labels, r_x, r_y = regularizer_inputs(n=6, k=5)
    # Only the rounding of the label means is left.
    assert abs(commonality_regularizer(commonality, labels, r_x, r_y)) < 1e-10
    one = commonality_regularizer(commonality[:1], np.ones((1, 4), np.float32), r_x, r_y)
    assert one == 0.0


def test_regularizer_gradients():
    with jax.enable_x64(True):
        commonality, labels, r_x, r_y = (
            jnp.asarray(a, jnp.float64) for a in regularizer_inputs(n=8, k=3)
        )
        check_grads(
            jax.jit(lambda c, x, y: losses.commonality_regularizer(c, labels, x, y)),
            (commonality, r_x, r_y),
            order=1,
        )


def test_regularizer_float32_extremes():
    commonality, labels, r_x, r_y = regularizer_inputs()
    big = commonality_regularizer(commonality * 1e15, labels, r_x, r_y)
    base = commonality_regularizer(commonality, labels, r_x, r_y)
    assert np.isfinite(big)
    np.testing.assert_allclose(big / 1e30, base, rtol=1e-5)


def many_label_inputs(n, num_labels, labels_per_row, k=5, seed=0):
    """Labels drawn from the first 3 n of c labels, so most of c is absent from the batch."""
    rng = np.random.default_rng(seed)
    commonality = rng.standard_normal((n, k))
    labels = np.zeros((n, num_labels))
    for row in range(n):
        labels[row, rng.choice(3 * n, labels_per_row, replace=False)] = 1
    r_x, r_y = rng.random((2, num_labels, num_labels))
    return commonality, labels, (r_x + r_x.T) / 2, (r_y + r_y.T) / 2


def reference_relative_regularizer(commonality, labels, r_x, r_y):
    present = labels.any(axis=0)
    pairs = np.outer(present, present)
    pair_weight = 0.5 * np.sum((r_x + r_y)[pairs])
    centred = commonality - commonality.mean(axis=0)
    spread = 2.0 * np.mean(np.sum(centred**2, axis=1))
    return reference_regularizer(commonality, labels, r_x, r_y) / pair_weight / spread


@pytest.mark.parametrize(
    ("n", "labels_per_row", "gathered"), [(40, 1, True), (12, 2, False), (10, 5, False)]
)
@pytest.mark.parametrize("normalization", ["sum", "relative"])
def test_regularizer_many_labels(n, labels_per_row, gathered, normalization):
    # c = 300 labels and a batch of n rows: one label per row gathers the present labels (at
    # most n); more present labels than rows take the [c, c, k] form. NaN in R where a label is
    # absent must stay out of both.
    commonality, labels, r_x, r_y = many_label_inputs(n, 300, labels_per_row)
    assert (np.count_nonzero(labels.any(axis=0)) <= n) == gathered
    absent = np.flatnonzero(~labels.any(axis=0))[:5]
    r_x[absent, :] = r_x[:, absent] = np.nan
    inputs = [np.asarray(a, np.float32) for a in (commonality, labels, r_x, r_y)]
    got = jax.jit(
        lambda c, y, x, z: losses.commonality_regularizer(c, y, x, z, normalization=normalization)
    )(*inputs)
    reference = reference_regularizer if normalization == "sum" else reference_relative_regularizer
    np.testing.assert_allclose(got, reference(commonality, labels, r_x, r_y), rtol=2e-5)
    gradients = jax.jit(
        jax.grad(
            lambda c, y, x, z: losses.commonality_regularizer(
                c, y, x, z, normalization=normalization
            ),
            argnums=(0, 2, 3),
        )
    )(*inputs)
    assert all(np.isfinite(g).all() for g in gradients)


@pytest.mark.parametrize(("n", "labels_per_row"), [(6, 1), (4, 3)])
def test_regularizer_many_labels_gradients(n, labels_per_row):
    # The gathered branch (one label per row) and the full one (12 labels in 4 rows), c = 30.
    with jax.enable_x64(True):
        commonality, labels, r_x, r_y = many_label_inputs(n, 30, labels_per_row, k=3)
        for normalization in ("sum", "relative"):
            check_grads(
                jax.jit(
                    lambda c, x, y, normalization=normalization: losses.commonality_regularizer(
                        c, labels, x, y, normalization=normalization
                    )
                ),
                tuple(jnp.asarray(a) for a in (commonality, r_x, r_y)),
                order=1,
            )


def test_regularizer_bad_shapes():
    commonality, labels, r_x, r_y = regularizer_inputs()
    with pytest.raises(ValueError, match=r"commonality \(20, 6\) and labels \(19, 4\)"):
        losses.commonality_regularizer(commonality, labels[:19], r_x, r_y)
    with pytest.raises(ValueError, match=r"r_y must be \[c, c\] = \(4, 4\).*\(3, 3\)"):
        losses.commonality_regularizer(commonality, labels, r_x, r_y[:3, :3])


def test_reconstruction_loss():
    rng = np.random.default_rng(0)
    target = rng.standard_normal((5, 7)).astype(np.float32)
    reconstruction = rng.standard_normal((5, 7)).astype(np.float32)
    want = sum((target[i, j] - reconstruction[i, j]) ** 2 for i in range(5) for j in range(7)) / (
        5 * 7
    )
    np.testing.assert_allclose(losses.reconstruction_loss(target, reconstruction), want, rtol=1e-6)
    with jax.enable_x64(True):
        check_grads(
            jax.jit(losses.reconstruction_loss),
            (jnp.asarray(target, jnp.float64), jnp.asarray(reconstruction, jnp.float64)),
            order=1,
        )
    with pytest.raises(ValueError, match=r"target \(5, 7\) and reconstruction \(5, 6\)"):
        losses.reconstruction_loss(target, reconstruction[:, :6])


def test_commonality_matching_loss_trains_only_the_estimate():
    rng = np.random.default_rng(1)
    commonality = rng.standard_normal((4, 3)).astype(np.float32)
    estimate = rng.standard_normal((4, 3)).astype(np.float32)
    want = np.mean((commonality - estimate) ** 2)
    np.testing.assert_allclose(
        losses.commonality_matching_loss(commonality, estimate), want, rtol=1e-6
    )
    to_commonality, to_estimate = jax.grad(losses.commonality_matching_loss, argnums=(0, 1))(
        commonality, estimate
    )
    np.testing.assert_array_equal(to_commonality, 0.0)
    np.testing.assert_allclose(to_estimate, 2 * (estimate - commonality) / 12, rtol=1e-6)
    with jax.enable_x64(True):
        check_grads(
            jax.jit(lambda e: losses.commonality_matching_loss(commonality.astype(np.float64), e)),
            (jnp.asarray(estimate, jnp.float64),),
            order=1,
        )


def autoencoder_inputs(n=10, k=4, d_x=6, d_y=5, num_labels=3, seed=2):
    rng = np.random.default_rng(seed)

    def normal(*shape):
        return rng.standard_normal(shape).astype(np.float32)

    commonality, labels, r_x, r_y = regularizer_inputs(n, k, num_labels, seed)
    return dict(
        features_x=normal(n, d_x),
        features_y=normal(n, d_y),
        reconstruction_x=normal(n, d_x),
        reconstruction_y=normal(n, d_y),
        labels=labels,
        r_x=r_x,
        r_y=r_y,
        commonality=commonality,
        individuality_x=normal(n, k),
        individuality_y=normal(n, k),
        commonality_estimates=(normal(n, k), normal(n, k)),
    )


def test_autoencoder_loss_composes_the_terms():
    inputs = autoencoder_inputs()
    total, terms = jax.jit(lambda i: losses.autoencoder_loss(**i, alpha=0.3, beta=0.7))(inputs)
    j1 = losses.commonality_regularizer(
        inputs["commonality"], inputs["labels"], inputs["r_x"], inputs["r_y"]
    )
    j2 = jax.jit(losses.hsic)(inputs["individuality_x"], inputs["individuality_y"])
    j3 = losses.reconstruction_loss(
        inputs["features_x"], inputs["reconstruction_x"]
    ) + losses.reconstruction_loss(inputs["features_y"], inputs["reconstruction_y"])
    j4 = sum(
        losses.commonality_matching_loss(inputs["commonality"], estimate)
        for estimate in inputs["commonality_estimates"]
    )
    assert set(terms) == {"j1_commonality", "j2_hsic", "j3_reconstruction", "j4_match", "total"}
    for key, want in (
        ("j1_commonality", j1),
        ("j2_hsic", j2),
        ("j3_reconstruction", j3),
        ("j4_match", j4),
    ):
        np.testing.assert_allclose(terms[key], want, rtol=1e-5, err_msg=key)
    np.testing.assert_allclose(total, 0.3 * j1 + 0.7 * j2 + j3 + j4, rtol=1e-5)
    np.testing.assert_allclose(terms["total"], total)


def test_autoencoder_loss_variants_skip_terms():
    inputs = autoencoder_inputs()
    without_commonality = dict(inputs, commonality=None, commonality_estimates=())
    _, terms = jax.jit(lambda i: losses.autoencoder_loss(**i))(without_commonality)
    assert terms["j1_commonality"] == 0.0 and terms["j4_match"] == 0.0
    assert terms["j2_hsic"] > 0.0
    without_individuality = dict(inputs, individuality_x=None, individuality_y=None)
    total, terms = jax.jit(lambda i: losses.autoencoder_loss(**i))(without_individuality)
    assert terms["j2_hsic"] == 0.0
    np.testing.assert_allclose(
        total,
        0.05 * terms["j1_commonality"] + terms["j3_reconstruction"] + terms["j4_match"],
        rtol=1e-6,
    )


def test_autoencoder_loss_gradient_is_finite_and_reaches_every_input():
    inputs = autoencoder_inputs()
    names = ("commonality", "individuality_x", "individuality_y", "reconstruction_x")

    def total(parts):
        return losses.autoencoder_loss(**dict(inputs, **parts))[0]

    gradients = jax.jit(jax.grad(total))({name: inputs[name] for name in names})
    for name in names:
        assert np.isfinite(gradients[name]).all() and np.any(gradients[name] != 0), name


def test_autoencoder_loss_bad_combinations():
    inputs = autoencoder_inputs()
    with pytest.raises(ValueError, match="individuality_x and individuality_y"):
        losses.autoencoder_loss(**dict(inputs, individuality_y=None))
    with pytest.raises(ValueError, match="commonality_estimates need commonality"):
        losses.autoencoder_loss(**dict(inputs, commonality=None))
    with pytest.raises(TypeError):
        losses.autoencoder_loss(*inputs.values())  # keyword-only


def test_relative_regularizer_matches_reference_and_is_scale_free():
    commonality, labels, r_x, r_y = regularizer_inputs()
    got = losses.commonality_regularizer(commonality, labels, r_x, r_y, normalization="relative")
    c64 = np.asarray(commonality, np.float64)
    pair_weight = 0.5 * np.sum(r_x + r_y)
    spread = 2.0 * np.mean(np.sum((c64 - c64.mean(0)) ** 2, axis=1))
    expected = reference_regularizer(commonality, labels, r_x, r_y) / pair_weight / spread
    np.testing.assert_allclose(got, expected, rtol=1e-5)
    # Shrinking C* no longer lowers J1 (the collapse the sum allowed), and c^2 pairs do not
    # inflate it: a ratio of prototype distance to sample spread stays below ~2.
    scaled = losses.commonality_regularizer(
        0.01 * commonality, labels, r_x, r_y, normalization="relative"
    )
    np.testing.assert_allclose(scaled, got, rtol=1e-4)
    assert 0 < float(got) < 2
    check_grads(
        lambda c: losses.commonality_regularizer(c, labels, r_x, r_y, normalization="relative"),
        (commonality.astype(np.float64),),
        order=1,
        modes=["rev"],
        rtol=1e-3,
    )


def test_relative_regularizer_constant_commonality_is_zero_with_finite_gradient():
    _, labels, r_x, r_y = regularizer_inputs()
    constant = np.ones((labels.shape[0], 3), np.float32)
    value, grad = jax.value_and_grad(
        lambda c: losses.commonality_regularizer(c, labels, r_x, r_y, normalization="relative")
    )(constant)
    assert float(value) == 0.0
    assert np.all(np.isfinite(np.asarray(grad)))
    with pytest.raises(ValueError, match="normalization"):
        losses.commonality_regularizer(constant, labels, r_x, r_y, normalization="mean")
