"""Tests for S, the DCMH likelihood and Loss2 (Eqs. 9, 10) against NumPy and DCMH's formula."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from jax.test_util import check_grads

from ltcmh_jax import losses


def reference_likelihood(m_x, m_y, similarity):
    """-sum_ij (S_ij phi_ij - log(1 + e^phi_ij)), phi = M^x M^y^T / 2, by loops in float64."""
    total = 0.0
    for i in range(len(m_x)):
        for j in range(len(m_y)):
            phi = 0.5 * float(np.dot(m_x[i].astype(np.float64), m_y[j]))
            total -= similarity[i, j] * phi - np.log1p(np.exp(phi))
    return total


def hashing_inputs(n_batch=6, n_buffer=15, k=8, num_labels=5, seed=0):
    rng = np.random.default_rng(seed)
    labels = (rng.random((n_buffer, num_labels)) < 0.3).astype(np.float32)
    batch = rng.choice(n_buffer, n_batch, replace=False)
    m_buffer = rng.standard_normal((n_buffer, k)).astype(np.float32)
    m_batch = rng.standard_normal((n_batch, k)).astype(np.float32)
    codes = np.sign(rng.standard_normal((n_batch, k))).astype(np.float32)
    return batch, labels, m_batch, m_buffer, codes


def test_similarity_matrix_matches_loops():
    _, labels, *_ = hashing_inputs()
    got = np.asarray(jax.jit(losses.similarity_matrix)(labels[:4], labels))
    want = [
        [
            float(any(labels[i, c] and labels[j, c] for c in range(labels.shape[1])))
            for j in range(15)
        ]
        for i in range(4)
    ]
    np.testing.assert_array_equal(got, want)
    assert got.dtype == np.float32
    np.testing.assert_array_equal(
        losses.similarity_matrix(labels.astype(bool), labels),
        losses.similarity_matrix(labels, labels),
    )


@pytest.mark.parametrize(
    ("labels_per_row", "with_label_0", "gathered"),
    [(1, False, True), (2, True, True), (4, False, False)],
)
def test_similarity_matrix_many_labels(labels_per_row, with_label_0, gathered):
    # c = 300 labels against a batch of 8 rows. Rows 0, 1, 4, 5 repeat rows 2 and 3 and row 7
    # has no label, so fewer than 8 labels are present and the padding slots repeat column 0, absent
    # from the batch or (with_label_0) present; 4 labels per row present more than 8 labels,
    # which takes the product over all c.
    rng = np.random.default_rng(labels_per_row)
    num_labels, n = 300, 200
    labels = np.zeros((n, num_labels), np.float32)
    for row in range(n):
        labels[row, rng.choice(np.arange(1, 40), labels_per_row, replace=False)] = 1
    labels[-1, 0] = 1
    batch = labels[:8].copy()
    batch[[0, 1, 4, 5]] = batch[[2, 3, 2, 3]]
    batch[7] = 0
    batch[0, 0] = with_label_0
    present = np.count_nonzero(batch.any(axis=0))
    assert (present < len(batch)) == gathered
    got = np.asarray(jax.jit(losses.similarity_matrix)(batch, labels))
    np.testing.assert_array_equal(got, ((batch @ labels.T) > 0).astype(np.float32))


def test_similarity_matrix_unlabelled_rows_and_bad_shapes():
    labels = np.array([[0, 0, 0], [1, 0, 1]], np.int32)
    np.testing.assert_array_equal(losses.similarity_matrix(labels, labels), [[0, 0], [0, 1]])
    with pytest.raises(ValueError, match=r"must share c, got \(2, 3\) and \(2, 2\)"):
        losses.similarity_matrix(labels, labels[:, :2])


@pytest.mark.parametrize("reduction", ["mean", "sum"])
def test_likelihood_matches_reference_batch_against_buffer(reduction):
    batch, labels, m_batch, m_buffer, _ = hashing_inputs()
    similarity = losses.similarity_matrix(labels[batch], labels)
    got = jax.jit(losses.dcmh_likelihood, static_argnames="reduction")(
        m_batch, m_buffer, similarity, reduction=reduction
    )
    want = reference_likelihood(m_batch, m_buffer, np.asarray(similarity))
    if reduction == "mean":
        want /= m_batch.shape[0] * m_buffer.shape[0]
    np.testing.assert_allclose(got, want, rtol=1e-5)


def test_likelihood_soft_similarity():
    _, _, m_batch, m_buffer, _ = hashing_inputs()
    similarity = np.random.default_rng(3).random((6, 15)).astype(np.float32)
    np.testing.assert_allclose(
        losses.dcmh_likelihood(m_batch, m_buffer, similarity, reduction="sum"),
        reference_likelihood(m_batch, m_buffer, similarity),
        rtol=1e-5,
    )


def test_likelihood_finite_at_extreme_phi_in_float32():
    # phi = +-1e4 in float32: log(1 + exp(phi)) would overflow at phi ~ 88.
    scale = np.float32(100 * np.sqrt(2))
    m_x = scale * np.array([[1.0, 1.0], [-1.0, -1.0]], np.float32)
    m_y = scale * np.eye(2, dtype=np.float32)
    similarity = np.eye(2, dtype=np.float32)  # half the pairs confidently right, half wrong
    phi = 0.5 * m_x @ m_y.T
    assert np.abs(phi).max() == pytest.approx(1e4)
    value, (to_x, to_y) = jax.jit(
        jax.value_and_grad(
            lambda a, b: losses.dcmh_likelihood(a, b, similarity, reduction="sum"), argnums=(0, 1)
        )
    )(m_x, m_y)
    # Exact: softplus(phi) - S phi = max(phi, 0) - S phi + log1p(exp(-|phi|)).
    want = np.sum(np.maximum(phi, 0) - similarity * phi + np.log1p(np.exp(-np.abs(phi))))
    np.testing.assert_allclose(value, want, rtol=1e-6)
    assert np.isfinite(to_x).all() and np.isfinite(to_y).all()
    # d/dphi = sigmoid(phi) - S: 0 for a confident right answer, +-1 for a confident wrong one.
    sigmoid = (phi > 0).astype(np.float32)
    np.testing.assert_allclose(to_x, 0.5 * (sigmoid - similarity) @ m_y, atol=1e-3)


def test_likelihood_gradients():
    with jax.enable_x64(True):
        batch, labels, m_batch, m_buffer, _ = hashing_inputs(n_batch=3, n_buffer=5, k=4)
        similarity = np.asarray(losses.similarity_matrix(labels[batch], labels))
        check_grads(
            jax.jit(lambda a, b: losses.dcmh_likelihood(a, b, similarity)),
            (jnp.asarray(m_batch, jnp.float64), jnp.asarray(m_buffer, jnp.float64)),
            order=1,
        )


def test_likelihood_gradient_at_phi_zero_is_half_minus_similarity():
    # At phi = 0 the derivative is sigmoid(0) - S = 1/2 - S; autodiff of the max(phi, 0) and
    # |phi| in the stable form would give -S there.
    m_x = np.zeros((2, 3), np.float32)
    m_y = np.random.default_rng(4).standard_normal((4, 3)).astype(np.float32)
    similarity = np.array([[1, 0, 1, 0], [0, 0, 1, 1]], np.float32)
    value, to_x = jax.value_and_grad(
        lambda a: losses.dcmh_likelihood(a, m_y, similarity, reduction="sum")
    )(m_x)
    np.testing.assert_allclose(value, 8 * np.log(2.0), rtol=1e-6)
    np.testing.assert_allclose(to_x, 0.5 * (0.5 - similarity) @ m_y, rtol=1e-6)


def test_likelihood_second_order_and_similarity_gradients():
    # The hand-written derivative must itself differentiate, and S may be a soft, trained input.
    with jax.enable_x64(True):
        _, _, m_batch, m_buffer, _ = hashing_inputs(n_batch=3, n_buffer=5, k=4)
        similarity = np.random.default_rng(5).random((3, 5))
        check_grads(
            lambda a, b, s: losses.dcmh_likelihood(a, b, s, reduction="sum"),
            (jnp.asarray(m_batch, jnp.float64), jnp.asarray(m_buffer, jnp.float64), similarity),
            order=2,
        )


def test_likelihood_bad_input():
    _, _, m_batch, m_buffer, _ = hashing_inputs()
    with pytest.raises(ValueError, match=r"similarity must be \[n_a, n_b\] = \(6, 15\)"):
        losses.dcmh_likelihood(m_batch, m_buffer, np.zeros((15, 6)))
    with pytest.raises(ValueError, match="reduction must be one of"):
        losses.dcmh_likelihood(m_batch, m_buffer, np.zeros((6, 15)), reduction="max")
    with pytest.raises(ValueError, match=r"must share k, got \(6, 8\) and \(15, 7\)"):
        losses.dcmh_likelihood(m_batch, m_buffer[:, :7], np.zeros((6, 15)))


def test_quantization_and_balance():
    _, _, m_batch, m_buffer, codes = hashing_inputs()
    want = sum(
        (codes[i, j] - m_batch[i, j]) ** 2 for i in range(len(codes)) for j in range(codes.shape[1])
    )
    np.testing.assert_allclose(losses.quantization_loss(codes, m_batch), want, rtol=1e-5)
    column_sums = [sum(m_batch[i, j] for i in range(len(m_batch))) for j in range(8)]
    np.testing.assert_allclose(
        losses.balance_loss(m_batch), sum(s * s for s in column_sums), rtol=1e-5
    )
    offset = m_buffer.sum(axis=0)
    np.testing.assert_allclose(
        losses.balance_loss(m_batch, offset=offset),
        sum((s + o) ** 2 for s, o in zip(column_sums, offset, strict=True)),
        rtol=1e-5,
    )
    with jax.enable_x64(True):
        check_grads(
            jax.jit(losses.quantization_loss),
            (jnp.asarray(codes, jnp.float64), jnp.asarray(m_batch, jnp.float64)),
            order=1,
        )
        check_grads(
            jax.jit(lambda m, o: losses.balance_loss(m, offset=o)),
            (jnp.asarray(m_batch, jnp.float64), jnp.asarray(offset, jnp.float64)),
            order=1,
        )
    with pytest.raises(ValueError, match=r"codes \(6, 8\) and features \(6, 7\)"):
        losses.quantization_loss(codes, m_batch[:, :7])
    with pytest.raises(ValueError, match=r"offset must be \[k\] = \(8,\), got \(7,\)"):
        losses.balance_loss(m_batch, offset=offset[:7])


def test_hash_loss_is_dcmh_formula():
    batch, labels, m_batch, m_buffer, codes = hashing_inputs()
    own_buffer = np.random.default_rng(4).standard_normal((15, 8)).astype(np.float32)
    outside = np.setdiff1d(np.arange(15), batch)
    offset = own_buffer[outside].sum(axis=0)
    similarity = losses.similarity_matrix(labels[batch], labels)
    total, terms = jax.jit(
        lambda *args: losses.hash_loss(*args, gamma=0.5, eta=2.0, balance_offset=offset)
    )(m_batch, m_buffer, similarity, codes)
    # DCMH's train loop: (logloss + gamma * quantization + eta * balance) / (batch * num_train).
    logloss = reference_likelihood(m_batch, m_buffer, np.asarray(similarity))
    quantization = np.sum((codes - m_batch) ** 2)
    balance = np.sum((m_batch.sum(axis=0) + own_buffer[outside].sum(axis=0)) ** 2)
    normalizer = 6 * 15
    np.testing.assert_allclose(
        total, (logloss + 0.5 * quantization + 2.0 * balance) / normalizer, rtol=1e-5
    )
    assert set(terms) == {"likelihood", "quantization", "balance", "total"}
    np.testing.assert_allclose(terms["likelihood"], logloss / normalizer, rtol=1e-5)
    np.testing.assert_allclose(terms["quantization"], quantization / normalizer, rtol=1e-5)
    np.testing.assert_allclose(terms["balance"], balance / normalizer, rtol=1e-5)
    np.testing.assert_allclose(terms["total"], total)


def test_hash_loss_custom_normalizer_and_gradient():
    batch, labels, m_batch, m_buffer, codes = hashing_inputs()
    similarity = losses.similarity_matrix(labels[batch], labels)
    default, _ = losses.hash_loss(m_batch, m_buffer, similarity, codes)
    unnormalised, _ = losses.hash_loss(m_batch, m_buffer, similarity, codes, normalizer=1.0)
    np.testing.assert_allclose(unnormalised, default * 90, rtol=1e-5)
    gradient = jax.grad(lambda m: losses.hash_loss(m, m_buffer, similarity, codes)[0])(m_batch)
    assert np.isfinite(gradient).all() and np.any(gradient != 0)


def test_single_sample_batch_and_buffer():
    m_x = np.array([[3.0, -1.0]], np.float32)
    m_y = np.array([[2.0, 2.0]], np.float32)
    similarity = losses.similarity_matrix(np.array([[1, 0]]), np.array([[1, 1]]))
    np.testing.assert_array_equal(similarity, [[1.0]])
    total, _ = losses.hash_loss(m_x, m_y, similarity, np.sign(m_x), eta=0.0)
    phi = 0.5 * (3.0 * 2.0 - 2.0)
    np.testing.assert_allclose(total, np.log1p(np.exp(-phi)) + np.sum((np.sign(m_x) - m_x) ** 2))


@pytest.mark.parametrize("num_labels", [5, 32, 33, 70])
def test_pack_labels_shares_a_bit_exactly_when_similarity_is_one(num_labels):
    rng = np.random.default_rng(num_labels)
    labels = (rng.random((9, num_labels)) < 0.1).astype(np.float32)
    labels[0] = 0  # an unlabelled row shares nothing
    bits = np.asarray(losses.pack_labels(labels))
    assert bits.dtype == np.uint32 and bits.shape == (9, -(-num_labels // 32))
    shares = np.array([[np.any(bits[i] & bits[j]) for j in range(9)] for i in range(9)])
    np.testing.assert_array_equal(shares, losses.similarity_matrix(labels, labels))
    # Bit j of word w is label 32 w + j.
    rows, columns = np.nonzero(labels)
    np.testing.assert_array_equal(bits[rows, columns // 32] >> (columns % 32) & 1, 1)


@pytest.mark.parametrize("block_size", [None, 1, 4, 6, 15, 100])
@pytest.mark.parametrize("reduction", ["mean", "sum"])
def test_blocked_likelihood_matches_reference(block_size, reduction):
    # 15 buffer rows: blocks of 4 and 6 do not divide it, so the last block overlaps.
    batch, labels, m_batch, m_buffer, _ = hashing_inputs()
    got = jax.jit(
        lambda a, b: losses.blocked_dcmh_likelihood(
            a, b, labels[batch], labels, block_size=block_size, reduction=reduction
        )
    )(m_batch, m_buffer)
    want = reference_likelihood(
        m_batch, m_buffer, np.asarray(losses.similarity_matrix(labels[batch], labels))
    )
    if reduction == "mean":
        want /= m_batch.shape[0] * m_buffer.shape[0]
    np.testing.assert_allclose(got, want, rtol=1e-5)


@pytest.mark.parametrize("block_size", [None, 4])
def test_blocked_likelihood_gradients_are_the_unfused_ones(block_size):
    batch, labels, m_batch, m_buffer, _ = hashing_inputs(num_labels=40)
    similarity = losses.similarity_matrix(labels[batch], labels)
    want = jax.grad(
        lambda a, b: losses.dcmh_likelihood(a, b, similarity, reduction="sum"), argnums=(0, 1)
    )(m_batch, m_buffer)
    got = jax.jit(
        jax.grad(
            lambda a, b: losses.blocked_dcmh_likelihood(
                a, b, labels[batch], labels, block_size=block_size, reduction="sum"
            ),
            argnums=(0, 1),
        )
    )(m_batch, m_buffer)
    for got_part, want_part in zip(got, want, strict=True):
        np.testing.assert_allclose(got_part, want_part, rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("pair_weights", [(1.0, 1.0), (2.5, 0.5)])
def test_blocked_likelihood_numerical_gradients(pair_weights):
    # (1, 1): Eq. 10; (2.5, 0.5): --pair_weighting=balanced's weighted form.
    with jax.enable_x64(True):
        batch, labels, m_batch, m_buffer, _ = hashing_inputs(n_batch=3, n_buffer=7, k=4)
        check_grads(
            jax.jit(
                lambda a, b: losses.blocked_dcmh_likelihood(
                    a,
                    b,
                    labels[batch[:3]],
                    labels[:7],
                    block_size=3,
                    reduction="sum",
                    pair_weights=pair_weights,
                )
            ),
            (jnp.asarray(m_batch, jnp.float64), jnp.asarray(m_buffer[:7], jnp.float64)),
            order=1,
            modes=("rev",),
        )


def test_blocked_likelihood_bfloat16_products_within_documented_tolerance():
    # docs/DESIGN.md, Mixed precision: bfloat16 inputs of the two products (float32
    # accumulation) move the loss by < 1e-3 and its gradient by < 1e-2 (relative).
    rng = np.random.default_rng(7)
    labels = (rng.random((600, 24)) < 0.12).astype(np.float32)
    m_batch = rng.standard_normal((32, 64)).astype(np.float32)
    m_buffer = rng.standard_normal((600, 64)).astype(np.float32)

    def value_and_grad(dtype):
        return jax.jit(
            jax.value_and_grad(
                lambda a: losses.blocked_dcmh_likelihood(
                    a, m_buffer, labels[:32], labels, block_size=256, compute_dtype=dtype
                )
            )
        )(m_batch)

    value, grad = value_and_grad(jnp.float32)
    value16, grad16 = value_and_grad(jnp.bfloat16)
    assert value16.dtype == grad16.dtype == jnp.float32
    np.testing.assert_allclose(value16, value, rtol=1e-3)
    assert np.linalg.norm(grad16 - grad) < 1e-2 * np.linalg.norm(grad)
    assert not np.array_equal(grad16, grad)  # the products did run in bfloat16


def test_hash_loss_from_labels_is_hash_loss_from_similarity():
    batch, labels, m_batch, m_buffer, codes = hashing_inputs()
    similarity = losses.similarity_matrix(labels[batch], labels)
    _, want = losses.hash_loss(m_batch, m_buffer, similarity, codes, eta=0.5)
    _, got = losses.hash_loss(
        m_batch, m_buffer, None, codes, eta=0.5, labels=(labels[batch], labels), block_size=4
    )
    for name in want:
        np.testing.assert_allclose(got[name], want[name], rtol=1e-5)
    with pytest.raises(ValueError, match="exactly one of similarity and labels"):
        losses.hash_loss(m_batch, m_buffer, similarity, codes, labels=(labels[batch], labels))


def test_blocked_likelihood_bad_input():
    batch, labels, m_batch, m_buffer, _ = hashing_inputs()
    with pytest.raises(ValueError, match=r"must share k, got \(6, 8\) and \(15, 7\)"):
        losses.blocked_dcmh_likelihood(m_batch, m_buffer[:, :7], labels[batch], labels)
    with pytest.raises(ValueError, match="must share c"):
        losses.blocked_dcmh_likelihood(m_batch, m_buffer, labels[batch], labels[:, :3])
    with pytest.raises(ValueError, match="one label row per feature row"):
        losses.blocked_dcmh_likelihood(m_batch, m_buffer, labels, labels)
    with pytest.raises(ValueError, match="block_size must be positive"):
        losses.blocked_dcmh_likelihood(m_batch, m_buffer, labels[batch], labels, block_size=0)
    with pytest.raises(ValueError, match="reduction"):
        losses.blocked_dcmh_likelihood(m_batch, m_buffer, labels[batch], labels, reduction="max")


def reference_weighted_likelihood(m_x, m_y, similarity, w_similar, w_dissimilar):
    """The likelihood's pair terms, each times w_similar (S = 1) or w_dissimilar (S = 0)."""
    total = 0.0
    for i in range(len(m_x)):
        for j in range(len(m_y)):
            phi = 0.5 * float(np.dot(m_x[i].astype(np.float64), m_y[j]))
            weight = w_similar if similarity[i, j] else w_dissimilar
            total -= weight * (similarity[i, j] * phi - np.log1p(np.exp(phi)))
    return total


def test_similar_pair_share_and_balanced_weights_by_hand():
    # Rows: {0}, {0, 1}, {1}, {2}: similar pairs (i, j), i == j included: the 4 diagonal ones,
    # (0, 1), (1, 0), (1, 2), (2, 1): 8 of 16.
    labels = np.array([[1, 0, 0], [1, 1, 0], [0, 1, 0], [0, 0, 1]], np.float32)
    assert losses.similar_pair_share(labels) == 0.5
    assert losses.balanced_pair_weights(labels) == (1.0, 1.0)  # rho = 1/2: Eq. 10 itself
    labels = np.eye(4, dtype=np.float32)  # only the diagonal: rho = 1/4
    assert losses.similar_pair_share(labels) == 0.25
    w_similar, w_dissimilar = losses.balanced_pair_weights(labels)
    assert (w_similar, w_dissimilar) == (2.0, 0.5 / 0.75)
    # The weights average 1 over the pairs and give each kind of pair half the total weight.
    assert np.isclose(0.25 * w_similar + 0.75 * w_dissimilar, 1.0)
    assert np.isclose(0.25 * w_similar, 0.75 * w_dissimilar)
    # Every pair similar: nothing to balance.
    assert losses.balanced_pair_weights(np.ones((3, 2), np.float32)) == (1.0, 1.0)
    with pytest.raises(ValueError, match=r"similar_pair_share: labels must be \[n, c\]"):
        losses.similar_pair_share(np.zeros((0, 3)))


def test_similar_pair_share_subsampled_rows_estimate_it():
    rng = np.random.default_rng(2)
    labels = (rng.random((900, 12)) < 0.1).astype(np.float32)
    exact = float(np.mean(np.asarray(losses.similarity_matrix(labels, labels))))
    assert losses.similar_pair_share(labels) == pytest.approx(exact, rel=1e-6)  # float32 mean
    assert losses.similar_pair_share(labels, max_rows=300) == pytest.approx(exact, abs=0.02)


@pytest.mark.parametrize("block_size", [None, 4])
def test_weighted_likelihood_matches_reference_and_its_gradients(block_size):
    batch, labels, m_batch, m_buffer, _ = hashing_inputs()
    similarity = np.asarray(losses.similarity_matrix(labels[batch], labels))
    weights = (3.0, 0.25)
    want = reference_weighted_likelihood(m_batch, m_buffer, similarity, *weights)
    got = losses.dcmh_likelihood(
        m_batch, m_buffer, similarity, reduction="sum", pair_weights=weights
    )
    np.testing.assert_allclose(got, want, rtol=1e-5)
    blocked = jax.jit(
        lambda a, b: losses.blocked_dcmh_likelihood(
            a,
            b,
            labels[batch],
            labels,
            block_size=block_size,
            reduction="sum",
            pair_weights=weights,
        )
    )
    np.testing.assert_allclose(blocked(m_batch, m_buffer), want, rtol=1e-5)
    # Not Eq. 10's value: the weights do act.
    unweighted = reference_likelihood(m_batch, m_buffer, similarity)
    assert abs(want - unweighted) > 0.1 * abs(unweighted)
    grad_reference = jax.grad(
        lambda a, b: losses.dcmh_likelihood(
            a, b, similarity, reduction="sum", pair_weights=weights
        ),
        argnums=(0, 1),
    )(m_batch, m_buffer)
    grad_blocked = jax.grad(blocked, argnums=(0, 1))(m_batch, m_buffer)
    for got_part, want_part in zip(grad_blocked, grad_reference, strict=True):
        np.testing.assert_allclose(got_part, want_part, rtol=1e-5, atol=1e-6)


def test_hash_loss_passes_pair_weights_to_either_likelihood():
    batch, labels, m_batch, m_buffer, codes = hashing_inputs()
    similarity = losses.similarity_matrix(labels[batch], labels)
    weights = (2.0, 0.5)
    _, dense = losses.hash_loss(m_batch, m_buffer, similarity, codes, pair_weights=weights)
    _, fused = losses.hash_loss(
        m_batch, m_buffer, None, codes, labels=(labels[batch], labels), pair_weights=weights
    )
    want = reference_weighted_likelihood(m_batch, m_buffer, np.asarray(similarity), *weights) / (
        m_batch.shape[0] * m_buffer.shape[0]
    )
    np.testing.assert_allclose(dense["likelihood"], want, rtol=1e-5)
    np.testing.assert_allclose(fused["likelihood"], want, rtol=1e-5)


# --pair_weighting=label_rarity


def test_label_rarity_weights_by_hand():
    # Rows {0}, {0}, {0}, {0, 1}, {1}: z = (4, 2). Similar pairs (i, j), i == j included: rows
    # 0-3 with each other (16 pairs, sharing label 0; (3, 3) shares both), rows 3, 4 with each
    # other (4 pairs, sharing label 1; (3, 3) counted once): 16 + 3 = 19 pairs. Weight sums with
    # r = (1/4, 1/2) before scaling: 15 pairs share only label 0 (1/4 each), (3, 4) and (4, 3)
    # and (4, 4) only label 1 (1/2), (3, 3) both (3/4): 15/4 + 3/2 + 3/4 = 6. Scale 19 / 6.
    labels = np.array([[1, 0], [1, 0], [1, 0], [1, 1], [0, 1]], np.float32)
    weights = losses.label_rarity_weights(labels)
    np.testing.assert_allclose(weights, np.array([1 / 4, 1 / 2]) * 19 / 6)
    # The similar pairs' weights average 1, and the rarer label's pairs weigh twice as much.
    pair_weights = np.asarray(losses.label_rarity_pair_weights(labels, labels, weights))
    similar = np.asarray(losses.similarity_matrix(labels, labels)) > 0
    assert pair_weights[similar].mean() == pytest.approx(1.0, rel=1e-6)
    assert pair_weights[4, 4] == pytest.approx(2 * pair_weights[0, 0], rel=1e-6)
    assert pair_weights[3, 3] == pytest.approx(3 * pair_weights[0, 0], rel=1e-6)
    assert np.all(pair_weights[~similar] == 1.0)
    # An absent label weighs 0; no similar pair at all: zeros.
    with_absent = np.concatenate([labels, np.zeros((5, 1), np.float32)], axis=1)
    assert losses.label_rarity_weights(with_absent)[2] == 0.0
    assert np.all(losses.label_rarity_weights(np.zeros((3, 2), np.float32)) == 0.0)
    with pytest.raises(ValueError, match=r"label_rarity_weights: labels must be \[n, c\]"):
        losses.label_rarity_weights(np.zeros((0, 3)))
    with pytest.raises(ValueError, match="must share c"):
        losses.label_rarity_pair_weights(labels, labels, np.ones(3))


def test_label_rarity_weights_subsampled_rows_estimate_the_average():
    rng = np.random.default_rng(4)
    labels = (rng.random((900, 12)) < 0.1 * np.arange(1, 13) / 6).astype(np.float32)
    exact = losses.label_rarity_weights(labels)
    pair_weights = np.asarray(losses.label_rarity_pair_weights(labels, labels, exact))
    similar = np.asarray(losses.similarity_matrix(labels, labels)) > 0
    assert pair_weights[similar].mean() == pytest.approx(1.0, rel=1e-5)
    np.testing.assert_allclose(losses.label_rarity_weights(labels, max_rows=300), exact, rtol=0.05)


def test_likelihood_with_pair_weight_matrix_matches_reference_and_numerical_gradients():
    batch, labels, m_batch, m_buffer, codes = hashing_inputs()
    similarity = np.asarray(losses.similarity_matrix(labels[batch], labels))
    label_weights = losses.label_rarity_weights(labels)
    weights = np.asarray(losses.label_rarity_pair_weights(labels[batch], labels, label_weights))
    want = 0.0
    for i in range(len(m_batch)):
        for j in range(len(m_buffer)):
            phi = 0.5 * float(np.dot(m_batch[i].astype(np.float64), m_buffer[j]))
            shared = [c for c in range(labels.shape[1]) if labels[batch[i], c] and labels[j, c]]
            weight = sum(label_weights[c] for c in shared) if shared else 1.0
            want -= weight * (similarity[i, j] * phi - np.log1p(np.exp(phi)))
    got = losses.dcmh_likelihood(
        m_batch, m_buffer, similarity, reduction="sum", pair_weights=weights
    )
    np.testing.assert_allclose(got, want, rtol=1e-5)
    assert abs(want - reference_likelihood(m_batch, m_buffer, similarity)) > 0.01 * abs(want)
    # hash_loss builds the same weights from the labels.
    _, terms = losses.hash_loss(
        m_batch,
        m_buffer,
        None,
        codes,
        labels=(labels[batch], labels),
        label_weights=label_weights,
    )
    np.testing.assert_allclose(
        terms["likelihood"], want / (m_batch.shape[0] * m_buffer.shape[0]), rtol=1e-5
    )
    with jax.enable_x64(True):
        check_grads(
            lambda a, b: losses.dcmh_likelihood(
                a, b, similarity, reduction="sum", pair_weights=weights.astype(np.float64)
            ),
            (jnp.asarray(m_batch, jnp.float64), jnp.asarray(m_buffer, jnp.float64)),
            order=1,
            modes=("rev",),
        )
    with pytest.raises(ValueError, match=r"pair_weights must be .* \[n_a, n_b\]"):
        losses.dcmh_likelihood(m_batch, m_buffer, similarity, pair_weights=np.ones((2, 2)))
    with pytest.raises(ValueError, match="label_weights need labels"):
        losses.hash_loss(m_batch, m_buffer, similarity, codes, label_weights=label_weights)


@pytest.mark.parametrize("labels_per_row", [1, 3])
def test_label_rarity_pair_weights_gathered_columns_match_brute_force(labels_per_row):
    # 40 labels and batches of 6 rows: one label a row leaves at most 6 present labels, the
    # gathered product (padding slots masked); three a row leave more, the full product.
    rng = np.random.default_rng(5)
    buffer = np.zeros((50, 40), np.float32)
    for row in buffer:
        row[rng.choice(40, labels_per_row, replace=False)] = 1.0
    buffer[0] = 0.0
    buffer[0, :labels_per_row] = 1.0  # label 0 present: the padding slots repeat its column
    batch = buffer[[0, 3, 3, 7, 11, 20]]  # a repeated row, as a padded batch has
    weights = rng.random(40)
    got = np.asarray(jax.jit(losses.label_rarity_pair_weights)(batch, buffer, weights))
    shared = batch @ buffer.T
    want = np.where(shared > 0, (batch * weights) @ buffer.T, 1.0)
    np.testing.assert_allclose(got, want, rtol=1e-6)
    similarity = np.asarray(jax.jit(losses.similarity_matrix)(batch, buffer))
    np.testing.assert_array_equal(similarity, (shared > 0).astype(np.float32))
