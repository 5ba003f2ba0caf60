"""The ALOI loader on small files in the mvcluster 1.16 wheel's format."""

import zipfile

import numpy as np
import pytest

from ltcmh_jax.data import load_aloi
from ltcmh_jax.data.aloi import (
    ALOI_IMAGE_VIEW,
    ALOI_LABELS,
    ALOI_TEXT_VIEW,
    ALOI_WHEEL_FOLDER,
    align_labels,
)

# Seven images of three objects; as in the wheel, the label file has a `label` header, CRLF line
# ends, no final newline, and no line for the first image.
OBJECT_OF_IMAGE = np.array([2, 2, 2, 0, 0, 1, 1])
RNG = np.random.default_rng(0)
COLOUR = RNG.dirichlet(np.ones(64), size=7)
TEXTURE = np.column_stack([RNG.normal(size=7), 1e13 * RNG.uniform(1, 2, size=7)])


def _csv(matrix):
    return "".join(",".join(repr(float(v)) for v in row) + "\n" for row in matrix)


def _files(labels=OBJECT_OF_IMAGE[1:]):
    return {
        ALOI_IMAGE_VIEW: _csv(COLOUR),
        ALOI_TEXT_VIEW: _csv(TEXTURE),
        # Views the loader does not read are in the wheel too.
        "aloi-27d_clean.csv": _csv(COLOUR[:, :27]),
        ALOI_LABELS: "label\r\n" + "\r\n".join(str(v) for v in labels),
    }


def write_wheel(path, files=None):
    with zipfile.ZipFile(path, "w") as wheel:
        for name, text in (files or _files()).items():
            wheel.writestr(f"{ALOI_WHEEL_FOLDER}/{name}", text)
    return path


def write_folder(folder, files=None):
    folder.mkdir(parents=True, exist_ok=True)
    for name, text in (files or _files()).items():
        (folder / name).write_bytes(text.encode())
    return folder


def _zscore(matrix):
    return (matrix - matrix.mean(axis=0)) / matrix.std(axis=0) / np.sqrt(matrix.shape[1])


def test_wheel_drops_the_unlabelled_first_image(tmp_path):
    dataset = load_aloi(write_wheel(tmp_path / "mvcluster-1.16-py3-none-any.whl"))
    assert dataset.image.shape == (6, 64) and dataset.text.shape == (6, 2)
    assert dataset.image.dtype == np.float32 and dataset.text.dtype == np.float32
    np.testing.assert_allclose(dataset.image, np.sqrt(COLOUR[1:]), rtol=1e-6)
    np.testing.assert_allclose(np.linalg.norm(dataset.image, axis=1), 1.0, rtol=1e-6)
    np.testing.assert_allclose(dataset.text, _zscore(TEXTURE[1:]), rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(np.mean(np.sum(dataset.text**2, axis=1)), 1.0, rtol=1e-5)
    expected = np.zeros((6, 3), np.float32)
    expected[np.arange(6), OBJECT_OF_IMAGE[1:]] = 1
    np.testing.assert_array_equal(dataset.labels, expected)
    assert dataset.label_names == ("object_0", "object_1", "object_2")


def test_folder_extracted_wheel_and_raw_features(tmp_path):
    from_wheel = load_aloi(write_wheel(tmp_path / "m.whl"), raw=True)
    np.testing.assert_allclose(from_wheel.image, COLOUR[1:].astype(np.float32))
    np.testing.assert_allclose(from_wheel.text, TEXTURE[1:].astype(np.float32))
    aloi_folder = write_folder(tmp_path / "aloi")
    extracted = write_folder(tmp_path / "wheel" / ALOI_WHEEL_FOLDER)
    for path in (aloi_folder, tmp_path / "wheel"):
        dataset = load_aloi(path, raw=True)
        np.testing.assert_array_equal(dataset.image, from_wheel.image)
        np.testing.assert_array_equal(dataset.labels, from_wheel.labels)
    assert extracted.is_dir()


def test_npz_round_trip(tmp_path):
    dataset = load_aloi(write_wheel(tmp_path / "m.whl"))
    np.savez_compressed(
        tmp_path / "aloi.npz",
        image=dataset.image,
        text=dataset.text,
        labels=dataset.labels.astype(np.uint8),
        label_names=np.array(dataset.label_names),
    )
    again = load_aloi(tmp_path / "aloi.npz")
    np.testing.assert_array_equal(again.image, dataset.image)
    np.testing.assert_array_equal(again.labels, dataset.labels)
    assert again.label_names == dataset.label_names


def test_align_labels():
    assert align_labels(7, np.zeros(6), where="f") == slice(1, 7)
    assert align_labels(7, np.zeros(7), where="f") == slice(0, 7)
    with pytest.raises(ValueError, match="labels.csv: 5 labels for 7 feature rows"):
        align_labels(7, np.zeros(5), where="labels.csv")


def test_missing_path_says_how_to_get_the_wheel(tmp_path):
    with pytest.raises(FileNotFoundError, match="pip download --no-deps mvcluster==1.16"):
        load_aloi(tmp_path / "mvcluster-1.16-py3-none-any.whl")
    files = _files()
    del files[ALOI_TEXT_VIEW]
    with pytest.raises(FileNotFoundError, match=f"{ALOI_TEXT_VIEW}: no such file.*pip download"):
        load_aloi(write_folder(tmp_path / "partial", files))
    with pytest.raises(ValueError, match=f"no {ALOI_WHEEL_FOLDER}/{ALOI_TEXT_VIEW} in the wheel"):
        load_aloi(write_wheel(tmp_path / "partial.whl", files))


def test_bad_files_are_named(tmp_path):
    short = write_wheel(tmp_path / "short.whl", _files(labels=OBJECT_OF_IMAGE[2:]))
    with pytest.raises(ValueError, match=f"{ALOI_LABELS}: 5 labels for 7 feature rows"):
        load_aloi(short)
    files = _files()
    files[ALOI_LABELS] = files[ALOI_LABELS].replace("label\r\n", "")
    with pytest.raises(ValueError, match=f"{ALOI_LABELS}: first line is '2', expected the header"):
        load_aloi(write_wheel(tmp_path / "headless.whl", files))
    files = _files()
    files[ALOI_TEXT_VIEW] = files[ALOI_TEXT_VIEW] + "1.0,oops\n"
    with pytest.raises(ValueError, match=f"{ALOI_TEXT_VIEW}: not a numeric CSV matrix"):
        load_aloi(write_wheel(tmp_path / "bad.whl", files))
    (tmp_path / "not_a_wheel.whl").write_text("hello")
    with pytest.raises(ValueError, match="not_a_wheel.whl: not a readable wheel"):
        load_aloi(tmp_path / "not_a_wheel.whl")
