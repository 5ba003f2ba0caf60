"""Label-set distances and label similarity within one modality (Eq. 4)."""

import jax
import jax.numpy as jnp
from jax import lax

from ltcmh_jax.losses.distances import safe_norm

# Membership pairs (sample, label) are visited in chunks of this many: each chunk is one
# `[chunk, block_size]` distance tile against a block of rows, whatever labels it spans, so a
# label pays for its own members only, not for a tile padded to a fixed width.
_PAIR_CHUNK = 512


def _membership_ranks(members: jax.Array) -> tuple[jax.Array, jax.Array]:
    """Running membership counts in label-major order, from which any pair is found by search.

    The membership pairs (sample i, label b), sorted by label and then by sample, are numbered
    0, 1, ..., M - 1. Pair k is the first flat index b * n + i whose running count exceeds k.
    Cheaper than `jnp.nonzero` over the n * c slots, whose scatter touches every slot.

    Args:
      members: `[n, c]` bool membership.

    Returns:
      `(ranks, count)`: `[c * n]` int32 non-decreasing, ranks[b * n + i] = the number of pairs
      up to and including (i, b); count = M.
    """
    counts = members.T.astype(jnp.int32)  # [c, n]
    sizes = jnp.sum(counts, axis=1)
    starts = jnp.cumsum(sizes) - sizes
    return (jnp.cumsum(counts, axis=1) + starts[:, None]).reshape(-1), jnp.sum(sizes)


def _pair_chunk(ranks: jax.Array, first: jax.Array, chunk: int, n: int, num_labels: int):
    """Pairs `first, ..., first + chunk - 1`: `(samples [chunk], labels [chunk])` int32.

    A pair past the last one is sample n, label c (a sentinel row and a dropped segment).
    """
    wanted = first + jnp.arange(chunk, dtype=jnp.int32)
    # "scan_unrolled": one fused binary search. "scan" (a loop of ~20 dependent steps) ran as fast
    # on a CPU, but on a GPU each step is a kernel launch, once per chunk and row block, and that
    # was most of an LtCMH epoch (docs/DESIGN.md, Training speed).
    flat = jnp.searchsorted(ranks, wanted, side="right", method="scan_unrolled")
    flat = flat.astype(jnp.int32)
    real = flat < n * num_labels
    return jnp.where(real, flat % n, n), jnp.where(real, flat // n, num_labels)


def _nearest_member_ids(
    points: jax.Array, members: jax.Array, ranks: jax.Array, count: jax.Array, block_size: int
) -> jax.Array:
    """For every label b and row i, the index of the member of b nearest to row i.

    One pass over blocks of rows; per block, the membership pairs (all labels at once) are
    visited in chunks of `_PAIR_CHUNK`: one `[chunk, block]` squared-distance tile, its min per
    label by a sorted segment min, the first index reaching it by a second one. Work is
    O(n * memberships * d) plus O(c * n * memberships / chunk) for the running minima, with no
    per-label padding: 1,000 labels of 2-100 members cost what 24 labels of the same total do.

    Args:
      points: `[n, d]` mean-centred features.
      members: `[n, c]` bool membership.
      ranks, count: `_membership_ranks(members)`.
      block_size: rows per block.

    Returns:
      `[c, n]` int32 indices; i itself when i is a member of b; n when b has no member.
    """
    n, dim = points.shape
    num_labels = members.shape[1]
    chunk = _PAIR_CHUNK
    block = min(block_size, n)
    num_blocks = -(-n // block)
    padded = num_blocks * block
    row_points = jnp.pad(points, ((0, padded - n), (0, 0))).reshape(num_blocks, block, dim)
    # Row n is a sentinel that padding pairs point to: its squared norm is inf, so it never wins
    # and the tiles need no validity mask.
    column_points = jnp.pad(points, ((0, 1), (0, 0)))
    column_sq = jnp.pad(jnp.sum(points * points, axis=1), (0, 1), constant_values=jnp.inf)
    num_chunks = (count + chunk - 1) // chunk
    # One extra segment, label c, collects the padding pairs and is dropped at the end.
    segments = num_labels + 1

    def one_block(block_points):
        def one_chunk(t, carry):
            best, best_id = carry
            ids, labels = _pair_chunk(ranks, t * chunk, chunk, n, num_labels)
            cross = jnp.matmul(column_points[ids], block_points.T, precision=lax.Precision.HIGHEST)
            # ||x_j - x_i||^2 less the row's own ||x_i||^2, which does not change the argmin.
            score = column_sq[ids][:, None] - 2.0 * cross
            chunk_best = jax.ops.segment_min(
                score, labels, num_segments=segments, indices_are_sorted=True
            )
            # Pairs are sorted by sample within a label, so the smallest id reaching the min is
            # the first one: ties go to the lowest index, in this chunk and (strict < below)
            # across chunks. An empty segment's id min is int32 max; it never passes `closer`.
            reached = jnp.where(score == chunk_best[labels], ids[:, None], n)
            chunk_id = jax.ops.segment_min(
                reached, labels, num_segments=segments, indices_are_sorted=True
            )
            closer = chunk_best < best
            return jnp.where(closer, chunk_best, best), jnp.where(closer, chunk_id, best_id)

        initial = (
            jnp.full((segments, block), jnp.inf, points.dtype),
            jnp.full((segments, block), n, jnp.int32),
        )
        return lax.fori_loop(0, num_chunks, one_chunk, initial)[1][:num_labels]

    nearest = lax.map(one_block, row_points)  # [num_blocks, c, block]
    nearest = nearest.transpose(1, 0, 2).reshape(num_labels, padded)[:, :n]
    # A member's nearest member is itself (even if an exact duplicate exists), so the diagonal of
    # H is exactly 0.
    return jnp.where(members.T, jnp.arange(n, dtype=jnp.int32)[None, :], nearest)


@jax.custom_jvp
def _member_sums(
    values: jax.Array, weights: jax.Array, ranks: jax.Array, count: jax.Array
) -> jax.Array:
    """`[c, n]` V -> `[c, c]` V L: entry (b, a) is the sum of V_bi over the members i of a.

    The value is a scatter-add of the membership pairs in chunks (O(c * memberships) work: the
    dense V L costs O(c^2 n), 4.4e9 multiply-adds for ALOI's 1,000 labels and 4,400 rows). The
    chunk loop has a data-dependent trip count, which reverse mode cannot differentiate, so the
    derivative is given as the dense matmul with the same L: linear, hence transposable, and run
    only when differentiating.

    Args:
      values: `[c, n]` V.
      weights: `[n, c]` L, the 0/1 membership as floats (for the derivative).
      ranks, count: `_membership_ranks(L != 0)`.
    """
    num_labels, n = values.shape
    chunk = _PAIR_CHUNK
    # Row n is zero: padding pairs (sample n, label c) add nothing, and go to a dropped row c.
    rows = jnp.pad(values.T, ((0, 1), (0, 0)))

    def one_chunk(t, total):
        ids, labels = _pair_chunk(ranks, t * chunk, chunk, n, num_labels)
        return total.at[labels].add(rows[ids], indices_are_sorted=True)

    initial = jnp.zeros((num_labels + 1, num_labels), values.dtype)
    total = lax.fori_loop(0, (count + chunk - 1) // chunk, one_chunk, initial)
    return total[:num_labels].T


@_member_sums.defjvp
def _member_sums_jvp(primals, tangents):
    values, weights, ranks, count = primals
    return _member_sums(values, weights, ranks, count), jnp.matmul(
        tangents[0], weights, precision=lax.Precision.HIGHEST
    )


@jax.checkpoint
def _distance_to(points: jax.Array, ids: jax.Array) -> jax.Array:
    """`[n, d]`, `[n]` -> `[n]`: ||f_i - f_{ids_i}||, computed from the difference itself.

    Checkpointed so that reverse mode keeps only `ids` per label, not a `[n, d]` difference.
    """
    return safe_norm(points - points[ids])


def average_hausdorff(
    features: jax.Array, labels: jax.Array, *, block_size: int = 1024
) -> jax.Array:
    """Average Hausdorff distance between the sample sets of every pair of labels (Eq. 4).

    H_ab = (sum_{i in a} min_{j in b} d_ij + sum_{j in b} min_{i in a} d_ij) / (|a| + |b|),
    d_ij = ||f_i - f_j||.

    With D_ib = min_{j in b} d_ij (`[n, c]`), the first sum is G_ab = sum_{i in a} D_ib
    (G = L^T D) and the second is G_ba, so H = (G + G^T) / (|a| + |b|).

    D is found in two steps. A search, with no gradient, finds each row's nearest member of each
    label from squared distances of the mean-centred features: one pass over blocks of rows, each
    against all (sample, label) membership pairs at once in `[_PAIR_CHUNK, block_size]` tiles,
    with the per-label min and first argmin by segment reductions, so a label costs its own
    members and no padding. The distances to those nearest members are then recomputed from
    the differences f_i - f_j, so they are exact (0 for duplicate points, no cancellation error),
    and the gradient is that of the min at its minimiser, with the zero distance of a row to
    itself contributing 0, not NaN. G is summed over the membership pairs. Peak memory is
    O(block_size * (_PAIR_CHUNK + c) + c * n + n * d): no `[n, n]` (or `[block_size, n]`)
    matrix is formed. Work is O(n * memberships * d); reverse mode adds one O(c^2 n) matmul.

    Args:
      features: `[n, d]` features F^v of one modality, one row per sample, n >= 1.
      labels: `[n, c]` multi-hot labels (any nonzero entry counts as membership).
      block_size: rows of `features` handled at once.

    Returns:
      `[c, c]` symmetric H, same float dtype as `features` (at least float32). H_aa = 0 for a
      label with at least one sample. A label with no sample is +inf in its row and column,
      diagonal included (an empty set is no distance from anything).

    Raises:
      ValueError: if the shapes do not match, n = 0, n * c >= 2^31, or block_size < 1.
    """
    features = jnp.asarray(features)
    labels = jnp.asarray(labels)
    if features.ndim != 2 or labels.ndim != 2 or features.shape[0] != labels.shape[0]:
        raise ValueError(
            "average_hausdorff: features [n, d] and labels [n, c] must share n, got features "
            f"{features.shape} and labels {labels.shape}"
        )
    if features.shape[0] == 0:
        raise ValueError("average_hausdorff: features has no rows")
    if int(block_size) < 1:
        raise ValueError(f"average_hausdorff: block_size must be >= 1, got {block_size}")
    if labels.shape[0] * labels.shape[1] >= 2**31:
        # The membership pairs are numbered by int32 flat indices label * n + sample.
        raise ValueError(f"average_hausdorff: n * c must be below 2^31, got labels {labels.shape}")
    features = features.astype(jnp.result_type(features, jnp.float32))
    members = labels != 0

    centred = lax.stop_gradient(features - jnp.mean(features, axis=0))
    ranks, count = _membership_ranks(members)
    nearest_ids = _nearest_member_ids(centred, members, ranks, count, int(block_size))
    present = jnp.any(members, axis=0)
    nearest_ids = jnp.where(present[:, None], nearest_ids, 0)
    nearest = lax.map(lambda ids: _distance_to(features, ids), nearest_ids)
    nearest = jnp.where(present[:, None], nearest, 0.0)

    weights = members.astype(features.dtype)
    sizes = jnp.sum(weights, axis=0)
    # sums[b, a] = sum_{i in a} D_ib
    sums = _member_sums(nearest, weights, ranks, count)
    both = present[:, None] & present[None, :]
    denominator = jnp.where(both, sizes[:, None] + sizes[None, :], 1.0)
    return jnp.where(both, (sums + sums.T) / denominator, jnp.inf)


LABEL_SIMILARITY_SCALES = ("scale_free", "paper")


def label_similarity(
    hausdorff: jax.Array,
    *,
    sigma: float | jax.Array | None = None,
    scale: str = "paper",
) -> jax.Array:
    """Gaussian similarity between labels from their Hausdorff distances (Eq. 4).

    scale="paper": R_ab = exp(-H_ab / sigma^2), as Eq. 4 is printed.
    scale="scale_free": R_ab = exp(-H_ab / sigma), so with sigma = mean H, R depends on the
    ratios H_ab / mean(H) only: on label geometry, not on the feature scale.

    Args:
      hausdorff: `[c, c]` H from `average_hausdorff`; +inf entries (empty labels) give R = 0.
      sigma: the scale. None: the mean of the finite off-diagonal entries of H, the paper's
        "average of H^v" (1 if there is none or it is 0). This default is not scale-free: H
        scales with the features, sigma^2 with their square, so R moves towards 1 as the features
        grow and towards 0 as they shrink (see docs/DESIGN.md, Losses). The gradient flows
        through the default sigma as well.

      scale: "paper" or "scale_free" (above). Eq. 4 divides a distance by a squared distance
        when sigma is "the average of H^v"; "scale_free" is the dimensionally consistent reading.

    Returns:
      `[c, c]` R with entries in [0, 1].

    Raises:
      ValueError: if `hausdorff` is not square, or `scale` is unknown.
    """
    if scale not in LABEL_SIMILARITY_SCALES:
        raise ValueError(
            f"label_similarity: scale must be one of {LABEL_SIMILARITY_SCALES}, got {scale!r}"
        )
    hausdorff = jnp.asarray(hausdorff)
    if hausdorff.ndim != 2 or hausdorff.shape[0] != hausdorff.shape[1]:
        raise ValueError(f"label_similarity: hausdorff must be [c, c], got {hausdorff.shape}")
    hausdorff = hausdorff.astype(jnp.result_type(hausdorff, jnp.float32))
    finite = jnp.isfinite(hausdorff)
    # The double `where` keeps inf out of both branches, so neither value nor gradient sees inf*0.
    safe = jnp.where(finite, hausdorff, 0.0)
    if sigma is None:
        off_diagonal = finite & ~jnp.eye(hausdorff.shape[0], dtype=bool)
        count = jnp.sum(off_diagonal)
        mean = jnp.sum(jnp.where(off_diagonal, safe, 0.0)) / jnp.maximum(count, 1)
        sigma = jnp.where(mean > 0, mean, 1.0)
    divisor = sigma**2 if scale == "paper" else sigma
    return jnp.where(finite, jnp.exp(-safe / divisor), 0.0)
