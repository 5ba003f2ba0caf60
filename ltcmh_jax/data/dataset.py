"""`MultiModalDataset`: paired image and text data with multi-hot labels, validated on creation."""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence

import numpy as np

# Rows checked per chunk when scanning features for NaN/inf, so a memory-mapped image array is
# never read whole.
_CHECK_CHUNK = 4096


def _describe_shape(value) -> str:
    shape = getattr(value, "shape", None)
    return f"shape {tuple(shape)}" if shape is not None else f"a {type(value).__name__}"


def _first_bad_row(mask_rows: np.ndarray) -> int:
    return int(np.flatnonzero(mask_rows)[0])


def _check_finite(name: str, array) -> None:
    if not np.issubdtype(np.dtype(array.dtype), np.floating):
        return
    for start in range(0, array.shape[0], _CHECK_CHUNK):
        chunk = np.asarray(array[start : start + _CHECK_CHUNK])
        bad = ~np.isfinite(chunk.reshape(chunk.shape[0], -1)).all(axis=1)
        if bad.any():
            row = start + _first_bad_row(bad)
            raise ValueError(f"{name}: non-finite value (NaN or inf) in row {row}")


def _take_rows(array, indices: np.ndarray) -> np.ndarray:
    """`array[indices]` in memory, also for an `h5py.Dataset` (and with repeated indices)."""
    if isinstance(array, np.ndarray):
        return array[indices]
    # h5py reads only strictly increasing indices: read each row once, then expand to the asked
    # order (which may repeat rows).
    unique, inverse = np.unique(indices, return_inverse=True)
    return np.asarray(array[unique])[inverse]


@dataclasses.dataclass(frozen=True, eq=False)
class MultiModalDataset:
    """Paired two-modality samples with multi-hot labels.

    Attributes:
      image: `[n, d_x]` float32 feature vectors, or `[n, 3, 224, 224]` uint8 raw images. May be any
        array-like with `shape`, `dtype` and row slicing (an `h5py.Dataset` or `np.memmap` for
        images that do not fit in memory).
      text: `[n, d_t]` float32 (bag-of-words tags or precomputed text features).
      labels: `[n, c]` multi-hot, values in {0, 1}.
      label_names: `c` names; `label_0 ... label_{c-1}` when not given.

    Raises:
      ValueError: naming the field and the first bad row, when the numbers of rows differ,
        features are not finite, or labels are not in {0, 1}.
    """

    image: object
    text: np.ndarray
    labels: np.ndarray
    label_names: tuple[str, ...] = ()

    def __post_init__(self):
        for name in ("image", "text", "labels"):
            value = getattr(self, name)
            if not hasattr(value, "shape") or len(value.shape) < 2:
                raise ValueError(
                    f"{name}: expected an array with a row per sample, got {_describe_shape(value)}"
                )
        for name in ("text", "labels"):
            shape = getattr(self, name).shape
            if len(shape) != 2:
                raise ValueError(f"{name}: expected a 2-D [n, d] array, got shape {tuple(shape)}")
        n = self.image.shape[0]
        for name in ("text", "labels"):
            rows = getattr(self, name).shape[0]
            if rows != n:
                raise ValueError(
                    f"{name}: has {rows} rows but image has {n}; every field needs one row per "
                    "sample"
                )
        if np.dtype(self.image.dtype) != np.uint8 and not np.issubdtype(
            np.dtype(self.image.dtype), np.floating
        ):
            raise ValueError(
                f"image: dtype {self.image.dtype} is neither float features nor uint8 images"
            )
        _check_finite("image", self.image)
        _check_finite("text", self.text)
        labels = np.asarray(self.labels)
        bad = ~np.isin(labels, (0, 1)).all(axis=1)
        if bad.any():
            row = _first_bad_row(bad)
            raise ValueError(
                f"labels: row {row} has values outside {{0, 1}}: {np.unique(labels[row])[:5]}"
            )
        object.__setattr__(self, "labels", labels.astype(np.float32, copy=False))
        names = tuple(str(x) for x in self.label_names) or tuple(
            f"label_{a}" for a in range(labels.shape[1])
        )
        if len(names) != labels.shape[1]:
            raise ValueError(f"label_names: {len(names)} names for {labels.shape[1]} label columns")
        object.__setattr__(self, "label_names", names)

    @property
    def num_samples(self) -> int:
        return int(self.labels.shape[0])

    @property
    def num_labels(self) -> int:
        return int(self.labels.shape[1])

    @property
    def has_raw_images(self) -> bool:
        return np.dtype(self.image.dtype) == np.uint8

    def subset(self, indices: Sequence[int] | np.ndarray) -> MultiModalDataset:
        """The rows `indices` (in that order) as a new, in-memory dataset."""
        indices = np.asarray(indices, dtype=np.int64)
        if indices.size and (indices.min() < 0 or indices.max() >= self.num_samples):
            bad = int(indices[(indices < 0) | (indices >= self.num_samples)][0])
            raise ValueError(f"indices: {bad} is outside [0, {self.num_samples})")
        return MultiModalDataset(
            image=_take_rows(self.image, indices),
            text=_take_rows(self.text, indices),
            labels=self.labels[indices],
            label_names=self.label_names,
        )
