"""TextMLP's dense and embedding-bag paths, and sparse_bag."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from flax import nnx

from ltcmh_jax.models import TextMLP, sparse_bag
from ltcmh_jax.models.text import _kernel_gradient, _sort_by_tag, embedding_bag

TEXT_DIM, HIDDEN, BITS = 40, 32, 8


def _bag_of_words(seed: int, n: int = 6) -> np.ndarray:
    rng = np.random.default_rng(seed)
    text = (rng.random((n, TEXT_DIM)) < 0.15) * rng.uniform(0.5, 2.0, (n, TEXT_DIM))
    text[0] = 0.0  # a sample with no tag at all
    text[1, 0] = 1.0  # tag 0 also serves as the padding index
    return text.astype(np.float32)


def test_sparse_bag_lists_each_rows_nonzeros_and_pads_with_index_zero_value_zero():
    text = np.array([[0, 3, 0, 1], [0, 0, 0, 0], [2, 0, 0, 0]], np.float32)
    indices, values = sparse_bag(text)
    assert indices.dtype == np.int32 and values.dtype == np.float32
    np.testing.assert_array_equal(indices, [[1, 3], [0, 0], [0, 0]])
    np.testing.assert_array_equal(values, [[3, 1], [0, 0], [2, 0]])


def test_sparse_bag_round_trips_to_the_dense_matrix():
    text = _bag_of_words(0, n=20)
    indices, values = sparse_bag(text)
    assert indices.shape[1] == np.count_nonzero(text, axis=1).max()
    dense = np.zeros_like(text)
    np.add.at(dense, (np.arange(len(text))[:, None], indices), values)
    np.testing.assert_array_equal(dense, text)


def test_sparse_bag_of_an_all_zero_matrix_has_one_padding_slot():
    indices, values = sparse_bag(np.zeros((3, 5)))
    assert indices.shape == values.shape == (3, 1)
    assert not values.any()


def test_sparse_bag_rejects_a_vector():
    with pytest.raises(ValueError, match=r"\[n, d_t\].*\(5,\)"):
        sparse_bag(np.zeros(5))


def test_sparse_path_gives_the_dense_numbers_and_the_dense_gradient():
    net = TextMLP(TEXT_DIM, HIDDEN, BITS, rngs=nnx.Rngs(0))
    text = _bag_of_words(1)
    indices, values = sparse_bag(text)
    graphdef, params = nnx.split(net)
    weights = jnp.asarray(np.random.default_rng(2).normal(size=(len(text), BITS)), jnp.float32)

    def dense_loss(params):
        return jnp.sum(nnx.merge(graphdef, params)(text) * weights)

    def sparse_loss(params):
        return jnp.sum(nnx.merge(graphdef, params).sparse(indices, values) * weights)

    np.testing.assert_allclose(net.sparse(indices, values), net(text), rtol=1e-5, atol=1e-5)
    dense_grads = jax.grad(dense_loss)(params)
    sparse_grads = jax.grad(sparse_loss)(params)
    for (path, dense), (_, sparse) in zip(
        nnx.to_flat_state(dense_grads), nnx.to_flat_state(sparse_grads), strict=True
    ):
        np.testing.assert_allclose(sparse[...], dense[...], rtol=1e-5, atol=1e-5, err_msg=path)
    # The hidden kernel's gradient is nonzero exactly on the rows of tags that occur.
    kernel_grad = np.asarray(sparse_grads["hidden_layer"]["kernel"][...])
    used = np.flatnonzero(text.any(axis=0))
    assert np.abs(kernel_grad[used]).sum(axis=1).min() > 0
    assert not np.delete(kernel_grad, used, axis=0).any()


def test_text_mlp_is_linear_relu_linear():
    net = TextMLP(TEXT_DIM, HIDDEN, BITS, rngs=nnx.Rngs(0))
    text = _bag_of_words(3)
    hidden = np.maximum(text @ net.hidden_layer.kernel[...] + net.hidden_layer.bias[...], 0)
    expected = hidden @ net.output_layer.kernel[...] + net.output_layer.bias[...]
    np.testing.assert_allclose(net(text), expected, rtol=1e-5, atol=1e-5)


def test_text_mlp_names_the_bad_shape():
    net = TextMLP(TEXT_DIM, HIDDEN, BITS, rngs=nnx.Rngs(0))
    with pytest.raises(ValueError, match=r"\[n, 40\].*\(2, 39\)"):
        net(np.zeros((2, 39)))
    with pytest.raises(ValueError, match="one shape"):
        net.sparse(np.zeros((2, 3), np.int32), np.zeros((2, 4)))


def test_embedding_bag_gradients_match_the_dense_product_when_tags_are_frequent():
    # 40 rows with tag 3 in every row and tag 7 in most: more occurrences of one tag than the
    # backward's per-tag table holds, so its overflow (scatter-add) path is exercised too.
    text = _bag_of_words(4, n=40)
    text[:, 3] = 1.5
    text[::2, 7] = 0.5
    indices, values = (jnp.asarray(array) for array in sparse_bag(text))
    kernel = jnp.asarray(np.random.default_rng(5).normal(size=(TEXT_DIM, HIDDEN)), jnp.float32)
    weights = jnp.asarray(np.random.default_rng(6).normal(size=(40, HIDDEN)), jnp.float32)

    def dense_loss(kernel, text):
        return jnp.sum(jnp.tanh(text @ kernel) * weights)

    def sparse_loss(kernel, values):
        return jnp.sum(jnp.tanh(embedding_bag(kernel, indices, values)) * weights)

    to_kernel, to_text = jax.grad(dense_loss, argnums=(0, 1))(kernel, jnp.asarray(text))
    sparse_to_kernel, to_values = jax.jit(jax.grad(sparse_loss, argnums=(0, 1)))(kernel, values)
    np.testing.assert_allclose(sparse_to_kernel, to_kernel, rtol=1e-5, atol=1e-5)
    # d/d values[i, j] is d/d text[i, indices[i, j]] (padding slots too: they point at tag 0).
    want_to_values = np.take_along_axis(np.asarray(to_text), np.asarray(indices), axis=1)
    np.testing.assert_allclose(to_values, want_to_values, rtol=1e-5, atol=1e-5)


def _primitives(jaxpr) -> list[str]:
    names = []
    for equation in jaxpr.eqns:
        names.append(equation.primitive.name)
        for value in equation.params.values():
            for inner in value if isinstance(value, (list, tuple)) else [value]:
                if hasattr(inner, "jaxpr"):
                    names.extend(_primitives(getattr(inner.jaxpr, "jaxpr", inner.jaxpr)))
    return names


def test_kernel_gradient_scatters_only_by_adding():
    # A scatter-set whose out-of-bounds indices are dropped lost rows of this gradient on a GPU
    # (session 10): the table and the overflow list are gathered, and the one scatter left is
    # the overflow's in-bounds add.
    text = _bag_of_words(4, n=40)
    text[:, 3] = 1.5
    indices, values = (jnp.asarray(array) for array in sparse_bag(text))
    bag_gradient = jnp.ones((40, HIDDEN), jnp.float32)
    jaxpr = jax.make_jaxpr(_kernel_gradient, static_argnums=3)(
        bag_gradient, indices, values, TEXT_DIM
    )
    scatters = [name for name in _primitives(jaxpr.jaxpr) if name.startswith("scatter")]
    assert scatters == ["scatter-add"], scatters


@pytest.mark.parametrize("num_tags", [9, 2**31], ids=["packed_keys", "argsort"])
def test_sort_by_tag_is_a_stable_sort_on_both_paths(num_tags):
    # num_tags = 2^31 leaves no room for tag * m + position in int32: the argsort path.
    tags = np.array([3, 9, 0, 3, 9, 1, 3, 0, 9, 2], np.int32)
    got_tags, order = jax.jit(_sort_by_tag, static_argnums=1)(jnp.asarray(tags), num_tags)
    want = np.argsort(tags, kind="stable")
    np.testing.assert_array_equal(order, want)
    np.testing.assert_array_equal(got_tags, tags[want])
    assert order.dtype == jnp.int32


def test_text_dropout_is_the_reference_mask_on_the_hidden_layer_on_both_paths():
    net = TextMLP(TEXT_DIM, HIDDEN, BITS, rngs=nnx.Rngs(0))
    text = _bag_of_words(3)
    key, rate = jax.random.key(7), 0.5
    hidden = np.maximum(text @ net.hidden_layer.kernel[...] + net.hidden_layer.bias[...], 0)
    keep = np.asarray(jax.random.bernoulli(key, 1.0 - rate, hidden.shape))
    expected = np.where(keep, hidden / (1.0 - rate), 0.0) @ net.output_layer.kernel[...]
    expected = expected + net.output_layer.bias[...]
    dense = net(text, dropout_rate=rate, dropout_key=key)
    np.testing.assert_allclose(dense, expected, rtol=1e-5, atol=1e-5)
    indices, values = sparse_bag(text)
    sparse = net.sparse(indices, values, dropout_rate=rate, dropout_key=key)
    np.testing.assert_allclose(sparse, dense, rtol=1e-5, atol=1e-5)
    # The evaluation pass (no key) is the plain net, whatever the rate.
    np.testing.assert_allclose(net(text, dropout_rate=rate), net(text), rtol=0, atol=0)
    assert not np.allclose(dense, net(text), atol=1e-3)
