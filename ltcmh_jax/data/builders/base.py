"""What the long-tail TFDS builders share: the config and the split-then-store generation.

A builder reads the user's DCMH-format files from `manual_dir` with the loaders of
`ltcmh_jax.data.matfiles`, applies the long-tail (paper Table 1) or balanced (DCMH, Table 3)
split, and stores one TFDS split per protocol part: `query`, `database`, `train`. Each example is
`image` (uint8 `[3, H, W]` or float32 `[d_x]` features), `text` float32 `[d_t]`, `labels` float32
`[c]` and `index` (the row in the original files). The split's label statistics (`label_order`,
`target_counts`, `achieved_counts`, Table 1 numbers) go into `info.metadata`.

Records are written as ArrayRecord: with tensorflow-datasets 4.9.10 and no TensorFlow installed,
only ArrayRecord builders build and read back, through `builder.as_data_source()`
(`as_dataset` and the default TFRecord format need TensorFlow).
"""

from __future__ import annotations

import abc
import dataclasses
import os

import numpy as np
import tensorflow_datasets as tfds

from ltcmh_jax.data.dataset import MultiModalDataset
from ltcmh_jax.data.longtail import Split, balanced_split, describe, longtail_split
from ltcmh_jax.data.pipeline import read_rows

PROTOCOLS = ("longtail", "balanced")
IMAGE_SOURCES = ("raw", "features")
# Rows read from the source files per call while writing: one HDF5 selection per chunk.
_READ_CHUNK = 256


@dataclasses.dataclass(eq=False)
class LongtailConfig(tfds.core.BuilderConfig):
    """A split protocol and the shapes the stored features must have.

    Attributes:
      protocol: "longtail" (`longtail_split`: `z1`, `imbalance_factor`, `num_query`) or "balanced"
        (`balanced_split`: `num_query`, `num_train`).
      image_source: "raw" (IAll images, `image_shape`) or "features" (XAll, `feature_dim`).
      variant: which file set, for data sets that have several (NUS-WIDE "tc21" / "tc10").
      seed: seed of the split.
    """

    protocol: str = "longtail"
    image_source: str = "raw"
    variant: str = ""
    z1: int = 0
    imbalance_factor: float = 50.0
    num_query: int = 2000
    num_train: int = 0
    seed: int = 0
    image_shape: tuple[int, ...] = (3, 224, 224)
    feature_dim: int = 4096
    text_dim: int = 0
    num_labels: int = 0

    def __post_init__(self):
        if self.protocol not in PROTOCOLS:
            raise ValueError(f"protocol: {self.protocol!r} is not one of {PROTOCOLS}")
        if self.image_source not in IMAGE_SOURCES:
            raise ValueError(f"image_source: {self.image_source!r} is not one of {IMAGE_SOURCES}")


def make_split(labels: np.ndarray, config: LongtailConfig) -> Split:
    """The split `config` asks for, a pure function of the labels and the config."""
    if config.protocol == "longtail":
        return longtail_split(
            labels,
            z1=config.z1,
            imbalance_factor=config.imbalance_factor,
            num_query=config.num_query,
            seed=config.seed,
        )
    return balanced_split(
        labels, num_query=config.num_query, num_train=config.num_train, seed=config.seed
    )


class LongtailBuilder(tfds.core.GeneratorBasedBuilder, skip_registration=True):
    """Base of the `longtail_*` builders; a subclass sets `BUILDER_CONFIGS` and `load`.

    Writes ArrayRecord unless told otherwise, so `tfds.builder(name)` works without TensorFlow.
    """

    VERSION = tfds.core.Version("1.0.0")
    RELEASE_NOTES = {"1.0.0": "Long-tail (LtCMH Table 1) and balanced (DCMH) splits."}
    HOMEPAGE = "https://github.com/jiangqy/DCMH-CVPR2017"

    def __init__(self, *, file_format=None, **kwargs):
        super().__init__(file_format=file_format or "array_record", **kwargs)

    @abc.abstractmethod
    def load(self, data_dir: str) -> MultiModalDataset:
        """Reads the user's files from `data_dir` (the manual_dir) with the data set's loader."""

    def _info(self) -> tfds.core.DatasetInfo:
        config = self.builder_config
        if config.image_source == "raw":
            image = tfds.features.Tensor(shape=tuple(config.image_shape), dtype=np.uint8)
        else:
            image = tfds.features.Tensor(shape=(config.feature_dim,), dtype=np.float32)
        return self.dataset_info_from_configs(
            features=tfds.features.FeaturesDict(
                {
                    "image": image,
                    "text": tfds.features.Tensor(shape=(config.text_dim,), dtype=np.float32),
                    "labels": tfds.features.Tensor(shape=(config.num_labels,), dtype=np.float32),
                    "index": np.int64,
                }
            ),
            homepage=self.HOMEPAGE,
            metadata=tfds.core.MetadataDict(),
            # Stored order = split order (sorted row ids), so example i of `train` is row
            # `split.train[i]` and reading back needs no key lookup.
            disable_shuffling=True,
        )

    def _split_generators(self, dl_manager):
        try:
            manual_dir = os.fspath(dl_manager.manual_dir)
        except AssertionError:
            # tfds asserts (a multi-line message) on a missing or empty manual_dir; our loader
            # says in one line which files belong there and where they come from.
            manual_dir = os.fspath(dl_manager._manual_dir)  # tfds 4.9 has no public accessor
        dataset = self.load(manual_dir)
        self._check_shapes(dataset)
        split = make_split(dataset.labels, self.builder_config)
        self.info.metadata.update(split_metadata(dataset, split))
        return {
            "query": self._generate_examples(dataset, split.query),
            "database": self._generate_examples(dataset, split.database),
            "train": self._generate_examples(dataset, split.train),
        }

    def _check_shapes(self, dataset: MultiModalDataset) -> None:
        config = self.builder_config
        image_shape = (
            tuple(config.image_shape) if config.image_source == "raw" else (config.feature_dim,)
        )
        expected = {
            "image": image_shape,
            "text": (config.text_dim,),
            "labels": (config.num_labels,),
        }
        for field, shape in expected.items():
            found = tuple(getattr(dataset, field).shape[1:])
            if found != shape:
                raise ValueError(
                    f"{self.name}/{config.name}: {field} rows have shape {found} in the files, "
                    f"the config expects {shape}"
                )

    def _generate_examples(self, dataset: MultiModalDataset, rows: np.ndarray):
        for start in range(0, len(rows), _READ_CHUNK):
            chunk = read_rows(dataset, rows[start : start + _READ_CHUNK])
            for position, row in enumerate(chunk["index"]):
                yield (
                    int(row),
                    {
                        "image": chunk["image"][position],
                        "text": chunk["text"][position],
                        "labels": chunk["labels"][position],
                        "index": int(row),
                    },
                )


def split_metadata(dataset: MultiModalDataset, split: Split) -> dict:
    """JSON-able label statistics of `split`: what head/tail MAP and Table 1 need."""
    return {
        "label_names": list(dataset.label_names),
        "label_order": split.label_order.tolist(),
        "target_counts": None if split.target_counts is None else split.target_counts.tolist(),
        "achieved_counts": split.achieved_counts.tolist(),
        "table1": describe(dataset, split),
    }
