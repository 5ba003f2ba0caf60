"""Tests for ltcmh_jax/data/pipeline.py: NumPy epoch batches, grain batches, resumable state."""

import grain
import numpy as np
import pytest
from test_matfiles import make_arrays, write_dcmh_files

from ltcmh_jax.data import MultiModalDataset
from ltcmh_jax.data.matfiles import LazyImages, load_mirflickr25k
from ltcmh_jax.data.pipeline import (
    epoch_batches,
    epoch_permutation,
    grain_batches,
    read_rows,
)


def small_dataset(num_samples=23, seed=0):
    rng = np.random.default_rng(seed)
    return MultiModalDataset(
        image=rng.normal(size=(num_samples, 4)).astype(np.float32),
        text=rng.normal(size=(num_samples, 3)).astype(np.float32),
        labels=(rng.random((num_samples, 2)) < 0.5).astype(np.float32),
    )


# ------------------------------------------------------------------------------------------
# NumPy path
# ------------------------------------------------------------------------------------------


def test_epoch_permutation_is_a_function_of_seed_and_epoch():
    first = epoch_permutation(50, seed=3, epoch=7)
    np.testing.assert_array_equal(first, epoch_permutation(50, seed=3, epoch=7))
    np.testing.assert_array_equal(np.sort(first), np.arange(50))
    assert first.dtype == np.int64
    assert not np.array_equal(first, epoch_permutation(50, seed=3, epoch=8))
    assert not np.array_equal(first, epoch_permutation(50, seed=4, epoch=7))
    assert epoch_permutation(0, seed=0, epoch=0).shape == (0,)


@pytest.mark.parametrize("drop_remainder", [False, True])
def test_epoch_batches_cover_each_sample_once(drop_remainder):
    batches = epoch_batches(23, 5, seed=1, epoch=2, drop_remainder=drop_remainder)
    sizes = [len(b) for b in batches]
    assert sizes == ([5, 5, 5, 5] if drop_remainder else [5, 5, 5, 5, 3])
    flat = np.concatenate(batches)
    assert len(np.unique(flat)) == len(flat)
    np.testing.assert_array_equal(flat, epoch_permutation(23, seed=1, epoch=2)[: len(flat)])
    resumed = epoch_batches(23, 5, seed=1, epoch=2, drop_remainder=drop_remainder)
    assert all(np.array_equal(a, b) for a, b in zip(batches, resumed, strict=True))


@pytest.mark.parametrize(
    "kwargs, field",
    [
        (dict(num_samples=10, batch_size=0, seed=0, epoch=0), "batch_size"),
        (dict(num_samples=10, batch_size=2.5, seed=0, epoch=0), "batch_size"),
        (dict(num_samples=-1, batch_size=2, seed=0, epoch=0), "num_samples"),
        (dict(num_samples=10, batch_size=2, seed=-3, epoch=0), "seed"),
        (dict(num_samples=10, batch_size=2, seed=0, epoch=-1), "epoch"),
    ],
)
def test_epoch_batches_bad_arguments(kwargs, field):
    with pytest.raises(ValueError, match=field):
        epoch_batches(**kwargs)


def test_read_rows_keeps_the_asked_order():
    dataset = small_dataset()
    batch = read_rows(dataset, [4, 0, 4])
    np.testing.assert_array_equal(batch["image"], dataset.image[[4, 0, 4]])
    np.testing.assert_array_equal(batch["labels"], dataset.labels[[4, 0, 4]])
    np.testing.assert_array_equal(batch["index"], [4, 0, 4])


# ------------------------------------------------------------------------------------------
# grain path
# ------------------------------------------------------------------------------------------


def epochs_of(batches, num_epochs, batches_per_epoch):
    flat = list(batches)
    assert len(flat) == num_epochs * batches_per_epoch
    return [flat[e * batches_per_epoch : (e + 1) * batches_per_epoch] for e in range(num_epochs)]


def test_grain_batches_shuffle_each_epoch_and_read_the_right_rows():
    dataset = small_dataset()
    train = np.array([1, 2, 3, 5, 8, 13, 21, 22, 0, 7, 9])
    batches = grain_batches(dataset, batch_size=4, seed=5, indices=train, num_epochs=3)
    assert isinstance(batches, grain.MapDataset)
    epochs = epochs_of(batches, 3, 3)
    orders = []
    for epoch in epochs:
        assert [len(b["index"]) for b in epoch] == [4, 4, 3]
        order = np.concatenate([b["index"] for b in epoch])
        np.testing.assert_array_equal(np.sort(order), np.sort(train))
        orders.append(order)
        for batch in epoch:
            np.testing.assert_array_equal(batch["image"], dataset.image[batch["index"]])
            np.testing.assert_array_equal(batch["text"], dataset.text[batch["index"]])
            np.testing.assert_array_equal(batch["labels"], dataset.labels[batch["index"]])
    assert not np.array_equal(orders[0], orders[1])
    again = epochs_of(
        grain_batches(dataset, batch_size=4, seed=5, indices=train, num_epochs=3), 3, 3
    )
    np.testing.assert_array_equal(np.concatenate([b["index"] for b in again[2]]), orders[2])


def test_grain_batches_without_shuffle_and_with_drop_remainder():
    dataset = small_dataset()
    ordered = list(grain_batches(dataset, batch_size=10, seed=0, shuffle=False))
    np.testing.assert_array_equal(np.concatenate([b["index"] for b in ordered]), np.arange(23))
    dropped = list(grain_batches(dataset, batch_size=10, seed=0, drop_remainder=True))
    assert [len(b["index"]) for b in dropped] == [10, 10]


@pytest.mark.parametrize("threads", [0, 2])
def test_grain_iterator_resumes_from_saved_state(threads):
    dataset = small_dataset()
    batches = grain_batches(dataset, batch_size=5, seed=11, num_epochs=None)
    if threads:
        batches = batches.to_iter_dataset(grain.ReadOptions(num_threads=threads))
    iterator = iter(batches)
    for _ in range(7):  # past the first epoch boundary (5 batches per epoch)
        next(iterator)
    state = iterator.get_state()
    expected = [next(iterator)["index"] for _ in range(6)]
    restored = iter(batches)
    restored.set_state(state)
    got = [next(restored)["index"] for _ in range(6)]
    for a, b in zip(expected, got, strict=True):
        np.testing.assert_array_equal(a, b)


def test_grain_batches_over_lazy_hdf5_images(tmp_path):
    arrays = make_arrays()
    write_dcmh_files(tmp_path, arrays)
    dataset = load_mirflickr25k(tmp_path)
    assert isinstance(dataset.image, LazyImages)
    for batch in grain_batches(dataset, batch_size=8, seed=2, indices=np.arange(3, 27)):
        np.testing.assert_array_equal(batch["image"], arrays["images"][batch["index"]])
        assert batch["image"].shape[1:] == arrays["images"].shape[1:]


def test_grain_batches_over_a_record_source():
    dataset = small_dataset()
    records = [
        {
            "image": dataset.image[i],
            "text": dataset.text[i],
            "labels": dataset.labels[i],
            "index": 100 + i,
        }
        for i in range(dataset.num_samples)
    ]
    for batch in grain_batches(records, batch_size=6, seed=0):
        np.testing.assert_array_equal(batch["image"], dataset.image[batch["index"] - 100])
    with pytest.raises(ValueError, match=r"source: records lack fields \['index'\]"):
        list(
            grain_batches(
                [{k: v for k, v in r.items() if k != "index"} for r in records],
                batch_size=4,
                seed=0,
            )
        )


@pytest.mark.parametrize(
    "kwargs, field",
    [
        (dict(batch_size=0, seed=0), "batch_size"),
        (dict(batch_size=2, seed=-1), "seed"),
        (dict(batch_size=2, seed=0, num_epochs=0), "num_epochs"),
        (dict(batch_size=2, seed=0, indices=[0, 23]), "indices"),
        (dict(batch_size=2, seed=0, indices=[[0, 1]]), "indices"),
    ],
)
def test_grain_batches_bad_arguments(kwargs, field):
    with pytest.raises(ValueError, match=field):
        grain_batches(small_dataset(), **kwargs)
