"""A plain multi-layer perceptron: the building block of the feature, auto-encoder and meta nets."""

from collections.abc import Sequence

import jax
import jax.numpy as jnp
from flax import nnx


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

    def __call__(self, inputs: jax.Array) -> jax.Array:
        if inputs.shape[-1] != self.sizes[0]:
            raise ValueError(
                f"MLP expects inputs of width {self.sizes[0]}, got an array of shape {inputs.shape}"
            )
        hidden = jnp.asarray(inputs, jnp.float32)
        for layer in self.layers[:-1]:
            hidden = jax.nn.relu(layer(hidden))
        return self.layers[-1](hidden)
