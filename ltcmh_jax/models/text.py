"""Text network F^y = FC(Y): two fully connected layers over bag-of-words tags (DCMH)."""

import jax
import jax.numpy as jnp
import numpy as np
from flax import nnx


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


class TextMLP(nnx.Module):
    """`[n, text_dim]` -> Linear -> ReLU (`hidden`, DCMH 8192) -> Linear -> `[n, bits]`."""

    def __init__(self, text_dim: int, hidden: int, bits: int, *, rngs: nnx.Rngs):
        self.text_dim = int(text_dim)
        self.hidden_layer = nnx.Linear(text_dim, hidden, rngs=rngs)
        self.output_layer = nnx.Linear(hidden, bits, rngs=rngs)

    def __call__(self, text: jax.Array) -> jax.Array:
        if text.ndim != 2 or text.shape[1] != self.text_dim:
            raise ValueError(f"TextMLP expects text [n, {self.text_dim}], got shape {text.shape}")
        hidden = jax.nn.relu(self.hidden_layer(jnp.asarray(text, jnp.float32)))
        return self.output_layer(hidden)

    def sparse(self, indices: jax.Array, values: jax.Array) -> jax.Array:
        """Same as `__call__` on the dense bag that `(indices, values)` from `sparse_bag` encode.

        The first layer is an embedding bag: sum_j values[:, j] * kernel[indices[:, j]].
        """
        if indices.shape != values.shape or indices.ndim != 2:
            raise ValueError(
                f"TextMLP.sparse expects indices and values of one shape [n, nnz], got "
                f"{indices.shape} and {values.shape}"
            )
        kernel = self.hidden_layer.kernel[...]
        indices = jnp.asarray(indices, jnp.int32)
        values = jnp.asarray(values, jnp.float32)

        # One gathered [n, hidden] slab per slot keeps memory at O(n * hidden); gathering all
        # slots at once would materialise [n, nnz, hidden] floats (176 MB for n=128, nnz=40,
        # hidden=8192).
        def add_slot(slot, total):
            return total + values[:, slot, None] * kernel[indices[:, slot]]

        initial = jnp.zeros((indices.shape[0], kernel.shape[1]), kernel.dtype)
        bag = jax.lax.fori_loop(0, indices.shape[1], add_slot, initial)
        hidden = jax.nn.relu(bag + self.hidden_layer.bias[...])
        return self.output_layer(hidden)
