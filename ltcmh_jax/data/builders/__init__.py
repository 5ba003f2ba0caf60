"""TFDS builders `longtail_mirflickr25k` and `longtail_nuswide` (importing this registers them).

Kept out of `ltcmh_jax.data`'s imports: this package imports tensorflow_datasets.

    import tensorflow_datasets as tfds
    from ltcmh_jax.data import builders

    builder = builders.LongtailMirflickr25k(config="longtail", data_dir="~/tensorflow_datasets")
    builder.download_and_prepare(
        download_config=tfds.download.DownloadConfig(manual_dir="/data/dcmh/mirflickr"))
    sources = builder.as_data_source()  # {"query", "database", "train"}: random access, no TF
    head_labels = builder.info.metadata["label_order"][:14]
"""

from ltcmh_jax.data.builders.base import LongtailBuilder as LongtailBuilder
from ltcmh_jax.data.builders.base import LongtailConfig as LongtailConfig
from ltcmh_jax.data.builders.base import make_split as make_split
from ltcmh_jax.data.builders.longtail_mirflickr25k import (
    LongtailMirflickr25k as LongtailMirflickr25k,
)
from ltcmh_jax.data.builders.longtail_nuswide import LongtailNuswide as LongtailNuswide
