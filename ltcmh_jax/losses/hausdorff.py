"""Label-set distances and label similarity within one modality (Eq. 4)."""

import jax
import jax.numpy as jnp
from jax import lax

from ltcmh_jax.losses.distances import safe_norm

# Members of a label are visited in tiles of this many columns: small enough that a tail label
# with 60 samples wastes little padding and a [block, tile] distance tile stays in cache, large
# enough to keep the matmul efficient.
_MEMBER_TILE = 256


def _nearest_member_ids(points: jax.Array, members: jax.Array, block_size: int) -> jax.Array:
    """For every label b and row i, the index of the member of b nearest to row i.

    Args:
      points: `[n, d]` mean-centred features.
      members: `[n, c]` bool membership.
      block_size: rows per block.

    Returns:
      `[c, n]` int32 indices; i itself when i is a member of b; n when b has no member.
    """
    n, dim = points.shape
    tile = _MEMBER_TILE
    block = min(block_size, n)
    num_blocks = -(-n // block)
    padded = num_blocks * block
    row_points = jnp.pad(points, ((0, padded - n), (0, 0))).reshape(num_blocks, block, dim)
    # Row n is a sentinel that padding slots of the last tile point to: its squared norm is inf,
    # so it never wins and the tiles need no validity mask.
    column_points = jnp.pad(points, ((0, 1), (0, 0)))
    column_sq = jnp.pad(jnp.sum(points * points, axis=1), (0, 1), constant_values=jnp.inf)
    slot_positions = jnp.arange(tile, dtype=points.dtype)

    def one_label(member_mask):
        count = jnp.sum(member_mask, dtype=jnp.int32)
        member_ids = jnp.nonzero(member_mask, size=n + tile, fill_value=n)[0].astype(jnp.int32)
        # A data-dependent trip count: a label costs O(n |b| d), not O(n^2 d), so all labels
        # together cost O(n * memberships * d) whatever the label sizes.
        num_tiles = (count + tile - 1) // tile

        def one_block(block_points):
            def one_tile(t, carry):
                best, best_id = carry
                ids = lax.dynamic_slice(member_ids, (t * tile,), (tile,))
                cross = jnp.matmul(
                    block_points, column_points[ids].T, precision=lax.Precision.HIGHEST
                )
                # ||x_i - x_j||^2 less the row's own ||x_i||^2, which does not change the argmin.
                score = column_sq[ids][None, :] - 2.0 * cross
                tile_best = jnp.min(score, axis=1)
                # Two plain float reductions: XLA's CPU argmin (a two-operand reduce) was 4x
                # slower, an int32 min over ids 15% slower. Ties go to the first position.
                position = jnp.min(
                    jnp.where(score == tile_best[:, None], slot_positions[None, :], tile), axis=1
                )
                # The clamp only matters for NaN features (no position matches).
                tile_id = ids[jnp.minimum(position.astype(jnp.int32), tile - 1)]
                closer = tile_best < best
                return jnp.where(closer, tile_best, best), jnp.where(closer, tile_id, best_id)

            initial = (
                jnp.full((block,), jnp.inf, points.dtype),
                jnp.full((block,), n, jnp.int32),
            )
            return lax.fori_loop(0, num_tiles, one_tile, initial)[1]

        return lax.map(one_block, row_points).reshape(padded)[:n]

    nearest = lax.map(one_label, members.T)
    # A member's nearest member is itself (even if an exact duplicate exists), so the diagonal of
    # H is exactly 0.
    return jnp.where(members.T, jnp.arange(n, dtype=jnp.int32)[None, :], nearest)


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
    label from squared distances of the mean-centred features (one matmul per `[block_size, 256]`
    tile of a label's members). The distances to those nearest members are then recomputed from
    the differences f_i - f_j, so they are exact (0 for duplicate points, no cancellation error),
    and the gradient is that of the min at its minimiser, with the zero distance of a row to
    itself contributing 0, not NaN. Peak memory is O(block_size * 256 + c * n + n * d): no
    `[n, n]` (or `[block_size, n]`) matrix is formed. Work is O(n * memberships * d).

    Args:
      features: `[n, d]` features F^v of one modality, one row per sample, n >= 1.
      labels: `[n, c]` multi-hot labels (any nonzero entry counts as membership).
      block_size: rows of `features` handled at once.

    Returns:
      `[c, c]` symmetric H, same float dtype as `features` (at least float32). H_aa = 0 for a
      label with at least one sample. A label with no sample is +inf in its row and column,
      diagonal included (an empty set is no distance from anything).

    Raises:
      ValueError: if the shapes do not match, n = 0, or block_size < 1.
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
    features = features.astype(jnp.result_type(features, jnp.float32))
    members = labels != 0

    centred = lax.stop_gradient(features - jnp.mean(features, axis=0))
    nearest_ids = _nearest_member_ids(centred, members, int(block_size))
    present = jnp.any(members, axis=0)
    nearest_ids = jnp.where(present[:, None], nearest_ids, 0)
    nearest = lax.map(lambda ids: _distance_to(features, ids), nearest_ids)
    nearest = jnp.where(present[:, None], nearest, 0.0)

    weights = members.astype(features.dtype)
    sizes = jnp.sum(weights, axis=0)
    # sums[b, a] = sum_{i in a} D_ib
    sums = jnp.matmul(nearest, weights, precision=lax.Precision.HIGHEST)
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
