"""Raw image stacks of MATLAB files as `[n, 3, H, W]` uint8: lazy from HDF5 (v7.3), else in memory.

DCMH's `IAll` is a MatConvNet stack `[H, W, 3, n]` in MATLAB's axis order, so `h5py` sees
`[n, 3, W, H]`; a stack saved after a permute is `[n, 3, H, W]` (h5py: `[W, H, 3, n]`). Both come
out as `[n, 3, H, W]`.
"""

from __future__ import annotations

import os
from collections.abc import Sequence

import numpy as np

from ltcmh_jax.data.matreader import (
    find_variable,
    is_hdf5,
    mat_variables,
    read_v5_variable,
    unreadable_error,
)

# A read of rows spread over at most this many times as many rows as asked for is done as one
# contiguous block and subset in memory: far fewer HDF5 selections for a shuffled batch.
_DENSE_READ_FACTOR = 4

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
            raise unreadable_error(path, error) from None
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
            raise unreadable_error(self.path, error) from None

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
    name = find_variable(path, variables, names)
    layout = _image_layout(path, name, variables[name], num_samples)
    if is_hdf5(path):
        images = LazyImages(path, name, layout)
        if images.dtype != np.uint8:
            raise ValueError(f"{path}: {name} has dtype {images.dtype}, expected uint8 images")
        # A cheap read of both ends catches a file whose data region is cut short.
        _ = images[[0, len(images) - 1]]
        return name, images
    stack = read_v5_variable(path, name)
    if stack.dtype != np.uint8:
        raise ValueError(f"{path}: {name} has dtype {stack.dtype}, expected uint8 images")
    if layout == _LAYOUT_HWCN:
        stack = stack.transpose(3, 2, 0, 1)
    return name, np.ascontiguousarray(stack)
