"""Readers of MATLAB files, v5 (scipy) and v7.3 (HDF5, h5py): variable names, shapes and matrices.

MATLAB stores arrays column-major. A v5 file read by `scipy.io.loadmat` gives the array in MATLAB's
own shape; a v7.3 file is HDF5, and `h5py` sees every array with its axes reversed (a MATLAB
`[n, d]` matrix appears as `[d, n]`). The readers here undo that, so callers always get rows =
samples, whichever version the file is. Raw image stacks: `ltcmh_jax.data.lazy_images`.
"""

from __future__ import annotations

import os
import struct
from collections.abc import Sequence

import numpy as np

_V5_HEADER_BYTES = 128
_MI_COMPRESSED = 15


def _one_line(text: str) -> str:
    return " ".join(str(text).split())


def unreadable_error(path: str, error: BaseException) -> ValueError:
    """The one-line ValueError for a file the reader library failed on, naming `path`."""
    return ValueError(
        f"{path}: truncated or corrupt file, cannot be read "
        f"({type(error).__name__}: {_one_line(error)[:200]})"
    )


def is_hdf5(path: str) -> bool:
    """Whether `path` is HDF5, as a MATLAB v7.3 file is (v5 files are not)."""
    import h5py

    return bool(h5py.is_hdf5(path))


# Data types a v5 element tag may name (MAT-File Format, Table 1-1); 8, 10 and 11 are reserved.
_V5_TYPES = frozenset({1, 2, 3, 4, 5, 6, 7, 9, 12, 13, 14, 15, 16, 17, 18})
_MI_MATRIX = 14
# Bytes of a compressed variable decompressed to check its leading element tags.
_COMPRESSED_CHECK_BYTES = 1 << 16
# Compressed bytes read for that (64 KiB of output never needs more than this).
_COMPRESSED_READ_BYTES = 1 << 20


def _check_v5_structure(path: str) -> None:
    """Walks the data elements of a v5 MAT-file; raises a one-line ValueError naming the file if
    one is cut off or names a data type the format does not have.

    scipy reads the variable headers it finds and silently drops a variable whose data is cut off,
    so a truncated file would otherwise look like a file with a missing variable; and scipy's C
    reader crashes the process (a segmentation fault, found by tests/test_properties.py) on an
    element tag with an unknown data type. Only element tags are read (seeks), plus the first
    64 KiB of each compressed variable, so this stays cheap for a multi-GB file.
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

        def read_file(offset, count):
            stream.seek(offset)
            return stream.read(count)

        _check_v5_elements(path, read_file, _V5_HEADER_BYTES, size, endian, top_level=True)


def _check_v5_compressed(path: str, compressed: bytes, offset: int, endian: str, *, cut: bool):
    """Checks the leading element tags of a compressed variable (the first 64 KiB of it);
    `cut`: `compressed` is only the start of the variable's bytes."""
    import zlib

    try:
        leading = zlib.decompressobj().decompress(compressed, _COMPRESSED_CHECK_BYTES)
    except zlib.error as error:
        raise ValueError(
            f"{path}: corrupt MATLAB v5 file (compressed variable at byte {offset}: {error})"
        ) from None

    def read_leading(at, count):
        return leading[at : at + count]

    partial = cut or len(leading) == _COMPRESSED_CHECK_BYTES
    _check_v5_elements(path, read_leading, 0, len(leading), endian, partial=partial)


def _v5_tag(raw: bytes, endian: str) -> tuple[int, int, bool]:
    """`(data type, byte count, small)` of an 8-byte element tag; a small element keeps its
    (at most 4) bytes in the tag itself and says so in the upper half of the type field."""
    data_type, num_bytes = struct.unpack(endian + "II", raw)
    if data_type >> 16:
        return data_type & 0xFFFF, data_type >> 16, True
    return data_type, num_bytes, False


def _v5_next(offset: int, data_type: int, num_bytes: int, *, top_level: bool) -> int:
    # Elements are padded to 8 bytes, except compressed variables at the top level.
    if top_level and data_type == _MI_COMPRESSED:
        return offset + 8 + num_bytes
    return offset + 8 + -(-num_bytes // 8) * 8


def _check_v5_elements(path, read, offset, end, endian, *, top_level=False, partial=False):
    """Checks the element tags from `offset` to `end` (recursing into matrices); with `partial`,
    an element running past `end` is the end of what was decompressed, not an error."""
    while end - offset >= 8:
        data_type, num_bytes, small = _v5_tag(read(offset, 8), endian)
        if data_type not in _V5_TYPES or (small and num_bytes > 4):
            raise ValueError(
                f"{path}: corrupt MATLAB v5 file (an element at byte {offset} has data type "
                f"{data_type}, which the format does not have)"
            )
        if small:
            offset += 8
            continue
        stop = offset + 8 + num_bytes
        if stop > end:
            if partial:
                return
            raise ValueError(
                f"{path}: truncated MATLAB v5 file ({end} bytes, a variable ends at {stop})"
                if top_level
                else f"{path}: corrupt MATLAB v5 file (an element at byte {offset} runs past "
                "its matrix)"
            )
        if data_type == _MI_MATRIX:
            _check_v5_elements(path, read, offset + 8, stop, endian, partial=partial)
        elif data_type == _MI_COMPRESSED and top_level:
            count = min(num_bytes, _COMPRESSED_READ_BYTES)
            compressed = read(offset + 8, count)
            _check_v5_compressed(path, compressed, offset, endian, cut=count < num_bytes)
        offset = _v5_next(offset, data_type, num_bytes, top_level=top_level)


def mat_variables(path: str) -> dict[str, tuple[int, ...]]:
    """Names and MATLAB shapes of the variables in a v5 or v7.3 MAT-file.

    Raises:
      FileNotFoundError: the file does not exist.
      ValueError: naming the file, when it is truncated, corrupt or not a MAT-file.
    """
    if not os.path.isfile(path):
        raise FileNotFoundError(f"{path}: no such file")
    if is_hdf5(path):
        import h5py

        try:
            with h5py.File(path, "r") as handle:
                return {
                    name: _h5_matlab_shape(handle[name])
                    for name in handle
                    if not name.startswith("#")
                }
        except (OSError, KeyError, RuntimeError) as error:
            raise unreadable_error(path, error) from None
    import scipy.io

    _check_v5_structure(path)
    try:
        return {name: tuple(shape) for name, shape, _ in scipy.io.whosmat(path)}
    except Exception as error:  # scipy raises many types (IndexError, OSError, ...) on bad bytes
        raise unreadable_error(path, error) from None


def _h5_matlab_shape(item) -> tuple[int, ...]:
    import h5py

    if isinstance(item, h5py.Group):
        if "MATLAB_sparse" in item.attrs:
            return (int(item.attrs["MATLAB_sparse"]), int(item["jc"].shape[0]) - 1)
        return ()
    return tuple(int(s) for s in item.shape[::-1])


def find_variable(path: str, variables: dict, names: Sequence[str]) -> str:
    """The first of `names` among `variables`; ValueError naming `path` and the names if none."""
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
    name = find_variable(path, variables, names)
    if is_hdf5(path):
        matrix = _read_h5_matrix(path, name)
    else:
        matrix = read_v5_variable(path, name)
    if matrix.ndim != 2:
        raise ValueError(
            f"{path}: {name} has MATLAB shape {matrix.shape}, expected a 2-D matrix [n, d]"
        )
    return name, matrix


def read_v5_variable(path: str, name: str) -> np.ndarray:
    """Variable `name` of a v5 MAT-file as a dense numeric array in MATLAB's own shape."""
    import scipy.io
    import scipy.sparse

    try:
        value = scipy.io.loadmat(path, variable_names=[name])[name]
    except Exception as error:  # scipy raises many types on bad bytes
        raise unreadable_error(path, error) from None
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
        raise unreadable_error(path, error) from None


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
