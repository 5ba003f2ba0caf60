"""Tests of ltcmh_jax/train/loop.py: `train_and_evaluate` end to end, resume, rerun, refusals."""

import dataclasses
import json
import os

import numpy as np
import pytest
from conftest import TINY

from ltcmh_jax import train as train_lib
from ltcmh_jax.train import loop, run_dir
from ltcmh_jax.train.trainer import Trainer


def _codes(workdir):
    with np.load(os.path.join(workdir, "codes.npz")) as codes:
        return {name: codes[name] for name in codes.files}


def test_resume_and_rerun_give_the_codes_of_an_uninterrupted_run(tmp_path, monkeypatch):
    # The resumed run's codes equal these bit for bit, which also shows that training is
    # deterministic (a second uninterrupted run would repeat that check at 5 s).
    straight = train_lib.train_and_evaluate(TINY, str(tmp_path / "straight"))

    # Stop in epoch 3 (after the epoch-2 checkpoint), as a kill would, then run the command again.
    original = Trainer.run_epoch

    def killed_in_epoch_three(self, state, epoch, progress=None):
        if epoch == 2:
            raise KeyboardInterrupt
        return original(self, state, epoch, progress)

    resumed_dir = str(tmp_path / "resumed")
    monkeypatch.setattr(Trainer, "run_epoch", killed_in_epoch_three)
    with pytest.raises(KeyboardInterrupt):
        train_lib.train_and_evaluate(TINY, resumed_dir)
    assert not os.path.exists(os.path.join(resumed_dir, "results.json"))
    monkeypatch.setattr(Trainer, "run_epoch", original)
    resumed = train_lib.train_and_evaluate(TINY, resumed_dir)
    assert resumed["map_i2t"] == straight["map_i2t"]
    for name, value in _codes(tmp_path / "straight").items():
        np.testing.assert_array_equal(_codes(resumed_dir)[name], value, err_msg=name)
    with open(os.path.join(resumed_dir, "metrics.jsonl")) as stream:
        rows = [json.loads(line) for line in stream]
    assert [row["epoch"] for row in rows] == [1, 2, 3, 4]
    # Every epoch records the mechanism diagnostics (issue 12): shares and correlations in range.
    for row in rows:
        for key in (
            "diag_bits_flipped_image", "diag_bits_flipped_text", "diag_commonality_label_share",
            "diag_r_related_image", "diag_r_unrelated_text", "diag_meta_sign_agreement_text",
            "diag_gate_commonality_image", "diag_gate_individuality_text",
        ):  # fmt: skip
            assert 0.0 <= row[key] <= 1.0, (key, row[key])
        for key in ("diag_commonality_corr_image", "diag_commonality_corr_text"):
            assert -1.0 <= row[key] <= 1.0, (key, row[key])
        assert row["weighted_autoencoder_j1_commonality"] >= 0.0
    assert rows[-1]["diag_bits_flipped_image"] > 0.0  # the selectors opened

    for key in (
        "method", "dataset", "bits", "seed", "map_i2t", "map_t2i", "map_i2t_head",
        "map_i2t_tail", "map_t2i_head", "map_t2i_tail", "train_seconds", "split_statistics",
        "chance_map",
    ):  # fmt: skip
        assert key in resumed, key

    # A finished run is reported, not trained again; another configuration is refused.
    def no_training(*args, **kwargs):
        raise AssertionError("a finished run was trained again")

    monkeypatch.setattr(loop, "Trainer", no_training)
    assert train_lib.train_and_evaluate(TINY, resumed_dir)["map_t2i"] == resumed["map_t2i"]
    with pytest.raises(ValueError, match="another configuration"):
        train_lib.train_and_evaluate(dataclasses.replace(TINY, bits=32), resumed_dir)
    # The same flags over other data (--data_path now pointing at other files) are refused too.
    monkeypatch.setattr(run_dir, "data_fingerprint", lambda dataset: "0123456789abcdef")
    with pytest.raises(ValueError, match="other data"):
        train_lib.train_and_evaluate(TINY, resumed_dir)


def test_a_checkpoint_of_another_configuration_is_not_resumed(tmp_path, monkeypatch):
    workdir = str(tmp_path / "run")
    original = Trainer.run_epoch

    def killed_in_epoch_three(self, state, epoch, progress=None):
        if epoch == 2:
            raise KeyboardInterrupt
        return original(self, state, epoch, progress)

    monkeypatch.setattr(Trainer, "run_epoch", killed_in_epoch_three)
    with pytest.raises(KeyboardInterrupt):
        train_lib.train_and_evaluate(TINY, workdir)
    with pytest.raises(ValueError, match="--bits"):
        train_lib.train_and_evaluate(dataclasses.replace(TINY, bits=32), workdir)


def test_the_main_job_learns_well_above_chance(tmp_path):
    config = dataclasses.replace(TINY, epochs=16, checkpoint_every=0)
    results = train_lib.train_and_evaluate(config, str(tmp_path))
    # Chance is 0.2225 on this split; measured after 16 epochs: I->T 0.2512, T->I 0.2773.
    for key in ("map_i2t", "map_t2i"):
        assert results[key] > results["chance_map"] + 0.015, (key, results[key])
    # TINY turns the PNGs off (--plots=false): none written, the numbers are all there.
    assert results["plots"] == [] and not list(tmp_path.glob("*.png"))


def test_image_only_protocol_trains_and_reports_image_to_image_map(tmp_path):
    config = dataclasses.replace(TINY, modality="image", epochs=16, checkpoint_every=0, plots=True)
    results = train_lib.train_and_evaluate(config, str(tmp_path))
    # Chance 0.2225; measured after 16 epochs: I->I 0.2697.
    assert results["map_i2i"] > results["chance_map"] + 0.025, results["map_i2i"]
    for key in ("map_i2i_head", "map_i2i_tail"):
        assert 0 < results[key] <= 1
    assert "map_i2t" not in results and results["modality"] == "image"
    codes = np.load(tmp_path / "codes.npz")
    assert "db_text_codes" not in codes and codes["db_image_codes"].shape[1] == TINY.bits
    rows = [json.loads(line) for line in open(tmp_path / "metrics.jsonl")]
    assert len(rows) == 16
    assert "autoencoder/j1_commonality" in rows[0]
    assert not [key for key in rows[0] if "j2_hsic" in key or key.startswith("text/")]
    assert (tmp_path / "pr_curves.png").exists()
    assert results["plots"] and all(os.path.getsize(path) > 1000 for path in results["plots"])


# Slow (13 s): the builder's records equal the loader's arrays and split in the default run
# (test_builders.py::test_longtail_build_matches_loader_and_split); this trains on both.
@pytest.mark.slow
def test_a_run_from_the_tfds_builder_gives_the_codes_of_the_same_data_from_an_npz(tmp_path):
    import tensorflow_datasets as tfds
    from test_matfiles import HEIGHT, TEXT_DIM, WIDTH, make_arrays, write_dcmh_files

    from ltcmh_jax.data.builders import LongtailConfig, LongtailMirflickr25k
    from ltcmh_jax.data.matfiles import load_mirflickr25k

    (tmp_path / "files").mkdir()
    files = write_dcmh_files(tmp_path / "files", make_arrays(seed=5, num_samples=80, num_labels=5))
    protocol = dict(z1=12, imbalance_factor=4.0, num_query=10)
    builder = LongtailMirflickr25k(
        config=LongtailConfig(
            name="tiny_features",
            image_source="features",
            protocol="longtail",
            seed=3,
            image_shape=(3, HEIGHT, WIDTH),
            feature_dim=16,
            text_dim=TEXT_DIM,
            num_labels=5,
            **protocol,
        ),
        data_dir=str(tmp_path / "tfds"),
    )
    builder.download_and_prepare(
        download_config=tfds.download.DownloadConfig(manual_dir=str(files))
    )
    dataset = load_mirflickr25k(files, image_source="features")
    npz = tmp_path / "same.npz"
    np.savez(npz, image=dataset.image, text=dataset.text, labels=dataset.labels)
    common = dict(bits=8, epochs=2, batch_size=8, text_hidden=16, ae_hidden=8, seed=3)
    from_npz = dataclasses.replace(TINY, dataset="npz", data_path=str(npz), **protocol, **common)
    from_tfds = dataclasses.replace(
        TINY,
        dataset="tfds:longtail_mirflickr25k/tiny_features",
        data_dir=str(tmp_path / "tfds"),
        synthetic_samples=0,
        z1=None,
        imbalance_factor=None,
        num_query=None,
        **common,
    )
    from_npz = dataclasses.replace(from_npz, synthetic_samples=0)
    npz_results = train_lib.train_and_evaluate(from_npz, str(tmp_path / "npz_run"))
    tfds_results = train_lib.train_and_evaluate(from_tfds, str(tmp_path / "tfds_run"))
    npz_codes, tfds_codes = _codes(tmp_path / "npz_run"), _codes(tmp_path / "tfds_run")
    assert set(npz_codes) == set(tfds_codes)
    for name, value in npz_codes.items():
        np.testing.assert_array_equal(tfds_codes[name], value, err_msg=name)
    assert tfds_results["map_i2t"] == npz_results["map_i2t"]
    with pytest.raises(ValueError, match="--dataset: no prepared TFDS data set"):
        train_lib.train_and_evaluate(
            dataclasses.replace(from_tfds, dataset="tfds:longtail_nuswide/absent"),
            str(tmp_path / "absent"),
        )
