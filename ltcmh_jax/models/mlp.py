"""A plain multi-layer perceptron: the building block of the feature, auto-encoder and meta nets;
and `dropout`, the optional regulariser of the feature nets' hidden layers."""

from collections.abc import Sequence

import jax
import jax.numpy as jnp
from flax import nnx


def dropout(hidden: jax.Array, rate: float, key: jax.Array | None) -> jax.Array:
    """Inverted dropout: each entry of `hidden` `[..., d]` is zeroed with probability `rate` and
    the kept ones are divided by 1 - rate, so the expected activation is unchanged and the
    evaluation pass (no key) needs no rescaling. `key` None or `rate` 0: `hidden` unchanged."""
    if key is None or rate == 0:
        return hidden
    if not 0 <= rate < 1:
        raise ValueError(f"dropout rate must be in [0, 1), got {rate}")
    keep = jax.random.bernoulli(key, 1.0 - rate, hidden.shape)
    return jnp.where(keep, hidden / (1.0 - rate), jnp.zeros_like(hidden))


class MLP(nnx.Module):
    """Linear layers of widths `sizes` with ReLU between them and a linear output.

    `MLP((d_in, h_1, ..., d_out))` maps `[n, d_in]` to `[n, d_out]`; `MLP((d_in, d_out))` is a
    single Linear layer.
    """

    def __init__(self, sizes: Sequence[int], *, rngs: nnx.Rngs):
        sizes = tuple(int(size) for size in sizes)
        if len(sizes) < 2 or min(sizes) < 1:
            raise ValueError(f"MLP sizes must be at least two positive widths, got {sizes}")
        self.sizes = sizes
        self.layers = nnx.List(
            [
                nnx.Linear(d_in, d_out, rngs=rngs)
                for d_in, d_out in zip(sizes[:-1], sizes[1:], strict=True)
            ]
        )

    def __call__(
        self, inputs: jax.Array, *, dropout_rate: float = 0.0, dropout_key: jax.Array | None = None
    ) -> jax.Array:
        """`[n, d_in]` -> `[n, d_out]`; with a `dropout_key`, `dropout` after every hidden ReLU
        (layer i draws its mask from `fold_in(dropout_key, i)`)."""
        if inputs.shape[-1] != self.sizes[0]:
            raise ValueError(
                f"MLP expects inputs of width {self.sizes[0]}, got an array of shape {inputs.shape}"
            )
        hidden = jnp.asarray(inputs, jnp.float32)
        for index, layer in enumerate(self.layers[:-1]):
            hidden = jax.nn.relu(layer(hidden))
            if dropout_key is not None:
                hidden = dropout(hidden, dropout_rate, jax.random.fold_in(dropout_key, index))
        return self.layers[-1](hidden)
