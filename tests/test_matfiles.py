"""Tests for ltcmh_jax/data/matfiles.py: DCMH-format .mat loaders (v5 and v7.3) and load_npz.

The files are written here, small, with the real variable names and the real layouts: v5 through
`scipy.io.savemat`; v7.3 as MATLAB writes it (HDF5 with the 512-byte MATLAB header, every array
stored with its axes reversed, `MATLAB_class` attributes), and `IAll` as a MatConvNet
`[H, W, 3, n]` stack. H != W so that a swapped height and width would be caught.
"""

import os
import pickle
import zipfile

import h5py
import numpy as np
import pytest
import scipy.io
import scipy.sparse
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from ltcmh_jax.data.matfiles import (
    LazyImages,
    load_mirflickr25k,
    load_npz,
    load_nuswide,
    mat_variables,
    read_mat_matrix,
)

NUM_SAMPLES, NUM_LABELS, TEXT_DIM, FEATURE_DIM, HEIGHT, WIDTH = 30, 5, 12, 16, 6, 8

_MATLAB_CLASS = {
    np.dtype(np.float64): "double",
    np.dtype(np.float32): "single",
    np.dtype(np.uint8): "uint8",
    np.dtype(np.int32): "int32",
    np.dtype(bool): "logical",
}


def make_arrays(seed=0, num_samples=NUM_SAMPLES, num_labels=NUM_LABELS):
    """Ground truth in the library's layout: images `[n, 3, H, W]`, rows = samples."""
    rng = np.random.default_rng(seed)
    labels = (rng.random((num_samples, num_labels)) < 0.3).astype(np.float64)
    labels[np.arange(num_samples), rng.integers(0, num_labels, num_samples)] = 1.0
    return {
        "images": rng.integers(0, 256, (num_samples, 3, HEIGHT, WIDTH), dtype=np.uint8),
        "features": rng.normal(size=(num_samples, FEATURE_DIM)),
        "text": (rng.random((num_samples, TEXT_DIM)) < 0.2).astype(np.float64),
        "labels": labels,
    }


def write_v5(path, variables):
    scipy.io.savemat(path, variables, do_compression=True)


def write_v73(path, variables):
    """A MATLAB v7.3 MAT-file: HDF5 behind a 512-byte MATLAB header, arrays stored transposed."""
    with h5py.File(path, "w", userblock_size=512) as handle:
        for name, value in variables.items():
            if scipy.sparse.issparse(value):
                csc = scipy.sparse.csc_matrix(value)
                group = handle.create_group(name)
                group.attrs["MATLAB_class"] = np.bytes_("double")
                group.attrs["MATLAB_sparse"] = np.uint64(csc.shape[0])
                group["data"] = csc.data.astype(np.float64)
                group["ir"] = csc.indices.astype(np.uint64)
                group["jc"] = csc.indptr.astype(np.uint64)
                continue
            value = np.asarray(value)
            stored = value.astype(np.uint8) if value.dtype == bool else value
            dataset = handle.create_dataset(name, data=stored.T)
            dataset.attrs["MATLAB_class"] = np.bytes_(_MATLAB_CLASS[value.dtype])
    header = b"MATLAB 7.3 MAT-file, Platform: GLNXA64, Created on: test HDF5 schema 1.00 ."
    with open(path, "r+b") as stream:
        stream.write(header.ljust(116) + b" " * 8 + b"\x00\x02" + b"IM")


def matlab_images(images):
    """`[n, 3, H, W]` -> the MatConvNet stack `[H, W, 3, n]` that DCMH's IAll holds in MATLAB."""
    return images.transpose(2, 3, 1, 0)


WRITERS = {"v5": write_v5, "v73": write_v73}


def write_dcmh_files(directory, arrays, *, prefix="mirflickr25k", version="v73", kinds=None):
    """Writes `<prefix>-{yall,lall,iall}.mat` and the VGG feature file, each in `version`.

    `version` may be a dict `{kind: "v5" | "v73"}` to mix versions, as real downloads do.
    """
    kinds = kinds or ("text", "labels", "raw", "features")
    feature_file = "iall-vgg" if prefix == "mirflickr25k" else "xall-vgg"
    files = {
        "text": (f"{prefix}-yall.mat", {"YAll": arrays["text"]}),
        "labels": (f"{prefix}-lall.mat", {"LAll": arrays["labels"]}),
        "raw": (f"{prefix}-iall.mat", {"IAll": matlab_images(arrays["images"])}),
        "features": (f"{prefix}-{feature_file}.mat", {"XAll": arrays["features"]}),
    }
    for kind in kinds:
        name, variables = files[kind]
        which = version[kind] if isinstance(version, dict) else version
        WRITERS[which](os.path.join(directory, name), variables)
    return directory


def assert_matches(dataset, arrays, *, image_kind="raw"):
    expected_image = arrays["images"] if image_kind == "raw" else arrays["features"]
    image = np.asarray(dataset.image[:])
    np.testing.assert_array_equal(image, expected_image.astype(image.dtype))
    assert image.dtype == (np.uint8 if image_kind == "raw" else np.float32)
    np.testing.assert_array_equal(dataset.text, arrays["text"].astype(np.float32))
    np.testing.assert_array_equal(dataset.labels, arrays["labels"].astype(np.float32))
    assert dataset.text.dtype == np.float32


@pytest.fixture
def arrays():
    return make_arrays()


# ------------------------------------------------------------------------------------------
# v5 and v7.3 give identical arrays
# ------------------------------------------------------------------------------------------


@pytest.mark.parametrize("image_kind", ["raw", "features"])
@pytest.mark.parametrize(
    "prefix, load",
    [
        ("mirflickr25k", load_mirflickr25k),
        ("nus-wide-tc21", load_nuswide),
        ("nus-wide-tc10", lambda d, **kw: load_nuswide(d, variant="tc10", **kw)),
    ],
)
def test_v5_and_v73_files_give_identical_arrays(tmp_path, arrays, prefix, load, image_kind):
    loaded = {}
    for version in ("v5", "v73"):
        directory = tmp_path / version
        directory.mkdir()
        write_dcmh_files(directory, arrays, prefix=prefix, version=version)
        loaded[version] = load(directory, image_source=image_kind)
        assert_matches(loaded[version], arrays, image_kind=image_kind)
    np.testing.assert_array_equal(
        np.asarray(loaded["v5"].image[:]), np.asarray(loaded["v73"].image[:])
    )


def test_mixed_versions_as_in_the_dcmh_release(tmp_path, arrays):
    # The release has IAll as v7.3 (3 GB) and YAll / LAll as v5.
    write_dcmh_files(
        tmp_path, arrays, version={"raw": "v73", "text": "v5", "labels": "v5", "features": "v5"}
    )
    dataset = load_mirflickr25k(tmp_path)
    assert isinstance(dataset.image, LazyImages)
    assert dataset.has_raw_images
    assert dataset.image.shape == (NUM_SAMPLES, 3, HEIGHT, WIDTH)
    assert_matches(dataset, arrays)


def test_v73_iall_is_stored_as_matlab_stores_it(tmp_path, arrays):
    # h5py sees the MatConvNet [H, W, 3, n] stack reversed: [n, 3, W, H].
    write_dcmh_files(tmp_path, arrays, kinds=("raw",))
    with h5py.File(tmp_path / "mirflickr25k-iall.mat", "r") as handle:
        assert handle["IAll"].shape == (NUM_SAMPLES, 3, WIDTH, HEIGHT)
        assert handle["IAll"].attrs["MATLAB_class"] == b"uint8"
    assert mat_variables(str(tmp_path / "mirflickr25k-iall.mat")) == {
        "IAll": (HEIGHT, WIDTH, 3, NUM_SAMPLES)
    }


@pytest.mark.parametrize("version", ["v5", "v73"])
def test_iall_saved_sample_first_is_also_read(tmp_path, arrays, version):
    # A stack permuted to [n, 3, H, W] in MATLAB before saving (h5py then sees [W, H, 3, n]).
    write_dcmh_files(tmp_path, arrays, version=version, kinds=("text", "labels"))
    WRITERS[version](tmp_path / "mirflickr25k-iall.mat", {"IAll": arrays["images"]})
    dataset = load_mirflickr25k(tmp_path)
    assert dataset.image.shape == (NUM_SAMPLES, 3, HEIGHT, WIDTH)
    assert_matches(dataset, arrays)


@pytest.mark.parametrize("version", ["v5", "v73"])
@pytest.mark.parametrize("with_features", [False, True])
def test_merged_flickr25k_mat(tmp_path, arrays, version, with_features):
    variables = {
        "images": matlab_images(arrays["images"]),
        "YAll": arrays["text"],
        "LAll": arrays["labels"],
    }
    if with_features:
        variables["XAll"] = arrays["features"]
    WRITERS[version](tmp_path / "FLICKR-25K.mat", variables)
    assert_matches(load_mirflickr25k(tmp_path), arrays)
    assert_matches(load_mirflickr25k(tmp_path, image_source="raw"), arrays)
    if with_features:
        features = load_mirflickr25k(tmp_path, image_source="features")
        assert_matches(features, arrays, image_kind="features")
    else:
        with pytest.raises(ValueError, match=r"FLICKR-25K\.mat: expected a variable named XAll"):
            load_mirflickr25k(tmp_path, image_source="features")


def test_auto_prefers_raw_images_and_falls_back_to_features(tmp_path, arrays):
    write_dcmh_files(tmp_path, arrays, kinds=("text", "labels", "features"))
    assert_matches(load_mirflickr25k(tmp_path), arrays, image_kind="features")
    write_dcmh_files(tmp_path, arrays, kinds=("raw",))
    assert_matches(load_mirflickr25k(tmp_path), arrays, image_kind="raw")
    assert_matches(
        load_mirflickr25k(tmp_path, image_source="features"), arrays, image_kind="features"
    )


@pytest.mark.parametrize("version", ["v5", "v73"])
def test_sparse_and_logical_matrices(tmp_path, arrays, version):
    write_dcmh_files(tmp_path, arrays, version=version, kinds=("raw",))
    WRITERS[version](
        tmp_path / "mirflickr25k-yall.mat", {"YAll": scipy.sparse.csc_matrix(arrays["text"])}
    )
    WRITERS[version](tmp_path / "mirflickr25k-lall.mat", {"LAll": arrays["labels"].astype(bool)})
    assert_matches(load_mirflickr25k(tmp_path), arrays)


# ------------------------------------------------------------------------------------------
# Lazy images
# ------------------------------------------------------------------------------------------


@pytest.fixture
def lazy_images(tmp_path, arrays):
    write_dcmh_files(tmp_path, arrays)
    images = load_mirflickr25k(tmp_path).image
    assert isinstance(images, LazyImages)
    return images


def test_lazy_images_read_rows_in_any_order(lazy_images, arrays):
    expected = arrays["images"]
    assert lazy_images.shape == expected.shape and lazy_images.dtype == np.uint8
    assert len(lazy_images) == NUM_SAMPLES and lazy_images.ndim == 4
    np.testing.assert_array_equal(lazy_images[3], expected[3])
    np.testing.assert_array_equal(lazy_images[-1], expected[-1])
    np.testing.assert_array_equal(lazy_images[4:9], expected[4:9])
    np.testing.assert_array_equal(lazy_images[1:20:3], expected[1:20:3])
    rows = np.array([17, 2, 2, 29, 0, 11])
    np.testing.assert_array_equal(lazy_images[rows], expected[rows])
    sparse_rows = np.array([28, 0])  # spread out: read row by row
    np.testing.assert_array_equal(lazy_images[sparse_rows], expected[sparse_rows])
    mask = np.arange(NUM_SAMPLES) % 4 == 1
    np.testing.assert_array_equal(lazy_images[mask], expected[mask])
    np.testing.assert_array_equal(lazy_images[rows, 1], expected[rows, 1])
    np.testing.assert_array_equal(np.asarray(lazy_images), expected)
    assert lazy_images[np.zeros(0, int)].shape == (0, 3, HEIGHT, WIDTH)
    with pytest.raises(IndexError):
        lazy_images[NUM_SAMPLES]
    with pytest.raises(IndexError):
        lazy_images[np.array([0, NUM_SAMPLES])]


def test_lazy_images_pickle_and_subset(lazy_images, arrays, tmp_path):
    _ = lazy_images[0]  # opens the file handle, which must not travel with the pickle
    clone = pickle.loads(pickle.dumps(lazy_images))
    np.testing.assert_array_equal(clone[[5, 1]], arrays["images"][[5, 1]])
    clone.close()
    dataset = load_mirflickr25k(tmp_path)
    rows = np.array([9, 3, 3, 27])
    subset = dataset.subset(rows)
    np.testing.assert_array_equal(subset.image, arrays["images"][rows])
    np.testing.assert_array_equal(subset.labels, arrays["labels"][rows])


# ------------------------------------------------------------------------------------------
# Bad input: each a one-line error naming the file
# ------------------------------------------------------------------------------------------


def one_line_error(error_type, call, *args, **kwargs):
    with pytest.raises(error_type) as info:
        call(*args, **kwargs)
    message = str(info.value)
    assert "\n" not in message, message
    return message


def test_missing_files_name_the_expected_files_and_their_origin(tmp_path, arrays):
    message = one_line_error(FileNotFoundError, load_mirflickr25k, tmp_path)
    for name in ("mirflickr25k-yall.mat", "mirflickr25k-lall.mat", "mirflickr25k-iall.mat"):
        assert name in message
    assert "FLICKR-25K.mat" in message and "DCMH" in message and str(tmp_path) in message
    write_dcmh_files(tmp_path, arrays, kinds=("text", "labels"))
    message = one_line_error(FileNotFoundError, load_mirflickr25k, tmp_path, image_source="raw")
    assert "mirflickr25k-iall.mat" in message and "mirflickr25k-yall.mat" in message
    message = one_line_error(FileNotFoundError, load_nuswide, tmp_path / "absent", variant="tc10")
    assert "nus-wide-tc10-lall.mat" in message and "does not exist" in message
    assert "nus-wide-tc10-xall-vgg.mat" in message and "DCMH" in message


def test_bad_arguments(tmp_path):
    message = one_line_error(ValueError, load_nuswide, tmp_path, variant="tc81")
    assert "variant" in message and "tc81" in message
    message = one_line_error(ValueError, load_mirflickr25k, tmp_path, image_source="pixels")
    assert "image_source" in message


@pytest.mark.parametrize("version", ["v5", "v73"])
def test_wrong_variable_names(tmp_path, arrays, version):
    write_dcmh_files(tmp_path, arrays, version=version, kinds=("raw", "labels"))
    WRITERS[version](
        tmp_path / "mirflickr25k-yall.mat", {"tags": arrays["text"], "T": arrays["text"]}
    )
    message = one_line_error(ValueError, load_mirflickr25k, tmp_path)
    assert "mirflickr25k-yall.mat" in message and "YAll" in message
    assert "['T', 'tags']" in message


@pytest.mark.parametrize("version", ["v5", "v73"])
def test_wrong_image_layout(tmp_path, arrays, version):
    write_dcmh_files(tmp_path, arrays, version=version, kinds=("text", "labels"))
    WRITERS[version](tmp_path / "mirflickr25k-iall.mat", {"IAll": arrays["images"][:, 0]})
    message = one_line_error(ValueError, load_mirflickr25k, tmp_path)
    assert "mirflickr25k-iall.mat" in message and "[H, W, 3, n]" in message
    assert f"n = {NUM_SAMPLES}" in message


@pytest.mark.parametrize("version", ["v5", "v73"])
def test_non_numeric_and_non_matrix_variables(tmp_path, arrays, version):
    write_dcmh_files(tmp_path, arrays, version=version, kinds=("raw", "text"))
    WRITERS[version](
        tmp_path / "mirflickr25k-lall.mat", {"LAll": arrays["labels"][:, :, None] * np.ones(2)}
    )
    message = one_line_error(ValueError, load_mirflickr25k, tmp_path)
    assert "mirflickr25k-lall.mat" in message and "2-D" in message
    if version == "v5":
        scipy.io.savemat(tmp_path / "mirflickr25k-lall.mat", {"LAll": {"a": 1}})
    else:
        with h5py.File(tmp_path / "mirflickr25k-lall.mat", "w") as handle:
            handle.create_group("LAll").create_dataset("a", data=[1.0])
    message = one_line_error(ValueError, load_mirflickr25k, tmp_path)
    assert "mirflickr25k-lall.mat" in message and "struct" in message


@pytest.mark.parametrize("version", ["v5", "v73"])
def test_float_images_are_refused(tmp_path, arrays, version):
    write_dcmh_files(tmp_path, arrays, version=version, kinds=("text", "labels"))
    images = matlab_images(arrays["images"]).astype(np.float32)
    WRITERS[version](tmp_path / "mirflickr25k-iall.mat", {"IAll": images})
    message = one_line_error(ValueError, load_mirflickr25k, tmp_path)
    assert "mirflickr25k-iall.mat" in message and "uint8" in message


def test_files_that_disagree_on_the_number_of_samples(tmp_path, arrays):
    write_dcmh_files(tmp_path, arrays, kinds=("labels", "features"))
    write_v5(tmp_path / "mirflickr25k-yall.mat", {"YAll": arrays["text"][:-2]})
    message = one_line_error(ValueError, load_mirflickr25k, tmp_path)
    assert "mirflickr25k-yall.mat" in message and str(NUM_SAMPLES - 2) in message


def test_bad_values_name_the_file_field_and_row(tmp_path, arrays):
    write_dcmh_files(tmp_path, arrays, kinds=("text", "raw"))
    labels = arrays["labels"].copy()
    labels[7, 1] = 2.0
    write_v5(tmp_path / "mirflickr25k-lall.mat", {"LAll": labels})
    message = one_line_error(ValueError, load_mirflickr25k, tmp_path)
    assert "mirflickr25k-lall.mat" in message and "labels" in message and "row 7" in message
    write_dcmh_files(tmp_path, arrays, kinds=("labels",))
    features = arrays["features"].copy()
    features[4, 0] = np.nan
    write_v5(tmp_path / "mirflickr25k-iall-vgg.mat", {"XAll": features})
    message = one_line_error(ValueError, load_mirflickr25k, tmp_path, image_source="features")
    assert "mirflickr25k-iall-vgg.mat" in message and "image" in message and "row 4" in message


@pytest.mark.parametrize("version", ["v5", "v73"])
@pytest.mark.parametrize("kind, file_name", [("labels", "lall"), ("raw", "iall")])
def test_truncated_mat_files(tmp_path, arrays, version, kind, file_name):
    write_dcmh_files(tmp_path, arrays, version=version)
    path = tmp_path / f"mirflickr25k-{file_name}.mat"
    data = path.read_bytes()
    for cut in (len(data) // 2, len(data) - 9, min(300, len(data) - 1), 100):
        path.write_bytes(data[:cut])
        message = one_line_error(ValueError, load_mirflickr25k, tmp_path, image_source="raw")
        assert str(path) in message, message


def test_a_file_that_is_not_a_mat_file(tmp_path, arrays):
    write_dcmh_files(tmp_path, arrays, kinds=("text", "raw"))
    (tmp_path / "mirflickr25k-lall.mat").write_bytes(b"LAll,0,1\n" * 40)
    message = one_line_error(ValueError, load_mirflickr25k, tmp_path)
    assert "mirflickr25k-lall.mat" in message and "not a MATLAB" in message


@settings(
    max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(cut_fraction=st.floats(0.0, 0.999), version=st.sampled_from(["v5", "v73"]))
def test_any_truncation_is_a_value_error_naming_the_file(tmp_path, cut_fraction, version):
    path = tmp_path / f"labels-{version}.mat"
    WRITERS[version](path, {"LAll": make_arrays(1)["labels"]})
    data = path.read_bytes()
    path.write_bytes(data[: int(cut_fraction * len(data))])
    with pytest.raises(ValueError, match=str(path)):
        read_mat_matrix(str(path), ("LAll",))


# ------------------------------------------------------------------------------------------
# load_npz
# ------------------------------------------------------------------------------------------


def test_load_npz_round_trip(tmp_path, arrays):
    path = tmp_path / "clip.npz"
    names = np.array([f"concept {a}" for a in range(NUM_LABELS)])
    np.savez(
        path,
        image=arrays["features"],
        text=arrays["text"],
        labels=arrays["labels"],
        label_names=names,
    )
    dataset = load_npz(path)
    assert_matches(dataset, arrays, image_kind="features")
    assert dataset.label_names == tuple(names)
    raw_path = tmp_path / "raw.npz"
    np.savez_compressed(
        raw_path, image=arrays["images"], text=arrays["text"], labels=arrays["labels"]
    )
    raw = load_npz(str(raw_path))
    assert raw.has_raw_images and raw.label_names[0] == "label_0"
    assert_matches(raw, arrays)


def test_load_npz_refuses_pickle(tmp_path, arrays):
    path = tmp_path / "objects.npz"
    names = np.array(["a", "b", "c", "d", "e"], dtype=object)
    np.savez(
        path,
        image=arrays["features"],
        text=arrays["text"],
        labels=arrays["labels"],
        label_names=names,
    )
    message = one_line_error(ValueError, load_npz, path)
    assert str(path) in message and "pickle" in message and "label_names" in message
    pickled = tmp_path / "pickled.npz"
    with open(pickled, "wb") as stream:
        pickle.dump({"image": arrays["features"]}, stream)
    message = one_line_error(ValueError, load_npz, pickled)
    assert str(pickled) in message and "pickle" in message


def test_load_npz_bad_files(tmp_path, arrays):
    message = one_line_error(FileNotFoundError, load_npz, tmp_path / "absent.npz")
    assert "absent.npz" in message and "image, text, labels" in message
    path = tmp_path / "partial.npz"
    np.savez(path, image=arrays["features"], tags=arrays["text"])
    message = one_line_error(ValueError, load_npz, path)
    assert (
        str(path) in message and "['text', 'labels']" in message and "['image', 'tags']" in message
    )
    single = tmp_path / "single.npy"
    np.save(single, arrays["features"])
    assert "single .npy" in one_line_error(ValueError, load_npz, single)
    good = tmp_path / "good.npz"
    np.savez(good, image=arrays["features"], text=arrays["text"], labels=arrays["labels"])
    data = good.read_bytes()
    for cut in (len(data) // 2, len(data) - 30, 10):
        truncated = tmp_path / f"cut{cut}.npz"
        truncated.write_bytes(data[:cut])
        assert str(truncated) in one_line_error(ValueError, load_npz, truncated)
    # A zip whose member is damaged but whose directory is intact.
    damaged = tmp_path / "damaged.npz"
    np.savez_compressed(
        damaged, image=arrays["features"], text=arrays["text"], labels=arrays["labels"]
    )
    with zipfile.ZipFile(damaged) as archive:
        offset = archive.getinfo("text.npy").header_offset
    data = bytearray(damaged.read_bytes())
    data[offset + 60 : offset + 120] = bytes(60)
    damaged.write_bytes(bytes(data))
    assert str(damaged) in one_line_error(ValueError, load_npz, damaged)
    mismatched = tmp_path / "mismatched.npz"
    np.savez(
        mismatched, image=arrays["features"], text=arrays["text"][:-1], labels=arrays["labels"]
    )
    assert str(mismatched) in one_line_error(ValueError, load_npz, mismatched)


def test_importing_the_data_package_imports_no_jax_or_tfds():
    import subprocess
    import sys

    code = (
        "import sys, ltcmh_jax.data, ltcmh_jax.data.matfiles, ltcmh_jax.data.pipeline; "
        "print(sorted(m for m in ('jax', 'tensorflow_datasets', 'grain') if m in sys.modules))"
    )
    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True, cwd=root
    )
    assert result.stdout.strip() == "[]"


@pytest.mark.parametrize("compressed", [False, True])
def test_an_element_of_unknown_data_type_is_refused_before_scipy_reads_it(tmp_path, compressed):
    # scipy's C reader crashed the process (segmentation fault) on such a tag inside a variable:
    # the data element of LAll's values, type miDOUBLE (9) at byte 176 of this file, given a type
    # the format does not have (found by tests/test_properties.py's damaged-file search).
    path = str(tmp_path / "lall.mat")
    scipy.io.savemat(path, {"LAll": np.eye(6, 3)}, do_compression=False)
    data = bytearray(open(path, "rb").read())
    assert data[176:180] == (9).to_bytes(4, "little") and data[180:184] == (144).to_bytes(
        4, "little"
    )
    data[176:180] = (0x0509).to_bytes(4, "little")
    if compressed:
        import zlib

        body = zlib.compress(bytes(data[128:]))
        data = data[:128] + (15).to_bytes(4, "little") + len(body).to_bytes(4, "little") + body
    with open(path, "wb") as stream:
        stream.write(bytes(data))
    with pytest.raises(ValueError, match=r"lall\.mat: corrupt MATLAB v5 file .*data type 1289"):
        read_mat_matrix(path, ("LAll",))


def test_the_structure_check_passes_every_kind_of_variable_scipy_writes(tmp_path):
    variables = {
        "LAll": np.eye(6, 3),
        "sparse": scipy.sparse.random(20, 30, density=0.1, format="csc", random_state=0),
        "cell": np.array([np.arange(3), "text", np.eye(2)], dtype=object),
        "struct": {"a": np.arange(4), "b": "name", "c": {"d": np.ones((2, 2))}},
        "chars": "a string",
        "small": np.uint8(7),
        "big": np.random.default_rng(0).normal(size=(300, 300)),
    }
    for compressed in (False, True):
        path = str(tmp_path / f"all-{compressed}.mat")
        scipy.io.savemat(path, variables, do_compression=compressed)
        assert set(variables) <= set(mat_variables(path))
        name, matrix = read_mat_matrix(path, ("big",))
        np.testing.assert_array_equal(matrix, variables["big"])
