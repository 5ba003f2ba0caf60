"""Loaders for the files users have: DCMH-format MATLAB files and `.npz` feature archives.

The DCMH release (Jiang and Li, CVPR 2017) ships MIRFlickr-25K and NUS-WIDE as MATLAB files that
most cross-modal hashing code reuses: `IAll` (raw images), `YAll` (tag bag-of-words), `LAll`
(multi-hot labels), sometimes `XAll` (precomputed 4096-d VGG features) instead of `IAll`.

Callers always get rows = samples and images as `[n, 3, H, W]`, whichever MATLAB version the file
is: the MAT-file readers are in `ltcmh_jax.data.matreader`, the image stacks in
`ltcmh_jax.data.lazy_images`, both re-exported here.
"""

from __future__ import annotations

import dataclasses
import os

import numpy as np

from ltcmh_jax.data.dataset import MultiModalDataset
from ltcmh_jax.data.lazy_images import LazyImages as LazyImages
from ltcmh_jax.data.lazy_images import read_mat_images as read_mat_images
from ltcmh_jax.data.matreader import mat_variables as mat_variables
from ltcmh_jax.data.matreader import read_mat_matrix as read_mat_matrix
from ltcmh_jax.data.matreader import unreadable_error

DCMH_RELEASE = (
    "such files come from the DCMH release (github.com/jiangqy/DCMH-CVPR2017, data links in "
    "DCMH_matlab/readme.txt); the *-vgg.mat feature files from the DJSRH/UCCH releases"
)


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
        raise unreadable_error(path, error) from None
    except Exception as error:  # zipfile.BadZipFile, EOFError, OSError on bad bytes
        raise unreadable_error(path, error) from None
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
                raise unreadable_error(path, error) from None
            except Exception as error:  # zipfile / zlib / EOF errors on a damaged member
                raise unreadable_error(path, error) from None
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
