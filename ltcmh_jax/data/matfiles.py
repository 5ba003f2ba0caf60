"""Loaders for the files users have: DCMH-format MATLAB files and `.npz` feature archives.

The DCMH release (Jiang and Li, CVPR 2017) ships MIRFlickr-25K and NUS-WIDE as MATLAB files that
most cross-modal hashing code reuses: `IAll` (raw images), `YAll` (tag bag-of-words), `LAll`
(multi-hot labels), sometimes `XAll` (precomputed 4096-d VGG features) instead of `IAll`.

MATLAB stores arrays column-major. A v5 file read by `scipy.io.loadmat` gives the array in MATLAB's
own shape; a v7.3 file is HDF5, and `h5py` sees every array with its axes reversed (a MATLAB
`[n, d]` matrix appears as `[d, n]`). DCMH's `IAll` is a MatConvNet stack `[H, W, 3, n]`, so `h5py`
sees `[n, 3, W, H]`. The helpers here undo that, so callers always get rows = samples and images as
`[n, 3, H, W]`, whichever version the file is.
"""

from __future__ import annotations

import dataclasses
import os
import struct
from collections.abc import Sequence

import numpy as np

from ltcmh_jax.data.dataset import MultiModalDataset

DCMH_RELEASE = (
    "such files come from the DCMH release (github.com/jiangqy/DCMH-CVPR2017, data links in "
    "DCMH_matlab/readme.txt); the *-vgg.mat feature files from the DJSRH/UCCH releases"
)

_V5_HEADER_BYTES = 128
_MI_COMPRESSED = 15
# A read of rows spread over at most this many times as many rows as asked for is done as one
# contiguous block and subset in memory: far fewer HDF5 selections for a shuffled batch.
_DENSE_READ_FACTOR = 4


def _one_line(text: str) -> str:
    return " ".join(str(text).split())


def _unreadable(path: str, error: BaseException) -> ValueError:
    return ValueError(
        f"{path}: truncated or corrupt file, cannot be read "
        f"({type(error).__name__}: {_one_line(error)[:200]})"
    )


def _is_hdf5(path: str) -> bool:
    import h5py

    return bool(h5py.is_hdf5(path))


def _check_v5_complete(path: str) -> None:
    """Walks the top-level data elements of a v5 MAT-file; raises if the last one is cut off.

    scipy reads the variable headers it finds and silently drops a variable whose data is cut off,
    so a truncated file would otherwise look like a file with a missing variable. Only the 8-byte
    element tags are read, so this costs a few seeks even for a multi-GB file.
    """
    size = os.path.getsize(path)
    with open(path, "rb") as stream:
        header = stream.read(_V5_HEADER_BYTES)
        if header.startswith(b"MATLAB 7.3"):
            raise ValueError(f"{path}: truncated or corrupt MATLAB v7.3 (HDF5) file")
        if not header.startswith(b"MATLAB"):
            raise ValueError(f"{path}: not a MATLAB v5 or v7.3 file (no MATLAB header)")
        if len(header) < _V5_HEADER_BYTES:
            raise ValueError(f"{path}: truncated MATLAB v5 file ({size} bytes, header cut off)")
        endian = {b"IM": "<", b"MI": ">"}.get(header[126:128])
        if endian is None:
            raise ValueError(f"{path}: corrupt MATLAB v5 header (no endian indicator)")
        offset = _V5_HEADER_BYTES
        while size - offset >= 8:
            stream.seek(offset)
            data_type, num_bytes = struct.unpack(endian + "II", stream.read(8))
            end = offset + 8 + num_bytes
            if end > size:
                raise ValueError(
                    f"{path}: truncated MATLAB v5 file ({size} bytes, a variable ends at {end})"
                )
            # Uncompressed elements are padded to 8 bytes; compressed ones are not.
            offset = end if data_type == _MI_COMPRESSED else offset + 8 + -(-num_bytes // 8) * 8


def mat_variables(path: str) -> dict[str, tuple[int, ...]]:
    """Names and MATLAB shapes of the variables in a v5 or v7.3 MAT-file.

    Raises:
      FileNotFoundError: the file does not exist.
      ValueError: naming the file, when it is truncated, corrupt or not a MAT-file.
    """
    if not os.path.isfile(path):
        raise FileNotFoundError(f"{path}: no such file")
    if _is_hdf5(path):
        import h5py

        try:
            with h5py.File(path, "r") as handle:
                return {
                    name: _h5_matlab_shape(handle[name])
                    for name in handle
                    if not name.startswith("#")
                }
        except (OSError, KeyError, RuntimeError) as error:
            raise _unreadable(path, error) from None
    import scipy.io

    _check_v5_complete(path)
    try:
        return {name: tuple(shape) for name, shape, _ in scipy.io.whosmat(path)}
    except Exception as error:  # scipy raises many types (IndexError, OSError, ...) on bad bytes
        raise _unreadable(path, error) from None


def _h5_matlab_shape(item) -> tuple[int, ...]:
    import h5py

    if isinstance(item, h5py.Group):
        if "MATLAB_sparse" in item.attrs:
            return (int(item.attrs["MATLAB_sparse"]), int(item["jc"].shape[0]) - 1)
        return ()
    return tuple(int(s) for s in item.shape[::-1])


def _find_variable(path: str, variables: dict, names: Sequence[str]) -> str:
    for name in names:
        if name in variables:
            return name
    raise ValueError(
        f"{path}: expected a variable named {' or '.join(names)}, found "
        f"{sorted(variables) or 'no variables'}"
    )


def read_mat_matrix(path: str, names: Sequence[str]) -> tuple[str, np.ndarray]:
    """Reads a 2-D numeric MATLAB matrix, rows = samples, whichever MAT-file version.

    Args:
      path: a v5 (scipy) or v7.3 (HDF5) MAT-file.
      names: accepted variable names, first match wins.

    Returns:
      `(name, matrix)` with matrix `[n, d]` as MATLAB shows it (dense, original dtype).

    Raises:
      ValueError: naming the file, for a wrong variable name, a non-2-D or non-numeric variable, or
        a truncated/corrupt file.
    """
    variables = mat_variables(path)
    name = _find_variable(path, variables, names)
    if _is_hdf5(path):
        matrix = _read_h5_matrix(path, name)
    else:
        matrix = _read_v5_variable(path, name)
    if matrix.ndim != 2:
        raise ValueError(
            f"{path}: {name} has MATLAB shape {matrix.shape}, expected a 2-D matrix [n, d]"
        )
    return name, matrix


def _read_v5_variable(path: str, name: str) -> np.ndarray:
    import scipy.io
    import scipy.sparse

    try:
        value = scipy.io.loadmat(path, variable_names=[name])[name]
    except Exception as error:  # scipy raises many types on bad bytes
        raise _unreadable(path, error) from None
    if scipy.sparse.issparse(value):
        value = value.toarray()
    if value.dtype.kind not in "biuf":
        raise ValueError(
            f"{path}: {name} is a MATLAB {value.dtype} array (cell, struct or char), "
            "expected a numeric matrix"
        )
    return value


def _read_h5_matrix(path: str, name: str) -> np.ndarray:
    import h5py

    try:
        with h5py.File(path, "r") as handle:
            item = handle[name]
            if isinstance(item, h5py.Group):
                if "MATLAB_sparse" not in item.attrs:
                    raise ValueError(
                        f"{path}: {name} is a MATLAB struct or cell, expected a numeric matrix"
                    )
                return _read_h5_sparse(item)
            if item.dtype.kind not in "biuf" or _matlab_class(item) in ("char", "cell"):
                raise ValueError(
                    f"{path}: {name} is a MATLAB {_matlab_class(item) or item.dtype} array, "
                    "expected a numeric matrix"
                )
            return item[()].T
    except OSError as error:
        raise _unreadable(path, error) from None


def _matlab_class(item) -> str:
    value = item.attrs.get("MATLAB_class", b"")
    return value.decode() if isinstance(value, bytes) else str(value)


def _read_h5_sparse(group) -> np.ndarray:
    """A MATLAB v7.3 sparse matrix: CSC arrays `data`, `ir` (row ids), `jc` (column starts)."""
    import scipy.sparse

    num_rows = int(group.attrs["MATLAB_sparse"])
    column_starts = group["jc"][()]
    values = group["data"][()] if "data" in group else np.ones(column_starts[-1], np.float64)
    row_ids = group["ir"][()] if "ir" in group else np.zeros(0, np.int64)
    shape = (num_rows, len(column_starts) - 1)
    return scipy.sparse.csc_matrix((values, row_ids, column_starts), shape=shape).toarray()


# ---------------------------------------------------------------------------------------------
# Images
# ---------------------------------------------------------------------------------------------

# Where the sample and channel axes sit, in MATLAB's own axis order.
_LAYOUT_HWCN = "hwcn"  # MatConvNet / DCMH: [H, W, 3, n]
_LAYOUT_NCHW = "nchw"  # [n, 3, H, W] as saved from MATLAB after a permute


def _image_layout(path: str, name: str, matlab_shape: tuple[int, ...], num_samples: int) -> str:
    if len(matlab_shape) == 4 and matlab_shape[3] == num_samples and matlab_shape[2] == 3:
        return _LAYOUT_HWCN
    if len(matlab_shape) == 4 and matlab_shape[0] == num_samples and matlab_shape[1] == 3:
        return _LAYOUT_NCHW
    raise ValueError(
        f"{path}: {name} has MATLAB shape {matlab_shape}, expected [H, W, 3, n] (DCMH) or "
        f"[n, 3, H, W] with n = {num_samples} samples as in the label file"
    )


class LazyImages:
    """Raw images of a MATLAB v7.3 file, read from HDF5 only when rows are asked for.

    Presents the stack as a read-only `[n, 3, H, W]` uint8 array: `shape`, `dtype`, `len` and row
    indexing by int, slice or index array (any order, repeats allowed). A 20015-image stack is
    3 GB, so nothing is read at construction. Picklable (it reopens the file), so it can feed
    multi-process loaders.
    """

    def __init__(self, path: str, variable: str, layout: str):
        import h5py

        self.path = os.path.abspath(path)
        self.variable = variable
        self.layout = layout
        try:
            with h5py.File(self.path, "r") as handle:
                stored_shape = tuple(int(s) for s in handle[variable].shape)
                stored_dtype = handle[variable].dtype
        except (OSError, KeyError) as error:
            raise _unreadable(path, error) from None
        if layout == _LAYOUT_HWCN:  # stored [n, 3, W, H]
            num_samples, channels, width, height = stored_shape
        else:  # stored [W, H, 3, n]
            width, height, channels, num_samples = stored_shape
        self.shape = (num_samples, channels, height, width)
        self.dtype = np.dtype(stored_dtype)
        self._handle = None

    ndim = 4

    def __len__(self) -> int:
        return self.shape[0]

    def __repr__(self) -> str:
        return f"LazyImages({self.path!r}, {self.variable!r}, shape={self.shape})"

    def __getstate__(self):
        state = dict(self.__dict__)
        state["_handle"] = None
        return state

    def __setstate__(self, state):
        self.__dict__.update(state)

    def _dataset(self):
        if self._handle is None:
            import h5py

            self._handle = h5py.File(self.path, "r")
        return self._handle[self.variable]

    def close(self) -> None:
        if self._handle is not None:
            self._handle.close()
            self._handle = None

    def __array__(self, dtype=None, copy=None):
        images = self[:]
        return images if dtype is None else images.astype(dtype)

    def __getitem__(self, key):
        rest = ()
        if isinstance(key, tuple):
            key, rest = key[0], key[1:]
        if isinstance(key, (int, np.integer)):
            index = int(key) + (self.shape[0] if key < 0 else 0)
            if not 0 <= index < self.shape[0]:
                raise IndexError(f"image index {key} out of range for {self.shape[0]} images")
            images = self._read_block(index, index + 1)[0]
        elif isinstance(key, slice):
            start, stop, step = key.indices(self.shape[0])
            if step == 1:
                images = self._read_block(start, max(start, stop))
            else:
                images = self._read_rows(np.arange(start, stop, step))
        else:
            rows = np.asarray(key)
            if rows.dtype == bool:
                rows = np.flatnonzero(rows)
            images = self._read_rows(rows.astype(np.int64))
        return images[(slice(None),) * (images.ndim - 3) + rest] if rest else images

    def _read_block(self, start: int, stop: int) -> np.ndarray:
        try:
            if self.layout == _LAYOUT_HWCN:
                block = self._dataset()[start:stop]  # [k, 3, W, H]
                return np.ascontiguousarray(block.swapaxes(2, 3))
            block = self._dataset()[:, :, :, start:stop]  # [W, H, 3, k]
            return np.ascontiguousarray(block.transpose(3, 2, 1, 0))
        except OSError as error:
            raise _unreadable(self.path, error) from None

    def _read_rows(self, rows: np.ndarray) -> np.ndarray:
        if rows.size == 0:
            return np.zeros((0,) + self.shape[1:], self.dtype)
        rows = np.where(rows < 0, rows + self.shape[0], rows)
        if rows.min() < 0 or rows.max() >= self.shape[0]:
            raise IndexError(f"image rows out of range for {self.shape[0]} images")
        unique_rows, inverse = np.unique(rows, return_inverse=True)
        first, last = int(unique_rows[0]), int(unique_rows[-1]) + 1
        if last - first <= _DENSE_READ_FACTOR * unique_rows.size:
            unique_images = self._read_block(first, last)[unique_rows - first]
        else:
            unique_images = np.concatenate(
                [self._read_block(int(r), int(r) + 1) for r in unique_rows]
            )
        return unique_images[inverse.reshape(-1)]


def read_mat_images(
    path: str, names: Sequence[str], *, num_samples: int
) -> tuple[str, np.ndarray | LazyImages]:
    """Opens a raw image stack as `[n, 3, H, W]` uint8: lazily for v7.3, in memory for v5.

    Args:
      path: the MAT-file.
      names: accepted variable names.
      num_samples: n, from the label file; tells the sample axis from the others.

    Raises:
      ValueError: naming the file, for a wrong name, shape or dtype, or a truncated/corrupt file.
    """
    variables = mat_variables(path)
    name = _find_variable(path, variables, names)
    layout = _image_layout(path, name, variables[name], num_samples)
    if _is_hdf5(path):
        images = LazyImages(path, name, layout)
        if images.dtype != np.uint8:
            raise ValueError(f"{path}: {name} has dtype {images.dtype}, expected uint8 images")
        # A cheap read of both ends catches a file whose data region is cut short.
        _ = images[[0, len(images) - 1]]
        return name, images
    stack = _read_v5_variable(path, name)
    if stack.dtype != np.uint8:
        raise ValueError(f"{path}: {name} has dtype {stack.dtype}, expected uint8 images")
    if layout == _LAYOUT_HWCN:
        stack = stack.transpose(3, 2, 0, 1)
    return name, np.ascontiguousarray(stack)


# ---------------------------------------------------------------------------------------------
# Data sets
# ---------------------------------------------------------------------------------------------


@dataclasses.dataclass(frozen=True)
class _FileNames:
    """The file names of one DCMH-format data set."""

    title: str
    text: str
    labels: str
    raw_images: str
    features: str
    merged: str | None = None


_RAW_NAMES = ("IAll", "images")
_FEATURE_NAMES = ("XAll",)
_TEXT_NAMES = ("YAll",)
_LABEL_NAMES = ("LAll",)
IMAGE_SOURCES = ("auto", "raw", "features")

MIRFLICKR25K_FILES = _FileNames(
    title="MIRFlickr-25K",
    text="mirflickr25k-yall.mat",
    labels="mirflickr25k-lall.mat",
    raw_images="mirflickr25k-iall.mat",
    features="mirflickr25k-iall-vgg.mat",
    merged="FLICKR-25K.mat",
)


def nuswide_files(variant: str) -> _FileNames:
    """File names of NUS-WIDE `variant` ("tc21": top-21 concepts, "tc10": top-10)."""
    if variant not in ("tc21", "tc10"):
        raise ValueError(f"variant: {variant!r} is not one of 'tc21', 'tc10'")
    prefix = f"nus-wide-{variant}"
    return _FileNames(
        title=f"NUS-WIDE-{variant.upper()}",
        text=f"{prefix}-yall.mat",
        labels=f"{prefix}-lall.mat",
        raw_images=f"{prefix}-iall.mat",
        features=f"{prefix}-xall-vgg.mat",
    )


def _missing_files_error(data_dir: str, names: _FileNames, image_source: str) -> FileNotFoundError:
    images = {
        "raw": f"{names.raw_images} (IAll, raw images)",
        "features": f"{names.features} (XAll, VGG features)",
        "auto": f"{names.raw_images} (IAll, raw images) or {names.features} (XAll, VGG features)",
    }[image_source]
    merged = f", or the single merged {names.merged}" if names.merged else ""
    present = sorted(os.listdir(data_dir)) if os.path.isdir(data_dir) else None
    found = "the directory does not exist" if present is None else f"found {present[:8]}"
    return FileNotFoundError(
        f"{names.title} files not found in {data_dir} ({found}): expected {names.text} (YAll), "
        f"{names.labels} (LAll) and {images}{merged}; {DCMH_RELEASE}"
    )


def _load_dcmh(data_dir: str, names: _FileNames, image_source: str) -> MultiModalDataset:
    if image_source not in IMAGE_SOURCES:
        raise ValueError(f"image_source: {image_source!r} is not one of {IMAGE_SOURCES}")
    data_dir = os.fspath(data_dir)

    def exists(file_name):
        return file_name is not None and os.path.isfile(os.path.join(data_dir, file_name))

    have_split = exists(names.text) and exists(names.labels)
    image_file = None
    if have_split:
        candidates = {
            "raw": [(names.raw_images, "raw")],
            "features": [(names.features, "features")],
            "auto": [(names.raw_images, "raw"), (names.features, "features")],
        }[image_source]
        image_file = next(((f, kind) for f, kind in candidates if exists(f)), None)
    if image_file is not None:
        text_path = os.path.join(data_dir, names.text)
        label_path = os.path.join(data_dir, names.labels)
        image_path, kind = os.path.join(data_dir, image_file[0]), image_file[1]
    elif exists(names.merged):
        text_path = label_path = image_path = os.path.join(data_dir, names.merged)
        kind = "raw" if image_source in ("raw", "auto") else "features"
        if image_source == "auto" and not set(_RAW_NAMES) & set(mat_variables(image_path)):
            kind = "features"
    else:
        raise _missing_files_error(data_dir, names, image_source)

    _, labels = read_mat_matrix(label_path, _LABEL_NAMES)
    _, text = read_mat_matrix(text_path, _TEXT_NAMES)
    if kind == "raw":
        _, image = read_mat_images(image_path, _RAW_NAMES, num_samples=labels.shape[0])
    else:
        _, image = read_mat_matrix(image_path, _FEATURE_NAMES)
        image = image.astype(np.float32, copy=False)
    return _checked_dataset(
        image=image,
        text=text.astype(np.float32, copy=False),
        labels=labels,
        sources={"image": image_path, "text": text_path, "labels": label_path},
    )


def _checked_dataset(*, image, text, labels, sources: dict, label_names=()) -> MultiModalDataset:
    """`MultiModalDataset`, with its validation errors prefixed by the file each field came from."""
    counts = {"image": image.shape[0], "text": text.shape[0], "labels": labels.shape[0]}
    if len(set(counts.values())) > 1:
        if len({sources[k] for k in counts}) == 1:
            rows = ", ".join(f"{k} {v}" for k, v in counts.items())
            raise ValueError(f"{sources['labels']}: arrays disagree on the number of rows: {rows}")
        rows = ", ".join(f"{sources[k]} ({k}) {v}" for k, v in counts.items())
        raise ValueError(f"files disagree on the number of samples: {rows}")
    try:
        return MultiModalDataset(image=image, text=text, labels=labels, label_names=label_names)
    except ValueError as error:
        field = str(error).split(":", 1)[0]
        raise ValueError(f"{sources.get(field, sources['labels'])}: {error}") from None


def load_mirflickr25k(
    data_dir: str | os.PathLike, *, image_source: str = "auto"
) -> MultiModalDataset:
    """MIRFlickr-25K in the DCMH format: 20015 samples, 1386-d tags, 24 labels.

    Reads, from `data_dir`, `mirflickr25k-yall.mat` (YAll), `mirflickr25k-lall.mat` (LAll) and
    either `mirflickr25k-iall.mat` (IAll, uint8 `[H, W, 3, n]` MatConvNet stack, MATLAB v7.3) or
    `mirflickr25k-iall-vgg.mat` (XAll, `[n, 4096]` VGG features); or the single merged
    `FLICKR-25K.mat` of the DCMH demo (images, YAll, LAll, optionally XAll). Each file may be
    MATLAB v5 or v7.3.

    Args:
      data_dir: directory holding the files.
      image_source: "raw" (IAll), "features" (XAll) or "auto" (raw if present, else features).

    Returns:
      `MultiModalDataset`: image `[n, 3, H, W]` uint8 (a `LazyImages` for v7.3 files: read on
      demand) or `[n, 4096]` float32; text `[n, 1386]` float32; labels `[n, 24]`.

    Raises:
      FileNotFoundError: naming the expected files and where they come from.
      ValueError: naming the file, for wrong variable names or layouts, or truncated files.
    """
    return _load_dcmh(os.fspath(data_dir), MIRFLICKR25K_FILES, image_source)


def load_nuswide(
    data_dir: str | os.PathLike, *, variant: str = "tc21", image_source: str = "auto"
) -> MultiModalDataset:
    """NUS-WIDE in the DCMH format: `nus-wide-{variant}-{iall,yall,lall}.mat`.

    TC-21 (`variant="tc21"`): 195834 samples, 1000-d tags, 21 labels; TC-10: 10 labels. Features
    instead of raw images come as `nus-wide-{variant}-xall-vgg.mat` (XAll). Same file rules,
    return value and errors as `load_mirflickr25k`.
    """
    return _load_dcmh(os.fspath(data_dir), nuswide_files(variant), image_source)


_NPZ_FIELDS = ("image", "text", "labels")


def load_npz(path: str | os.PathLike) -> MultiModalDataset:
    """Precomputed features from an `.npz`: arrays `image`, `text`, `labels` (+ `label_names`).

    The way to bring any features (CLIP, VGG, ...). Loaded with `allow_pickle=False`: an archive
    holding object arrays (which need pickle, and so can run code) is refused.

    Raises:
      FileNotFoundError: the file does not exist.
      ValueError: naming the file, for missing arrays, object arrays, or a truncated/corrupt file.
    """
    path = os.fspath(path)
    if not os.path.isfile(path):
        raise FileNotFoundError(
            f"{path}: no such file; expected an .npz with arrays {', '.join(_NPZ_FIELDS)} "
            "(and optional label_names), as numpy.savez(path, image=, text=, labels=) writes"
        )
    try:
        archive = np.load(path, allow_pickle=False)
    except ValueError as error:
        if "pickle" in str(error):
            raise _pickle_refused(path) from None
        raise _unreadable(path, error) from None
    except Exception as error:  # zipfile.BadZipFile, EOFError, OSError on bad bytes
        raise _unreadable(path, error) from None
    if not isinstance(archive, np.lib.npyio.NpzFile):
        raise ValueError(f"{path}: a single .npy array, expected an .npz archive of named arrays")
    with archive:
        missing = [name for name in _NPZ_FIELDS if name not in archive.files]
        if missing:
            raise ValueError(
                f"{path}: missing arrays {missing}; found {sorted(archive.files)}, expected "
                f"{list(_NPZ_FIELDS)} (and optional label_names)"
            )
        arrays = {}
        for name in (*_NPZ_FIELDS, "label_names"):
            if name not in archive.files:
                continue
            try:
                arrays[name] = archive[name]
            except ValueError as error:
                if "pickle" in str(error):
                    raise _pickle_refused(path, name) from None
                raise _unreadable(path, error) from None
            except Exception as error:  # zipfile / zlib / EOF errors on a damaged member
                raise _unreadable(path, error) from None
    for name in ("text", "labels"):
        if arrays[name].dtype.kind not in "biuf":
            raise ValueError(f"{path}: {name} has dtype {arrays[name].dtype}, expected numbers")
    image = arrays["image"]
    if image.dtype != np.uint8:
        image = image.astype(np.float32, copy=False)
    label_names = arrays.get("label_names", np.zeros(0, str))
    return _checked_dataset(
        image=image,
        text=arrays["text"].astype(np.float32, copy=False),
        labels=arrays["labels"],
        label_names=tuple(str(n) for n in label_names.reshape(-1)),
        sources={"image": path, "text": path, "labels": path, "label_names": path},
    )


def _pickle_refused(path: str, name: str | None = None) -> ValueError:
    what = f"array {name!r} is" if name else "it holds"
    return ValueError(
        f"{path}: refused, {what} a Python object array that needs pickle (which can run code); "
        "save plain numeric arrays (label_names as a str array)"
    )
