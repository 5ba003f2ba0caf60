"""Text network F^y = FC(Y): two fully connected layers over bag-of-words tags (DCMH)."""

import jax
import jax.numpy as jnp
import numpy as np
from flax import nnx

from ltcmh_jax.models.mlp import dropout


def sparse_bag(text: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The nonzero tags of each row of a bag-of-words matrix `[n, d_t]`, padded to a common width.

    Returns `indices` int32 `[n, nnz_max]` and `values` float32 `[n, nnz_max]`, rows padded with
    index 0 and value 0 (a zero value adds nothing, so the padding is harmless). `nnz_max` is at
    least 1 so that the arrays are never empty.
    """
    text = np.asarray(text)
    if text.ndim != 2:
        raise ValueError(
            f"sparse_bag expects a bag-of-words matrix [n, d_t], got shape {text.shape}"
        )
    rows, columns = np.nonzero(text)
    counts = np.bincount(rows, minlength=text.shape[0])
    width = max(1, int(counts.max(initial=0)))
    # Position of each nonzero within its row: its rank among the (row-sorted) nonzeros.
    starts = np.concatenate([[0], np.cumsum(counts)[:-1]])
    slots = np.arange(rows.size) - starts[rows]
    indices = np.zeros((text.shape[0], width), np.int32)
    values = np.zeros((text.shape[0], width), np.float32)
    indices[rows, slots] = columns
    values[rows, slots] = text[rows, columns]
    return indices, values


# Rows of a tag's gradient gathered by one fused sum in `_kernel_gradient`; the rest of a tag's
# occurrences in a batch (rare for 2.5%-dense tags and a batch of 128) go through a scatter-add.
_ROWS_PER_TAG = 8
_OVERFLOW_CHUNK = 128
# Slots of the bag summed by one fused pass of `_bag_forward`.
_SLOTS_PER_PASS = 8


def _bag_forward(kernel: jax.Array, indices: jax.Array, values: jax.Array) -> jax.Array:
    # _SLOTS_PER_PASS gathered rows per output element in one fused pass (unrolled, so XLA fuses
    # them), one pass per group of slots: the [n, hidden] sum is read and written once per group
    # rather than once per slot (measured 2x faster than a pass per slot on the MIRFlickr
    # shapes), and memory stays O(n * hidden); gathering all slots at once would materialise
    # [n, nnz, hidden] floats (176 MB for n=128, nnz=40, hidden=8192).
    width = indices.shape[1]
    padding = -width % _SLOTS_PER_PASS
    # Padding slots have value 0 (and index 0): they add nothing.
    indices = jnp.pad(indices, ((0, 0), (0, padding)))
    values = jnp.pad(values, ((0, 0), (0, padding)))

    def add_slots(group, total):
        first = group * _SLOTS_PER_PASS
        group_indices = jax.lax.dynamic_slice_in_dim(indices, first, _SLOTS_PER_PASS, axis=1)
        group_values = jax.lax.dynamic_slice_in_dim(values, first, _SLOTS_PER_PASS, axis=1)
        for slot in range(_SLOTS_PER_PASS):
            total = total + group_values[:, slot, None] * kernel[group_indices[:, slot]]
        return total

    initial = jnp.zeros((indices.shape[0], kernel.shape[1]), kernel.dtype)
    return jax.lax.fori_loop(0, indices.shape[1] // _SLOTS_PER_PASS, add_slots, initial)


def _sort_by_tag(tags: jax.Array, num_tags: int) -> tuple[jax.Array, jax.Array]:
    """`(sorted tags, order)` of int32 `tags` `[m]` in `[0, num_tags]`: a stable sort by tag.

    One sort of int32 keys tag * m + position while they fit (d_t = 1386 with a batch of 128 x
    53 slots gives keys below 1e7): XLA's CPU sort of one operand took a tenth of the time of
    the stable two-operand argsort it falls back to for larger keys.
    """
    entries = tags.shape[0]
    if (num_tags + 1) * entries < 2**31:
        keys = jnp.sort(tags * entries + jnp.arange(entries, dtype=jnp.int32))
        return keys // entries, keys % entries
    order = jnp.argsort(tags, stable=True).astype(jnp.int32)
    return tags[order], order


def _search_method() -> str:
    """`jnp.searchsorted`'s method for the backward's run bounds: "scan" on a CPU (0.59 ms
    against 0.99 ms unrolled for a batch of 128 over 1,386 tags, session 10), "scan_unrolled"
    elsewhere, where each step of a rolled scan is a kernel launch (docs/DESIGN.md, Training
    speed, "On a GPU")."""
    return "scan" if jax.default_backend() == "cpu" else "scan_unrolled"


def _kernel_gradient(
    bag_gradient: jax.Array, indices: jax.Array, values: jax.Array, num_tags: int
) -> jax.Array:
    """`[num_tags, hidden]` d loss / d kernel = sum over entries (i, j) with indices[i, j] = t of
    values[i, j] * bag_gradient[i], for every tag t.

    Autodiff of `_bag_forward` would scatter-add one `[n, hidden]` slab per slot into the kernel
    gradient, padding slots included. Here the batch's nonzeros are sorted by tag into a
    `[num_tags, _ROWS_PER_TAG]` table, so each row of the gradient is one fused gather-sum over
    `bag_gradient` (small, cache-resident), written once; occurrences beyond the table's width
    are scatter-added in chunks, as many as there are. Only that add is a scatter.
    """
    n, width = indices.shape
    entries = n * width
    values = values.reshape(-1)
    # Padding (value 0) gets tag `num_tags`: sorted last and left out of the table.
    tags = jnp.where(values != 0, indices.reshape(-1), num_tags)
    tags, order = _sort_by_tag(tags, num_tags)
    rows, values = order // width, values[order]
    # Tag t's entries are the sorted positions [bounds[t], bounds[t + 1]). The table and the
    # overflow list are gathered from those runs, not scattered into: a scatter-set with
    # out-of-bounds indices dropped (mode="drop") lost whole rows of this gradient on a GPU
    # (jax 0.11.2, H200, session 10; jax-ml/jax#21708), and gathers need no such semantics.
    bounds = jnp.searchsorted(
        tags, jnp.arange(num_tags + 1, dtype=tags.dtype), side="left", method=_search_method()
    )
    slot = bounds[:-1, None] + jnp.arange(_ROWS_PER_TAG, dtype=bounds.dtype)
    in_table = slot < bounds[1:, None]
    slot = jnp.minimum(slot, entries - 1)
    table_rows = jnp.where(in_table, rows[slot], 0)
    table_values = jnp.where(in_table, values[slot], 0)
    # Unrolled so that XLA fuses the gathers into a single pass over the output.
    gradient = table_values[:, 0, None] * bag_gradient[table_rows[:, 0]]
    for column in range(1, _ROWS_PER_TAG):
        gradient = gradient + table_values[:, column, None] * bag_gradient[table_rows[:, column]]

    # Entries past their tag's first _ROWS_PER_TAG, packed to the front in order: the k-th is
    # the first position where the running count of overflow entries reaches k + 1.
    rank = jnp.arange(entries, dtype=bounds.dtype) - bounds[tags]
    overflow_count = jnp.cumsum((rank >= _ROWS_PER_TAG) & (tags < num_tags), dtype=jnp.int32)
    chunks = -(-entries // _OVERFLOW_CHUNK)
    packed = jnp.arange(chunks * _OVERFLOW_CHUNK, dtype=jnp.int32)
    source = jnp.searchsorted(overflow_count, packed + 1, side="left", method=_search_method())
    used = packed < overflow_count[-1]
    source = jnp.minimum(source, entries - 1)

    def chunked(column):
        return jnp.where(used, column[source], 0).reshape(chunks, _OVERFLOW_CHUNK)

    overflow_tags = chunked(tags)
    overflow_rows = chunked(rows)
    overflow_values = chunked(values)

    def add_chunk(chunk, total):
        slabs = overflow_values[chunk, :, None] * bag_gradient[overflow_rows[chunk]]
        return total.at[overflow_tags[chunk]].add(slabs)

    used_chunks = -(-overflow_count[-1] // _OVERFLOW_CHUNK)
    return jax.lax.fori_loop(0, used_chunks, add_chunk, gradient)


@jax.custom_vjp
def embedding_bag(kernel: jax.Array, indices: jax.Array, values: jax.Array) -> jax.Array:
    """`[n, hidden]` sum_j values[:, j] * kernel[indices[:, j]], i.e. `dense_bag @ kernel`.

    Args:
      kernel: `[d_t, hidden]` float.
      indices: `[n, nnz]` int32 in `[0, d_t)`, from `sparse_bag`.
      values: `[n, nnz]` with the dtype of `kernel`; entries with value 0 are padding.
    """
    return _bag_forward(kernel, indices, values)


def _embedding_bag_forward(kernel, indices, values):
    return _bag_forward(kernel, indices, values), (kernel, indices, values)


def _embedding_bag_backward(residuals, bag_gradient):
    kernel, indices, values = residuals

    # d loss / d values[i, j] = bag_gradient[i] . kernel[indices[i, j]]; unused (and removed by
    # XLA) when the values are data, as in training.
    def slot_gradient(slot, total):
        column = jnp.sum(bag_gradient * kernel[indices[:, slot]], axis=1)
        return jax.lax.dynamic_update_index_in_dim(total, column, slot, axis=1)

    values_gradient = jax.lax.fori_loop(
        0, indices.shape[1], slot_gradient, jnp.zeros(values.shape, values.dtype)
    )
    kernel_gradient = _kernel_gradient(bag_gradient, indices, values, kernel.shape[0])
    return kernel_gradient, None, values_gradient


embedding_bag.defvjp(_embedding_bag_forward, _embedding_bag_backward)


class TextMLP(nnx.Module):
    """`[n, text_dim]` -> Linear -> ReLU (`hidden`, DCMH 8192) -> Linear -> `[n, bits]`."""

    def __init__(self, text_dim: int, hidden: int, bits: int, *, rngs: nnx.Rngs):
        self.text_dim = int(text_dim)
        self.hidden_layer = nnx.Linear(text_dim, hidden, rngs=rngs)
        self.output_layer = nnx.Linear(hidden, bits, rngs=rngs)

    def __call__(
        self, text: jax.Array, *, dropout_rate: float = 0.0, dropout_key: jax.Array | None = None
    ) -> jax.Array:
        """`[n, text_dim]` -> `[n, bits]`; with a `dropout_key`, `dropout` on the hidden layer."""
        if text.ndim != 2 or text.shape[1] != self.text_dim:
            raise ValueError(f"TextMLP expects text [n, {self.text_dim}], got shape {text.shape}")
        hidden = jax.nn.relu(self.hidden_layer(jnp.asarray(text, jnp.float32)))
        return self.output_layer(dropout(hidden, dropout_rate, dropout_key))

    def sparse(
        self,
        indices: jax.Array,
        values: jax.Array,
        *,
        dropout_rate: float = 0.0,
        dropout_key: jax.Array | None = None,
    ) -> jax.Array:
        """Same as `__call__` on the dense bag that `(indices, values)` from `sparse_bag` encode
        (with the same dropout mask for the same key).

        The first layer is an embedding bag: sum_j values[:, j] * kernel[indices[:, j]].
        """
        if indices.shape != values.shape or indices.ndim != 2:
            raise ValueError(
                f"TextMLP.sparse expects indices and values of one shape [n, nnz], got "
                f"{indices.shape} and {values.shape}"
            )
        kernel = self.hidden_layer.kernel[...]
        indices = jnp.asarray(indices, jnp.int32)
        values = jnp.asarray(values, kernel.dtype)
        bag = embedding_bag(kernel, indices, values)
        hidden = jax.nn.relu(bag + self.hidden_layer.bias[...])
        return self.output_layer(dropout(hidden, dropout_rate, dropout_key))
