"""Hash-code learning loss of DCMH / LtCMH (Eqs. 9, 10)."""

import functools

import jax
import jax.numpy as jnp
import numpy as np

_REDUCTIONS = ("mean", "sum")


def similarity_matrix(labels_a: jax.Array, labels_b: jax.Array) -> jax.Array:
    """Cross-modal similarity S: S_ij = 1 when samples i and j share at least one label.

    S_ij = [l_i . l_j > 0].

    Args:
      labels_a: `[n_a, c]` multi-hot labels (nonzero = member).
      labels_b: `[n_b, c]` multi-hot labels.

    Returns:
      `[n_a, n_b]` float32 in {0, 1}.

    Runs on the labels `labels_a` holds only (`_shared_label_product`).
    """
    labels_a, labels_b = jnp.asarray(labels_a), jnp.asarray(labels_b)
    if labels_a.ndim != 2 or labels_b.ndim != 2 or labels_a.shape[1] != labels_b.shape[1]:
        raise ValueError(
            "similarity_matrix: labels_a [n_a, c] and labels_b [n_b, c] must share c, got "
            f"{labels_a.shape} and {labels_b.shape}"
        )
    return (_shared_label_product(labels_a, labels_b) > 0).astype(jnp.float32)


def _shared_label_product(labels_a, labels_b, label_weights=None) -> jax.Array:
    """`[n_a, n_b]` sum over the labels rows i and j share of `label_weights` (1 each if None).

    Only labels present in `labels_a` can be shared. When n_a < c and at most n_a labels are
    present (a batch of single-label rows against the training set), those columns are gathered
    first: O(n_a^2 n_b) work instead of O(n_a c n_b), 8x less for a batch of 128 against ALOI's
    1,000 labels. Otherwise the product runs over all c labels.
    """
    members_a = (labels_a != 0).astype(jnp.float32)
    members_b = (labels_b != 0).astype(jnp.float32)
    if label_weights is not None:
        members_a = members_a * label_weights
    slots = labels_a.shape[0]

    def shared_labels(columns):
        return members_a[:, columns] @ members_b[:, columns].T

    if slots >= labels_a.shape[1]:
        return shared_labels(slice(None))
    present = jnp.any(labels_a != 0, axis=0)
    # Padding slots repeat a present column (or column 0 when none is): a repeat adds weight
    # to a pair that already shares that label, so it is masked out of the gathered block.
    columns = jnp.nonzero(present, size=slots, fill_value=0)[0]
    unique = jnp.arange(slots) < jnp.sum(present)

    def gathered():
        return (members_a[:, columns] * unique) @ members_b[:, columns].T

    return jax.lax.cond(jnp.sum(present) <= slots, gathered, lambda: shared_labels(slice(None)))


@jax.custom_jvp
def _likelihood_terms(phi: jax.Array, similarity: jax.Array) -> jax.Array:
    """`[n_a, n_b]` softplus(phi) - S phi, elementwise (see `dcmh_likelihood`)."""
    # One exp and one log1p: the two-softplus form costs twice that over n_a * n_b pairs, the
    # largest elementwise work of a training step.
    return jnp.maximum(phi, 0.0) - similarity * phi + jnp.log1p(jnp.exp(-jnp.abs(phi)))


@_likelihood_terms.defjvp
def _likelihood_terms_jvp(primals, tangents):
    phi, similarity = primals
    phi_dot, similarity_dot = tangents
    terms = _likelihood_terms(phi, similarity)
    return terms, (jax.nn.sigmoid(phi) - similarity) * phi_dot - phi * similarity_dot


def dcmh_likelihood(
    m_x: jax.Array,
    m_y: jax.Array,
    similarity: jax.Array,
    *,
    reduction: str = "mean",
    pair_weights: tuple[float, float] = (1.0, 1.0),
) -> jax.Array:
    """Negative log-likelihood of the similarities, the first term of Eq. 10.

    -sum_ij (S_ij phi_ij - log(1 + e^phi_ij)), phi = 1/2 M^x (M^y)^T.

    Each term is computed as max(phi, 0) - S phi + log(1 + e^-|phi|), equal to
    log(1 + e^phi) - S phi but with one exp and one log1p per pair and without overflow (the
    literal log(1 + exp(phi)) overflows at phi ~ 88 in float32) or the cancellation of two large
    numbers (for S = 1 and large phi, max(phi, 0) - phi is exactly 0). Its derivative is set by
    hand to (sigmoid(phi) - S) dphi - phi dS, exact everywhere including phi = 0 where autodiff
    of max and |.| would give -S; value and gradient stay finite for any finite phi.

    Args:
      m_x: `[n_a, k]` meta features M^x (a batch or the full buffer).
      m_y: `[n_b, k]` meta features M^y.
      similarity: `[n_a, n_b]` S in [0, 1] (usually {0, 1}, `similarity_matrix`).
      reduction: "mean" divides the sum by n_a * n_b; "sum" does not.
      pair_weights: `(w_similar, w_dissimilar)`: each pair's term is multiplied by w_similar
        S_ij + w_dissimilar (1 - S_ij) (`balanced_pair_weights`); (1, 1) is Eq. 10. Or an
        `[n_a, n_b]` array, each pair's own weight (`label_rarity_pair_weights`).

    Returns:
      Scalar loss.
    """
    m_x, m_y, similarity = jnp.asarray(m_x), jnp.asarray(m_y), jnp.asarray(similarity)
    if m_x.ndim != 2 or m_y.ndim != 2 or m_x.shape[1] != m_y.shape[1]:
        raise ValueError(
            f"dcmh_likelihood: m_x [n_a, k] and m_y [n_b, k] must share k, got {m_x.shape} and "
            f"{m_y.shape}"
        )
    if similarity.shape != (m_x.shape[0], m_y.shape[0]):
        raise ValueError(
            f"dcmh_likelihood: similarity must be [n_a, n_b] = {(m_x.shape[0], m_y.shape[0])}, "
            f"got {similarity.shape}"
        )
    if reduction not in _REDUCTIONS:
        raise ValueError(
            f"dcmh_likelihood: reduction must be one of {_REDUCTIONS}, got {reduction!r}"
        )
    phi = 0.5 * (m_x @ m_y.T)
    similarity = similarity.astype(phi.dtype)
    terms = _likelihood_terms(phi, similarity)
    if not isinstance(pair_weights, tuple | list):
        pair_weights = jnp.asarray(pair_weights)
        if pair_weights.shape != similarity.shape:
            raise ValueError(
                f"dcmh_likelihood: pair_weights must be (w_similar, w_dissimilar) or "
                f"[n_a, n_b] = {similarity.shape}, got {pair_weights.shape}"
            )
        terms = terms * pair_weights.astype(terms.dtype)
    elif tuple(pair_weights) != (1.0, 1.0):
        w_similar, w_dissimilar = pair_weights
        terms = terms * (w_similar * similarity + w_dissimilar * (1.0 - similarity))
    total = jnp.sum(terms)
    return total / terms.size if reduction == "mean" else total


def similar_pair_share(labels, *, max_rows: int = 4096) -> float:
    """The share rho of pairs (i, j) of a training set with S_ij = 1 (they share a label).

    Args:
      labels: `[n, c]` multi-hot labels (host array).
      max_rows: rows i counted against all n rows j: every row when n <= max_rows, else
        `max_rows` rows evenly spaced over the set (an estimate; the work is max_rows x n x c).

    Returns:
      rho in [0, 1].
    """
    members = np.asarray(labels) != 0
    if members.ndim != 2 or members.shape[0] == 0:
        raise ValueError(
            f"similar_pair_share: labels must be [n, c] with n > 0, got {members.shape}"
        )
    all_rows = members.astype(np.float32).T
    similar = sum(
        int(np.count_nonzero(block @ all_rows))
        for block in _sampled_row_blocks(members, max_rows, np.float32)
    )
    return similar / (min(max_rows, len(members)) * len(members))


def _sampled_row_blocks(members: np.ndarray, max_rows: int, dtype, block_rows: int = 512):
    """`max_rows` rows evenly spaced over `members` `[n, c]` (every row when n <= max_rows), as
    `dtype` blocks of `block_rows`: the rows a pair statistic counts against all n rows."""
    rows = members[np.linspace(0, len(members) - 1, min(max_rows, len(members))).astype(int)]
    for start in range(0, len(rows), block_rows):
        yield rows[start : start + block_rows].astype(dtype)


def balanced_pair_weights(labels) -> tuple[float, float]:
    """`(w_similar, w_dissimilar)` = (1 / (2 rho), 1 / (2 (1 - rho))), rho = `similar_pair_share`.

    Weighted so, the similar and the dissimilar pairs each carry half of the likelihood, whatever
    share of the pairs S marks similar (0.5 on a few broad labels, 0.002 on ALOI's 1,000
    objects), and the weights average 1 over the pairs, so the term's scale is Eq. 10's. rho =
    0.5 gives (1, 1), Eq. 10 itself; a set with no similar (or no dissimilar) pair keeps (1, 1).
    HashNet's weighted maximum likelihood (Cao et al., ICCV 2017) weighs the pairs the same way.
    """
    rho = similar_pair_share(labels)
    if rho <= 0.0 or rho >= 1.0:
        return (1.0, 1.0)
    return (0.5 / rho, 0.5 / (1.0 - rho))


def label_rarity_weights(labels, *, max_rows: int = 4096) -> np.ndarray:
    """`[c]` weights r_a of `--pair_weighting=label_rarity`: inverse training frequency.

    r_a = s / z_a, z_a the training samples of label a (0 for a label without one), and s such
    that the weight of a similar training pair (`label_rarity_pair_weights`: the sum of r_a over
    the labels the two samples share) averages 1 over the similar pairs (i, j), i == j included,
    as the likelihood counts them; dissimilar pairs keep weight 1. So similar and dissimilar
    pairs keep Eq. 10's shares of the loss, and among the similar ones a pair counts in
    proportion to how rare the labels it shares are. Why: on a long-tailed multi-label set most
    of a tail sample's similar pairs are similar through a head label only (`data.describe`'s
    `tail_partner_share_train`: 0.033 on the synthetic set), so under Eq. 10 the likelihood hardly
    sees tail labels (docs/DESIGN.md, Losses). The class-balanced re-weighting family (Cui et al.,
    CVPR 2019) that the LtCMH paper names as a long-tail solution, applied to pairs.

    Args:
      labels: `[n, c]` multi-hot training labels (host array).
      max_rows: rows i counted against all n rows j for the average (`similar_pair_share`).

    Returns:
      `[c]` float64 weights; zeros when no pair is similar.
    """
    members = np.asarray(labels) != 0
    if members.ndim != 2 or members.shape[0] == 0:
        raise ValueError(
            f"label_rarity_weights: labels must be [n, c] with n > 0, got {members.shape}"
        )
    counts = members.sum(axis=0)
    inverse = np.where(counts > 0, 1.0 / np.maximum(counts, 1), 0.0)
    all_rows = members.astype(np.float64).T
    weight_sum, similar = 0.0, 0
    for block in _sampled_row_blocks(members, max_rows, np.float64):
        shared_weight = (block * inverse) @ all_rows
        weight_sum += float(shared_weight.sum())  # 0 wherever the pair shares no label
        similar += int(np.count_nonzero(block @ all_rows))
    if not similar:
        return np.zeros_like(inverse)
    return inverse * (similar / weight_sum)


def label_rarity_pair_weights(
    labels_a: jax.Array,
    labels_b: jax.Array,
    label_weights: jax.Array,
    *,
    similarity: jax.Array | None = None,
) -> jax.Array:
    """`[n_a, n_b]` pair weights: sum_a l_ia l_ja r_a for a similar pair, 1 for a dissimilar one.

    Args:
      labels_a: `[n_a, c]` multi-hot labels; labels_b: `[n_b, c]`.
      label_weights: `[c]` r (`label_rarity_weights`).
      similarity: `[n_a, n_b]` S of the same labels (`similarity_matrix`) when the caller already
        has it; None: computed here.
    """
    labels_a, labels_b = jnp.asarray(labels_a), jnp.asarray(labels_b)
    label_weights = jnp.asarray(label_weights, jnp.float32)
    if label_weights.shape != (labels_a.shape[1],) or labels_b.shape[1] != labels_a.shape[1]:
        raise ValueError(
            f"label_rarity_pair_weights: labels [n_a, c], [n_b, c] and label_weights [c] must "
            f"share c, got {labels_a.shape}, {labels_b.shape}, {label_weights.shape}"
        )
    if similarity is None:
        similarity = similarity_matrix(labels_a, labels_b)
    shared_weight = _shared_label_product(labels_a, labels_b, label_weights)
    return jnp.where(similarity > 0, shared_weight, 1.0)


def pack_labels(labels: jax.Array) -> jax.Array:
    """Multi-hot labels as bit masks: bit j of word w is set when label 32 w + j is present.

    Two samples share a label exactly when their masks share a set bit, so S (`similarity_matrix`)
    costs one AND per word and pair instead of a c-long product.

    Args:
      labels: `[n, c]` multi-hot labels (nonzero = member).

    Returns:
      `[n, ceil(c / 32)]` uint32.
    """
    labels = jnp.asarray(labels)
    if labels.ndim != 2:
        raise ValueError(f"pack_labels: labels must be [n, c], got {labels.shape}")
    n, c = labels.shape
    words = max(1, -(-c // 32))
    present = jnp.pad(labels != 0, ((0, 0), (0, 32 * words - c))).reshape(n, words, 32)
    shifts = jnp.arange(32, dtype=jnp.uint32)
    return jnp.sum(present.astype(jnp.uint32) << shifts, axis=-1, dtype=jnp.uint32)


def _shares_label(bits_a: jax.Array, bits_b: jax.Array) -> jax.Array:
    """`[n_a, n_b]` bool S from `pack_labels` masks `[n_a, w]` and `[n_b, w]`."""
    return jnp.any((bits_a[:, None, :] & bits_b[None, :, :]) != 0, axis=-1)


def _block_start(block: jax.Array, block_size: int, num_rows: int):
    """First row of block `block` and a mask of its rows not counted by an earlier block.

    The last block is moved back to end at `num_rows` (so every block is full and no padded copy
    of the buffer is made); its rows that the block before it already covered are masked.
    """
    start = jnp.minimum(block * block_size, num_rows - block_size)
    fresh = start + jnp.arange(block_size) >= block * block_size
    return start, fresh


def _likelihood_block(m_x, m_y_block, bits_x, bits_y_block, fresh, compute_dtype, pair_weights):
    """The likelihood's sum and its d/dphi `[b, nb]` over one block of the buffer.

    Terms are max(phi, 0) - S phi + log1p(exp(-|phi|)), as `dcmh_likelihood`, and the
    derivative is sigmoid(phi) - S, each times its pair's weight (`pair_weights`).
    """
    phi = 0.5 * jnp.matmul(
        m_x.astype(compute_dtype),
        m_y_block.astype(compute_dtype).T,
        preferred_element_type=m_x.dtype,
    )
    shared = _shares_label(bits_x, bits_y_block)
    terms = jnp.maximum(phi, 0.0) - jnp.where(shared, phi, 0.0) + jnp.log1p(jnp.exp(-jnp.abs(phi)))
    # XLA's logistic is a vectorised kernel; sigmoid from the exp above through a divide measured
    # 4x slower on a CPU (its divide does not vectorise as well).
    dphi = jax.nn.sigmoid(phi) - shared
    if pair_weights != (1.0, 1.0):
        weight = jnp.where(shared, *pair_weights)
        terms, dphi = weight * terms, weight * dphi
    dphi = jnp.where(fresh, dphi, 0.0)
    return jnp.sum(jnp.where(fresh, terms, 0.0)), dphi


def _blocks(num_rows: int, block_size: int | None) -> tuple[int, int]:
    size = num_rows if block_size is None else max(1, min(block_size, num_rows))
    return size, -(-num_rows // size)


def _blocked_value_and_grad_x(m_x, m_y, bits_x, bits_y, block_size, compute_dtype, pair_weights):
    """(sum, d sum / d m_x `[b, k]`) in one pass over the blocks of the buffer."""
    size, count = _blocks(m_y.shape[0], block_size)

    def body(block, carry):
        total, grad_x = carry
        start, fresh = _block_start(block, size, m_y.shape[0])
        m_y_block = jax.lax.dynamic_slice_in_dim(m_y, start, size)
        bits_block = jax.lax.dynamic_slice_in_dim(bits_y, start, size)
        value, dphi = _likelihood_block(
            m_x, m_y_block, bits_x, bits_block, fresh, compute_dtype, pair_weights
        )
        grad_x = grad_x + 0.5 * jnp.matmul(
            dphi.astype(compute_dtype),
            m_y_block.astype(compute_dtype),
            preferred_element_type=m_x.dtype,
        )
        return total + value, grad_x

    initial = (jnp.zeros((), m_x.dtype), jnp.zeros_like(m_x))
    return jax.lax.fori_loop(0, count, body, initial)


def _blocked_grad_y(m_x, m_y, bits_x, bits_y, block_size, compute_dtype, pair_weights):
    """d sum / d m_y `[N, k]`, block by block (recomputes phi; traced only when it is used)."""
    size, count = _blocks(m_y.shape[0], block_size)

    def body(block, grad_y):
        start, fresh = _block_start(block, size, m_y.shape[0])
        m_y_block = jax.lax.dynamic_slice_in_dim(m_y, start, size)
        bits_block = jax.lax.dynamic_slice_in_dim(bits_y, start, size)
        _, dphi = _likelihood_block(
            m_x, m_y_block, bits_x, bits_block, fresh, compute_dtype, pair_weights
        )
        block_grad = 0.5 * jnp.matmul(
            dphi.T.astype(compute_dtype),
            m_x.astype(compute_dtype),
            preferred_element_type=m_y.dtype,
        )
        # Added, not set: the last block overlaps the one before it (its overlap is masked 0).
        previous = jax.lax.dynamic_slice_in_dim(grad_y, start, size)
        return jax.lax.dynamic_update_slice_in_dim(grad_y, previous + block_grad, start, 0)

    return jax.lax.fori_loop(0, count, body, jnp.zeros_like(m_y))


@functools.partial(jax.custom_vjp, nondiff_argnums=(4, 5, 6))
def _blocked_likelihood(m_x, m_y, bits_x, bits_y, block_size, compute_dtype, pair_weights):
    return _blocked_value_and_grad_x(
        m_x, m_y, bits_x, bits_y, block_size, compute_dtype, pair_weights
    )[0]


def _blocked_likelihood_forward(m_x, m_y, bits_x, bits_y, block_size, compute_dtype, pair_weights):
    # d/dm_x comes out of the same pass as the value: training always needs it, and the pass
    # already holds each block's phi and sigmoid(phi) - S.
    total, grad_x = _blocked_value_and_grad_x(
        m_x, m_y, bits_x, bits_y, block_size, compute_dtype, pair_weights
    )
    return total, (grad_x, m_x, m_y, bits_x, bits_y)


def _blocked_likelihood_backward(block_size, compute_dtype, pair_weights, residuals, cotangent):
    grad_x, m_x, m_y, bits_x, bits_y = residuals
    grad_y = _blocked_grad_y(m_x, m_y, bits_x, bits_y, block_size, compute_dtype, pair_weights)
    return (
        (cotangent * grad_x).astype(m_x.dtype),
        (cotangent * grad_y).astype(m_y.dtype),
        None,
        None,
    )


_blocked_likelihood.defvjp(_blocked_likelihood_forward, _blocked_likelihood_backward)


def blocked_dcmh_likelihood(
    m_x: jax.Array,
    m_y: jax.Array,
    labels_x: jax.Array,
    labels_y: jax.Array,
    *,
    block_size: int | None = None,
    compute_dtype=None,
    reduction: str = "mean",
    pair_weights: tuple[float, float] = (1.0, 1.0),
) -> jax.Array:
    """`dcmh_likelihood` with S = `similarity_matrix(labels_x, labels_y)`, fused and blocked.

    -sum_ij (S_ij phi_ij - log(1 + e^phi_ij)), phi = 1/2 M^x (M^y)^T, the first term of Eq. 10.

    The same terms and derivative as `dcmh_likelihood`, computed `block_size` rows of M^y at a
    time: each block's phi, S (from label bit masks, `pack_labels`) and sigmoid(phi) - S live
    only within the block (`[n_a, block_size]`, cache-sized on a CPU), never the full
    `[n_a, n_b]` matrices. The gradient with respect to `m_x` comes out of the forward pass
    (one pass instead of two); the one with respect to `m_y` is a second pass, run only when
    it is used (training holds M^y fixed).

    Args:
      m_x: `[n_a, k]` meta features M^x (a batch).
      m_y: `[n_b, k]` meta features M^y (usually the whole buffer).
      labels_x: `[n_a, c]` multi-hot labels of the rows of `m_x`.
      labels_y: `[n_b, c]` multi-hot labels of the rows of `m_y`.
      block_size: rows of `m_y` per block; None: one block (the whole buffer), what an
        accelerator wants.
      compute_dtype: dtype of the two products' inputs (phi = M^x M^y^T and its gradient
        product); None: the features' (at least float32). They accumulate in the features'
        dtype whatever it is, as do the elementwise terms: jnp.bfloat16 is the mixed-precision
        form (docs/DESIGN.md, Training speed).
      reduction: "mean" divides the sum by n_a * n_b; "sum" does not.
      pair_weights: `(w_similar, w_dissimilar)`, as `dcmh_likelihood`.

    Returns:
      Scalar loss, float32 (float64 for float64 features).
    """
    m_x, m_y = jnp.asarray(m_x), jnp.asarray(m_y)
    labels_x, labels_y = jnp.asarray(labels_x), jnp.asarray(labels_y)
    if m_x.ndim != 2 or m_y.ndim != 2 or m_x.shape[1] != m_y.shape[1]:
        raise ValueError(
            f"blocked_dcmh_likelihood: m_x [n_a, k] and m_y [n_b, k] must share k, got "
            f"{m_x.shape} and {m_y.shape}"
        )
    if labels_x.ndim != 2 or labels_y.ndim != 2 or labels_x.shape[1] != labels_y.shape[1]:
        raise ValueError(
            f"blocked_dcmh_likelihood: labels_x [n_a, c] and labels_y [n_b, c] must share c, got "
            f"{labels_x.shape} and {labels_y.shape}"
        )
    if labels_x.shape[0] != m_x.shape[0] or labels_y.shape[0] != m_y.shape[0]:
        raise ValueError(
            f"blocked_dcmh_likelihood: one label row per feature row, got labels "
            f"{labels_x.shape}, {labels_y.shape} for features {m_x.shape}, {m_y.shape}"
        )
    if block_size is not None and block_size < 1:
        raise ValueError(f"blocked_dcmh_likelihood: block_size must be positive, got {block_size}")
    if reduction not in _REDUCTIONS:
        raise ValueError(
            f"blocked_dcmh_likelihood: reduction must be one of {_REDUCTIONS}, got {reduction!r}"
        )
    dtype = jnp.promote_types(jnp.result_type(m_x, m_y), jnp.float32)
    total = _blocked_likelihood(
        m_x.astype(dtype),
        m_y.astype(dtype),
        pack_labels(labels_x),
        pack_labels(labels_y),
        block_size,
        jnp.dtype(dtype if compute_dtype is None else compute_dtype),
        (float(pair_weights[0]), float(pair_weights[1])),
    )
    return total / (m_x.shape[0] * m_y.shape[0]) if reduction == "mean" else total


def quantization_loss(codes: jax.Array, features: jax.Array) -> jax.Array:
    """Quantisation error, one summand of the second term of Eq. 10.

    ||B - M^v||_F^2.

    Args:
      codes: `[n, k]` codes B in {-1, +1}.
      features: `[n, k]` meta features M^v.

    Returns:
      Scalar sum of squares.
    """
    codes, features = jnp.asarray(codes), jnp.asarray(features)
    if codes.shape != features.shape:
        raise ValueError(
            f"quantization_loss: codes {codes.shape} and features {features.shape} must have one "
            "shape"
        )
    return jnp.sum(jnp.square(codes - features))


def balance_loss(features: jax.Array, *, offset: jax.Array | None = None) -> jax.Array:
    """Bit balance, one summand of the third term of Eq. 10.

    ||(M^v)^T 1 + offset||^2: the sum over bits of the squared column sums.

    Args:
      features: `[n, k]` meta features M^v of a batch.
      offset: `[k]` constant added to the column sums; DCMH passes the column sum of the buffer
        rows outside the batch, so the term balances the whole buffer. None means 0.

    Returns:
      Scalar.
    """
    features = jnp.asarray(features)
    if features.ndim != 2:
        raise ValueError(f"balance_loss: features must be [n, k], got {features.shape}")
    column_sums = jnp.sum(features, axis=0)
    if offset is not None:
        offset = jnp.asarray(offset)
        if offset.shape != column_sums.shape:
            raise ValueError(
                f"balance_loss: offset must be [k] = {column_sums.shape}, got {offset.shape}"
            )
        column_sums = column_sums + offset
    return jnp.sum(jnp.square(column_sums))


def hash_loss(
    m_batch: jax.Array,
    m_buffer: jax.Array,
    similarity: jax.Array | None,
    codes_batch: jax.Array,
    *,
    gamma: float = 1.0,
    eta: float = 1.0,
    balance_offset: jax.Array | None = None,
    normalizer: float | None = None,
    quantization_per_entry: bool = False,
    labels: tuple[jax.Array, jax.Array] | None = None,
    block_size: int | None = None,
    compute_dtype=None,
    pair_weights: tuple[float, float] = (1.0, 1.0),
    label_weights: jax.Array | None = None,
) -> tuple[jax.Array, dict[str, jax.Array]]:
    """Loss2 (Eq. 10) for one modality's batch, as DCMH optimises it.

    (NLL(S | M_batch, M_buffer) + gamma ||B_batch - M_batch||^2
     + eta ||M_batch^T 1 + offset||^2) / normalizer.

    The batch of one modality is scored against the whole buffer of the other; the parameters of
    the other modality and B are fixed in this step (the alternating optimisation).

    Args:
      m_batch: `[b, k]` meta features of the batch (the modality being trained).
      m_buffer: `[N, k]` meta features of the other modality for all N training samples.
      similarity: `[b, N]` S between the batch and all training samples; None with `labels`.
      codes_batch: `[b, k]` the batch's rows of B.
      gamma: weight of the quantisation term.
      eta: weight of the balance term.
      balance_offset: `[k]` column sum of this modality's buffer rows outside the batch.
      normalizer: divisor of every term; None means b * N (DCMH's batch_size * num_train).
      quantization_per_entry: divide the quantisation term by b * k instead (its mean over the
        batch's entries). Under b * N its gradient shrinks as 1/N against the likelihood's and
        the balance term's, so on a large training set nothing holds |M| near 1: with an
        adaptive optimiser the features then grew until the balance term reached 1e3-1e4.
      labels: `([b, c], [N, c])` labels of the batch and the buffer instead of `similarity`: the
        likelihood then runs fused and blocked (`blocked_dcmh_likelihood`, with `block_size`
        and `compute_dtype`), never building S or phi in full.
      pair_weights: `(w_similar, w_dissimilar)` of the likelihood's pairs (`dcmh_likelihood`;
        `balanced_pair_weights`); (1, 1) is Eq. 10.
      label_weights: `[c]` r of `--pair_weighting=label_rarity` (`label_rarity_weights`), with
        `labels`: each similar pair weighs the sum of r over the labels it shares
        (`label_rarity_pair_weights`), instead of `pair_weights`. The likelihood then runs
        unblocked, with S, phi and the weights as full `[b, N]` arrays.

    Returns:
      `(total, terms)`: the scalar loss and a dict with keys "likelihood", "quantization",
      "balance" (unweighted, each divided by `normalizer`) and "total".
    """
    if normalizer is None:
        normalizer = m_batch.shape[0] * m_buffer.shape[0]
    if (labels is None) == (similarity is None):
        raise ValueError("hash_loss: pass exactly one of similarity and labels")
    if label_weights is not None:
        if labels is None:
            raise ValueError("hash_loss: label_weights need labels")
        similarity = similarity_matrix(*labels)
        likelihood = dcmh_likelihood(
            m_batch,
            m_buffer,
            similarity,
            reduction="sum",
            pair_weights=label_rarity_pair_weights(*labels, label_weights, similarity=similarity),
        )
    elif labels is None:
        likelihood = dcmh_likelihood(
            m_batch, m_buffer, similarity, reduction="sum", pair_weights=pair_weights
        )
    else:
        likelihood = blocked_dcmh_likelihood(
            m_batch,
            m_buffer,
            *labels,
            block_size=block_size,
            compute_dtype=compute_dtype,
            reduction="sum",
            pair_weights=pair_weights,
        )
    likelihood = likelihood / normalizer
    quantization = quantization_loss(codes_batch, m_batch) / (
        m_batch.size if quantization_per_entry else normalizer
    )
    balance = balance_loss(m_batch, offset=balance_offset) / normalizer
    total = likelihood + gamma * quantization + eta * balance
    terms = {
        "likelihood": likelihood,
        "quantization": quantization,
        "balance": balance,
        "total": total,
    }
    return total, terms
