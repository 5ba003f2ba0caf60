"""Hash-code learning loss of DCMH / LtCMH (Eqs. 9, 10)."""

import jax
import jax.numpy as jnp

_REDUCTIONS = ("mean", "sum")


def similarity_matrix(labels_a: jax.Array, labels_b: jax.Array) -> jax.Array:
    """Cross-modal similarity S: S_ij = 1 when samples i and j share at least one label.

    S_ij = [l_i . l_j > 0].

    Args:
      labels_a: `[n_a, c]` multi-hot labels (nonzero = member).
      labels_b: `[n_b, c]` multi-hot labels.

    Returns:
      `[n_a, n_b]` float32 in {0, 1}.

    Only labels present in `labels_a` can be shared. When n_a < c and at most n_a labels are
    present (a batch of single-label rows against the training set), those columns are gathered
    first: O(n_a^2 n_b) work instead of O(n_a c n_b), 8x less for a batch of 128 against ALOI's
    1,000 labels. Otherwise the product runs over all c labels.
    """
    labels_a, labels_b = jnp.asarray(labels_a), jnp.asarray(labels_b)
    if labels_a.ndim != 2 or labels_b.ndim != 2 or labels_a.shape[1] != labels_b.shape[1]:
        raise ValueError(
            "similarity_matrix: labels_a [n_a, c] and labels_b [n_b, c] must share c, got "
            f"{labels_a.shape} and {labels_b.shape}"
        )
    members_a, members_b = labels_a != 0, labels_b != 0
    slots = labels_a.shape[0]

    def shared_labels(columns):
        return (
            members_a[:, columns].astype(jnp.float32) @ members_b[:, columns].astype(jnp.float32).T
        )

    if slots >= labels_a.shape[1]:
        shared = shared_labels(slice(None))
    else:
        present = jnp.any(members_a, axis=0)
        # Padding slots repeat column 0: if label 0 is absent from labels_a that column of A is
        # zero, and if it is present a repeat only adds to a count that is already > 0.
        columns = jnp.nonzero(present, size=slots, fill_value=0)[0]
        shared = jax.lax.cond(
            jnp.sum(present) <= slots,
            lambda: shared_labels(columns),
            lambda: shared_labels(slice(None)),
        )
    return (shared > 0).astype(jnp.float32)


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
    m_x: jax.Array, m_y: jax.Array, similarity: jax.Array, *, reduction: str = "mean"
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
    total = jnp.sum(terms)
    return total / terms.size if reduction == "mean" else total


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
    similarity: jax.Array,
    codes_batch: jax.Array,
    *,
    gamma: float = 1.0,
    eta: float = 1.0,
    balance_offset: jax.Array | None = None,
    normalizer: float | None = None,
    quantization_per_entry: bool = False,
) -> tuple[jax.Array, dict[str, jax.Array]]:
    """Loss2 (Eq. 10) for one modality's batch, as DCMH optimises it.

    (NLL(S | M_batch, M_buffer) + gamma ||B_batch - M_batch||^2
     + eta ||M_batch^T 1 + offset||^2) / normalizer.

    The batch of one modality is scored against the whole buffer of the other; the parameters of
    the other modality and B are fixed in this step (the alternating optimisation).

    Args:
      m_batch: `[b, k]` meta features of the batch (the modality being trained).
      m_buffer: `[N, k]` meta features of the other modality for all N training samples.
      similarity: `[b, N]` S between the batch and all training samples.
      codes_batch: `[b, k]` the batch's rows of B.
      gamma: weight of the quantisation term.
      eta: weight of the balance term.
      balance_offset: `[k]` column sum of this modality's buffer rows outside the batch.
      normalizer: divisor of every term; None means b * N (DCMH's batch_size * num_train).
      quantization_per_entry: divide the quantisation term by b * k instead (its mean over the
        batch's entries). Under b * N its gradient shrinks as 1/N against the likelihood's and
        the balance term's, so on a large training set nothing holds |M| near 1: with an
        adaptive optimiser the features then grew until the balance term reached 1e3-1e4.

    Returns:
      `(total, terms)`: the scalar loss and a dict with keys "likelihood", "quantization",
      "balance" (unweighted, each divided by `normalizer`) and "total".
    """
    if normalizer is None:
        normalizer = m_batch.shape[0] * m_buffer.shape[0]
    likelihood = dcmh_likelihood(m_batch, m_buffer, similarity, reduction="sum") / normalizer
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
