"""The mfeat (UCI multiple features) loader on small files in the mvcluster 1.16 wheel's format."""

import zipfile

import numpy as np
import pytest

from ltcmh_jax.data import MFEAT_SPLIT, load_mfeat
from ltcmh_jax.data.mfeat import (
    MFEAT_IMAGE_VIEW,
    MFEAT_LABELS,
    MFEAT_TEXT_VIEW,
    MFEAT_WHEEL_FOLDER,
)

# Six digits; as in the wheel, each view's CSV ends with the class id and CRLF line ends, and the
# label file is one id per line without a header.
DIGITS = np.array([0, 0, 3, 3, 9, 9])
RNG = np.random.default_rng(0)
PIXELS = RNG.integers(0, 7, size=(6, 5)).astype(float)
FOURIER = RNG.uniform(0, 1, size=(6, 3))


def _csv(matrix, labels=DIGITS):
    rows = np.column_stack([matrix, labels])
    return "".join(",".join(f"{v:g}" for v in row) + "\r\n" for row in rows)


def _files(**changes):
    files = {
        MFEAT_IMAGE_VIEW: _csv(PIXELS),
        MFEAT_TEXT_VIEW: _csv(FOURIER),
        "mfeat-kar.csv": _csv(PIXELS[:, :2]),  # a view the loader does not read
        MFEAT_LABELS: "\r\n".join(str(v) for v in DIGITS),
    }
    files.update(changes)
    return files


def write_wheel(path, files=None):
    with zipfile.ZipFile(path, "w") as wheel:
        for name, text in (files or _files()).items():
            wheel.writestr(f"{MFEAT_WHEEL_FOLDER}/{name}", text)
    return path


def test_wheel_views_lose_their_class_column_and_labels_are_one_hot(tmp_path):
    dataset = load_mfeat(write_wheel(tmp_path / "mvcluster-1.16-py3-none-any.whl"))
    assert dataset.image.dtype == np.float32 and dataset.text.dtype == np.float32
    np.testing.assert_array_equal(dataset.image, PIXELS.astype(np.float32))
    np.testing.assert_allclose(dataset.text, FOURIER.astype(np.float32), rtol=1e-5)
    np.testing.assert_array_equal(dataset.labels, np.eye(10, dtype=np.float32)[DIGITS])
    assert dataset.label_names == tuple(f"digit_{k}" for k in range(10))


def test_folder_and_npz_give_the_same_set(tmp_path):
    from_wheel = load_mfeat(write_wheel(tmp_path / "m.whl"))
    folder = tmp_path / "wheel" / MFEAT_WHEEL_FOLDER
    folder.mkdir(parents=True)
    for name, text in _files().items():
        (folder / name).write_bytes(text.encode())
    for path in (folder, tmp_path / "wheel"):
        np.testing.assert_array_equal(load_mfeat(path).image, from_wheel.image)
    np.savez_compressed(
        tmp_path / "mfeat.npz",
        image=from_wheel.image,
        text=from_wheel.text,
        labels=from_wheel.labels,
    )
    again = load_mfeat(tmp_path / "mfeat.npz")
    np.testing.assert_array_equal(again.text, from_wheel.text)
    np.testing.assert_array_equal(again.labels, from_wheel.labels)


def test_a_view_whose_last_column_is_not_the_class_is_refused_by_name(tmp_path):
    shuffled = _csv(PIXELS, labels=DIGITS[::-1])
    with pytest.raises(ValueError, match=f"{MFEAT_IMAGE_VIEW}: the last column is not the class"):
        load_mfeat(write_wheel(tmp_path / "a.whl", _files(**{MFEAT_IMAGE_VIEW: shuffled})))
    short = _csv(FOURIER[:4], labels=DIGITS[:4])
    with pytest.raises(ValueError, match=f"{MFEAT_TEXT_VIEW}: 4 rows for 6 class ids"):
        load_mfeat(write_wheel(tmp_path / "b.whl", _files(**{MFEAT_TEXT_VIEW: short})))


def test_bad_label_files_and_missing_files_are_named(tmp_path):
    with pytest.raises(ValueError, match=f"{MFEAT_LABELS}: class ids must be in 0..9, found 0..12"):
        load_mfeat(write_wheel(tmp_path / "a.whl", _files(**{MFEAT_LABELS: "0\n12\n"})))
    with pytest.raises(ValueError, match=f"{MFEAT_LABELS}: not one integer class id per line"):
        load_mfeat(write_wheel(tmp_path / "b.whl", _files(**{MFEAT_LABELS: "label\n0\n"})))
    files = _files()
    del files[MFEAT_TEXT_VIEW]
    with pytest.raises(ValueError, match=f"no {MFEAT_WHEEL_FOLDER}/{MFEAT_TEXT_VIEW} in the wheel"):
        load_mfeat(write_wheel(tmp_path / "c.whl", files))
    with pytest.raises(FileNotFoundError, match="pip download --no-deps mvcluster==1.16"):
        load_mfeat(tmp_path / "missing.whl")


def test_the_split_is_the_suggested_one_for_200_per_class():
    from ltcmh_jax.api import suggest_longtail_split

    labels = np.eye(10)[np.repeat(np.arange(10), 200)]
    suggested = suggest_longtail_split(labels, num_query=MFEAT_SPLIT["num_query"])
    assert suggested["z1"] == MFEAT_SPLIT["z1"]
    assert suggested["imbalance_factor"] == MFEAT_SPLIT["imbalance_factor"]
