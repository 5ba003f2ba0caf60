"""Meta features: Eq. 8, MetaCMH's label memory and label_centroids."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from flax import nnx

from ltcmh_jax.models import Memory, MemoryMetaFeature, MetaFeature, label_centroids

BITS, LABELS = 6, 4


def _array(seed: int, shape) -> np.ndarray:
    return np.random.default_rng(seed).normal(size=shape).astype(np.float32)


def _linear(layer, inputs):
    return inputs @ np.asarray(layer.kernel[...]) + np.asarray(layer.bias[...])


def test_meta_feature_is_eq8():
    meta = MetaFeature(BITS, rngs=nnx.Rngs(0))
    direct, commonality, individuality = (_array(seed, (5, BITS)) for seed in range(3))
    expected = (
        direct
        + np.tanh(_linear(meta.commonality_selector, direct)) * commonality
        + np.tanh(_linear(meta.individuality_selector, direct)) * individuality
    )
    got = meta(direct, commonality=commonality, individuality=individuality)
    np.testing.assert_allclose(got, expected, rtol=1e-5, atol=1e-5)


def test_selectors_are_the_gates_eq8_multiplies_by():
    meta = MetaFeature(BITS, use_individuality=False, rngs=nnx.Rngs(0))
    direct = _array(0, (5, BITS))
    commonality_gate, individuality_gate = meta.selectors(direct)
    np.testing.assert_allclose(
        commonality_gate, np.tanh(_linear(meta.commonality_selector, direct)), rtol=1e-5
    )
    assert individuality_gate is None
    # The normalised form starts closed: both gates are exactly 0 (M^v = F^v).
    closed = MetaFeature(BITS, normalize_selector_input=True, rngs=nnx.Rngs(0))
    for gate in closed.selectors(direct * 1e3):
        np.testing.assert_array_equal(gate, 0.0)


def test_meta_feature_with_one_memory_has_one_selector_and_refuses_the_other():
    meta = MetaFeature(BITS, use_commonality=False, rngs=nnx.Rngs(0))
    assert meta.commonality_selector is None
    direct, individuality = _array(0, (5, BITS)), _array(1, (5, BITS))
    expected = direct + np.tanh(_linear(meta.individuality_selector, direct)) * individuality
    np.testing.assert_allclose(
        meta(direct, individuality=individuality), expected, rtol=1e-5, atol=1e-5
    )
    with pytest.raises(ValueError, match="without a commonality selector"):
        meta(direct, commonality=direct, individuality=individuality)
    with pytest.raises(ValueError, match="individuality=None"):
        meta(direct)


def test_label_centroids_average_every_sample_of_each_label_and_zero_an_absent_label():
    features = _array(0, (7, BITS))
    labels = np.zeros((7, LABELS), np.float32)
    labels[[0, 1, 2], 0] = 1
    labels[[2, 3], 1] = 1  # sample 2 has labels 0 and 1: it counts for both
    labels[[4, 5, 6], 3] = 1  # label 2 has no sample
    expected = np.zeros((LABELS, BITS), np.float32)
    for label in range(LABELS):
        members = labels[:, label] > 0
        if members.any():
            expected[label] = features[members].mean(axis=0)
    got = label_centroids(features, labels)
    np.testing.assert_allclose(got, expected, rtol=1e-6, atol=1e-6)
    assert not np.asarray(got[2]).any()
    gradient = jax.grad(lambda f: jnp.sum(label_centroids(f, labels) ** 2))(features)
    assert np.isfinite(np.asarray(gradient)).all()


def test_label_centroids_name_mismatched_shapes():
    with pytest.raises(ValueError, match=r"\(3, 6\) and \(4, 2\)"):
        label_centroids(np.zeros((3, 6)), np.zeros((4, 2)))


def test_memory_meta_feature_mixes_centroids_by_the_hallucinator():
    meta = MemoryMetaFeature(BITS, LABELS, rngs=nnx.Rngs(0))
    direct = _array(0, (5, BITS))
    # Zero centroids (before the first set_centroids): the meta feature is the direct feature.
    np.testing.assert_allclose(meta(direct), direct)
    centroids = _array(1, (LABELS, BITS))
    meta.set_centroids(centroids)
    logits = _linear(meta.hallucinator, direct)
    weights = np.exp(logits - logits.max(axis=1, keepdims=True))
    weights /= weights.sum(axis=1, keepdims=True)
    expected = direct + np.tanh(_linear(meta.selector, direct)) * (weights @ centroids)
    np.testing.assert_allclose(meta(direct), expected, rtol=1e-5, atol=1e-5)


def test_memory_centroids_are_state_but_not_parameters():
    meta = MemoryMetaFeature(BITS, LABELS, rngs=nnx.Rngs(0))
    assert isinstance(meta.centroids, Memory) and not isinstance(meta.centroids, nnx.Param)
    param_paths = {path for path, _ in nnx.to_flat_state(nnx.state(meta, nnx.Param))}
    memory_paths = {path for path, _ in nnx.to_flat_state(nnx.state(meta, Memory))}
    assert memory_paths == {("centroids",)}
    assert ("centroids",) not in param_paths
    with pytest.raises(ValueError, match=r"\(4, 6\), got \(3, 6\)"):
        meta.set_centroids(np.zeros((3, BITS)))


def test_normalized_selectors_start_closed():
    meta = MetaFeature(BITS, normalize_selector_input=True, rngs=nnx.Rngs(0))
    direct, commonality, individuality = (_array(seed, (5, BITS)) for seed in range(3))
    got = meta(direct, commonality=commonality, individuality=individuality)
    np.testing.assert_array_equal(got, direct)


def test_normalized_selector_input_gates_the_same_whatever_the_scale_of_f():
    meta = MetaFeature(BITS, normalize_selector_input=True, rngs=nnx.Rngs(0))
    for selector in (meta.commonality_selector, meta.individuality_selector):
        selector.kernel[...] = _array(7, (BITS, BITS))
    direct, commonality, individuality = (_array(seed, (5, BITS)) for seed in range(3))

    def rms(values):
        return np.sqrt(np.mean(values**2, axis=1, keepdims=True))

    unit = direct / rms(direct)
    expected = (
        direct
        + np.tanh(_linear(meta.commonality_selector, unit))
        * commonality
        / rms(commonality)
        * rms(direct)
        + np.tanh(_linear(meta.individuality_selector, unit))
        * individuality
        / rms(individuality)
        * rms(direct)
    )
    got = meta(direct, commonality=commonality, individuality=individuality)
    np.testing.assert_allclose(got, expected, rtol=1e-4, atol=1e-5)
    # F scaled by 1e-2 and the memories by 1e3: M^v is F^v's scale times the same shape.
    small = meta(0.01 * direct, commonality=1e3 * commonality, individuality=individuality)
    np.testing.assert_allclose(np.asarray(small), 0.01 * expected, rtol=1e-3, atol=1e-5)


def test_normalized_meta_feature_has_finite_gradients_at_a_zero_row():
    # A text with no words gives F^y = 0 exactly (zero biases at the start).
    meta = MetaFeature(BITS, normalize_selector_input=True, rngs=nnx.Rngs(0))
    for selector in (meta.commonality_selector, meta.individuality_selector):
        selector.kernel[...] = _array(7, (BITS, BITS))
    direct = _array(0, (3, BITS))
    direct[1] = 0.0
    commonality, individuality = _array(1, (3, BITS)), _array(2, (3, BITS))
    commonality[2] = 0.0

    def total(inputs):
        return jnp.sum(meta(inputs, commonality=commonality, individuality=individuality) ** 2)

    gradient = jax.grad(total)(jnp.asarray(direct))
    assert np.all(np.isfinite(np.asarray(gradient)))
