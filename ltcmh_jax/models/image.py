"""Image networks F^x = CNN(X): an MLP over precomputed features and CNN-F on raw images.

Both end in a `bits`-wide linear layer, so d_x = k as the paper sets.
"""

from collections.abc import Sequence

import jax
import jax.numpy as jnp
import numpy as np
from flax import nnx

from ltcmh_jax.models.mlp import MLP, dropout


class ImageMLP(nnx.Module):
    """Image network over precomputed feature vectors (VGG fc7, CLIP, the synthetic default).

    `[n, image_dim]` -> hidden ReLU layers of widths `hidden` -> `[n, bits]`.
    """

    def __init__(self, image_dim: int, hidden: Sequence[int], bits: int, *, rngs: nnx.Rngs):
        self.mlp = MLP((image_dim, *hidden, bits), rngs=rngs)

    def __call__(
        self, images: jax.Array, *, dropout_rate: float = 0.0, dropout_key: jax.Array | None = None
    ) -> jax.Array:
        """`[n, image_dim]` -> `[n, bits]`; with a `dropout_key`, `dropout` on every hidden
        layer."""
        if images.ndim != 2:
            raise ValueError(
                f"ImageMLP expects feature vectors [n, {self.mlp.sizes[0]}], got shape "
                f"{images.shape}"
            )
        return self.mlp(images, dropout_rate=dropout_rate, dropout_key=dropout_key)


class InputMean(nnx.Variable):
    """The average image subtracted from the input (not trained, loaded with the weights)."""


# RGB mean pixel of the averageImage in MatConvNet's imagenet-vgg-f.mat; used until a weight file
# provides its own average image, so that a randomly initialised CNN-F sees centred inputs.
VGGF_MEAN_PIXEL = (122.80329895019531, 114.88525390625, 101.57212829589844)

# MatConvNet's CNN-F geometry (Chatfield et al. 2014, as in matconvnet's VGG 'f' model):
# name -> (kernel size, stride, pad [top, bottom, left, right]).
CONV_GEOMETRY = {
    "conv1": (11, 4, (0, 0, 0, 0)),
    "conv2": (5, 1, (2, 2, 2, 2)),
    "conv3": (3, 1, (1, 1, 1, 1)),
    "conv4": (3, 1, (1, 1, 1, 1)),
    "conv5": (3, 1, (1, 1, 1, 1)),
}
POOL_GEOMETRY = {
    "pool1": (3, 2, (0, 1, 0, 1)),
    "pool2": (3, 2, (0, 0, 0, 0)),
    "pool5": (3, 2, (0, 0, 0, 0)),
}
# Local response normalisation after conv1 and conv2 as (size, kappa, alpha, beta): MatConvNet's
# y = x / (kappa + alpha * sum_{window of size channels} x^2)^beta, DCMH's values. A weight file's
# own `param` replaces them when loaded.
DEFAULT_LRN = (5, 2.0, 1e-4, 0.75)


def _output_size(size: int, kernel: int, stride: int, pad_low: int, pad_high: int) -> int:
    return (size + pad_low + pad_high - kernel) // stride + 1


def pool_input_sizes(image_size: int) -> dict[str, int]:
    """Side of the square map entering each pool layer, e.g. 54, 27, 13 for 224x224 inputs."""
    sizes, size = {}, image_size
    for conv, pool in (("conv1", "pool1"), ("conv2", "pool2"), ("conv5", "pool5")):
        kernel, stride, pad = CONV_GEOMETRY[conv]
        size = _output_size(size, kernel, stride, pad[0], pad[1])
        sizes[pool] = size
        kernel, stride, pad = POOL_GEOMETRY[pool]
        size = _output_size(size, kernel, stride, pad[0], pad[1])
    return sizes


def cnnf_spatial_size(image_size: int) -> int:
    """Side of the pool5 map that fc6 consumes (6 for 224x224 inputs)."""
    kernel, stride, pad = POOL_GEOMETRY["pool5"]
    return _output_size(pool_input_sizes(image_size)["pool5"], kernel, stride, pad[0], pad[1])


def local_response_norm(
    features: jax.Array, *, size: int, kappa: float, alpha: float, beta: float
) -> jax.Array:
    """MatConvNet's cross-channel LRN on `[n, h, w, c]`.

    y = x / (kappa + alpha * sum over `size` neighbouring channels of x^2)^beta.
    """
    before = (size - 1) // 2
    window_sum = jax.lax.reduce_window(
        features * features,
        0.0,
        jax.lax.add,
        window_dimensions=(1, 1, 1, size),
        window_strides=(1, 1, 1, 1),
        padding=((0, 0), (0, 0), (0, 0), (before, size - 1 - before)),
    )
    return features / (kappa + alpha * window_sum) ** beta


def max_pool(features: jax.Array, *, size: int, stride: int, pad: Sequence[int]) -> jax.Array:
    """Max pooling on `[n, h, w, c]` with MatConvNet's [top, bottom, left, right] padding.

    Padded cells hold -inf, as in vl_nnpool, so they never win a window.
    """
    top, bottom, left, right = pad
    return jax.lax.reduce_window(
        features,
        -jnp.inf,
        jax.lax.max,
        window_dimensions=(1, size, size, 1),
        window_strides=(1, stride, stride, 1),
        padding=((0, 0), (top, bottom), (left, right), (0, 0)),
    )


class CNNF(nnx.Module):
    """CNN-F (VGG-F), the image network of DCMH, on raw RGB images.

    conv1 64 11x11 s4 + LRN + max pool, conv2 256 5x5 + LRN + pool, conv3-5 256 3x3, pool,
    fc6 4096, fc7 4096 (ReLU), fc8 -> `bits`. Input: `[n, 3, 224, 224]` (NCHW, as the data layer
    gives; uint8 or float in 0..255); the average image is subtracted first. `conv_channels` and
    `fc_dim` shrink the network for tests; the geometry stays that of CNN-F.
    """

    def __init__(
        self,
        bits: int,
        *,
        conv_channels: Sequence[int] = (64, 256, 256, 256, 256),
        fc_dim: int = 4096,
        image_size: int = 224,
        rngs: nnx.Rngs,
    ):
        if len(conv_channels) != 5:
            raise ValueError(f"CNNF conv_channels needs 5 widths, got {tuple(conv_channels)}")
        self.image_size = int(image_size)
        self.spatial_size = cnnf_spatial_size(self.image_size)
        if self.spatial_size < 1:
            raise ValueError(f"CNNF image_size {image_size} is too small for CNN-F's geometry")
        self.lrn = DEFAULT_LRN
        channels = (3, *conv_channels)
        for index, name in enumerate(CONV_GEOMETRY):
            kernel, stride, (top, bottom, left, right) = CONV_GEOMETRY[name]
            conv = nnx.Conv(
                channels[index],
                channels[index + 1],
                kernel_size=(kernel, kernel),
                strides=stride,
                padding=((top, bottom), (left, right)),
                rngs=rngs,
            )
            setattr(self, name, conv)
        self.fc6 = nnx.Linear(self.spatial_size**2 * channels[-1], fc_dim, rngs=rngs)
        self.fc7 = nnx.Linear(fc_dim, fc_dim, rngs=rngs)
        # DCMH draws the new hash layer from N(0, 0.01^2), weights and bias alike.
        small_normal = nnx.initializers.normal(stddev=0.01)
        self.fc8 = nnx.Linear(
            fc_dim, bits, kernel_init=small_normal, bias_init=small_normal, rngs=rngs
        )
        mean_image = np.broadcast_to(
            np.asarray(VGGF_MEAN_PIXEL, np.float32), (self.image_size, self.image_size, 3)
        )
        self.average_image = InputMean(jnp.asarray(mean_image))

    def _normalize(self, features: jax.Array) -> jax.Array:
        size, kappa, alpha, beta = self.lrn
        return local_response_norm(features, size=size, kappa=kappa, alpha=alpha, beta=beta)

    def _pool(self, features: jax.Array, name: str) -> jax.Array:
        size, stride, pad = POOL_GEOMETRY[name]
        return max_pool(features, size=size, stride=stride, pad=pad)

    def __call__(
        self, images: jax.Array, *, dropout_rate: float = 0.0, dropout_key: jax.Array | None = None
    ) -> jax.Array:
        """`[n, 3, 224, 224]` -> `[n, bits]`; with a `dropout_key`, `dropout` after fc6 and fc7
        (where VGG-F's ImageNet training had it), masks from `jax.random.split(dropout_key)`."""
        hidden = self.pool5_features(images)
        keys = (None, None) if dropout_key is None else jax.random.split(dropout_key)
        hidden = dropout(jax.nn.relu(self.fc6(hidden)), dropout_rate, keys[0])
        hidden = dropout(jax.nn.relu(self.fc7(hidden)), dropout_rate, keys[1])
        return self.fc8(hidden)

    def pool5_features(self, images: jax.Array) -> jax.Array:
        """The convolutional trunk: `[n, 3, 224, 224]` -> flattened pool5 `[n, 6 * 6 * 256]`."""
        expected = (3, self.image_size, self.image_size)
        if images.ndim != 4 or tuple(images.shape[1:]) != expected:
            raise ValueError(
                f"CNNF expects NCHW images [n, {expected[0]}, {expected[1]}, {expected[2]}], "
                f"got shape {images.shape}"
            )
        hidden = jnp.transpose(jnp.asarray(images, jnp.float32), (0, 2, 3, 1))
        hidden = hidden - self.average_image[...]
        hidden = self._pool(self._normalize(jax.nn.relu(self.conv1(hidden))), "pool1")
        hidden = self._pool(self._normalize(jax.nn.relu(self.conv2(hidden))), "pool2")
        hidden = jax.nn.relu(self.conv3(hidden))
        hidden = jax.nn.relu(self.conv4(hidden))
        hidden = self._pool(jax.nn.relu(self.conv5(hidden)), "pool5")
        # Flattening NHWC in (h, w, c) order matches MatConvNet's fc6 filters [h, w, c, out].
        return hidden.reshape(hidden.shape[0], -1)
