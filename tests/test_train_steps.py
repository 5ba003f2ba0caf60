"""Tests of ltcmh_jax/train/steps.py (and the state it updates, train/state.py): the pure updates
of the alternating optimisation."""

import functools

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from flax import nnx

from ltcmh_jax import losses, models, optimizers
from ltcmh_jax.train import state as state_lib
from ltcmh_jax.train import steps

NUM_TRAIN, BITS, LABELS, IMAGE_DIM, TEXT_DIM, BATCH = 48, 8, 5, 12, 30, 16


def _model(method="ltcmh", modalities=("image", "text")):
    config = models.ModelConfig(
        method=method,
        modalities=modalities,
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
def _state(method="ltcmh", steps_per_epoch=3, epochs=2, modalities=("image", "text")):
    """Shared across tests (states are immutable pytrees; nothing here donates them)."""
    parts = state_lib.split_model(_model(method, modalities))
    optimizers = state_lib.make_optimizers(
        state_lib.LearningRates(
            image=0.5,
            text=0.5,
            autoencoder=0.1,
            final=1e-3,
            epochs=epochs,
            steps_per_epoch=steps_per_epoch,
        )
    )
    state = state_lib.initial_state(
        parts, optimizers, num_train=NUM_TRAIN, bits=BITS, num_labels=LABELS
    )
    rng = np.random.default_rng(1)
    modalities_state = {}
    for name in parts.modalities:
        features, meta = (
            jnp.asarray(rng.standard_normal((NUM_TRAIN, BITS), dtype=np.float32)) for _ in range(2)
        )
        modalities_state[name] = state.modalities[name].replace(
            features=features, meta=meta, similarity=jnp.eye(LABELS)
        )
    state = state.replace(modalities=modalities_state)
    return parts.graphdef, steps.update_codes(state), optimizers


def _bound(graphdef, optimizers, phase, weights=None):
    weights = weights or state_lib.LossWeights()
    if phase == "autoencoder":
        return functools.partial(
            steps.autoencoder_step,
            graphdef=graphdef,
            optimizer=optimizers["autoencoder"],
            weights=weights,
        )
    return functools.partial(
        steps.hash_step,
        modality=phase,
        graphdef=graphdef,
        optimizer=optimizers[phase],
        weights=weights,
    )


def _buffer(state, name):
    """`features_x`-style names of the nested state's buffers, as host arrays."""
    kind, suffix = name.rsplit("_", 1)
    modality = {"x": "image", "y": "text"}[suffix]
    return np.asarray(getattr(state.modalities[modality], kind))


def _params(state, name):
    if name == "params_z":
        return state.autoencoder_params
    return state.modalities[{"params_x": "image", "params_y": "text"}[name]].params


def _leaves_equal(first, second):
    return all(
        np.array_equal(np.asarray(a), np.asarray(b))
        for a, b in zip(jax.tree.leaves(first), jax.tree.leaves(second), strict=True)
    )


def test_epoch_linear_decay_is_dcmh_linspace_per_epoch():
    schedule = optimizers.epoch_linear_decay(10**-1.5, 1e-6, epochs=5, steps_per_epoch=3)
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
    expected = np.where(_buffer(state, "meta_x") + _buffer(state, "meta_y") >= 0, 1.0, -1.0)
    np.testing.assert_array_equal(np.asarray(state.codes), expected)
    _, image_only, _ = _state(modalities=("image",))
    expected = np.where(_buffer(image_only, "meta_x") >= 0, 1.0, -1.0)
    np.testing.assert_array_equal(np.asarray(image_only.codes), expected)


def test_split_model_groups_follow_the_paper():
    _, state, _ = _state()
    assert set(_params(state, "params_x").keys()) == {"image_net", "image_meta"}
    assert set(_params(state, "params_y").keys()) == {"text_net", "text_meta"}
    assert set(_params(state, "params_z").keys()) == {"autoencoder"}
    assert not nnx.to_flat_state(nnx.filter_state(state.rest, nnx.Param))
    _, image_only, _ = _state(modalities=("image",))
    assert set(image_only.modalities) == {"image"}


def test_split_model_refuses_parameters_no_phase_trains():
    class Stray(nnx.Module):
        def __init__(self):
            self.image_net = nnx.Linear(2, 2, rngs=nnx.Rngs(0))
            self.extra = nnx.Linear(2, 2, rngs=nnx.Rngs(1))

    stray = Stray()
    stray.config = models.ModelConfig(bits=2, image_dim=2, text_dim=2)
    with pytest.raises(ValueError, match="never be trained"):
        state_lib.split_model(stray)


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
        assert _leaves_equal(_params(new, name), _params(state, name)) == (name != trained)
    outside = np.setdiff1d(np.arange(NUM_TRAIN), np.asarray(indices))
    for name in ("features_x", "features_y", "meta_x", "meta_y"):
        before, after = _buffer(state, name), _buffer(new, name)
        np.testing.assert_array_equal(after[outside], before[outside])
        assert (not np.array_equal(after, before)) == (name in buffers)
    np.testing.assert_array_equal(np.asarray(new.codes), np.asarray(state.codes))


def test_image_step_writes_the_batch_features_it_computed():
    graphdef, state, optimizers = _state()
    data = _data()
    indices = jnp.arange(BATCH, dtype=jnp.int32)
    batch = steps.gather_batch(data, indices, steps.BATCH_FIELDS["image"])
    features, meta = jax.jit(functools.partial(steps.forward, graphdef=graphdef, modality="image"))(
        state, batch
    )
    new, _ = jax.jit(_bound(graphdef, optimizers, "image"))(state, batch, data["labels"])
    np.testing.assert_allclose(_buffer(new, "features_x")[:BATCH], features, rtol=1e-6)
    np.testing.assert_allclose(_buffer(new, "meta_x")[:BATCH], meta, rtol=1e-6)


def test_hash_step_loss_is_dcmh_loss_with_offset_from_rows_outside_the_batch():
    graphdef, state, optimizers = _state()
    data = _data()
    # A padded batch repeats a row; the offset must still count each outside row once.
    indices = jnp.array([0, 1, 2, 2], dtype=jnp.int32)
    batch = steps.gather_batch(data, indices, steps.BATCH_FIELDS["image"])
    _, meta = jax.jit(functools.partial(steps.forward, graphdef=graphdef, modality="image"))(
        state, batch
    )
    outside = np.setdiff1d(np.arange(NUM_TRAIN), [0, 1, 2])
    offset = _buffer(state, "meta_x")[outside].sum(axis=0)
    likelihoods = []
    # (1, 1): Eq. 10; (3, 0.5): --pair_weighting=balanced, whose weights the step must carry.
    for pair_weights in ((1.0, 1.0), (3.0, 0.5)):
        expected, _ = losses.hash_loss(
            meta,
            jnp.asarray(_buffer(state, "meta_y")),
            losses.similarity_matrix(batch["labels"], data["labels"]),
            state.codes[indices],
            balance_offset=jnp.asarray(offset),
            pair_weights=pair_weights,
        )
        weights = state_lib.LossWeights(pair_weights=pair_weights)
        _, terms = jax.jit(_bound(graphdef, optimizers, "image", weights))(
            state, batch, data["labels"]
        )
        np.testing.assert_allclose(float(terms["total"]), float(expected), rtol=1e-5)
        likelihoods.append(float(terms["likelihood"]))
    assert abs(likelihoods[1] - likelihoods[0]) > 1e-3
    # --pair_weighting=label_rarity: the step carries the label weights to the likelihood.
    label_weights = losses.label_rarity_weights(np.asarray(data["labels"]))
    expected, _ = losses.hash_loss(
        meta,
        jnp.asarray(_buffer(state, "meta_y")),
        None,
        state.codes[indices],
        balance_offset=jnp.asarray(offset),
        labels=(batch["labels"], data["labels"]),
        label_weights=jnp.asarray(label_weights),
    )
    weights = state_lib.LossWeights(label_weights=tuple(float(w) for w in label_weights))
    _, terms = jax.jit(_bound(graphdef, optimizers, "image", weights))(state, batch, data["labels"])
    np.testing.assert_allclose(float(terms["total"]), float(expected), rtol=1e-5)
    assert abs(float(terms["likelihood"]) - likelihoods[0]) > 1e-4


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


def _image_steps(weights, *, count=30):
    """`(first terms, last terms, state after the first, state after the last)` of `count`
    full-batch image steps (each writes the whole M^x buffer)."""
    graphdef, state, optimizers = _state(steps_per_epoch=100, epochs=1)
    data = _data()
    step = jax.jit(_bound(graphdef, optimizers, "image", weights))
    indices = jnp.arange(NUM_TRAIN, dtype=jnp.int32)
    batch = steps.gather_batch(data, indices, steps.BATCH_FIELDS["image"])
    trained, first = step(state, batch, data["labels"])
    after_first = trained
    for _ in range(count - 1):
        trained, terms = step(trained, batch, data["labels"])
    return first, terms, after_first, trained


def test_image_steps_move_each_term_of_loss2_its_way():
    labels = np.asarray(_data()["labels"])
    similar = (labels @ labels.T) > 0
    # Likelihood alone: M^x rows move towards the M^y rows of similar samples, away from others.
    first, last, start, end = _image_steps(state_lib.LossWeights(gamma=0.0, eta=0.0))
    assert float(last["likelihood"]) < 0.8 * float(first["likelihood"])
    meta_y = _buffer(start, "meta_y")

    def agreement(state):
        inner = _buffer(state, "meta_x") @ meta_y.T
        return inner[similar].mean() - inner[~similar].mean()

    assert agreement(end) > agreement(start) + 0.1
    # Quantization: M^x moves towards B.
    first, last, start, end = _image_steps(state_lib.LossWeights(gamma=10.0, eta=0.0))
    codes = np.asarray(start.codes)
    assert float(last["quantization"]) < 0.5 * float(first["quantization"])
    distance = [np.square(_buffer(state, "meta_x") - codes).mean() for state in (start, end)]
    assert distance[1] < 0.5 * distance[0]
    # Balance: the column sums of M^x move towards 0.
    first, last, start, end = _image_steps(state_lib.LossWeights(gamma=0.0, eta=1.0))
    assert float(last["balance"]) < 0.5 * float(first["balance"])
    sums = [np.abs(_buffer(state, "meta_x").sum(axis=0)).mean() for state in (start, end)]
    assert sums[1] < 0.5 * sums[0]


def test_image_only_hash_step_is_the_dcmh_loss_against_the_own_buffer():
    graphdef, state, optimizers = _state(modalities=("image",))
    data = _data()
    indices = jnp.arange(BATCH, dtype=jnp.int32)
    batch = steps.gather_batch(data, indices, steps.BATCH_FIELDS["image"])
    _, meta = jax.jit(functools.partial(steps.forward, graphdef=graphdef, modality="image"))(
        state, batch
    )
    own = jnp.asarray(_buffer(state, "meta_x"))
    outside = np.ones(NUM_TRAIN, np.float32)
    outside[np.asarray(indices)] = 0
    _, expected = losses.hash_loss(
        meta,
        own,
        losses.similarity_matrix(batch["labels"], data["labels"]),
        state.codes[indices],
        balance_offset=jnp.asarray(outside) @ own,
    )
    _, terms = jax.jit(_bound(graphdef, optimizers, "image"))(state, batch, data["labels"])
    for name in ("likelihood", "quantization", "balance", "total"):
        np.testing.assert_allclose(terms[name], expected[name], rtol=1e-5)


def test_image_only_loss1_is_alpha_j1_against_r_x_plus_j3():
    graphdef, state, optimizers = _state(modalities=("image",))
    # R^x off the identity, so that J1 is far from 0.
    rng = np.random.default_rng(3)
    similarity = jnp.asarray(rng.random((LABELS, LABELS), dtype=np.float32))
    image = state.modalities["image"].replace(similarity=(similarity + similarity.T) / 2)
    state = state.replace(modalities={"image": image})
    data = _data()
    indices = jnp.arange(BATCH, dtype=jnp.int32)
    batch = steps.gather_batch(data, indices, steps.BATCH_FIELDS["autoencoder"])
    _, terms = jax.jit(_bound(graphdef, optimizers, "autoencoder"))(state, batch, data["labels"])
    assert set(terms) == {"j1_commonality", "j3_reconstruction", "total"}
    model = state_lib.merge_model(graphdef, state)
    features = jnp.asarray(_buffer(state, "features_x"))[indices]
    out = model.autoencode(features)
    similarity = state.modalities["image"].similarity
    j1 = losses.commonality_regularizer(
        out.commonality, batch["labels"], similarity, jnp.zeros_like(similarity)
    )
    j3 = losses.reconstruction_loss(features, out.reconstruction_x)
    assert float(j1) > 1e-3
    np.testing.assert_allclose(terms["j1_commonality"], j1, rtol=1e-5)
    np.testing.assert_allclose(terms["total"], j3 + 0.05 * j1, rtol=1e-5)


def test_label_similarity_and_centroids_update_the_state():
    _, state, _ = _state()
    data = _data()
    updated = jax.jit(steps.update_label_similarity)(state, data["labels"])
    for modality, name in (("image", "features_x"), ("text", "features_y")):
        expected = losses.label_similarity(
            losses.average_hausdorff(jnp.asarray(_buffer(state, name)), data["labels"])
        )
        np.testing.assert_allclose(
            np.asarray(updated.modalities[modality].similarity), expected, rtol=1e-5, atol=1e-6
        )
    graphdef, state, _ = _state("metacmh")
    with_memory = jax.jit(functools.partial(steps.update_centroids, graphdef=graphdef))(
        state, data["labels"]
    )
    centroids = models.label_centroids(jnp.asarray(_buffer(state, "features_x")), data["labels"])
    model = state_lib.merge_model(graphdef, with_memory)
    np.testing.assert_allclose(
        np.asarray(model.image_meta.centroids[...]), centroids, rtol=1e-5, atol=1e-6
    )


def test_a_dropout_step_trains_on_the_masked_pass_its_step_count_keys():
    # The text net (a hidden layer of 32) drops units; the test model's image net is linear.
    graphdef, state, optimizers = _state()
    data = _data()
    indices = jnp.arange(BATCH, dtype=jnp.int32)
    batch = steps.gather_batch(data, indices, steps.BATCH_FIELDS["text"])
    step = jax.jit(
        functools.partial(_bound(graphdef, optimizers, "text"), dropout_rate=0.5, dropout_seed=3)
    )
    new, _ = step(state, batch, data["labels"])
    key = steps.dropout_key(3, "text", state.modalities["text"].opt)
    model = state_lib.merge_model(graphdef, state)
    rows = (batch["text_indices"], batch["text_values"])
    masked = model.text_features_sparse(*rows, dropout_rate=0.5, dropout_key=key)
    np.testing.assert_allclose(_buffer(new, "features_y")[:BATCH], masked, rtol=1e-5, atol=1e-6)
    assert not np.allclose(masked, model.text_features_sparse(*rows), atol=1e-3)
    # The next step draws a new mask (the count moved on); the same state draws the same one.
    next_key = steps.dropout_key(3, "text", new.modalities["text"].opt)
    assert not np.array_equal(jax.random.key_data(next_key), jax.random.key_data(key))
    again, _ = step(state, batch, data["labels"])
    assert _leaves_equal(again.modalities["text"].params, new.modalities["text"].params)
