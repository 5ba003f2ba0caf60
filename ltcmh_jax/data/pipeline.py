"""Input pipelines: which rows go in which batch, and reading those rows.

Two paths, one rule: the batches of an epoch are a pure function of `(seed, epoch)`, so a run
resumed from a checkpoint sees exactly the batches an uninterrupted run would have seen.

- `epoch_batches`: plain NumPy index arrays, for data that sits in memory (feature vectors, the
  synthetic set). The training loop keeps its own epoch counter and indexes the arrays itself.
- `grain_batches`: a `grain.MapDataset` over a `MultiModalDataset` (raw images read lazily from
  HDF5) or a TFDS `as_data_source()` split, with seeded per-epoch shuffling, batching, and an
  iterator whose position is saved and restored with `get_state` / `set_state`. grain imports jax,
  so it is imported only when this function is called.
"""

from __future__ import annotations

import os
from collections.abc import Sequence

import numpy as np

from ltcmh_jax.data.dataset import MultiModalDataset

FIELDS = ("image", "text", "labels", "index")


def _check_non_negative(name: str, value) -> int:
    if int(value) != value or value < 0:
        raise ValueError(f"{name}: must be a non-negative integer, got {value!r}")
    return int(value)


def epoch_permutation(num_samples: int, *, seed: int, epoch: int) -> np.ndarray:
    """`[num_samples]` int64, the sample order of epoch `epoch`; depends on `(seed, epoch)` only."""
    num_samples = _check_non_negative("num_samples", num_samples)
    rng = np.random.default_rng(
        (_check_non_negative("seed", seed), _check_non_negative("epoch", epoch))
    )
    return rng.permutation(num_samples).astype(np.int64)


def epoch_batches(
    num_samples: int, batch_size: int, *, seed: int, epoch: int, drop_remainder: bool = False
) -> list[np.ndarray]:
    """The batches of one epoch as int64 position arrays into `[0, num_samples)`.

    Every sample appears once per epoch (the last batch is shorter unless `drop_remainder`).
    Positions, not dataset rows: for a split, index the split's rows with them
    (`split.train[batch]`).
    """
    if int(batch_size) != batch_size or batch_size < 1:
        raise ValueError(f"batch_size: must be a positive integer, got {batch_size!r}")
    order = epoch_permutation(num_samples, seed=seed, epoch=epoch)
    stop = len(order) - len(order) % batch_size if drop_remainder else len(order)
    return [order[start : start + batch_size] for start in range(0, stop, int(batch_size))]


def read_rows(dataset: MultiModalDataset, rows: Sequence[int] | np.ndarray) -> dict:
    """The fields of `rows` (dataset row ids, any order) as one batch of NumPy arrays.

    Returns:
      `{"image": [b, ...], "text": [b, d_t], "labels": [b, c], "index": [b] int64}`; `index` holds
      the dataset row ids, so codes can be matched back to samples.
    """
    rows = np.asarray(rows, dtype=np.int64)
    return {
        "image": np.asarray(dataset.image[rows]),
        "text": np.asarray(dataset.text[rows]),
        "labels": np.asarray(dataset.labels[rows]),
        "index": rows,
    }


def _record_reader(source):
    """Reads rows of a random-access source of per-sample dicts (a TFDS data source split)."""

    def read(rows: np.ndarray) -> dict:
        rows = [int(r) for r in rows]
        getitems = getattr(source, "__getitems__", None)
        records = getitems(rows) if getitems is not None else [source[r] for r in rows]
        missing = [f for f in FIELDS if f not in records[0]]
        if missing:
            raise ValueError(
                f"source: records lack fields {missing}; found {sorted(records[0])}, expected "
                f"{list(FIELDS)} (as the longtail_* TFDS builders store them)"
            )
        return {f: np.stack([np.asarray(record[f]) for record in records]) for f in FIELDS}

    return read


def grain_batches(
    source,
    *,
    batch_size: int,
    seed: int,
    indices: Sequence[int] | np.ndarray | None = None,
    num_epochs: int | None = 1,
    shuffle: bool = True,
    drop_remainder: bool = False,
):
    """A `grain.MapDataset` of batches, reshuffled each epoch, epochs batched separately.

    Shuffling and batching act on row positions only (`MapDataset.range -> shuffle -> batch ->
    repeat`), and each batch is then read in one call, so an HDF5-backed image stack is read as
    one selection per batch, not one per image.

    Args:
      source: a `MultiModalDataset`, or a random-access source of dicts with fields `image`,
        `text`, `labels`, `index` (e.g. `builder.as_data_source()["train"]` of a `longtail_*`
        TFDS builder).
      batch_size: rows per batch.
      seed: shuffle seed; epoch `e` uses a permutation derived from `(seed, e)` by grain.
      indices: rows of `source` to use (e.g. `split.train`); all rows when None.
      num_epochs: epochs to repeat; None repeats forever.
      shuffle: False keeps the order of `indices` (for encoding a database).
      drop_remainder: drop the short last batch of each epoch.

    Returns:
      `grain.MapDataset` whose elements are dicts `{"image", "text", "labels", "index"}` of
      stacked NumPy arrays; `index` is the original row id (the stored `index` field for a TFDS
      source). `iter(...)` gives an iterator with `get_state()` / `set_state(state)`; call
      `.to_iter_dataset(grain.ReadOptions(num_threads=...))` on it to prefetch in threads.
    """
    import grain

    if int(batch_size) != batch_size or batch_size < 1:
        raise ValueError(f"batch_size: must be a positive integer, got {batch_size!r}")
    _check_non_negative("seed", seed)
    if num_epochs is not None and (int(num_epochs) != num_epochs or num_epochs < 1):
        raise ValueError(f"num_epochs: must be a positive integer or None, got {num_epochs!r}")
    num_rows = source.num_samples if isinstance(source, MultiModalDataset) else len(source)
    rows = np.arange(num_rows) if indices is None else np.asarray(indices, dtype=np.int64)
    if rows.ndim != 1 or (rows.size and (rows.min() < 0 or rows.max() >= num_rows)):
        raise ValueError(f"indices: must be a 1-D array of row ids in [0, {num_rows})")
    if isinstance(source, MultiModalDataset):

        def read(positions):
            return read_rows(source, rows[positions])

    else:
        read_records = _record_reader(source)

        def read(positions):
            return read_records(rows[positions])

    positions = grain.MapDataset.range(len(rows))
    if shuffle:
        positions = positions.shuffle(seed=int(seed))
    batches = positions.batch(int(batch_size), drop_remainder=drop_remainder)
    if num_epochs != 1:
        batches = batches.repeat(num_epochs)
    return batches.map(read)


def load_tfds(name: str, data_dir: str):
    """A prepared `longtail_*` TFDS data set as the training job reads it: `(dataset, split)`.

    `name` is `builder/config` (e.g. `longtail_mirflickr25k/longtail_features`), prepared under
    `data_dir` (its newest version is read). The three stored parts (`query`, `database`, `train`)
    are read through `as_data_source()` and put back in the order of their `index` field (the
    row in the original files), so a run on this data set draws what a run on the same rows
    from an .npz would draw; the split is the stored one, with its label statistics from
    `info.metadata`.

    Raises:
      ValueError: naming `--dataset` or `--data_dir`, when the data set is not there or its
        parts do not cover rows 0 .. n - 1.
    """
    import tensorflow_datasets as tfds

    from ltcmh_jax.data.longtail import Split

    folder = os.path.join(data_dir, name)
    versions = (
        sorted(
            (entry for entry in os.listdir(folder) if entry[:1].isdigit()),
            key=lambda version: tuple(int(part) for part in version.split(".")),
        )
        if os.path.isdir(folder)
        else []
    )
    if not versions:
        raise ValueError(
            f"--dataset: no prepared TFDS data set tfds:{name} in --data_dir={data_dir}"
        )
    builder = tfds.builder_from_directory(os.path.join(folder, versions[-1]))
    sources = builder.as_data_source()
    parts = {
        part: _record_reader(sources[part])(np.arange(len(sources[part])))
        for part in ("query", "database", "train")
    }
    rows = np.concatenate([parts["query"]["index"], parts["database"]["index"]])
    order = np.argsort(rows)
    if not np.array_equal(rows[order], np.arange(rows.size)):
        raise ValueError(
            f"--dataset: tfds:{name}: query and database do not cover rows 0..{rows.size - 1}"
        )
    fields = {
        field: np.concatenate([parts["query"][field], parts["database"][field]])[order]
        for field in ("image", "text", "labels")
    }
    dataset = MultiModalDataset(fields["image"], fields["text"], fields["labels"])
    metadata = builder.info.metadata
    target = metadata.get("target_counts")
    split = Split(
        query=np.sort(parts["query"]["index"]).astype(np.int64),
        database=np.sort(parts["database"]["index"]).astype(np.int64),
        train=np.sort(parts["train"]["index"]).astype(np.int64),
        label_order=np.asarray(metadata["label_order"], np.int64),
        target_counts=None if target is None else np.asarray(target, np.int64),
        achieved_counts=np.asarray(metadata["achieved_counts"], np.int64),
    )
    return dataset, split
