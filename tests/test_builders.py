"""Tests for ltcmh_jax/data/builders: build small self-written DCMH files into a tmp data_dir,
read back through `as_data_source` (no TensorFlow), compare with the loaders and the splits."""

import os
import subprocess
import sys

import numpy as np
import pytest
import tensorflow_datasets as tfds
from test_matfiles import HEIGHT, TEXT_DIM, WIDTH, make_arrays, write_dcmh_files

from ltcmh_jax.data import balanced_split, longtail_split
from ltcmh_jax.data.builders import LongtailConfig, LongtailMirflickr25k, LongtailNuswide
from ltcmh_jax.data.matfiles import load_mirflickr25k, load_nuswide
from ltcmh_jax.data.pipeline import grain_batches

REPO_ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
NUM_SAMPLES, NUM_LABELS = 80, 5
TINY_SHAPES = dict(
    image_shape=(3, HEIGHT, WIDTH), feature_dim=16, text_dim=TEXT_DIM, num_labels=NUM_LABELS
)
TINY_LONGTAIL = dict(protocol="longtail", z1=12, imbalance_factor=4.0, num_query=10, seed=3)
TINY_BALANCED = dict(protocol="balanced", num_query=10, num_train=30, seed=3)


@pytest.fixture(scope="module")
def arrays():
    return make_arrays(seed=5, num_samples=NUM_SAMPLES, num_labels=NUM_LABELS)


@pytest.fixture(scope="module")
def flickr_dir(tmp_path_factory, arrays):
    return write_dcmh_files(tmp_path_factory.mktemp("flickr"), arrays)


def build(builder_cls, config, data_dir, manual_dir):
    builder = builder_cls(config=config, data_dir=data_dir)
    builder.download_and_prepare(
        download_config=tfds.download.DownloadConfig(manual_dir=str(manual_dir))
    )
    return builder


def records(source, field):
    return np.stack([np.asarray(source[i][field]) for i in range(len(source))])


def assert_split_stored(builder, dataset, split):
    sources = builder.as_data_source()
    assert set(sources) == {"query", "database", "train"}
    for part in ("query", "database", "train"):
        rows = getattr(split, part)
        source = sources[part]
        assert len(source) == len(rows)
        np.testing.assert_array_equal(records(source, "index"), rows)
        np.testing.assert_array_equal(records(source, "image"), np.asarray(dataset.image[rows]))
        np.testing.assert_array_equal(records(source, "text"), dataset.text[rows])
        np.testing.assert_array_equal(records(source, "labels"), dataset.labels[rows])
    metadata = builder.info.metadata
    assert metadata["label_order"] == split.label_order.tolist()
    assert metadata["achieved_counts"] == split.achieved_counts.tolist()
    assert metadata["table1"]["n_query"] == len(split.query)
    assert metadata["table1"]["n_base"] == len(split.database)


def test_longtail_build_matches_loader_and_split(tmp_path, arrays, flickr_dir):
    config = LongtailConfig(name="tiny_longtail", **TINY_LONGTAIL, **TINY_SHAPES)
    builder = build(LongtailMirflickr25k, config, tmp_path / "tfds", flickr_dir)
    assert builder.info.file_format.value == "array_record"
    dataset = load_mirflickr25k(flickr_dir)
    split = longtail_split(dataset.labels, z1=12, imbalance_factor=4.0, num_query=10, seed=3)
    assert_split_stored(builder, dataset, split)
    assert builder.info.metadata["target_counts"] == split.target_counts.tolist()
    np.testing.assert_array_equal(
        records(builder.as_data_source()["query"], "image"), arrays["images"][split.query]
    )

    # Read back without the generating code, and as a grain source.
    path = tmp_path / "tfds" / "longtail_mirflickr25k" / "tiny_longtail" / "1.0.0"
    reread = tfds.builder_from_directory(str(path))
    assert reread.info.metadata["label_order"] == split.label_order.tolist()
    train = reread.as_data_source()["train"]
    seen = np.concatenate([b["index"] for b in grain_batches(train, batch_size=8, seed=0)])
    np.testing.assert_array_equal(np.sort(seen), split.train)
    for batch in grain_batches(train, batch_size=8, seed=1):
        np.testing.assert_array_equal(batch["image"], arrays["images"][batch["index"]])


def test_balanced_features_build(tmp_path, arrays, flickr_dir):
    config = LongtailConfig(
        name="tiny_balanced_features", image_source="features", **TINY_BALANCED, **TINY_SHAPES
    )
    builder = build(LongtailMirflickr25k, config, tmp_path, flickr_dir)
    dataset = load_mirflickr25k(flickr_dir, image_source="features")
    split = balanced_split(dataset.labels, num_query=10, num_train=30, seed=3)
    assert_split_stored(builder, dataset, split)
    assert builder.info.metadata["target_counts"] is None
    assert records(builder.as_data_source()["train"], "image").dtype == np.float32


def test_nuswide_tc10_build_from_mixed_versions(tmp_path, arrays):
    manual_dir = tmp_path / "nus"
    manual_dir.mkdir()
    write_dcmh_files(
        manual_dir,
        arrays,
        prefix="nus-wide-tc10",
        version={"raw": "v73", "text": "v5", "labels": "v73", "features": "v5"},
    )
    config = LongtailConfig(name="tiny_tc10", variant="tc10", **TINY_LONGTAIL, **TINY_SHAPES)
    builder = build(LongtailNuswide, config, tmp_path / "tfds", manual_dir)
    dataset = load_nuswide(manual_dir, variant="tc10")
    split = longtail_split(dataset.labels, z1=12, imbalance_factor=4.0, num_query=10, seed=3)
    assert_split_stored(builder, dataset, split)


def test_predefined_configs_follow_the_paper():
    flickr = LongtailMirflickr25k.builder_configs
    assert set(flickr) == {"longtail", "balanced", "longtail_features", "balanced_features"}
    longtail = flickr["longtail"]
    assert (longtail.z1, longtail.imbalance_factor, longtail.num_query) == (3000, 50.0, 2000)
    assert (longtail.text_dim, longtail.num_labels, longtail.image_shape) == (
        1386,
        24,
        (3, 224, 224),
    )
    assert (flickr["balanced"].num_query, flickr["balanced"].num_train) == (2000, 10000)
    nus = LongtailNuswide.builder_configs
    assert (nus["tc21_longtail"].z1, nus["tc21_longtail"].num_labels) == (5000, 21)
    assert (nus["tc10_balanced_features"].num_labels, nus["tc10_balanced"].num_train) == (10, 10500)
    assert nus["tc21_longtail_features"].image_source == "features"


def test_missing_or_empty_manual_dir_is_one_line(tmp_path):
    config = LongtailConfig(name="tiny_missing", **TINY_LONGTAIL, **TINY_SHAPES)
    for manual_dir in (tmp_path / "absent", tmp_path):
        with pytest.raises(FileNotFoundError) as info:
            build(LongtailMirflickr25k, config, tmp_path / "tfds", manual_dir)
        message = str(info.value)
        assert "\n" not in message and "mirflickr25k-yall.mat" in message and "DCMH" in message


def test_files_of_another_shape_are_refused(tmp_path, flickr_dir):
    shapes = dict(TINY_SHAPES, text_dim=TEXT_DIM + 1)
    config = LongtailConfig(name="tiny_wrong_text", **TINY_LONGTAIL, **shapes)
    with pytest.raises(ValueError, match=r"tiny_wrong_text: text rows have shape \(12,\)"):
        build(LongtailMirflickr25k, config, tmp_path, flickr_dir)


def test_bad_config_values():
    with pytest.raises(ValueError, match="protocol"):
        LongtailConfig(name="x", protocol="zipf")
    with pytest.raises(ValueError, match="image_source"):
        LongtailConfig(name="x", image_source="vgg")


def test_builders_work_without_tensorflow(tmp_path, flickr_dir):
    # A fresh interpreter: the whole build and read-back must not import TensorFlow.
    code = f"""
import sys, tensorflow_datasets as tfds
from ltcmh_jax.data.builders import LongtailConfig, LongtailMirflickr25k
config = LongtailConfig(name="tiny_no_tf", protocol="balanced", num_query=10, num_train=30,
                        image_shape=(3, {HEIGHT}, {WIDTH}), text_dim={TEXT_DIM}, num_labels=5)
builder = LongtailMirflickr25k(config=config, data_dir={str(tmp_path)!r})
builder.download_and_prepare(
    download_config=tfds.download.DownloadConfig(manual_dir={str(flickr_dir)!r}))
print(len(builder.as_data_source()["train"]), "tensorflow" in sys.modules)
"""
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, cwd=REPO_ROOT
    )
    assert result.returncode == 0, result.stderr[-2000:]
    assert result.stdout.split()[-2:] == ["30", "False"]
