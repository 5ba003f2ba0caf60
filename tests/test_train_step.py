"""Tests of ltcmh_jax/train_step.py: the pure updates of the alternating optimisation."""

import functools

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from flax import nnx

from ltcmh_jax import losses, models
from ltcmh_jax import train_step as steps

NUM_TRAIN, BITS, LABELS, IMAGE_DIM, TEXT_DIM, BATCH = 48, 8, 5, 12, 30, 16


def _model(method="ltcmh"):
    config = models.ModelConfig(
        method=method,
        bits=BITS,
        image_dim=IMAGE_DIM,
        text_dim=TEXT_DIM,
        text_hidden=32,
        ae_hidden=16,
        num_labels=LABELS,
    )
    return models.build_model(config, rngs=nnx.Rngs(0))


@functools.cache
def _data(seed=0):
    rng = np.random.default_rng(seed)
    labels = (rng.random((NUM_TRAIN, LABELS)) < 0.3).astype(np.float32)
    labels[np.arange(NUM_TRAIN), rng.integers(0, LABELS, NUM_TRAIN)] = 1
    text = (rng.random((NUM_TRAIN, TEXT_DIM)) < 0.15).astype(np.float32)
    text_indices, text_values = models.sparse_bag(text)
    return {
        "labels": jnp.asarray(labels),
        "image": jnp.asarray(rng.standard_normal((NUM_TRAIN, IMAGE_DIM), dtype=np.float32)),
        "text_indices": jnp.asarray(text_indices),
        "text_values": jnp.asarray(text_values),
    }


@functools.cache
def _state(method="ltcmh", steps_per_epoch=3, epochs=2):
    """Shared across tests (states are immutable pytrees; nothing here donates them)."""
    model = _model(method)
    graphdef, params_x, params_y, params_z, rest = steps.split_model(model)
    optimizers = steps.make_optimizers(
        steps.LearningRates(
            image=0.5,
            text=0.5,
            autoencoder=0.1,
            final=1e-3,
            epochs=epochs,
            steps_per_epoch=steps_per_epoch,
        )
    )
    rng = np.random.default_rng(1)
    buffers = {
        name: jnp.asarray(rng.standard_normal((NUM_TRAIN, BITS), dtype=np.float32))
        for name in ("features_x", "features_y", "meta_x", "meta_y")
    }
    state = steps.TrainState(
        params_x=params_x,
        params_y=params_y,
        params_z=params_z,
        rest=rest,
        opt_x=optimizers.image.init(params_x),
        opt_y=optimizers.text.init(params_y),
        opt_z=optimizers.autoencoder.init(params_z),
        codes=jnp.zeros((NUM_TRAIN, BITS)),
        similarity_x=jnp.eye(LABELS),
        similarity_y=jnp.eye(LABELS),
        key=jax.random.key_data(jax.random.key(0)),
        **buffers,
    )
    return graphdef, steps.update_codes(state), optimizers


def _bound(graphdef, optimizers, phase):
    weights = steps.LossWeights()
    if phase == "autoencoder":
        return functools.partial(
            steps.autoencoder_step,
            graphdef=graphdef,
            optimizer=optimizers.autoencoder,
            weights=weights,
        )
    optimizer = optimizers.image if phase == "image" else optimizers.text
    step = steps.image_step if phase == "image" else steps.text_step
    return functools.partial(step, graphdef=graphdef, optimizer=optimizer, weights=weights)


def _leaves_equal(first, second):
    return all(
        np.array_equal(np.asarray(a), np.asarray(b))
        for a, b in zip(jax.tree.leaves(first), jax.tree.leaves(second), strict=True)
    )


def test_epoch_linear_decay_is_dcmh_linspace_per_epoch():
    schedule = steps.epoch_linear_decay(10**-1.5, 1e-6, epochs=5, steps_per_epoch=3)
    expected = np.repeat(np.linspace(10**-1.5, 1e-6, 5), 3)
    got = np.array([float(schedule(count)) for count in range(15)])
    np.testing.assert_allclose(got, expected, rtol=1e-6)
    assert float(schedule(100)) == pytest.approx(1e-6)


def test_sign_codes_maps_zero_to_plus_one():
    np.testing.assert_array_equal(
        np.asarray(steps.sign_codes(jnp.array([-2.0, -0.0, 0.0, 3.0]))), [-1, 1, 1, 1]
    )


def test_update_codes_is_sign_of_meta_sum():
    _, state, _ = _state()
    expected = np.where(np.asarray(state.meta_x + state.meta_y) >= 0, 1.0, -1.0)
    np.testing.assert_array_equal(np.asarray(state.codes), expected)


def test_split_model_groups_follow_the_paper():
    _, state, _ = _state()
    assert set(state.params_x.keys()) == {"image_net", "image_meta"}
    assert set(state.params_y.keys()) == {"text_net", "text_meta"}
    assert set(state.params_z.keys()) == {"autoencoder"}
    assert not nnx.to_flat_state(nnx.filter_state(state.rest, nnx.Param))


def test_split_model_refuses_parameters_no_phase_trains():
    class Stray(nnx.Module):
        def __init__(self):
            self.image_net = nnx.Linear(2, 2, rngs=nnx.Rngs(0))
            self.extra = nnx.Linear(2, 2, rngs=nnx.Rngs(1))

    with pytest.raises(ValueError, match="never be trained"):
        steps.split_model(Stray())


@pytest.mark.parametrize(
    "phase, trained, buffers",
    [
        ("image", "params_x", ("features_x", "meta_x")),
        ("text", "params_y", ("features_y", "meta_y")),
        ("autoencoder", "params_z", ()),
    ],
)
def test_each_phase_updates_only_its_parameters_and_buffer_rows(phase, trained, buffers):
    graphdef, state, optimizers = _state()
    data = _data()
    indices = jnp.arange(BATCH, dtype=jnp.int32) * 2
    batch = steps.gather_batch(data, indices, steps.BATCH_FIELDS[phase])
    new, terms = jax.jit(_bound(graphdef, optimizers, phase))(state, batch, data["labels"])
    assert np.isfinite(float(terms["total"]))
    for name in ("params_x", "params_y", "params_z"):
        assert _leaves_equal(getattr(new, name), getattr(state, name)) == (name != trained)
    outside = np.setdiff1d(np.arange(NUM_TRAIN), np.asarray(indices))
    for name in ("features_x", "features_y", "meta_x", "meta_y"):
        before, after = np.asarray(getattr(state, name)), np.asarray(getattr(new, name))
        np.testing.assert_array_equal(after[outside], before[outside])
        assert (not np.array_equal(after, before)) == (name in buffers)
    np.testing.assert_array_equal(np.asarray(new.codes), np.asarray(state.codes))


def test_image_step_writes_the_batch_features_it_computed():
    graphdef, state, optimizers = _state()
    data = _data()
    indices = jnp.arange(BATCH, dtype=jnp.int32)
    batch = steps.gather_batch(data, indices, steps.BATCH_FIELDS["image"])
    features, meta = jax.jit(functools.partial(steps.forward_image, graphdef=graphdef))(
        state, batch
    )
    new, _ = jax.jit(_bound(graphdef, optimizers, "image"))(state, batch, data["labels"])
    np.testing.assert_allclose(np.asarray(new.features_x)[:BATCH], features, rtol=1e-6)
    np.testing.assert_allclose(np.asarray(new.meta_x)[:BATCH], meta, rtol=1e-6)


def test_hash_step_loss_is_dcmh_loss_with_offset_from_rows_outside_the_batch():
    graphdef, state, optimizers = _state()
    data = _data()
    # A padded batch repeats a row; the offset must still count each outside row once.
    indices = jnp.array([0, 1, 2, 2], dtype=jnp.int32)
    batch = steps.gather_batch(data, indices, steps.BATCH_FIELDS["image"])
    _, meta = jax.jit(functools.partial(steps.forward_image, graphdef=graphdef))(state, batch)
    outside = np.setdiff1d(np.arange(NUM_TRAIN), [0, 1, 2])
    offset = np.asarray(state.meta_x)[outside].sum(axis=0)
    expected, _ = losses.hash_loss(
        meta,
        state.meta_y,
        losses.similarity_matrix(batch["labels"], data["labels"]),
        state.codes[indices],
        balance_offset=jnp.asarray(offset),
    )
    _, terms = jax.jit(_bound(graphdef, optimizers, "image"))(state, batch, data["labels"])
    np.testing.assert_allclose(float(terms["total"]), float(expected), rtol=1e-5)


def test_sparse_and_dense_text_batches_give_the_same_step():
    graphdef, state, optimizers = _state()
    data = _data()
    indices = jnp.arange(BATCH, dtype=jnp.int32)
    sparse = steps.gather_batch(data, indices, steps.BATCH_FIELDS["text"])
    dense_text = np.zeros((BATCH, TEXT_DIM), np.float32)
    rows = np.arange(BATCH)[:, None]
    np.add.at(dense_text, (rows, np.asarray(sparse["text_indices"])), sparse["text_values"])
    dense = {"indices": indices, "labels": sparse["labels"], "text": jnp.asarray(dense_text)}
    step = jax.jit(_bound(graphdef, optimizers, "text"))
    _, sparse_terms = step(state, sparse, data["labels"])
    _, dense_terms = step(state, dense, data["labels"])
    np.testing.assert_allclose(float(sparse_terms["total"]), float(dense_terms["total"]), rtol=1e-5)


def test_scan_phase_equals_the_same_steps_one_by_one():
    graphdef, state, optimizers = _state()
    data = _data()
    batches = jnp.asarray(np.arange(3 * BATCH, dtype=np.int32).reshape(3, BATCH))
    step = _bound(graphdef, optimizers, "text")
    scanned, scan_terms = jax.jit(steps.scan_phase(step, steps.BATCH_FIELDS["text"]))(
        state, data, batches
    )
    one_by_one, totals = state, []
    jitted = jax.jit(step)
    for indices in batches:
        batch = steps.gather_batch(data, indices, steps.BATCH_FIELDS["text"])
        one_by_one, terms = jitted(one_by_one, batch, data["labels"])
        totals.append(float(terms["total"]))
    np.testing.assert_allclose(np.asarray(scan_terms["total"]), totals, rtol=1e-5)
    for a, b in zip(jax.tree.leaves(scanned), jax.tree.leaves(one_by_one), strict=True):
        np.testing.assert_allclose(np.asarray(a), np.asarray(b), rtol=1e-5, atol=1e-6)


def test_several_image_steps_lower_the_image_loss():
    graphdef, state, optimizers = _state(steps_per_epoch=100, epochs=1)
    data = _data()
    step = jax.jit(_bound(graphdef, optimizers, "image"))
    indices = jnp.arange(NUM_TRAIN, dtype=jnp.int32)
    batch = steps.gather_batch(data, indices, steps.BATCH_FIELDS["image"])
    first = None
    for _ in range(30):
        state, terms = step(state, batch, data["labels"])
        first = float(terms["total"]) if first is None else first
    assert float(terms["total"]) < first


def test_label_similarity_and_centroids_update_the_state():
    _, state, _ = _state()
    data = _data()
    updated = jax.jit(steps.update_label_similarity)(state, data["labels"])
    expected = losses.label_similarity(losses.average_hausdorff(state.features_x, data["labels"]))
    np.testing.assert_allclose(np.asarray(updated.similarity_x), expected, rtol=1e-5, atol=1e-6)
    graphdef, state, _ = _state("metacmh")
    with_memory = jax.jit(functools.partial(steps.update_centroids, graphdef=graphdef))(
        state, data["labels"]
    )
    centroids = models.label_centroids(state.features_x, data["labels"])
    model = steps.merge_model(graphdef, with_memory)
    np.testing.assert_allclose(
        np.asarray(model.image_meta.centroids[...]), centroids, rtol=1e-5, atol=1e-6
    )
