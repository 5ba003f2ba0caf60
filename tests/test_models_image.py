"""Image networks: ImageMLP, CNN-F's layers, and loading MatConvNet's imagenet-vgg-f.mat."""

import os

import jax
import jax.numpy as jnp
import numpy as np
import pytest
import scipy.io
from flax import nnx

from ltcmh_jax.models import (
    CNNF,
    ImageMLP,
    ModelConfig,
    build_model,
    dropout,
    load_vggf_weights,
)
from ltcmh_jax.models.image import local_response_norm, max_pool

BITS = 8
# A reduced-width CNN-F: CNN-F's geometry on 224x224 inputs with few channels, so tests are fast.
CHANNELS, FC_DIM = (4, 6, 6, 6, 5), 12
FILE_LRN = (5, 1.5, 2e-3, 0.75)  # differs from the default, to see that the file's value is used


def test_image_mlp_has_the_configured_hidden_layers_and_k_outputs():
    net = ImageMLP(20, (16, 12), BITS, rngs=nnx.Rngs(0))
    assert [layer.kernel.shape for layer in net.mlp.layers] == [(20, 16), (16, 12), (12, BITS)]
    features = np.random.default_rng(0).normal(size=(3, 20)).astype(np.float32)
    hidden = features
    for layer in net.mlp.layers[:-1]:
        hidden = np.maximum(hidden @ layer.kernel[...] + layer.bias[...], 0)
    last = net.mlp.layers[-1]
    np.testing.assert_allclose(
        net(features), hidden @ last.kernel[...] + last.bias[...], rtol=1e-5, atol=1e-5
    )
    with pytest.raises(ValueError, match=r"\(3, 3, 20\)"):
        net(np.zeros((3, 3, 20)))


def test_local_response_norm_matches_matconvnet_formula():
    features = np.random.default_rng(0).normal(size=(2, 3, 3, 7)).astype(np.float32)
    size, kappa, alpha, beta = 5, 2.0, 0.1, 0.75
    expected = np.empty_like(features)
    for channel in range(7):
        window = features[..., max(0, channel - 2) : channel + 3]
        expected[..., channel] = (
            features[..., channel] / (kappa + alpha * (window**2).sum(axis=-1)) ** beta
        )
    got = local_response_norm(features, size=size, kappa=kappa, alpha=alpha, beta=beta)
    np.testing.assert_allclose(got, expected, rtol=1e-5, atol=1e-6)


def _numpy_max_pool_nchw(features, size, stride, pad):
    top, bottom, left, right = pad
    padded = np.pad(
        features, ((0, 0), (0, 0), (top, bottom), (left, right)), constant_values=-np.inf
    )
    rows = (padded.shape[2] - size) // stride + 1
    cols = (padded.shape[3] - size) // stride + 1
    out = np.empty(features.shape[:2] + (rows, cols), features.dtype)
    for i in range(rows):
        for j in range(cols):
            window = padded[:, :, i * stride : i * stride + size, j * stride : j * stride + size]
            out[:, :, i, j] = window.max(axis=(2, 3))
    return out


def test_max_pool_pads_bottom_right_with_minus_infinity():
    features = -np.abs(np.random.default_rng(0).normal(size=(1, 6, 6, 2))).astype(np.float32)
    got = max_pool(features, size=3, stride=2, pad=(0, 1, 0, 1))
    expected = _numpy_max_pool_nchw(features.transpose(0, 3, 1, 2), 3, 2, (0, 1, 0, 1))
    assert got.shape == (1, 3, 3, 2)  # 2x2 without the pad
    np.testing.assert_allclose(got, expected.transpose(0, 2, 3, 1))


# ---------------------------------------------------------------- MatConvNet weight files


def _cell(*arrays):
    cell = np.empty((1, len(arrays)), dtype=object)
    for index, array in enumerate(arrays):
        cell[0, index] = array
    return cell


def _vggf_layers(rng, channels=CHANNELS, fc_dim=FC_DIM):
    """MatConvNet SimpleNN layers of a CNN-F with the given widths, random weights."""
    widths = (3, *channels)
    kernels = (11, 5, 3, 3, 3)
    strides = (4, 1, 1, 1, 1)
    pads = ((0, 0, 0, 0), (2, 2, 2, 2), (1, 1, 1, 1), (1, 1, 1, 1), (1, 1, 1, 1))
    layers, weights = [], {}

    def conv(name, shape, stride, pad):
        # He-scaled so that the signal neither dies nor explodes through the layers.
        filters = (rng.normal(size=shape) * np.sqrt(2 / np.prod(shape[:3]))).astype(np.float32)
        biases = (rng.normal(size=(1, shape[-1])) * 0.01).astype(np.float32)
        weights[name] = (filters, biases.ravel())
        layers.append(
            dict(
                name=name,
                type="conv",
                weights=_cell(filters, biases),
                stride=np.array([stride, stride], float),
                pad=np.array(pad, float),
            )
        )

    def pool(name, pad):
        layers.append(
            dict(
                name=name,
                type="pool",
                method="max",
                pool=np.array([3.0, 3.0]),
                stride=np.array([2.0, 2.0]),
                pad=np.array(pad, float),
            )
        )

    def simple(name, layer_type, **fields):
        layers.append(dict(name=name, type=layer_type, **fields))

    for index in range(5):
        name = f"conv{index + 1}"
        conv(name, (kernels[index],) * 2 + widths[index : index + 2], strides[index], pads[index])
        simple(f"relu{index + 1}", "relu")
        if index < 2:
            simple(f"norm{index + 1}", "normalize", param=np.array(FILE_LRN, float))
            pool(f"pool{index + 1}", (0, 1, 0, 1) if index == 0 else (0, 0, 0, 0))
    pool("pool5", (0, 0, 0, 0))
    conv("fc6", (6, 6, channels[-1], fc_dim), 1, (0, 0, 0, 0))
    simple("relu6", "relu")
    conv("fc7", (1, 1, fc_dim, fc_dim), 1, (0, 0, 0, 0))
    simple("relu7", "relu")
    conv("fc8", (1, 1, fc_dim, 10), 1, (0, 0, 0, 0))
    simple("prob", "softmax")
    cell = np.empty((1, len(layers)), dtype=object)
    for index, layer in enumerate(layers):
        cell[0, index] = layer
    return cell, weights


def _write_vggf(path, rng, *, new_format=False, edit=None, **widths):
    layers, weights = _vggf_layers(rng, **widths)
    if edit is not None:
        edit(layers)
    average = rng.uniform(90, 130, size=(224, 224, 3)).astype(np.float32)
    if new_format:
        pixel = average.mean(axis=(0, 1))
        contents = dict(layers=layers, meta=dict(normalization=dict(averageImage=pixel)))
        average = np.broadcast_to(pixel, average.shape)
    else:  # the release DCMH reads: a top-level `normalization` struct
        contents = dict(layers=layers, normalization=dict(averageImage=average))
    scipy.io.savemat(path, contents)
    return weights, average


def _reference_forward(weights, average, fc8_kernel, fc8_bias, images):
    """CNN-F written independently: NCHW/OIHW lax convolutions and NumPy LRN and pooling."""
    hidden = images.astype(np.float32) - average.transpose(2, 0, 1)[None]
    size, kappa, alpha, beta = FILE_LRN

    def conv(hidden, name, stride, pad):
        filters, biases = weights[name]
        out = jax.lax.conv_general_dilated(
            jnp.asarray(hidden),
            jnp.asarray(filters.transpose(3, 2, 0, 1)),
            window_strides=(stride, stride),
            padding=((pad, pad), (pad, pad)),
            dimension_numbers=("NCHW", "OIHW", "NCHW"),
            precision=jax.lax.Precision.HIGHEST,
        )
        return np.maximum(np.asarray(out) + biases[None, :, None, None], 0)

    def lrn(hidden):
        squares = hidden**2
        window = np.stack(
            [squares[:, max(0, c - 2) : c + 3].sum(axis=1) for c in range(hidden.shape[1])], 1
        )
        return hidden / (kappa + alpha * window) ** beta

    hidden = _numpy_max_pool_nchw(lrn(conv(hidden, "conv1", 4, 0)), 3, 2, (0, 1, 0, 1))
    hidden = _numpy_max_pool_nchw(lrn(conv(hidden, "conv2", 1, 2)), 3, 2, (0, 0, 0, 0))
    hidden = conv(conv(conv(hidden, "conv3", 1, 1), "conv4", 1, 1), "conv5", 1, 1)
    hidden = _numpy_max_pool_nchw(hidden, 3, 2, (0, 0, 0, 0))
    hidden = hidden.transpose(0, 2, 3, 1).reshape(len(images), -1)
    for name in ("fc6", "fc7"):
        filters, biases = weights[name]
        hidden = np.maximum(hidden @ filters.reshape(-1, filters.shape[-1]) + biases, 0)
    return hidden @ fc8_kernel + fc8_bias


def _small_cnnf(seed=0):
    return CNNF(BITS, conv_channels=CHANNELS, fc_dim=FC_DIM, rngs=nnx.Rngs(seed))


@pytest.fixture(scope="module")
def images():
    return np.random.default_rng(7).integers(0, 256, size=(2, 3, 224, 224), dtype=np.uint8)


@pytest.mark.parametrize("new_format", [False, True])
def test_loaded_cnnf_matches_an_independent_reference_forward(tmp_path, images, new_format):
    path = tmp_path / "imagenet-vgg-f.mat"
    weights, average = _write_vggf(path, np.random.default_rng(1), new_format=new_format)
    cnnf = _small_cnnf()
    fc8_kernel, fc8_bias = np.asarray(cnnf.fc8.kernel[...]), np.asarray(cnnf.fc8.bias[...])
    assert load_vggf_weights(cnnf, path) is cnnf
    # First layer alone: our NHWC conv of the mean-subtracted image against lax's NCHW conv.
    nhwc = images.transpose(0, 2, 3, 1).astype(np.float32) - average
    filters, biases = weights["conv1"]
    reference_conv1 = (
        jax.lax.conv_general_dilated(
            jnp.asarray(nhwc.transpose(0, 3, 1, 2)),
            jnp.asarray(filters.transpose(3, 2, 0, 1)),
            window_strides=(4, 4),
            padding="VALID",
            dimension_numbers=("NCHW", "OIHW", "NCHW"),
            precision=jax.lax.Precision.HIGHEST,
        )
        + biases[None, :, None, None]
    )
    np.testing.assert_allclose(
        cnnf.conv1(nhwc), np.asarray(reference_conv1).transpose(0, 2, 3, 1), rtol=1e-4, atol=1e-3
    )
    # The whole network, fc8 kept at its random initialisation.
    assert cnnf.lrn == FILE_LRN
    np.testing.assert_array_equal(cnnf.fc8.kernel[...], fc8_kernel)
    expected = _reference_forward(weights, average, fc8_kernel, fc8_bias, images)
    got = np.asarray(cnnf(images))
    assert got.shape == (2, BITS)
    np.testing.assert_allclose(got, expected, rtol=1e-4, atol=1e-4 * np.abs(expected).max())


def test_a_file_of_another_architecture_is_refused_naming_layer_and_shapes(tmp_path):
    path = tmp_path / "vgg-wider.mat"
    _write_vggf(path, np.random.default_rng(1), channels=(4, 7, 6, 6, 5))
    cnnf = _small_cnnf()
    before = np.asarray(cnnf.conv1.kernel[...])
    with pytest.raises(
        ValueError, match=r"'conv2' has filters of shape \(5, 5, 4, 7\).*\(5, 5, 4, 6\)"
    ):
        load_vggf_weights(cnnf, path)
    # Checked before written: the network is left as it was.
    np.testing.assert_array_equal(cnnf.conv1.kernel[...], before)


def test_a_file_with_other_strides_is_refused(tmp_path):
    def stride_two_conv2(layers):
        for layer in layers.ravel():
            if layer["name"] == "conv2":
                layer["stride"] = np.array([2.0, 2.0])

    path = tmp_path / "vgg-m-like.mat"
    _write_vggf(path, np.random.default_rng(1), edit=stride_two_conv2)
    with pytest.raises(ValueError, match=r"'conv2' has stride \(2, 2\)"):
        load_vggf_weights(_small_cnnf(), path)


def _truncated_vggf(path):
    _write_vggf(path, np.random.default_rng(1))
    with open(path, "r+b") as handle:
        handle.truncate(os.path.getsize(path) // 2)


def _hdf5_file(path):
    import h5py

    with h5py.File(path, "w") as handle:
        handle["layers"] = np.zeros(3)


@pytest.mark.parametrize(
    "write, error, message",
    [
        (None, FileNotFoundError, "no such file"),
        (lambda path: path.write_bytes(b"not a mat file " * 20), ValueError, "cannot be read"),
        (_truncated_vggf, ValueError, "cannot be read"),
        (_hdf5_file, ValueError, "v7.3"),
    ],
    ids=["missing", "not a mat file", "truncated", "v7.3"],
)
def test_an_unreadable_weights_file_is_one_line_naming_it(tmp_path, write, error, message):
    path = tmp_path / "imagenet-vgg-f.mat"
    if write is not None:
        write(path)
    cnnf = _small_cnnf()
    before = np.asarray(cnnf.conv1.kernel[...])
    with pytest.raises(error) as raised:
        load_vggf_weights(cnnf, path)
    text = str(raised.value)
    assert str(path) in text and message in text and "\n" not in text
    np.testing.assert_array_equal(cnnf.conv1.kernel[...], before)


def test_loading_needs_a_cnnf(tmp_path):
    model = build_model(
        ModelConfig(method="dcmh", bits=BITS, image_dim=5, text_dim=4, text_hidden=8),
        rngs=nnx.Rngs(0),
    )
    with pytest.raises(ValueError, match="image_net='cnnf'.*ImageMLP"):
        load_vggf_weights(model, tmp_path / "unused.mat")


def test_cnnf_rejects_nhwc_images():
    with pytest.raises(ValueError, match=r"\[n, 3, 224, 224\].*\(1, 224, 224, 3\)"):
        _small_cnnf()(np.zeros((1, 224, 224, 3), np.uint8))


@pytest.mark.slow
def test_full_size_cnnf_in_a_hashing_model_encodes_raw_images(images):
    model = build_model(
        ModelConfig(bits=BITS, image_net="cnnf", text_dim=4, text_hidden=8, ae_hidden=8),
        rngs=nnx.Rngs(0),
    )
    assert model.image_net.fc6.kernel.shape == (6 * 6 * 256, 4096)
    codes = model.encode_image(images[:1])
    assert codes.shape == (1, BITS) and np.isfinite(np.asarray(codes)).all()


def test_dropout_zeroes_a_share_near_the_rate_and_keeps_the_mean():
    hidden = jnp.ones((400, 500))
    for rate in (0.2, 0.5):
        dropped = np.asarray(dropout(hidden, rate, jax.random.key(0)))
        assert set(np.unique(dropped).round(6)) == {0.0, round(1 / (1 - rate), 6)}
        # 200,000 Bernoulli draws: the share is within 0.005 of the rate (over 4 sd).
        assert abs(np.mean(dropped == 0) - rate) < 0.005
        assert abs(dropped.mean() - 1.0) < 0.01
    np.testing.assert_array_equal(dropout(hidden, 0.0, jax.random.key(0)), hidden)
    np.testing.assert_array_equal(dropout(hidden, 0.5, None), hidden)
    with pytest.raises(ValueError, match=r"dropout rate must be in \[0, 1\)"):
        dropout(hidden, 1.0, jax.random.key(0))


def test_image_mlp_dropout_masks_every_hidden_layer_from_its_own_key():
    net = ImageMLP(6, (16, 12), 4, rngs=nnx.Rngs(0))
    images = np.random.default_rng(0).normal(size=(5, 6)).astype(np.float32)
    key, rate = jax.random.key(3), 0.3
    hidden = images
    for index, layer in enumerate(net.mlp.layers[:-1]):
        hidden = np.maximum(hidden @ layer.kernel[...] + layer.bias[...], 0)
        keep = jax.random.bernoulli(jax.random.fold_in(key, index), 1 - rate, hidden.shape)
        hidden = np.where(keep, hidden / (1 - rate), 0.0)
    last = net.mlp.layers[-1]
    expected = hidden @ last.kernel[...] + last.bias[...]
    np.testing.assert_allclose(
        net(images, dropout_rate=rate, dropout_key=key), expected, rtol=1e-5, atol=1e-5
    )
    np.testing.assert_array_equal(net(images, dropout_rate=rate), net(images))


def test_cnnf_dropout_masks_fc6_and_fc7_and_the_evaluation_pass_has_none(images):
    cnnf = _small_cnnf()
    key, rate = jax.random.key(5), 0.5
    hidden = np.asarray(cnnf.pool5_features(images))
    for layer, layer_key in zip((cnnf.fc6, cnnf.fc7), jax.random.split(key), strict=True):
        hidden = np.maximum(hidden @ layer.kernel[...] + layer.bias[...], 0)
        keep = jax.random.bernoulli(layer_key, 1 - rate, hidden.shape)
        hidden = np.where(keep, hidden / (1 - rate), 0.0)
    expected = hidden @ cnnf.fc8.kernel[...] + cnnf.fc8.bias[...]
    trained = cnnf(images, dropout_rate=rate, dropout_key=key)
    np.testing.assert_allclose(trained, expected, rtol=1e-4, atol=1e-4)
    assert not np.allclose(trained, cnnf(images), atol=1e-4)
