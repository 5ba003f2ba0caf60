"""Input checks and row-chunked second moments of feature matrices, in float64.

Inputs may be float32 `[n, d]` with n up to ~200,000 and d up to ~5,000: a float64 copy of the whole
matrix would take 8 GB, so every product here walks the rows in chunks and casts one chunk at a
time. Memory is `O(d^2 + chunk * d)` on top of the inputs.
"""

from __future__ import annotations

import numpy as np

# Rows per chunk are chosen so that one float64 chunk holds at most this many entries (128 MiB).
_CHUNK_ENTRIES = 1 << 24


def row_chunks(num_rows: int, dim: int):
    """`slice`s covering `range(num_rows)`, each at most `_CHUNK_ENTRIES / dim` rows long."""
    step = max(1, _CHUNK_ENTRIES // max(1, dim))
    for start in range(0, num_rows, step):
        yield slice(start, min(num_rows, start + step))


def check_features(features, name: str, *, num_rows: int | None = None, other: str = "image"):
    """`features` as a 2-D float array with finite values, and (given `num_rows`) that many rows.

    Raises:
      ValueError: one line naming `name`.
    """
    features = np.asarray(features)
    if features.ndim != 2:
        raise ValueError(f"{name}: expected a [n, d] array, got shape {features.shape}")
    if features.dtype != np.bool_ and not (
        np.issubdtype(features.dtype, np.floating) or np.issubdtype(features.dtype, np.integer)
    ):
        raise ValueError(f"{name}: dtype {features.dtype} is not numeric")
    if num_rows is not None and features.shape[0] != num_rows:
        raise ValueError(
            f"{name}: has {features.shape[0]} rows but {other} has {num_rows}; one row per sample"
        )
    if features.shape[1] == 0:
        raise ValueError(f"{name}: has no feature columns")
    for rows in row_chunks(features.shape[0], features.shape[1]):
        finite = np.isfinite(features[rows])
        if not finite.all():
            row, column = np.argwhere(~finite)[0]
            raise ValueError(
                f"{name}: non-finite value {features[rows][row, column].item()!r} at row "
                f"{rows.start + row}, column {column}"
            )
    return features


def check_labels(labels, *, num_rows: int) -> np.ndarray:
    """Multi-hot `labels` `[n, c]` in {0, 1} as float64, one row per sample.

    Raises:
      ValueError: one line naming `labels`.
    """
    labels = check_features(labels, "labels", num_rows=num_rows)
    bad = (labels != 0) & (labels != 1)
    if bad.any():
        row, column = np.argwhere(bad)[0]
        raise ValueError(
            f"labels: must be 0 or 1, found {labels[row, column]!r} at row {row}, column {column}"
        )
    return labels.astype(np.float64)


class TooManyBitsError(ValueError):
    """`bits` above what a linear map of the views can give (a view's columns, canonical pairs)."""


def check_bits(bits, *, limit: int | None = None, reason: str = "") -> int:
    """A positive integer code length, at most `limit` when there is one (`reason` says why)."""
    if isinstance(bits, bool) or not isinstance(bits, int | np.integer) or bits < 1:
        raise ValueError(f"bits: expected a positive integer, got {bits!r}")
    if limit is not None and bits > limit:
        raise TooManyBitsError(f"bits: {bits} exceeds {limit}, {reason}")
    return int(bits)


def check_regularization(value, *, name: str = "regularization") -> float:
    """A finite number >= 0 (a relative ridge, see `regularized_covariance`)."""
    if isinstance(value, bool) or not (np.isfinite(value) and value >= 0):
        raise ValueError(f"{name}: must be a finite number >= 0, got {value!r}")
    return float(value)


def column_mean(features: np.ndarray) -> np.ndarray:
    """`[d]` float64 mean of the rows of `features` `[n, d]`."""
    total = np.zeros(features.shape[1])
    for rows in row_chunks(*features.shape):
        total += features[rows].sum(axis=0, dtype=np.float64)
    return total / features.shape[0]


def centred_cross_product(left, left_mean, right, right_mean) -> np.ndarray:
    """`(X - 1 m_x^T)^T (Y - 1 m_y^T)`, `[d_x, d_y]` float64, for `X` `[n, d_x]`, `Y` `[n, d_y]`.

    With `right is left` and equal means this is the centred Gram matrix `n Sigma_xx`.
    """
    product = np.zeros((left.shape[1], right.shape[1]))
    for rows in row_chunks(left.shape[0], left.shape[1] + right.shape[1]):
        left_rows = left[rows].astype(np.float64) - left_mean
        right_rows = left_rows if right is left else right[rows].astype(np.float64) - right_mean
        product += left_rows.T @ right_rows
    return product


def centred_times(features, mean, matrix) -> np.ndarray:
    """`(X - 1 m^T) W`, `[n, k]` float64, for `X` `[n, d]`, `W` `[d, k]`."""
    matrix = np.asarray(matrix, np.float64)
    out = np.empty((features.shape[0], matrix.shape[1]))
    offset = mean @ matrix
    for rows in row_chunks(*features.shape):
        out[rows] = features[rows].astype(np.float64) @ matrix - offset
    return out


def centred_transpose_times(features, mean, matrix) -> np.ndarray:
    """`(X - 1 m^T)^T B`, `[d, k]` float64, for `X` `[n, d]`, `B` `[n, k]`."""
    matrix = np.asarray(matrix, np.float64)
    out = np.zeros((features.shape[1], matrix.shape[1]))
    for rows in row_chunks(*features.shape):
        out += features[rows].astype(np.float64).T @ matrix[rows]
    return out - np.outer(mean, matrix.sum(axis=0))


def centred_sign_products(features, mean, direction) -> np.ndarray:
    """`X^T sign(X w)`, `[d]` float64, for centred `X = features - 1 m^T` and `w` `[d]`.

    One pass over the rows (each row's sign needs only that row), where `centred_times` then
    `centred_transpose_times` would cast every chunk twice; sign(0) = +1.
    """
    direction = np.asarray(direction, np.float64).reshape(-1)
    out = np.zeros(features.shape[1])
    total_sign = 0.0
    offset = mean @ direction
    for rows in row_chunks(*features.shape):
        chunk = features[rows].astype(np.float64)
        signs = np.where(chunk @ direction - offset >= 0, 1.0, -1.0)
        out += chunk.T @ signs
        total_sign += signs.sum()
    return out - mean * total_sign


def regularized_covariance(gram: np.ndarray, num_rows: int, regularization: float) -> np.ndarray:
    """`Sigma + r (tr Sigma / d) I`, `Sigma = gram / n`: a ridge relative to the mean variance.

    Relative, so one `regularization` means the same for fc7 features and for 0/1 tags.
    """
    covariance = gram / num_rows
    dim = covariance.shape[0]
    ridge = regularization * max(np.trace(covariance) / dim, np.finfo(np.float64).tiny)
    covariance[np.diag_indices(dim)] += ridge
    return covariance
