"""UCI Multiple Features (handwritten digits), a small held-out real set: 2,000 digits; 10 classes.

Robert Duin's "mfeat" set: 200 handwritten numerals per class from Dutch utility maps, described
by six feature views. The `mvcluster==1.16` wheel (the one that holds ALOI; `pip download --no-deps
mvcluster==1.16`, never installed) ships them in `examples/custom_data/mfeat/` as header-less CSVs
whose **last column is the class** (the same number as `mfeat_label.csv`, one id per line): the
loader checks that and drops it, so no view carries its label.

Modalities: the image side is `mfeat-pix` (240 pixel averages over 2x3 windows of the 15x16
digit image, values 0..6), the text side `mfeat-fou` (76 Fourier coefficients of the character's
outline): a picture against a shape description. The trainer standardises both (per feature,
training-split statistics).

It was added after the default recipe was fixed (docs/RESULTS.md, held-out check): nothing in the
recipe was chosen on it.
"""

from __future__ import annotations

import os

import numpy as np

from ltcmh_jax.data.dataset import MultiModalDataset
from ltcmh_jax.data.matfiles import load_npz
from ltcmh_jax.data.wheel_files import GET_THE_WHEEL, WheelFolder, one_hot, read_view

MFEAT_WHEEL_FOLDER = "examples/custom_data/mfeat"
MFEAT_IMAGE_VIEW = "mfeat-pix.csv"
MFEAT_TEXT_VIEW = "mfeat-fou.csv"
MFEAT_LABELS = "mfeat_label.csv"
MFEAT_CLASSES = 10
# The long-tail split of experiments/configs/mfeat.flags: `suggest_longtail_split` with 200
# queries (z1 90, IF 50, so tail classes keep 2 training digits; about 160 training digits).
MFEAT_SPLIT = dict(z1=90, imbalance_factor=50.0, num_query=200)


def _read_labels(source: WheelFolder) -> np.ndarray:
    """`[n]` int64 class ids, one per line, in 0..9."""
    where = source.where(MFEAT_LABELS)
    try:
        with source.open(MFEAT_LABELS) as stream:
            labels = np.loadtxt(stream, dtype=np.int64, ndmin=1)
    except ValueError as error:
        raise ValueError(f"{where}: not one integer class id per line ({error})") from None
    if labels.size == 0:
        raise ValueError(f"{where}: no class ids")
    if labels.min() < 0 or labels.max() >= MFEAT_CLASSES:
        raise ValueError(
            f"{where}: class ids must be in 0..{MFEAT_CLASSES - 1}, found "
            f"{int(labels.min())}..{int(labels.max())}"
        )
    return labels


def _without_class_column(view: np.ndarray, labels: np.ndarray, *, where: str) -> np.ndarray:
    """`view` `[n, d + 1]` less its last column, after checking that column is `labels`."""
    if view.shape[0] != labels.shape[0]:
        raise ValueError(f"{where}: {view.shape[0]} rows for {labels.shape[0]} class ids")
    if view.shape[1] < 2 or not np.array_equal(view[:, -1], labels):
        raise ValueError(
            f"{where}: the last column is not the class id of each row (the wheel's files end "
            "with it); refusing a view whose columns cannot be told from its label"
        )
    return view[:, :-1]


def load_mfeat(path: str | os.PathLike) -> MultiModalDataset:
    """The multiple-features digits as a `MultiModalDataset` (`--dataset=mfeat`).

    Args:
      path: the `mvcluster-1.16-py3-none-any.whl` file, a folder holding the wheel's
        `examples/custom_data/mfeat/` files (or the extracted wheel), or an `.npz` with arrays
        `image`, `text`, `labels` (read by `load_npz`).

    Returns:
      image `[2000, 240]` float32 pixel averages, text `[2000, 76]` float32 Fourier
      coefficients, labels `[2000, 10]` one-hot digits, label_names `digit_0 ... digit_9`.

    Raises:
      FileNotFoundError: `path` does not exist, or a folder lacks a file (the message says how to
        get the wheel).
      ValueError: naming the file, for a malformed CSV or label file, a view whose last column is
        not the class id, or views of another length than the label file.
    """
    path = os.fspath(path)
    if not os.path.exists(path):
        raise FileNotFoundError(f"{path}: no such file or folder; {GET_THE_WHEEL}")
    if path.endswith(".npz"):
        return load_npz(path)
    with WheelFolder(path, MFEAT_WHEEL_FOLDER) as source:
        labels = _read_labels(source)
        views = [
            _without_class_column(read_view(source, name), labels, where=source.where(name))
            for name in (MFEAT_IMAGE_VIEW, MFEAT_TEXT_VIEW)
        ]
    return MultiModalDataset(
        image=views[0].astype(np.float32),
        text=views[1].astype(np.float32),
        labels=one_hot(labels, MFEAT_CLASSES),
        label_names=tuple(f"digit_{k}" for k in range(MFEAT_CLASSES)),
    )
