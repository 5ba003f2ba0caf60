"""Tests of ltcmh_jax/train.py: config checks, epochs, 8 devices vs 1, resume, determinism."""

import dataclasses
import json
import os
import subprocess
import sys
import textwrap

import numpy as np
import pytest

from ltcmh_jax import sharding
from ltcmh_jax import train as train_lib
from ltcmh_jax.train import TrainConfig

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

# tiny.flags as a config: 342 training samples, 16 bits, 10 steps per phase.
TINY = TrainConfig(
    synthetic_samples=1500,
    z1=150,
    imbalance_factor=10,
    num_query=200,
    bits=16,
    epochs=4,
    batch_size=32,
    lr_image=1.0,
    lr_text=1.0,
    eta=0.01,
    text_hidden=256,
    ae_hidden=64,
    checkpoint_every=2,
    progress=False,
)

# Runs `epochs` epochs of TINY and prints every step's loss terms and the query codes as JSON.
_TERMS_SCRIPT = textwrap.dedent(
    """
    import json, sys
    import numpy as np
    import jax
    sys.path.insert(0, "tests")
    from test_train import TINY, tiny_epochs
    terms, codes = tiny_epochs(TINY, epochs=int(sys.argv[1]))
    print(json.dumps({"devices": jax.device_count(), "terms": terms,
                      "codes": [c.tolist() for c in codes]}))
    """
)


def tiny_epochs(config: TrainConfig, *, epochs: int):
    """`(terms, codes)`: `{"phase/term": [value per step]}` over `epochs` epochs, and the query
    codes (image, text) after them."""
    dataset = train_lib.load_dataset(config)
    config = train_lib.resolve_defaults(config, dataset.num_samples, dataset.num_labels)
    split = train_lib.make_split(config, dataset)
    trainer = train_lib.Trainer(config, dataset, split, sharding.make_data_mesh())
    state = trainer.init_state()
    terms = {}
    for epoch in range(epochs):
        state, epoch_terms = trainer.run_epoch(state, epoch)
        for phase, phase_terms in epoch_terms.items():
            for name, values in phase_terms.items():
                terms.setdefault(f"{phase}/{name}", []).extend(np.asarray(values).tolist())
    return terms, trainer.codes(state, split.query)


@pytest.fixture(scope="module")
def two_tiny_epochs():
    return tiny_epochs(TINY, epochs=2)


@pytest.mark.parametrize(
    "changes, flag",
    [
        (dict(bits=0), "--bits"),
        (dict(epochs=-1), "--epochs"),
        (dict(imbalance_factor=0.5), "--imbalance_factor"),
        (dict(z1=0), "--z1"),
        (dict(method="pqhash"), "--method"),
        (dict(method="dcmh", variant="wo_c"), "--variant"),
        (dict(split="balanced", z1=100), "--z1"),
        (dict(num_train=100), "--num_train"),
        (dict(dataset="npz"), "--data_path"),
        (dict(dataset="mirflickr25k"), "--data_dir"),
        (dict(image_net="cnnf"), "--image_net"),
        (dict(cnnf_weights="vgg-f.mat"), "--cnnf_weights"),
        (dict(lr_image=0.0), "--lr_image"),
        (dict(keep_checkpoints=0), "--keep_checkpoints"),
    ],
)
def test_bad_config_names_the_flag(changes, flag):
    with pytest.raises(ValueError, match=flag) as error:
        dataclasses.replace(TrainConfig(), **changes).validate()
    assert "\n" not in str(error.value)


def test_defaults_follow_the_data_set():
    flickr = train_lib.resolve_defaults(
        TrainConfig(dataset="mirflickr25k", data_dir="x"), 20015, 24
    )
    assert (flickr.z1, flickr.imbalance_factor, flickr.num_query, flickr.num_head) == (
        3000,
        50.0,
        2000,
        14,
    )
    nus = train_lib.resolve_defaults(
        TrainConfig(dataset="nuswide", data_dir="x", split="balanced"), 195834, 21
    )
    assert (nus.num_train, nus.num_head, nus.z1) == (10500, 15, None)
    from ltcmh_jax.data.synthetic import SYNTHETIC_SPLIT

    synthetic = train_lib.resolve_defaults(TrainConfig(), 12000, 24)
    assert synthetic.z1 == SYNTHETIC_SPLIT["z1"] and synthetic.num_head == 14


def test_num_query_larger_than_the_data_is_refused():
    with pytest.raises(ValueError, match="--num_query"):
        train_lib.resolve_defaults(TrainConfig(num_query=5000), 5000, 24)
    with pytest.raises(ValueError, match="--num_head"):
        train_lib.resolve_defaults(TrainConfig(num_head=24), 5000, 24)
    with pytest.raises(ValueError, match="--z1"):
        train_lib.resolve_defaults(TrainConfig(dataset="npz", data_path="x.npz"), 5000, 24)


def test_chance_map_is_the_mean_share_of_relevant_items():
    query = np.array([[1, 0], [0, 1]])
    database = np.array([[1, 0], [1, 0], [0, 1], [1, 1]])
    assert train_lib.chance_map(query, database, chunk=1) == pytest.approx((3 / 4 + 2 / 4) / 2)


def test_non_finite_loss_names_epoch_step_and_term():
    with pytest.raises(FloatingPointError, match=r"epoch 3, image phase step 1: .*'balance'"):
        train_lib._check_finite("image", 3, {"balance": np.array([1.0, np.nan, 2.0])})


def test_two_epochs_lower_the_losses(two_tiny_epochs):
    terms, _ = two_tiny_epochs
    steps = len(terms["image/total"]) // 2
    for name in ("autoencoder/total", "image/likelihood", "text/likelihood"):
        first, second = np.mean(terms[name][:steps]), np.mean(terms[name][steps:])
        assert second < first, (name, first, second)


def test_eight_devices_give_the_losses_of_one(two_tiny_epochs):
    env = dict(os.environ, XLA_FLAGS="--xla_force_host_platform_device_count=8")
    env["PYTHONPATH"] = ROOT + os.pathsep + env.get("PYTHONPATH", "")
    completed = subprocess.run(
        [sys.executable, "-c", _TERMS_SCRIPT, "2"],
        env=env,
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert completed.returncode == 0, completed.stderr[-2000:]
    eight = json.loads(completed.stdout.strip().splitlines()[-1])
    assert eight["devices"] == 8
    terms, codes = two_tiny_epochs
    assert set(eight["terms"]) == set(terms)
    for name, values in terms.items():
        np.testing.assert_allclose(eight["terms"][name], values, rtol=1e-5, atol=1e-8, err_msg=name)
    for eight_codes, one_codes in zip(eight["codes"], codes, strict=True):
        np.testing.assert_array_equal(np.asarray(eight_codes), one_codes)


def _codes(workdir):
    with np.load(os.path.join(workdir, "codes.npz")) as codes:
        return {name: codes[name] for name in codes.files}


def test_resume_and_rerun_give_the_codes_of_an_uninterrupted_run(tmp_path, monkeypatch):
    straight = train_lib.train_and_evaluate(TINY, str(tmp_path / "straight"))
    again = train_lib.train_and_evaluate(TINY, str(tmp_path / "again"))
    for name, value in _codes(tmp_path / "straight").items():
        np.testing.assert_array_equal(_codes(tmp_path / "again")[name], value, err_msg=name)
    assert again["map_i2t"] == straight["map_i2t"]

    # Stop in epoch 3 (after the epoch-2 checkpoint), as a kill would, then run the command again.
    original = train_lib.Trainer.run_epoch

    def killed_in_epoch_three(self, state, epoch, progress=None):
        if epoch == 2:
            raise KeyboardInterrupt
        return original(self, state, epoch, progress)

    resumed_dir = str(tmp_path / "resumed")
    monkeypatch.setattr(train_lib.Trainer, "run_epoch", killed_in_epoch_three)
    with pytest.raises(KeyboardInterrupt):
        train_lib.train_and_evaluate(TINY, resumed_dir)
    assert not os.path.exists(os.path.join(resumed_dir, "results.json"))
    monkeypatch.setattr(train_lib.Trainer, "run_epoch", original)
    resumed = train_lib.train_and_evaluate(TINY, resumed_dir)
    for name, value in _codes(tmp_path / "straight").items():
        np.testing.assert_array_equal(_codes(resumed_dir)[name], value, err_msg=name)
    with open(os.path.join(resumed_dir, "metrics.jsonl")) as stream:
        assert [json.loads(line)["epoch"] for line in stream] == [1, 2, 3, 4]

    for key in (
        "method", "dataset", "bits", "seed", "map_i2t", "map_t2i", "map_i2t_head",
        "map_i2t_tail", "map_t2i_head", "map_t2i_tail", "train_seconds", "split_statistics",
        "chance_map",
    ):  # fmt: skip
        assert key in resumed, key

    # A finished run is reported, not trained again; another configuration is refused.
    def no_training(*args, **kwargs):
        raise AssertionError("a finished run was trained again")

    monkeypatch.setattr(train_lib, "Trainer", no_training)
    assert train_lib.train_and_evaluate(TINY, resumed_dir)["map_t2i"] == resumed["map_t2i"]
    with pytest.raises(ValueError, match="another configuration"):
        train_lib.train_and_evaluate(dataclasses.replace(TINY, bits=32), resumed_dir)
    # The same flags over other data (--data_path now pointing at other files) are refused too.
    monkeypatch.setattr(train_lib, "data_fingerprint", lambda dataset: "0123456789abcdef")
    with pytest.raises(ValueError, match="other data"):
        train_lib.train_and_evaluate(TINY, resumed_dir)


def test_data_fingerprint_tells_other_data_apart():
    dataset = train_lib.load_dataset(dataclasses.replace(TINY, synthetic_samples=300))
    same = train_lib.load_dataset(dataclasses.replace(TINY, synthetic_samples=300))
    assert train_lib.data_fingerprint(dataset) == train_lib.data_fingerprint(same)
    labels = dataset.labels.copy()
    labels[0] = 1.0 - labels[0]
    relabelled = type(dataset)(dataset.image, dataset.text, labels, dataset.label_names)
    text = dataset.text.copy()
    text[5, 0] += 1.0
    retexted = type(dataset)(dataset.image, text, dataset.labels, dataset.label_names)
    fingerprints = {train_lib.data_fingerprint(d) for d in (dataset, relabelled, retexted)}
    assert len(fingerprints) == 3


def test_a_checkpoint_of_another_configuration_is_not_resumed(tmp_path, monkeypatch):
    workdir = str(tmp_path / "run")
    original = train_lib.Trainer.run_epoch

    def killed_in_epoch_three(self, state, epoch, progress=None):
        if epoch == 2:
            raise KeyboardInterrupt
        return original(self, state, epoch, progress)

    monkeypatch.setattr(train_lib.Trainer, "run_epoch", killed_in_epoch_three)
    with pytest.raises(KeyboardInterrupt):
        train_lib.train_and_evaluate(TINY, workdir)
    with pytest.raises(ValueError, match="--bits"):
        train_lib.train_and_evaluate(dataclasses.replace(TINY, bits=32), workdir)
