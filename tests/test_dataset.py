"""Tests for ltcmh_jax/data/dataset.py: `MultiModalDataset` validation and subsets."""

import h5py
import numpy as np
import pytest

from ltcmh_jax.data import MultiModalDataset
from ltcmh_jax.data import dataset as dataset_module


def arrays(n=6, image_shape=(4,), image_dtype=np.float32):
    rng = np.random.default_rng(0)
    image = (rng.random((n, *image_shape)) * 255).astype(image_dtype)
    text = rng.random((n, 3)).astype(np.float32)
    labels = np.eye(2, dtype=np.int64)[np.arange(n) % 2]
    return dict(image=image, text=text, labels=labels)


def test_valid_feature_dataset():
    data = MultiModalDataset(**arrays())
    assert (data.num_samples, data.num_labels) == (6, 2)
    assert not data.has_raw_images
    assert data.labels.dtype == np.float32
    assert data.label_names == ("label_0", "label_1")


def test_raw_images_and_given_label_names():
    data = MultiModalDataset(
        **arrays(image_shape=(3, 8, 8), image_dtype=np.uint8), label_names=["sky", "dog"]
    )
    assert data.has_raw_images
    assert data.label_names == ("sky", "dog")


def test_boolean_labels_are_accepted():
    fields = arrays()
    fields["labels"] = fields["labels"].astype(bool)
    np.testing.assert_array_equal(MultiModalDataset(**fields).labels, arrays()["labels"])


@pytest.mark.parametrize(
    "field, value, message",
    [
        ("text", np.zeros((5, 3), np.float32), r"^text: has 5 rows but image has 6"),
        ("labels", np.zeros((7, 2)), r"^labels: has 7 rows but image has 6"),
        ("image", np.zeros(6, np.float32), r"^image: expected an array with a row per sample"),
        ("labels", [[0, 1]] * 6, r"^labels: expected an array with a row per sample"),
        ("text", np.zeros((6, 3, 2), np.float32), r"^text: expected a 2-D \[n, d\] array"),
        ("labels", np.zeros((6, 2, 1)), r"^labels: expected a 2-D \[n, d\] array"),
        ("image", np.zeros((6, 4), np.int32), r"^image: dtype int32 is neither"),
    ],
)
def test_bad_shapes_and_dtypes_name_the_field(field, value, message):
    fields = arrays() | {field: value}
    with pytest.raises(ValueError, match=message):
        MultiModalDataset(**fields)


@pytest.mark.parametrize("field, bad", [("image", np.nan), ("text", np.inf), ("text", -np.inf)])
def test_non_finite_features_name_field_and_first_bad_row(field, bad):
    fields = arrays()
    fields[field][4, 1] = bad
    fields[field][5, 0] = bad
    with pytest.raises(ValueError, match=rf"^{field}: non-finite value .* in row 4$"):
        MultiModalDataset(**fields)


def test_finite_check_reads_in_chunks_and_finds_later_rows(monkeypatch):
    monkeypatch.setattr(dataset_module, "_CHECK_CHUNK", 2)
    fields = arrays(n=9)
    fields["image"][7, 0] = np.nan
    with pytest.raises(ValueError, match=r"^image: non-finite value .* in row 7$"):
        MultiModalDataset(**fields)


@pytest.mark.parametrize("bad", [2, -1, 0.5, np.nan])
def test_labels_outside_0_1_name_the_first_bad_row(bad):
    fields = arrays()
    fields["labels"] = fields["labels"].astype(np.float64)
    fields["labels"][3, 1] = bad
    with pytest.raises(ValueError, match=r"^labels: row 3 has values outside \{0, 1\}"):
        MultiModalDataset(**fields)


def test_label_names_must_match_columns():
    with pytest.raises(ValueError, match=r"^label_names: 3 names for 2 label columns"):
        MultiModalDataset(**arrays(), label_names=("a", "b", "c"))


def test_subset_keeps_the_asked_order_and_repeats():
    fields = arrays()
    data = MultiModalDataset(**fields, label_names=("a", "b"))
    indices = [4, 0, 4, 2]
    part = data.subset(indices)
    np.testing.assert_array_equal(part.image, fields["image"][indices])
    np.testing.assert_array_equal(part.text, fields["text"][indices])
    np.testing.assert_array_equal(part.labels, fields["labels"][indices])
    assert part.label_names == ("a", "b")
    assert data.subset([]).num_samples == 0


def test_subset_of_h5py_images_matches_in_memory(tmp_path):
    fields = arrays(n=10, image_shape=(3, 4, 4), image_dtype=np.uint8)
    with h5py.File(tmp_path / "images.h5", "w") as file:
        file["IAll"] = fields["image"]
    with h5py.File(tmp_path / "images.h5", "r") as file:
        lazy = MultiModalDataset(**(fields | {"image": file["IAll"]}))
        assert lazy.has_raw_images
        indices = np.array([7, 2, 2, 9, 0])  # unsorted, with a repeat: h5py alone rejects both
        part = lazy.subset(indices)
    assert isinstance(part.image, np.ndarray)
    np.testing.assert_array_equal(part.image, fields["image"][indices])
    np.testing.assert_array_equal(part.labels, fields["labels"][indices])


def test_subset_of_memmap_images(tmp_path):
    fields = arrays(n=8)
    mapped = np.lib.format.open_memmap(
        tmp_path / "image.npy", mode="w+", dtype=np.float32, shape=fields["image"].shape
    )
    mapped[:] = fields["image"]
    data = MultiModalDataset(**(fields | {"image": mapped}))
    np.testing.assert_array_equal(data.subset([5, 1]).image, fields["image"][[5, 1]])


@pytest.mark.parametrize("indices", [[0, 6], [-1]])
def test_subset_rejects_out_of_range_indices(indices):
    data = MultiModalDataset(**arrays())
    with pytest.raises(ValueError, match=r"^indices: -?\d+ is outside \[0, 6\)"):
        data.subset(indices)
