"""Tests of ltcmh_jax/train/trainer.py: epochs of every method, variant and protocol (image only
included), 8 devices vs 1, the finiteness check."""

import dataclasses
import json
import os
import subprocess
import sys
import textwrap

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from conftest import ROOT, TINY
from flax import nnx

from ltcmh_jax import losses, models, sharding
from ltcmh_jax.train import load_dataset, make_split, model_config, resolve_defaults, steps
from ltcmh_jax.train import state as state_lib
from ltcmh_jax.train.trainer import Trainer, check_finite

# TINY with one epoch and smaller nets: what the per-method tests train.
ONE_EPOCH = dataclasses.replace(
    TINY, epochs=1, batch_size=64, text_hidden=128, ae_hidden=32, checkpoint_every=0
)

# Runs `epochs` epochs of TINY and prints every step's loss terms and the query codes as JSON.
_TERMS_SCRIPT = textwrap.dedent(
    """
    import json, sys
    import numpy as np
    import jax
    sys.path.insert(0, "tests")
    from conftest import TINY
    from test_train_trainer import tiny_epochs
    terms, codes = tiny_epochs(TINY, epochs=int(sys.argv[1]))
    print(json.dumps({"devices": jax.device_count(), "terms": terms,
                      "codes": [c.tolist() for c in codes]}))
    """
)


def tiny_epochs(config, *, epochs: int):
    """`(terms, codes)`: `{"phase/term": [value per step]}` over `epochs` epochs, and the query
    codes (image, text) after them."""
    dataset = load_dataset(config)
    config = resolve_defaults(config, dataset.num_samples, dataset.num_labels)
    split = make_split(config, dataset)
    trainer = Trainer(config, dataset, split, sharding.make_data_mesh())
    state = trainer.init_state()
    terms = {}
    for epoch in range(epochs):
        state, epoch_terms = trainer.run_epoch(state, epoch)
        for phase, phase_terms in epoch_terms.items():
            for name, values in phase_terms.items():
                terms.setdefault(f"{phase}/{name}", []).extend(np.asarray(values).tolist())
    codes = trainer.codes(state, split.query)
    return terms, [codes[name] for name in config.modalities]


@pytest.fixture(scope="module")
def two_tiny_epochs():
    return tiny_epochs(TINY, epochs=2)


@pytest.fixture(scope="module")
def tiny_data():
    dataset = load_dataset(ONE_EPOCH)
    config = resolve_defaults(ONE_EPOCH, dataset.num_samples, dataset.num_labels)
    return config, dataset, make_split(config, dataset)


def make_trainer(tiny_data, **changes):
    config, dataset, split = tiny_data
    config = dataclasses.replace(config, **changes).validate()
    return Trainer(config, dataset, split, sharding.make_data_mesh())


@pytest.mark.parametrize("scaling", ["batch_label_rate", "bits_per_label", "none"])
def test_trainer_scales_weight_decay_and_dropout(tiny_data, scaling):
    config, dataset, split = tiny_data
    batch_size = 8
    trainer = make_trainer(
        tiny_data, regulariser_scaling=scaling, weight_decay=0.5, batch_size=batch_size
    )
    train_labels = np.asarray(dataset.labels)[split.train] > 0
    labels_trained = np.count_nonzero(train_labels.any(axis=0))
    per_batch = batch_size * train_labels.sum() / (len(train_labels) * labels_trained)
    expected = {
        "batch_label_rate": min(1.0, per_batch),
        "bits_per_label": min(1.0, config.bits / labels_trained),
        "none": 1.0,
    }[scaling]
    assert per_batch < 1 and labels_trained > config.bits  # the cases that scale
    assert trainer.regulariser_scale == pytest.approx(expected)
    assert trainer.rates.weight_decay == pytest.approx(0.5 * expected)


def param_paths(state) -> list[str]:
    return ["/".join(str(part) for part in path) for path, _ in nnx.to_flat_state(state)]


def test_non_finite_loss_names_epoch_step_and_term():
    with pytest.raises(FloatingPointError, match=r"epoch 3, image phase step 1: .*'balance'"):
        check_finite("image", 3, {"balance": np.array([1.0, np.nan, 2.0])})


def test_two_epochs_lower_the_losses(two_tiny_epochs):
    terms, _ = two_tiny_epochs
    steps = len(terms["image/total"]) // 2
    for name in ("autoencoder/total", "image/likelihood", "text/likelihood"):
        first, second = np.mean(terms[name][:steps]), np.mean(terms[name][steps:])
        assert second < first, (name, first, second)


def _cpu_epochs(epochs: int, devices: int) -> dict:
    """`_TERMS_SCRIPT`'s JSON from a process on `devices` simulated CPU devices (also on a
    machine with a GPU, which jax would otherwise pick)."""
    env = dict(os.environ, JAX_PLATFORMS="cpu")
    env["XLA_FLAGS"] = f"--xla_force_host_platform_device_count={devices}"
    env["PYTHONPATH"] = ROOT + os.pathsep + env.get("PYTHONPATH", "")
    completed = subprocess.run(
        [sys.executable, "-c", _TERMS_SCRIPT, str(epochs)],
        env=env,
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert completed.returncode == 0, completed.stderr[-2000:]
    return json.loads(completed.stdout.strip().splitlines()[-1])


def test_eight_devices_give_the_losses_of_one(two_tiny_epochs):
    eight = _cpu_epochs(2, devices=8)
    assert eight["devices"] == 8
    terms, codes = two_tiny_epochs
    if jax.default_backend() != "cpu":
        # The in-process run is on the accelerator, whose sums differ in the last bits from the
        # CPU's: the one-device reference is then a CPU process too.
        one = _cpu_epochs(2, devices=1)
        assert one["devices"] == 1
        terms, codes = one["terms"], [np.asarray(array) for array in one["codes"]]
    assert set(eight["terms"]) == set(terms)
    for name, values in terms.items():
        np.testing.assert_allclose(eight["terms"][name], values, rtol=1e-5, atol=1e-8, err_msg=name)
    for eight_codes, one_codes in zip(eight["codes"], codes, strict=True):
        np.testing.assert_array_equal(np.asarray(eight_codes), one_codes)


@pytest.mark.parametrize("method", ["dcmh", "metacmh", "ltcmh"])
def test_each_method_trains_an_epoch_and_encodes_both_modalities(tiny_data, method):
    trainer = make_trainer(tiny_data, method=method)
    state = trainer.init_state()
    before = np.asarray(state.codes).copy()
    state, terms = trainer.run_epoch(state, 0)
    expected_phases = {"image", "text"} | ({"autoencoder"} if method == "ltcmh" else set())
    assert set(terms) == expected_phases
    for phase_terms in terms.values():
        for values in phase_terms.values():
            assert np.all(np.isfinite(values))
    assert not np.array_equal(before, np.asarray(state.codes))
    rows = tiny_data[2].query[:50]
    codes = trainer.codes(state, rows)
    assert set(codes) == {"image", "text"}
    for modality, values in codes.items():
        assert values.shape == (50, TINY.bits) and set(np.unique(values)) <= {-1, 1}
        _, meta = trainer.encode(state, modality, rows)
        np.testing.assert_array_equal(values, np.where(meta >= 0, 1, -1))


@pytest.mark.parametrize(
    "variant, absent_params",
    [
        ("wo_c", {"commonality"}),
        ("wo_i", {"individuality"}),
        ("wo_ic", {"autoencoder", "image_meta", "text_meta"}),
        ("wo_mi", {"image_meta"}),
        ("wo_mt", {"text_meta"}),
    ],
)
def test_each_variant_has_no_parameter_of_what_it_removes(tiny_data, variant, absent_params):
    config, dataset, _ = tiny_data
    variant_config = model_config(dataclasses.replace(config, variant=variant), dataset)
    full_config = dataclasses.replace(variant_config, variant="full")

    def groups(config):
        parts = state_lib.split_model(models.build_model(config, rngs=nnx.Rngs(0)))
        return [*parts.params.values(), parts.autoencoder, parts.rest]

    groups, full_groups = groups(variant_config), groups(full_config)
    paths = [path for group in groups for path in param_paths(group)]
    full_paths = [path for group in full_groups for path in param_paths(group)]
    for removed in absent_params:
        assert not [path for path in paths if removed in path], (variant, removed)
        assert [path for path in full_paths if removed in path]
    assert set(paths) < set(full_paths)


@pytest.mark.parametrize(
    "variant, absent_terms",
    [("full", set()), ("wo_c", {"j1_commonality", "j4_match"}), ("wo_i", {"j2_hsic"})],
)
def test_each_variant_trains_loss1_without_the_terms_it_removes(tiny_data, variant, absent_terms):
    trainer = make_trainer(tiny_data, variant=variant)
    state = trainer.init_state()
    # Only the Loss1 phase: the terms it logs are what the variant trains on.
    state = trainer.jitted.update_similarity(state, trainer.device_labels)
    _, terms = trainer.run_phase(state, "autoencoder", 0)
    all_terms = {"j1_commonality", "j2_hsic", "j3_reconstruction", "j4_match", "total"}
    assert set(terms) == all_terms - absent_terms
    assert all(np.all(np.isfinite(values)) for values in terms.values())


def test_wo_ic_trains_no_loss1_phase(tiny_data):
    trainer = make_trainer(tiny_data, variant="wo_ic")
    assert not trainer.has_autoencoder
    state = trainer.init_state()
    assert param_paths(state.autoencoder_params) == []


def test_metacmh_centroids_are_the_label_means_of_the_buffers_before_and_after_an_epoch(
    tiny_data,
):
    trainer = make_trainer(tiny_data, method="metacmh")
    labels = jnp.asarray(trainer.train_labels)

    def memories(state):
        model = state_lib.merge_model(trainer.graphdef, state)
        return np.asarray(model.image_meta.centroids[...]), np.asarray(
            model.text_meta.centroids[...]
        )

    state = trainer.init_state()
    buffers = [state.modalities[name].features for name in ("image", "text")]
    for buffer, memory in zip(buffers, memories(state), strict=True):
        np.testing.assert_allclose(memory, models.label_centroids(buffer, labels), atol=1e-5)
        assert np.abs(memory).sum() > 0
    first = memories(state)[0]
    state, _ = trainer.run_epoch(state, 0)
    buffers = [state.modalities[name].features for name in ("image", "text")]
    for buffer, memory in zip(buffers, memories(state), strict=True):
        np.testing.assert_allclose(memory, models.label_centroids(buffer, labels), atol=1e-5)
    assert not np.allclose(first, memories(state)[0])


def test_ltcmh_commonality_memory_holds_the_label_means_of_c_star(tiny_data):
    # The refresh after each epoch is the branch MetaCMH's test above runs (`has_memory`); here
    # the start shows LtCMH's memory is in it, and one update on moved buffers follows them.
    trainer = make_trainer(tiny_data, commonality_path="memory")
    labels = jnp.asarray(trainer.train_labels)

    def memory_and_expected(state):
        model = state_lib.merge_model(trainer.graphdef, state)
        commonality = model.autoencoder.commonality(
            state.modalities["image"].features, state.modalities["text"].features
        )
        return (
            np.asarray(model.autoencoder.commonality_centroids[...]),
            np.asarray(models.label_centroids(commonality, labels)),
        )

    state = trainer.init_state()
    first, expected = memory_and_expected(state)
    np.testing.assert_allclose(first, expected, atol=1e-5)
    assert np.abs(first).sum() > 0
    moved = {
        name: modality.replace(features=modality.features * 2.0 + 1.0)
        for name, modality in state.modalities.items()
    }
    state = trainer.jitted.update_centroids(state.replace(modalities=moved), labels)
    memory, expected = memory_and_expected(state)
    np.testing.assert_allclose(memory, expected, atol=1e-5)
    assert not np.allclose(first, memory)


def test_metacmh_centroid_update_with_a_label_absent_from_training_stays_finite(tiny_data):
    trainer = make_trainer(tiny_data, method="metacmh")
    state = trainer.init_state()
    labels = np.asarray(trainer.train_labels).copy()
    labels[:, 3] = 0.0  # label 3 has no training sample
    state = steps.update_centroids(state, jnp.asarray(labels), graphdef=trainer.graphdef)
    model = state_lib.merge_model(trainer.graphdef, state)
    centroids = np.asarray(model.image_meta.centroids[...])
    assert np.all(np.isfinite(centroids)) and np.all(centroids[3] == 0)
    features = model.image_features(jnp.zeros((4, trainer.model_config.image_dim)))
    assert np.all(np.isfinite(model.meta_image(features)))


def test_image_only_protocol_is_the_same_trainer_with_one_modality(tiny_data):
    trainer = make_trainer(tiny_data, modality="image")
    assert trainer.phases == ("autoencoder", "image")
    state = trainer.init_state()
    assert set(state.modalities) == {"image"}
    features = np.asarray(state.modalities["image"].features)
    np.testing.assert_array_equal(
        np.asarray(state.codes),
        np.where(np.asarray(state.modalities["image"].meta) >= 0, 1.0, -1.0),
    )
    state = trainer.jitted.update_similarity(state, trainer.device_labels)
    expected = losses.label_similarity(
        losses.average_hausdorff(jnp.asarray(features), jnp.asarray(trainer.train_labels)),
        scale=trainer.config.label_similarity,
    )
    np.testing.assert_allclose(
        np.asarray(state.modalities["image"].similarity), expected, rtol=1e-5, atol=1e-6
    )
    state, terms = trainer.run_epoch(state, 0)
    assert set(terms) == {"autoencoder", "image"}
    assert set(terms["autoencoder"]) == {"j1_commonality", "j3_reconstruction", "total"}
    assert set(trainer.codes(state, tiny_data[2].query[:10])) == {"image"}


def test_image_only_model_holds_the_image_side_only():
    config = models.ModelConfig(
        method="ltcmh", bits=8, image_dim=12, text_dim=10, ae_hidden=6, modalities=("image",)
    )
    model = models.build_model(config, rngs=nnx.Rngs(0))
    assert model.text_net is None and model.text_meta is None
    features = model.image_features(jnp.ones((5, 12)))
    out = model.autoencode(features)
    assert out.individuality_y is None and out.reconstruction_y is None
    # Eq. 8 with the image's own C* and P^x.
    meta = model.image_meta
    expected = (
        features
        + jnp.tanh(meta.commonality_selector(features)) * out.commonality
        + jnp.tanh(meta.individuality_selector(features)) * out.individuality_x
    )
    np.testing.assert_allclose(model.meta_image(features), expected, atol=1e-6)
    with pytest.raises(ValueError, match="one modality"):
        models.build_model(dataclasses.replace(config, variant="wo_mt"), rngs=nnx.Rngs(0))
