"""Tests of the methods and protocols the experiments compare: dcmh, metacmh, LtCMH's ablations
(issue 6), and the single-modality protocol (`ltcmh_jax/single_modality.py`,
`ltcmh_jax/models/single.py`)."""

import dataclasses
import functools

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from flax import nnx

from ltcmh_jax import losses, models, sharding
from ltcmh_jax import train as train_lib
from ltcmh_jax import train_step as steps
from ltcmh_jax.train import TrainConfig

# tiny.flags with one epoch: 342 training samples, 16 bits.
TINY = TrainConfig(
    synthetic_samples=1500,
    z1=150,
    imbalance_factor=10,
    num_query=200,
    bits=16,
    epochs=1,
    batch_size=64,
    lr_image=1.0,
    lr_text=1.0,
    eta=0.01,
    text_hidden=128,
    ae_hidden=32,
    checkpoint_every=0,
    progress=False,
)


@pytest.fixture(scope="module")
def tiny_data():
    dataset = train_lib.load_dataset(TINY)
    config = train_lib.resolve_defaults(TINY, dataset.num_samples, dataset.num_labels)
    return config, dataset, train_lib.make_split(config, dataset)


def make_trainer(tiny_data, **changes):
    config, dataset, split = tiny_data
    config = dataclasses.replace(config, **changes).validate()
    if config.modality == "image":
        from ltcmh_jax.single_modality import ImageOnlyTrainer as trainer_class
    else:
        trainer_class = train_lib.Trainer
    return trainer_class(config, dataset, split, sharding.make_data_mesh())


def param_paths(state) -> list[str]:
    return ["/".join(str(part) for part in path) for path, _ in nnx.to_flat_state(state)]


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
    image_codes, text_codes = trainer.codes(state, rows)
    for codes in (image_codes, text_codes):
        assert codes.shape == (50, TINY.bits) and set(np.unique(codes)) <= {-1, 1}


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
    model_config = train_lib.model_config(dataclasses.replace(config, variant=variant), dataset)
    full_config = dataclasses.replace(model_config, variant="full")
    _, *groups = steps.split_model(models.build_model(model_config, rngs=nnx.Rngs(0)))
    _, *full_groups = steps.split_model(models.build_model(full_config, rngs=nnx.Rngs(0)))
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
    assert param_paths(state.params_z) == []


def test_metacmh_centroids_are_the_label_means_of_the_buffers_before_and_after_an_epoch(
    tiny_data,
):
    trainer = make_trainer(tiny_data, method="metacmh")
    labels = jnp.asarray(trainer.train_labels)

    def memories(state):
        model = steps.merge_model(trainer.graphdef, state)
        return np.asarray(model.image_meta.centroids[...]), np.asarray(
            model.text_meta.centroids[...]
        )

    state = trainer.init_state()
    for buffer, memory in zip((state.features_x, state.features_y), memories(state), strict=True):
        np.testing.assert_allclose(memory, models.label_centroids(buffer, labels), atol=1e-5)
        assert np.abs(memory).sum() > 0
    first = memories(state)[0]
    state, _ = trainer.run_epoch(state, 0)
    for buffer, memory in zip((state.features_x, state.features_y), memories(state), strict=True):
        np.testing.assert_allclose(memory, models.label_centroids(buffer, labels), atol=1e-5)
    assert not np.allclose(first, memories(state)[0])


def test_metacmh_centroid_update_with_a_label_absent_from_training_stays_finite(tiny_data):
    trainer = make_trainer(tiny_data, method="metacmh")
    state = trainer.init_state()
    labels = np.asarray(trainer.train_labels).copy()
    labels[:, 3] = 0.0  # label 3 has no training sample
    state = steps.update_centroids(state, jnp.asarray(labels), graphdef=trainer.graphdef)
    model = steps.merge_model(trainer.graphdef, state)
    centroids = np.asarray(model.image_meta.centroids[...])
    assert np.all(np.isfinite(centroids)) and np.all(centroids[3] == 0)
    features = model.image_features(jnp.zeros((4, trainer.model_config.image_dim)))
    assert np.all(np.isfinite(model.meta_image(features)))


def test_image_only_model_holds_the_image_side_only():
    config = models.ModelConfig(
        method="ltcmh", bits=8, image_dim=12, text_dim=10, ae_hidden=6, modality="image"
    )
    model = models.build_model(config, rngs=nnx.Rngs(0))
    assert isinstance(model, models.ImageOnlyHashingModel)
    assert not hasattr(model, "text_net")
    features = model.image_features(jnp.ones((5, 12)))
    out = model.autoencode_image(features)
    assert out.individuality_y is None and out.reconstruction_y is None
    # Eq. 8 with the image's own C* and P^x.
    meta = model.image_meta
    expected = (
        features
        + jnp.tanh(meta.commonality_selector(features)) * out.commonality
        + jnp.tanh(meta.individuality_selector(features)) * out.individuality_x
    )
    np.testing.assert_allclose(model.meta_image(features), expected, atol=1e-6)
    with pytest.raises(ValueError, match="modality 'image'"):
        models.build_model(dataclasses.replace(config, variant="wo_mt"), rngs=nnx.Rngs(0))


def test_image_only_hash_step_is_the_dcmh_loss_against_the_own_buffer(tiny_data):
    trainer = make_trainer(tiny_data, modality="image")
    state = trainer.init_state()
    indices = np.arange(0, 64, dtype=np.int32)
    batch = trainer._host_batch("image", indices)
    step = jax.jit(
        functools.partial(
            steps.image_step,
            graphdef=trainer.graphdef,
            optimizer=trainer.optimizers.image,
            weights=trainer.weights,
            single_modality=True,
        )
    )
    new_state, terms = step(state, batch, jnp.asarray(trainer.train_labels))
    model = steps.merge_model(trainer.graphdef, state)
    meta = model.meta_image(model.image_features(batch["image"]))
    outside = np.ones(trainer.num_train, np.float32)
    outside[indices] = 0
    _, expected = losses.hash_loss(
        meta,
        state.meta_x,
        losses.similarity_matrix(batch["labels"], trainer.train_labels),
        state.codes[indices],
        gamma=trainer.weights.gamma,
        eta=trainer.weights.eta,
        balance_offset=outside @ state.meta_x,
    )
    for name in ("likelihood", "quantization", "balance", "total"):
        np.testing.assert_allclose(terms[name], expected[name], rtol=1e-5)
    np.testing.assert_array_equal(new_state.meta_y, state.meta_y)


def test_single_modality_protocol_trains_and_reports_image_to_image_map(tmp_path):
    config = dataclasses.replace(TINY, modality="image", epochs=2)
    results = train_lib.train_and_evaluate(config, str(tmp_path))
    for key in ("map_i2i", "map_i2i_head", "map_i2i_tail"):
        assert 0 < results[key] <= 1
    assert "map_i2t" not in results and results["modality"] == "image"
    codes = np.load(tmp_path / "codes.npz")
    assert "db_text_codes" not in codes and codes["db_image_codes"].shape[1] == TINY.bits
    trainer_terms = [line for line in open(tmp_path / "metrics.jsonl")]
    assert len(trainer_terms) == 2
    assert '"autoencoder/j1_commonality"' in trainer_terms[0]
    assert "j2_hsic" not in trainer_terms[0] and "text/" not in trainer_terms[0]
    assert (tmp_path / "pr_curves.png").exists()


def test_image_only_label_similarity_reads_the_image_buffer_only(tiny_data):
    from ltcmh_jax import single_modality

    trainer = make_trainer(tiny_data, modality="image")
    state = trainer.init_state()
    state = state.replace(features_y=jnp.full_like(state.features_y, jnp.nan))
    state = single_modality.update_image_similarity(state, jnp.asarray(trainer.train_labels))
    assert np.all(np.isfinite(state.similarity_x))
    np.testing.assert_array_equal(state.similarity_x, state.similarity_y)
    assert jax.numpy.any(state.similarity_x > 0)
