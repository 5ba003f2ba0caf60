"""Loss of the individuality-commonality auto-encoder (Eqs. 3, 6, 7)."""

from collections.abc import Sequence

import jax
import jax.numpy as jnp

from ltcmh_jax.losses.independence import hsic, normalized_hsic


def _check_same_shape(name: str, first: str, a: jax.Array, second: str, b: jax.Array) -> None:
    if a.shape != b.shape:
        raise ValueError(f"{name}: {first} {a.shape} and {second} {b.shape} must have one shape")


J1_NORMALIZATIONS = ("sum", "relative")


def weighted_prototype_spread(prototypes: jax.Array, pair_weights: jax.Array) -> jax.Array:
    """`[p, k]` Q, `[p, p]` W -> 1/2 sum_ab W_ab ||q_a - q_b||^2, from the differences directly
    (no cancellation, unlike the trace form tr(Q^T (D - W) Q))."""
    differences = prototypes[:, None, :] - prototypes[None, :, :]
    return 0.5 * jnp.sum(pair_weights * jnp.sum(differences * differences, axis=-1))


def _present_label_spread(
    prototypes: jax.Array, pair_weights: jax.Array, present: jax.Array, slots: int
) -> jax.Array:
    """`weighted_prototype_spread` over the present labels only, when at most `slots` of them.

    A batch of n rows with one label each holds at most n of c labels; ALOI's batch of 128 rows
    meets 1,000 labels, whose `[c, c, k]` differences (256 MB for k = 64) made J1 most of an
    epoch. The present labels are gathered into `slots` places and the sum runs over
    `[slots, slots, k]`; a batch with more present labels takes the `[c, c, k]` branch.
    Absent labels have zero pair weights, so both branches give the same sum.

    Args:
      prototypes: `[c, k]`; pair_weights: `[c, c]`, zero where a label is absent;
      present: `[c]` bool; slots: the static number of places, < c.
    """
    index = jnp.nonzero(present, size=slots, fill_value=0)[0]
    used = jnp.arange(slots) < jnp.sum(present)

    def gathered(prototypes, pair_weights):
        weights = pair_weights[index][:, index]
        weights = jnp.where(used[:, None] & used[None, :], weights, 0.0)
        return weighted_prototype_spread(prototypes[index], weights)

    # Checkpointed: under reverse mode `cond` keeps the residuals of both branches (zeros for the
    # one not taken), and the full branch's would be its `[c, c, k]` differences.
    full = jax.checkpoint(weighted_prototype_spread)
    return jax.lax.cond(jnp.sum(present) <= slots, gathered, full, prototypes, pair_weights)


def commonality_regularizer(
    commonality: jax.Array,
    labels: jax.Array,
    r_x: jax.Array,
    r_y: jax.Array,
    *,
    normalization: str = "sum",
) -> jax.Array:
    """Cross-modal regulariser J1 on the label prototypes of the commonality (Eq. 3).

    J1 = 1/2 sum_ab ||q_a - q_b||^2 (R^x_ab + R^y_ab) = tr(Q^T ((D^x - R^x) + (D^y - R^y)) Q),
    Q = diag(1/|a|) L^T C*.

    normalization="sum" is that sum over the c^2 label pairs (Eq. 3 as printed).
    normalization="relative" divides it by 1/2 sum_ab (R^x_ab + R^y_ab) (a weighted mean over
    pairs, so its size does not grow with c^2) and by 2 tr Cov(C*) over the batch (the mean
    squared distance between two samples' commonalities), so J1 is a ratio in [0, ~2]: J1 can no
    longer be lowered by shrinking C*, which a sum lets it do and which collapsed C* in training.

    R is label x label, so the paper's "C*_{.a}", the commonality of label a, is read as the
    prototype q_a, the mean of C* over the samples annotated with a. Labels with no sample in
    the batch have no prototype and take no part (their R entries are ignored); this keeps
    0/0 out of both the value and the gradient. Only present labels are visited when the batch
    has fewer rows than there are labels and at most n of them are present (O(n^2 k), not
    O(c^2 k), work per batch).

    Args:
      commonality: `[n, k]` C*, one row per sample.
      labels: `[n, c]` multi-hot labels of the same samples (nonzero = member).
      r_x: `[c, c]` label similarity R^x of the image modality (Eq. 4).
      r_y: `[c, c]` label similarity R^y of the text modality.
      normalization: "sum" or "relative" (above).

    Returns:
      Scalar J1 (>= 0 for non-negative R).

    Raises:
      ValueError: if the shapes do not match, or `normalization` is unknown.
    """
    if normalization not in J1_NORMALIZATIONS:
        raise ValueError(
            f"commonality_regularizer: normalization must be one of {J1_NORMALIZATIONS}, got "
            f"{normalization!r}"
        )
    commonality, labels = jnp.asarray(commonality), jnp.asarray(labels)
    r_x, r_y = jnp.asarray(r_x), jnp.asarray(r_y)
    if commonality.ndim != 2 or labels.ndim != 2 or commonality.shape[0] != labels.shape[0]:
        raise ValueError(
            "commonality_regularizer: commonality [n, k] and labels [n, c] must share n, got "
            f"commonality {commonality.shape} and labels {labels.shape}"
        )
    num_labels = labels.shape[1]
    for name, similarity in (("r_x", r_x), ("r_y", r_y)):
        if similarity.shape != (num_labels, num_labels):
            raise ValueError(
                f"commonality_regularizer: {name} must be [c, c] = {(num_labels, num_labels)} "
                f"for labels {labels.shape}, got {similarity.shape}"
            )
    dtype = jnp.result_type(commonality, jnp.float32)
    weights = (labels != 0).astype(dtype)
    sizes = jnp.sum(weights, axis=0)
    present = sizes > 0
    prototypes = (weights.T @ commonality.astype(dtype)) / jnp.where(present, sizes, 1.0)[:, None]
    pair_weights = jnp.where(present[:, None] & present[None, :], r_x + r_y, 0.0)
    num_rows = labels.shape[0]
    if num_rows < num_labels:
        # Single-label rows present at most n labels; a multi-label batch with more takes the
        # full branch inside.
        total = _present_label_spread(prototypes, pair_weights, present, num_rows)
    else:
        total = weighted_prototype_spread(prototypes, pair_weights)
    if normalization == "sum":
        return total
    weight = 0.5 * jnp.sum(pair_weights)
    centred = commonality.astype(dtype) - jnp.mean(commonality.astype(dtype), axis=0)
    spread = 2.0 * jnp.mean(jnp.sum(centred * centred, axis=-1))
    # Double `where`: a batch with one label or a constant C* has J1 = 0, not 0/0, in value and
    # gradient.
    valid = (weight > 0) & (spread > 0)
    safe_denominator = jnp.where(valid, weight * spread, 1.0)
    return jnp.where(valid, total / safe_denominator, 0.0)


def reconstruction_loss(target: jax.Array, reconstruction: jax.Array) -> jax.Array:
    """Reconstruction error of one modality, one summand of J3 (Eq. 6).

    ||F^v - f_de^v([C*, P^v])||_F^2 / (n d_v).

    Args:
      target: `[n, d_v]` direct features F^v.
      reconstruction: `[n, d_v]` the decoder output.

    Returns:
      Scalar mean squared error.
    """
    target, reconstruction = jnp.asarray(target), jnp.asarray(reconstruction)
    _check_same_shape("reconstruction_loss", "target", target, "reconstruction", reconstruction)
    return jnp.mean(jnp.square(target - reconstruction))


def commonality_matching_loss(
    commonality: jax.Array, estimate: jax.Array, *, relative: bool = False
) -> jax.Array:
    """Fit of a single-modality estimate C_hat^v of the commonality (not in the paper).

    ||stop_gradient(C*) - C_hat^v||_F^2 / (n k), and with `relative` divided by
    mean(stop_gradient(C*)^2): the share of C*'s energy the estimate misses, whatever C*'s scale
    (a relative J1 leaves that scale free).

    C* needs both modalities, but a query has one; the model learns C_hat^v = g^v(F^v) to stand
    in for it (docs/DESIGN.md, Model). The stop-gradient keeps the estimate from pulling C*
    towards what one modality alone can predict.

    Args:
      commonality: `[n, k]` C* from both modalities (the target).
      estimate: `[n, k]` C_hat^v from one modality.
      relative: divide by the mean square of C* (above).

    Returns:
      Scalar mean squared error (relative: in [0, 1] for the best scale of the estimate).
    """
    commonality, estimate = jnp.asarray(commonality), jnp.asarray(estimate)
    _check_same_shape("commonality_matching_loss", "commonality", commonality, "estimate", estimate)
    target = jax.lax.stop_gradient(commonality)
    error = jnp.mean(jnp.square(target - estimate))
    if not relative:
        return error
    energy = jnp.mean(jnp.square(target))
    return jnp.where(energy > 0, error / jnp.where(energy > 0, energy, 1.0), error)


def autoencoder_loss(
    *,
    features_x: jax.Array,
    features_y: jax.Array,
    reconstruction_x: jax.Array,
    reconstruction_y: jax.Array,
    labels: jax.Array,
    r_x: jax.Array,
    r_y: jax.Array,
    commonality: jax.Array | None = None,
    individuality_x: jax.Array | None = None,
    individuality_y: jax.Array | None = None,
    commonality_estimates: Sequence[jax.Array] = (),
    alpha: float = 0.05,
    beta: float = 0.05,
    j1_normalization: str = "sum",
    hsic_normalization: str = "none",
) -> tuple[jax.Array, dict[str, jax.Array]]:
    """Loss1 of the individuality-commonality auto-encoder (Eq. 7), plus the estimate fit.

    Loss1 = alpha J1(C*) + beta J2(P^x, P^y) + J3(C*, P^v) + sum_v ||sg(C*) - C_hat^v||^2 / (n k).

    Args:
      features_x: `[n, d_x]` F^x, the reconstruction target of the image modality.
      features_y: `[n, d_y]` F^y.
      reconstruction_x: `[n, d_x]` f_de^x([C*, P^x]).
      reconstruction_y: `[n, d_y]` f_de^y([C*, P^y]).
      labels: `[n, c]` multi-hot labels of the batch.
      r_x: `[c, c]` R^x; r_y: `[c, c]` R^y (Eq. 4).
      commonality: `[n, k]` C*; None skips J1 (variant without commonality, "wo_c").
      individuality_x: `[n, k]` P^x; with `individuality_y` None skips J2 ("wo_i").
      individuality_y: `[n, k]` P^y.
      commonality_estimates: `[n, k]` arrays C_hat^v fitted to C* (`commonality_matching_loss`).
      alpha: weight of J1 (the paper uses 0.05).
      beta: weight of J2 (the paper uses 0.05).
      j1_normalization: `commonality_regularizer`'s normalization ("sum": Eq. 3 as printed);
        "relative" also makes the estimate fit relative (`commonality_matching_loss`).
      hsic_normalization: "none" (Eq. 5) or "cka": HSIC(P^x, P^y) / sqrt(HSIC(P^x, P^x)
        HSIC(P^y, P^y)), in [0, 1] whatever the scale and width of P^v.

    Returns:
      `(total, terms)`: the scalar loss and a dict of scalars with keys "j1_commonality",
      "j2_hsic", "j3_reconstruction", "j4_match" (unweighted; 0 when skipped) and "total".

    Raises:
      ValueError: if only one individuality is given, estimates come without `commonality`, or
        shapes do not match.
    """
    if (individuality_x is None) != (individuality_y is None):
        raise ValueError(
            "autoencoder_loss: individuality_x and individuality_y must both be given or both be "
            "None"
        )
    if commonality_estimates and commonality is None:
        raise ValueError("autoencoder_loss: commonality_estimates need commonality (C*)")
    zero = jnp.zeros((), jnp.result_type(features_x, jnp.float32))
    j3 = reconstruction_loss(features_x, reconstruction_x) + reconstruction_loss(
        features_y, reconstruction_y
    )
    j1 = (
        zero
        if commonality is None
        else commonality_regularizer(commonality, labels, r_x, r_y, normalization=j1_normalization)
    )
    j2 = zero
    if individuality_x is not None:
        j2 = (
            hsic(individuality_x, individuality_y)
            if hsic_normalization == "none"
            else normalized_hsic(individuality_x, individuality_y)
        )
    j4 = zero
    for estimate in commonality_estimates:
        j4 = j4 + commonality_matching_loss(
            commonality, estimate, relative=j1_normalization == "relative"
        )
    total = alpha * j1 + beta * j2 + j3 + j4
    terms = {
        "j1_commonality": j1,
        "j2_hsic": j2,
        "j3_reconstruction": j3,
        "j4_match": j4,
        "total": total,
    }
    return total, terms
