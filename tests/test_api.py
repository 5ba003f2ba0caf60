"""Tests of ltcmh_jax/api.py: `fit` on arrays, `Result`'s encoders and evaluation, the suggested
long-tail split, and the top-level `ltcmh_jax` names."""

import numpy as np
import pytest

import ltcmh_jax
from ltcmh_jax import data as data_lib
from ltcmh_jax import metrics
from ltcmh_jax.api import suggest_longtail_split

# conftest's TINY network and rates, as fit settings.
TINY_SETTINGS = dict(
    batch_size=32,
    text_hidden=256,
    ae_hidden=64,
    lr_image=1e-2,
    lr_text=1e-2,
    lr_autoencoder=1e-2,
    min_steps=0,
    num_query=200,
    progress=False,
    plots=False,
)


def test_suggested_split_is_the_largest_zipf_asking_half_of_each_label():
    # Counts 40, 20, 10: with IF 50, mu = ln 50 / ln 3 and z1 <= min(20, 10 * 2^mu, 5 * 3^mu) = 20;
    # 20 samples cannot give z_c = 20 / 50 >= 1, so IF drops to 20 (z_c = 1) and z1 stays 20.
    labels = np.zeros((100, 3), np.uint8)
    labels[:40, 0] = 1
    labels[40:60, 1] = 1
    labels[60:70, 2] = 1
    assert suggest_longtail_split(labels, num_query=0) == {
        "z1": 20,
        "imbalance_factor": 20.0,
        "num_query": 0,
    }
    # A quarter of the rows as queries leaves three quarters of each count: 0.5 * 30 = 15.
    assert suggest_longtail_split(labels, num_query=25)["z1"] == 15


def _fit_tiny(workdir, **settings):
    """`(dataset, result)` of a short run on 1,500 synthetic samples, 16 bits."""
    dataset = data_lib.make_synthetic_longtail(seed=0, num_samples=1500)
    settings = {"epochs": 2, **TINY_SETTINGS, **settings}
    result = ltcmh_jax.fit(
        dataset.image, dataset.text, dataset.labels, bits=16, workdir=str(workdir), **settings
    )
    return dataset, result


@pytest.fixture(scope="module")
def tiny_fit(tmp_path_factory):
    """A two-epoch LtCMH run: `(dataset, result)`."""
    return _fit_tiny(tmp_path_factory.mktemp("fit"))


def test_fit_on_arrays_encodes_new_data_as_the_run_did(tiny_fit):
    dataset, result = tiny_fit
    assert result.config.z1 == suggest_longtail_split(dataset.labels, num_query=200)["z1"]
    assert [row["epoch"] for row in result.history] == [1, 2]
    codes = result.codes
    query = codes["query_indices"]
    np.testing.assert_array_equal(
        result.encode_image(dataset.image[query]), codes["query_image_codes"]
    )
    np.testing.assert_array_equal(
        result.encode_text(dataset.text[query]), codes["query_text_codes"]
    )
    scores = result.evaluate(dataset.image[query], dataset.text[query], dataset.labels[query])
    assert scores["map_i2t"] == pytest.approx(result.scores["map_i2t"], abs=1e-12)
    assert scores["map_t2i"] == pytest.approx(result.scores["map_t2i"], abs=1e-12)
    assert type(result.model).__name__ == "HashingModel"
    with pytest.raises(ValueError, match=r"encode_image: expected \[n, "):
        result.encode_image(dataset.image[:, :3])


def test_retrieval_maps_cover_every_direction_on_held_out_and_training_rows(tiny_fit):
    dataset, result = tiny_fit
    held_out = result.retrieval_maps("test")
    assert sorted(held_out) == ["i2i", "i2t", "t2i", "t2t"]
    assert held_out["i2t"] == pytest.approx(result.scores["map_i2t"], abs=1e-12)
    assert held_out["t2i"] == pytest.approx(result.scores["map_t2i"], abs=1e-12)
    train = result.trainer.split.train
    image = result.encode_image(dataset.image[train])
    text = result.encode_text(dataset.text[train])
    labels = dataset.labels[train]
    expected = {
        "i2i": metrics.mean_average_precision(image, image, labels, labels),
        "i2t": metrics.mean_average_precision(image, text, labels, labels),
        "t2i": metrics.mean_average_precision(text, image, labels, labels),
        "t2t": metrics.mean_average_precision(text, text, labels, labels),
    }
    fitted = result.retrieval_maps("train")
    assert fitted == pytest.approx(expected, abs=1e-12)
    with pytest.raises(ValueError, match="retrieval_maps: rows must be 'test' or 'train'"):
        result.retrieval_maps("query")


def test_fit_refuses_unknown_settings_by_name():
    arrays = np.zeros((4, 2)), np.zeros((4, 2)), np.ones((4, 1))
    with pytest.raises(ValueError, match=r"unknown settings \['bogus'\]"):
        ltcmh_jax.fit(*arrays, bogus=1)
    with pytest.raises(ValueError, match="data_path= does not apply"):
        ltcmh_jax.fit(*arrays, data_path="x.npz")


def test_top_level_names_are_the_public_ones():
    names = dir(ltcmh_jax)
    assert "fit" in names and "Result" in names and "train" in names
    assert not [name for name in names if name.startswith("_") and name != "__version__"]
    assert "importlib" not in names
    assert ltcmh_jax.fit is ltcmh_jax.api.fit
    assert ltcmh_jax.TrainConfig is ltcmh_jax.train.TrainConfig
    with pytest.raises(AttributeError):
        ltcmh_jax.no_such_name  # noqa: B018


def test_retrieval_maps_of_an_image_only_run_is_its_image_to_image_map(tmp_path):
    _, result = _fit_tiny(tmp_path, method="dcmh", epochs=1, modality="image")
    held_out = result.retrieval_maps("test")
    assert list(held_out) == ["i2i"]
    assert held_out["i2i"] == pytest.approx(result.scores["map_i2i"], abs=1e-12)
