"""Tests of ltcmh_jax/train/config.py: one-line errors naming the flag, the fields a run is."""

import dataclasses

import numpy as np
import pytest

from ltcmh_jax.train import TrainConfig
from ltcmh_jax.train.config import MODALITY_CHOICES


@pytest.mark.parametrize(
    "changes, flag",
    [
        (dict(bits=0), "--bits"),
        (dict(epochs=-1), "--epochs"),
        (dict(dropout=1.0), "--dropout"),
        (dict(dropout=-0.1), "--dropout"),
        (dict(pair_weighting="hashnet"), "--pair_weighting"),
        (dict(regulariser_scaling="auto"), "--regulariser_scaling"),
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
        (dict(image_hidden=(4, 0)), "--image_hidden"),
        (dict(modality="text"), "--modality"),
        (dict(modality="image", variant="wo_mt"), "--variant"),
        (dict(alpha=-0.1), "--alpha"),
        (dict(checkpoint_every=-1), "--checkpoint_every"),
    ],
)
def test_bad_config_names_the_flag(changes, flag):
    with pytest.raises(ValueError, match=flag) as error:
        dataclasses.replace(TrainConfig(), **changes).validate()
    assert "\n" not in str(error.value)


def test_every_field_carries_its_help_and_settings_that_do_not_change_results_are_marked():
    for field in dataclasses.fields(TrainConfig):
        assert field.metadata["help"].strip(), field.name
    logistic = {
        field.name
        for field in dataclasses.fields(TrainConfig)
        if not field.metadata["affects_results"]
    }
    assert logistic == {
        "data_dir",
        "data_path",
        "checkpoint_every",
        "keep_checkpoints",
        "eval_every",
        "epoch_mode",
        "progress",
        "plots",
    }
    fields = TrainConfig(image_hidden=(8, 4)).run_fields()
    assert not logistic & set(fields) and fields["image_hidden"] == [8, 4]
    assert len(fields) == len(dataclasses.fields(TrainConfig)) - len(logistic)


def test_modality_is_the_model_config_of_the_modalities():
    assert TrainConfig().modalities == ("image", "text")
    assert TrainConfig(modality="image").modalities == ("image",)
    assert set(MODALITY_CHOICES) == {"both", "image"}


def test_weights_and_rates_are_read_from_the_config_field_by_field():
    from ltcmh_jax.train.state import LearningRates, LossWeights

    config = TrainConfig(alpha=0.3, eta=0.7, quantization="dcmh", lr_text=2e-3, weight_decay=0.5)
    weights = LossWeights.from_config(config)
    assert (weights.alpha, weights.beta, weights.eta) == (0.3, config.beta, 0.7)
    assert weights.quantization == "dcmh" and weights.j1_normalization == config.j1_normalization
    rates = LearningRates.from_config(config, epochs=7, steps_per_epoch=3)
    assert (rates.image, rates.text, rates.autoencoder) == (
        config.lr_image,
        2e-3,
        config.lr_autoencoder,
    )
    assert (rates.epochs, rates.steps_per_epoch, rates.weight_decay) == (7, 3, 0.5)
    assert (rates.optimizer, rates.clip_norm, rates.warmup) == ("adam", 1.0, config.warmup)


def test_balanced_pair_weighting_reads_the_training_labels():
    import numpy as np

    from ltcmh_jax.train.state import LossWeights

    labels = np.eye(4, dtype=np.float32)  # a quarter of the pairs similar (the diagonal)
    assert LossWeights.from_config(TrainConfig(), train_labels=labels).pair_weights == (1.0, 1.0)
    balanced = TrainConfig(pair_weighting="balanced")
    assert LossWeights.from_config(balanced, train_labels=labels).pair_weights == (2.0, 0.5 / 0.75)
    with pytest.raises(ValueError, match="needs train_labels"):
        LossWeights.from_config(balanced)


def test_label_rarity_pair_weighting_reads_the_training_labels():
    import numpy as np

    from ltcmh_jax import losses
    from ltcmh_jax.train.state import LossWeights

    labels = np.array([[1, 0], [1, 0], [1, 0], [1, 1], [0, 1]], np.float32)
    assert LossWeights.from_config(TrainConfig(), train_labels=labels).label_weights is None
    rarity = TrainConfig(pair_weighting="label_rarity")
    weights = LossWeights.from_config(rarity, train_labels=labels)
    assert weights.pair_weights == (1.0, 1.0)
    np.testing.assert_allclose(weights.label_weights, losses.label_rarity_weights(labels))
    with pytest.raises(ValueError, match="--pair_weighting=label_rarity needs train_labels"):
        LossWeights.from_config(rarity)


def _one_hot(rows_per_label):
    """Single-label rows: `rows_per_label[j]` rows of label j."""
    labels = np.repeat(np.arange(len(rows_per_label)), rows_per_label)
    return np.eye(len(rows_per_label))[labels]


@pytest.mark.parametrize(
    ("scaling", "bits", "labels", "batch_size", "expected"),
    [
        # ALOI's shape: 1,000 labels, 4,400 rows, batch 128: 128 / 1000 samples of a label a batch.
        ("batch_label_rate", 64, _one_hot([5] * 400 + [4] * 600), 128, 0.128),
        # 300 labels of 28 rows: 128 / 300.
        ("batch_label_rate", 64, _one_hot([28] * 300), 128, 128 / 300),
        # Ten labels: 12.8 a batch, so no scaling.
        ("batch_label_rate", 64, _one_hot([16] * 10), 128, 1.0),
        # Fewer rows than the batch: the batch is all n rows, c = 60 labels of 2 or 3 rows.
        ("batch_label_rate", 64, _one_hot([2] * 30 + [3] * 30), 512, 1.0),
        ("batch_label_rate", 64, _one_hot([1] * 100), 512, 0.01 * 100),
        # Two labels a row double the rate; a label no row has is not counted.
        ("batch_label_rate", 64, np.hstack([_one_hot([4] * 500), np.ones((2000, 1)),
                                            np.zeros((2000, 1))]), 128, min(1.0, 128 * 2 / 501)),
        ("bits_per_label", 64, _one_hot([5] * 1000), 128, 0.064),  # ALOI
        ("bits_per_label", 64, _one_hot([20] * 61), 128, 1.0),  # the icon set
        ("bits_per_label", 16, _one_hot([20] * 24), 128, 2 / 3),
        ("none", 64, _one_hot([5] * 1000), 128, 1.0),
    ],
)  # fmt: skip
def test_regulariser_scale(scaling, bits, labels, batch_size, expected):
    from ltcmh_jax.train.state import regulariser_scale

    got = regulariser_scale(scaling, bits=bits, train_labels=labels, batch_size=batch_size)
    assert got == pytest.approx(expected)


def test_batch_label_rate_is_the_mean_count_of_a_label_in_random_batches():
    # The definition against sampling: batches of 128 drawn from 3,000 rows over 700 labels.
    from ltcmh_jax.train.state import batch_label_rate

    rng = np.random.default_rng(0)
    labels = (rng.random((3000, 700)) < 0.002).astype(np.float32)
    labels[np.arange(3000), rng.integers(0, 700, 3000)] = 1
    present = labels.any(axis=0)
    counts = [
        labels[rng.choice(3000, 128, replace=False)][:, present].sum(axis=0).mean()
        for _ in range(2000)
    ]
    assert batch_label_rate(labels, 128) == pytest.approx(np.mean(counts), rel=0.02)


def test_regulariser_scale_multiplies_the_weight_decay():
    from ltcmh_jax.train.state import LearningRates

    config = TrainConfig(weight_decay=0.5)
    rates = LearningRates.from_config(config, epochs=2, steps_per_epoch=3, regulariser_scale=0.25)
    assert rates.weight_decay == 0.125
