"""ALOI (Amsterdam Library of Object Images) as a many-class case: 1,000 objects, two feature views.

The features come from the `mvcluster==1.16` wheel (not installed, only fetched:
`pip download --no-deps mvcluster==1.16`), which ships `examples/custom_data/aloi/`: four views of
110,250 images as header-less CSVs (`aloi-27d`, `aloi-64d` RGB colour histograms, `aloi-hsb-3x3x3`
HSB histogram, `aloi-haralick-1` 13 Haralick texture features) and `objs_labels_single_label.csv`,
a `label` header then 110,249 object ids in 0..999, one row fewer than the views.

The missing label is the first image's (docs/DESIGN.md, Data, gives the evidence), so feature row
0 is dropped and label row `i` goes with feature row `i + 1`: n = 110,249.

Modalities: the image side is the 64-bin RGB colour histogram, the text side the 13 Haralick
texture features: colour and texture are two different descriptions of the image, whereas the
other two views are colour histograms again.
"""

from __future__ import annotations

import os

import numpy as np

from ltcmh_jax.data.dataset import MultiModalDataset
from ltcmh_jax.data.matfiles import load_npz
from ltcmh_jax.data.wheel_files import GET_THE_WHEEL, WheelFolder, one_hot, read_view

ALOI_WHEEL_FOLDER = "examples/custom_data/aloi"
ALOI_IMAGE_VIEW = "aloi-64d_clean.csv"
ALOI_TEXT_VIEW = "aloi-haralick-1_clean.csv"
ALOI_LABELS = "objs_labels_single_label.csv"
ALOI_LABELS_HEADER = "label"
# The long-tail split of experiments/configs/aloi.flags (docs/DESIGN.md, Data).
ALOI_SPLIT = dict(z1=100, imbalance_factor=50.0, num_query=2000)


def _read_labels(source: WheelFolder) -> np.ndarray:
    """`[m]` int64 object ids after the `label` header line."""
    where = source.where(ALOI_LABELS)
    with source.open(ALOI_LABELS) as stream:
        header = stream.readline().strip()
        if header != ALOI_LABELS_HEADER:
            raise ValueError(f"{where}: first line is {header[:40]!r}, expected the header 'label'")
        try:
            labels = np.loadtxt(stream, dtype=np.int64, ndmin=1)
        except ValueError as error:
            raise ValueError(f"{where}: not one integer object id per line ({error})") from None
    if labels.size and labels.min() < 0:
        raise ValueError(f"{where}: negative object id {int(labels.min())}")
    return labels


def align_labels(num_feature_rows: int, labels: np.ndarray, *, where: str) -> slice:
    """The feature rows that `labels` describe.

    The wheel's label file is one row short of its views and the missing label is the first
    image's: with `n - 1` labels, feature row 0 is dropped (`slice(1, n)`). A file with `n` labels
    (a corrected one) is taken as is.

    Raises:
      ValueError: naming `where`, for any other number of labels.
    """
    if labels.shape[0] == num_feature_rows - 1:
        return slice(1, num_feature_rows)
    if labels.shape[0] == num_feature_rows:
        return slice(0, num_feature_rows)
    raise ValueError(
        f"{where}: {labels.shape[0]} labels for {num_feature_rows} feature rows; expected "
        f"{num_feature_rows - 1} (the wheel's file, first image unlabelled) or {num_feature_rows}"
    )


def hellinger_rows(histograms: np.ndarray) -> np.ndarray:
    """`[n, d]` float32 square roots of histograms that sum to 1: unit L2 rows (Hellinger map).

    Colour histograms are dominated by a few bins (the black background holds most pixels), and
    z-scoring their nearly empty bins makes outliers hundreds of standard deviations wide; the
    square root evens them out and gives every row norm 1, like the synthetic set's features.
    """
    return np.sqrt(np.clip(histograms, 0.0, None)).astype(np.float32)


def standardize_columns(view: np.ndarray) -> np.ndarray:
    """`[n, d]` float32, each column z-scored and divided by `sqrt(d)`: mean squared row norm 1.

    Haralick features span 1e-2 to 1e13 from column to column; a constant column stays 0.
    """
    mean = view.mean(axis=0)
    std = view.std(axis=0)
    scaled = (view - mean) / np.where(std > 0, std, 1.0) / np.sqrt(view.shape[1])
    return scaled.astype(np.float32)


def load_aloi(path: str | os.PathLike, *, raw: bool = False) -> MultiModalDataset:
    """ALOI as a `MultiModalDataset` (`--dataset=aloi`): 110,249 images of 1,000 objects.

    Args:
      path: the `mvcluster-1.16-py3-none-any.whl` file, a folder holding the wheel's
        `examples/custom_data/aloi/` files (or the extracted wheel), or an `.npz` with arrays
        `image`, `text`, `labels` (read by `load_npz`, as saved from this function's result).
      raw: the CSV values as they are (colour histograms that sum to 1 per row, Haralick columns
        up to 1e13). By default the histogram is mapped to its square roots (`hellinger_rows`)
        and the Haralick columns are z-scored over the labelled rows (`standardize_columns`), so
        both sides have rows of norm about 1.

    Returns:
      image `[n, 64]` float32 RGB colour histogram, text `[n, 13]` float32 Haralick texture
      features (transformed unless `raw`), labels `[n, c]` one-hot object ids (c = 1000: 749
      objects with 111 images, 250 with 108, and object 936 with 110, its 111th being the
      dropped row 0), label_names `object_0 ... object_{c-1}`.

    Raises:
      FileNotFoundError: `path` does not exist, or a folder lacks a file (the message says how to
        get the wheel).
      ValueError: naming the file, for a malformed CSV or label file, views of different lengths,
        or a label count that is neither `n - 1` nor `n`.
    """
    path = os.fspath(path)
    if not os.path.exists(path):
        raise FileNotFoundError(f"{path}: no such file or folder; {GET_THE_WHEEL}")
    if path.endswith(".npz"):
        return load_npz(path)
    with WheelFolder(path, ALOI_WHEEL_FOLDER) as source:
        image = read_view(source, ALOI_IMAGE_VIEW)
        text = read_view(source, ALOI_TEXT_VIEW)
        labels = _read_labels(source)
    if text.shape[0] != image.shape[0]:
        raise ValueError(
            f"{source.where(ALOI_TEXT_VIEW)}: {text.shape[0]} rows, but "
            f"{source.where(ALOI_IMAGE_VIEW)} has {image.shape[0]}"
        )
    rows = align_labels(image.shape[0], labels, where=source.where(ALOI_LABELS))
    image, text = image[rows], text[rows]
    if not raw:
        image, text = hellinger_rows(image), standardize_columns(text)
    num_classes = int(labels.max()) + 1
    return MultiModalDataset(
        image=image.astype(np.float32, copy=False),
        text=text.astype(np.float32, copy=False),
        labels=one_hot(labels, num_classes),
        label_names=tuple(f"object_{k}" for k in range(num_classes)),
    )
