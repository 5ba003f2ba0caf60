"""Reading MatConvNet's `imagenet-vgg-f.mat` into a CNN-F image network.

The file holds `layers`, a cell array of structs with `name`, `type` and either `weights`
(a cell {filters [h, w, c_in, c_out], biases}) or, in the oldest releases, `filters` / `biases`;
conv layers also carry `stride` and `pad` ([top, bottom, left, right]), pool layers `pool`,
`stride`, `pad`, LRN layers `param` ([size, kappa, alpha, beta]). The average image sits in
`normalization.averageImage` (the release DCMH uses) or `meta.normalization.averageImage` (newer
releases). fc8 (the 1000 ImageNet classes) is not loaded: the hash layer keeps its random init.
"""

import os

import jax.numpy as jnp
import numpy as np
import scipy.io

from ltcmh_jax.data.matreader import is_hdf5, unreadable_error
from ltcmh_jax.models.image import CNNF, CONV_GEOMETRY, POOL_GEOMETRY, pool_input_sizes

_LOADED_LAYERS = ("conv1", "conv2", "conv3", "conv4", "conv5", "fc6", "fc7")
_LRN_LAYERS = ("norm1", "norm2")


def _field(struct, name: str, default=None):
    return getattr(struct, name, default) if name in struct._fieldnames else default


def _as_tuple(value, length: int) -> tuple[int, ...]:
    values = np.atleast_1d(np.asarray(value)).astype(np.int64).ravel()
    if values.size == 1:
        values = np.repeat(values, length)
    return tuple(int(v) for v in values)


def _layers_by_name(contents: dict, path: str) -> dict:
    if "layers" not in contents:
        raise ValueError(f"{path}: no 'layers' array; is this a MatConvNet SimpleNN model file?")
    layers = {}
    for layer in np.atleast_1d(contents["layers"]).ravel():
        if not hasattr(layer, "_fieldnames") or "name" not in layer._fieldnames:
            raise ValueError(f"{path}: 'layers' holds an entry without a name field")
        layers[str(layer.name)] = layer
    return layers


def _filters_and_biases(layer, name: str, path: str) -> tuple[np.ndarray, np.ndarray]:
    weights = _field(layer, "weights")
    if weights is not None and np.size(weights) == 2:
        filters, biases = np.asarray(weights, dtype=object).ravel()
    elif _field(layer, "filters") is not None:
        filters, biases = layer.filters, layer.biases
    else:
        raise ValueError(f"{path}: layer {name!r} has no weights (or filters/biases) field")
    return np.asarray(filters, np.float32), np.asarray(biases, np.float32).ravel()


def _check_conv_geometry(layer, name: str, path: str) -> None:
    _, stride, pad = CONV_GEOMETRY[name]
    file_stride = _as_tuple(_field(layer, "stride", stride), 2)
    file_pad = _as_tuple(_field(layer, "pad", pad), 4)
    if file_stride != (stride, stride) or file_pad != pad:
        raise ValueError(
            f"{path}: layer {name!r} has stride {file_stride} and pad {file_pad}; CNN-F uses "
            f"stride {(stride, stride)} and pad {pad}"
        )


def _check_pool_geometry(layer, name: str, path: str, input_size: int) -> None:
    size, stride, pad = POOL_GEOMETRY[name]
    file_size = _as_tuple(_field(layer, "pool", size), 2)
    file_stride = _as_tuple(_field(layer, "stride", stride), 2)
    file_pad = _as_tuple(_field(layer, "pad", pad), 4)

    def windows(pad_low: int, pad_high: int) -> int:
        return (input_size + pad_low + pad_high - size) // stride + 1

    # With no top/left pad, extra bottom/right pad that adds no window changes nothing.
    same = (
        file_size == (size, size)
        and file_stride == (stride, stride)
        and file_pad[0] == pad[0]
        and file_pad[2] == pad[2]
        and windows(file_pad[0], file_pad[1]) == windows(pad[0], pad[1])
        and windows(file_pad[2], file_pad[3]) == windows(pad[2], pad[3])
    )
    if not same:
        raise ValueError(
            f"{path}: layer {name!r} pools {file_size} with stride {file_stride} and pad "
            f"{file_pad}; CNN-F pools {(size, size)} with stride {(stride, stride)} and pad {pad}"
        )


def _average_image(contents: dict, image_size: int, path: str) -> np.ndarray:
    normalization = contents.get("normalization")
    if normalization is None and "meta" in contents:
        normalization = _field(contents["meta"], "normalization")
    average = None if normalization is None else _field(normalization, "averageImage")
    if average is None:
        raise ValueError(f"{path}: no normalization.averageImage (nor meta.normalization...)")
    average = np.asarray(average, np.float32)
    if average.size == 3:
        average = average.reshape(1, 1, 3)
    target = (image_size, image_size, 3)
    try:
        return np.ascontiguousarray(np.broadcast_to(average, target))
    except ValueError:
        raise ValueError(
            f"{path}: averageImage has shape {average.shape}, CNN-F needs one that broadcasts "
            f"to {target}"
        ) from None


def _read_weights_file(path: str) -> dict:
    """`scipy.io.loadmat` of a MatConvNet file, its failures as one line naming `path`.

    Raises:
      FileNotFoundError: no such file.
      ValueError: a MATLAB v7.3 (HDF5) file, which MatConvNet's releases are not; a truncated,
        corrupt or non-MAT file.
    """
    if not os.path.isfile(path):
        raise FileNotFoundError(f"{path}: no such file (the MatConvNet imagenet-vgg-f.mat)")
    if is_hdf5(path):
        raise ValueError(
            f"{path}: a MATLAB v7.3 (HDF5) file; MatConvNet's imagenet-vgg-f.mat is a v5 file "
            "(resave it with save(..., '-v7'))"
        )
    try:
        return scipy.io.loadmat(path, squeeze_me=True, struct_as_record=False)
    except Exception as error:  # scipy raises ValueError, TypeError, OSError or zlib.error
        raise unreadable_error(path, error) from None


def load_vggf_weights(model_or_image_net, path: str | os.PathLike) -> CNNF:
    """Loads conv1-conv5, fc6, fc7, the LRN constants and the average image from a MatConvNet
    `imagenet-vgg-f.mat` into a CNN-F (given directly or as a HashingModel's `image_net`).

    Raises ValueError naming the layer and both shapes when the file's architecture differs from
    the network's (a reduced-width CNNF loads a file of the same reduced widths). Returns the CNNF.
    """
    path = os.fspath(path)
    cnnf = getattr(model_or_image_net, "image_net", model_or_image_net)
    if not isinstance(cnnf, CNNF):
        raise ValueError(
            f"load_vggf_weights({path!r}) needs a CNN-F image network (image_net='cnnf'), "
            f"got {type(cnnf).__name__}"
        )
    contents = _read_weights_file(path)
    layers = _layers_by_name(contents, path)

    new_values = {}
    for name in _LOADED_LAYERS:
        if name not in layers:
            raise ValueError(f"{path}: no layer named {name!r} (layers: {sorted(layers)})")
        layer = layers[name]
        module = getattr(cnnf, name)
        kernel_shape = tuple(module.kernel.shape)
        if name in CONV_GEOMETRY:
            _check_conv_geometry(layer, name, path)
            file_shape = kernel_shape
        elif name == "fc6":
            channels = cnnf.conv5.kernel.shape[-1]
            side = cnnf.spatial_size
            file_shape = (side, side, channels, kernel_shape[1])
        else:
            file_shape = (1, 1, *kernel_shape)
        filters, biases = _filters_and_biases(layer, name, path)
        # loadmat(squeeze_me=True) drops singleton axes, so compare with those dropped too.
        if tuple(d for d in filters.shape if d != 1) != tuple(d for d in file_shape if d != 1):
            raise ValueError(
                f"{path}: layer {name!r} has filters of shape {filters.shape}; this CNN-F "
                f"expects {file_shape}"
            )
        if biases.shape != (kernel_shape[-1],):
            raise ValueError(
                f"{path}: layer {name!r} has biases of shape {biases.shape}; this CNN-F "
                f"expects {(kernel_shape[-1],)}"
            )
        new_values[name] = (filters.reshape(kernel_shape), biases)

    input_sizes = pool_input_sizes(cnnf.image_size)
    for name in POOL_GEOMETRY:
        if name in layers:
            _check_pool_geometry(layers[name], name, path, input_sizes[name])

    lrn_params = set()
    for name in _LRN_LAYERS:
        if name in layers and _field(layers[name], "param") is not None:
            param = np.asarray(layers[name].param, np.float64).ravel()
            if param.size != 4:
                raise ValueError(f"{path}: layer {name!r} has LRN param {param}, expected 4 values")
            lrn_params.add((int(param[0]), float(param[1]), float(param[2]), float(param[3])))
    if len(lrn_params) > 1:
        raise ValueError(f"{path}: norm1 and norm2 differ ({sorted(lrn_params)}); CNN-F shares one")

    average = _average_image(contents, cnnf.image_size, path)

    # Everything is checked before anything is written, so a bad file leaves the network intact.
    for name, (kernel, bias) in new_values.items():
        module = getattr(cnnf, name)
        module.kernel[...] = jnp.asarray(kernel)
        module.bias[...] = jnp.asarray(bias)
    if lrn_params:
        cnnf.lrn = lrn_params.pop()
    cnnf.average_image[...] = jnp.asarray(average)
    return cnnf
