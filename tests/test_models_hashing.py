"""HashingModel: methods, LtCMH variants, single-modality encoding, parameter groups, jit."""

import inspect

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest
from flax import nnx

from ltcmh_jax.models import (
    AUTOENCODER_PARAMS,
    IMAGE_PARAMS,
    TEXT_PARAMS,
    AEOutput,
    Memory,
    ModelConfig,
    build_model,
    label_centroids,
    sparse_bag,
)

BITS, IMAGE_DIM, TEXT_DIM, LABELS = 8, 12, 10, 3
METHOD_VARIANTS = [
    ("ltcmh", "full"),
    ("ltcmh", "wo_c"),
    ("ltcmh", "wo_i"),
    ("ltcmh", "wo_ic"),
    ("ltcmh", "wo_mi"),
    ("ltcmh", "wo_mt"),
    ("dcmh", "full"),
    ("metacmh", "full"),
]


def _config(method="ltcmh", variant="full", **overrides):
    fields = dict(
        method=method,
        variant=variant,
        bits=BITS,
        image_dim=IMAGE_DIM,
        image_hidden=(16,),
        text_dim=TEXT_DIM,
        text_hidden=16,
        ae_hidden=8,
        num_labels=LABELS,
    )
    return ModelConfig(**(fields | overrides))


def _model(method="ltcmh", variant="full", seed=0):
    model = build_model(_config(method, variant), rngs=nnx.Rngs(seed))
    if method == "metacmh":
        rng = np.random.default_rng(seed)
        model.set_centroids(rng.normal(size=(LABELS, BITS)), rng.normal(size=(LABELS, BITS)))
    return model


def _batch(seed=0, n=5):
    rng = np.random.default_rng(seed)
    images = rng.normal(size=(n, IMAGE_DIM)).astype(np.float32)
    text = (rng.random((n, TEXT_DIM)) < 0.3).astype(np.float32)
    return images, text


def _paths(model, kind=nnx.Variable) -> set[str]:
    return {"/".join(map(str, path)) for path, _ in nnx.to_flat_state(nnx.state(model, kind))}


# ---------------------------------------------------------------- configuration


@pytest.mark.parametrize(
    "overrides, message",
    [
        (dict(method="sdh"), "ModelConfig.method"),
        (dict(variant="wo_x"), "ModelConfig.variant"),
        (dict(image_net="resnet"), "ModelConfig.image_net"),
        (dict(method="dcmh", variant="wo_c"), "ModelConfig.variant 'wo_c'"),
        (dict(method="metacmh", num_labels=0), "ModelConfig.num_labels"),
        (dict(bits=0), "ModelConfig.bits"),
        (dict(image_hidden=(4, 0)), "ModelConfig.image_hidden"),
    ],
)
def test_bad_config_names_the_field(overrides, message):
    with pytest.raises(ValueError, match=message):
        _config(**overrides)


# ---------------------------------------------------------------- what each model holds

# Path fragments a model must not hold at all: no parameter of what the variant removes.
ABSENT = {
    ("ltcmh", "full"): (),
    ("ltcmh", "wo_c"): ("commonality",),
    ("ltcmh", "wo_i"): ("individuality",),
    ("ltcmh", "wo_ic"): ("autoencoder", "image_meta", "text_meta"),
    ("ltcmh", "wo_mi"): ("image_meta",),
    ("ltcmh", "wo_mt"): ("text_meta",),
    ("dcmh", "full"): ("autoencoder", "image_meta", "text_meta"),
    ("metacmh", "full"): ("autoencoder",),
}
PRESENT = {
    ("ltcmh", "full"): (
        "autoencoder/commonality_encoder",
        "autoencoder/commonality_estimator_x",
        "autoencoder/individuality_encoder_y",
        "image_meta/commonality_selector",
        "text_meta/individuality_selector",
    ),
    ("ltcmh", "wo_c"): ("autoencoder/individuality_encoder_x", "image_meta/individuality_selector"),
    ("ltcmh", "wo_i"): ("autoencoder/commonality_estimator_y", "text_meta/commonality_selector"),
    ("ltcmh", "wo_ic"): (),
    ("ltcmh", "wo_mi"): ("autoencoder/commonality_encoder", "text_meta/commonality_selector"),
    ("ltcmh", "wo_mt"): ("autoencoder/commonality_encoder", "image_meta/commonality_selector"),
    ("dcmh", "full"): (),
    ("metacmh", "full"): ("image_meta/hallucinator", "text_meta/selector", "text_meta/centroids"),
}


@pytest.mark.parametrize("method, variant", METHOD_VARIANTS)
def test_each_model_holds_what_its_method_and_variant_name_and_nothing_removed(method, variant):
    model = _model(method, variant)
    paths = _paths(model)
    assert any(path.startswith("image_net/") for path in paths)
    assert any(path.startswith("text_net/") for path in paths)
    for fragment in ABSENT[(method, variant)]:
        assert not [path for path in paths if fragment in path], fragment
    for prefix in PRESENT[(method, variant)]:
        assert [p for p in paths if p == prefix or p.startswith(prefix + "/")], prefix
    if method == "dcmh" or variant == "wo_ic":
        assert paths == {p for p in paths if p.startswith(("image_net/", "text_net/"))}


def test_decoders_read_only_the_parts_a_variant_keeps():
    widths = {
        v: _model("ltcmh", v).autoencoder.decoder_x.sizes[0] for v in ("full", "wo_c", "wo_i")
    }
    assert widths == {"full": 2 * BITS, "wo_c": BITS, "wo_i": BITS}


@pytest.mark.parametrize("method, variant", [("dcmh", "full"), ("ltcmh", "wo_ic")])
def test_models_without_meta_features_encode_with_the_direct_features(method, variant):
    model = _model(method, variant)
    images, text = _batch()
    np.testing.assert_array_equal(model.encode_image(images), model.image_features(images))
    np.testing.assert_array_equal(model.encode_text(text), model.text_features(text))
    assert model.autoencode(model.image_features(images), model.text_features(text)) == AEOutput()


def test_wo_mi_and_wo_mt_drop_meta_features_on_their_side_only():
    images, text = _batch()
    wo_mi, wo_mt = _model("ltcmh", "wo_mi"), _model("ltcmh", "wo_mt")
    np.testing.assert_array_equal(wo_mi.encode_image(images), wo_mi.image_features(images))
    assert not np.allclose(wo_mi.encode_text(text), wo_mi.text_features(text))
    np.testing.assert_array_equal(wo_mt.encode_text(text), wo_mt.text_features(text))
    assert not np.allclose(wo_mt.encode_image(images), wo_mt.image_features(images))


def test_ltcmh_meta_feature_uses_the_modalitys_own_individuality_and_commonality_estimate():
    model = _model()
    images, text = _batch()
    features_x = model.image_features(images)
    parts = model.autoencode(features_x, model.text_features(text))
    expected = model.image_meta(
        features_x,
        commonality=parts.commonality_estimate_x,
        individuality=parts.individuality_x,
    )
    np.testing.assert_allclose(model.encode_image(images), expected, rtol=1e-6)


# ---------------------------------------------------------------- single-modality encoding


def _poison(model, keep: tuple[str, ...]) -> None:
    """Sets every parameter outside the `keep` path prefixes to NaN."""
    state = nnx.state(model, nnx.Param)
    poisoned = {
        path: jnp.full_like(var[...], jnp.nan)
        for path, var in nnx.to_flat_state(state)
        if not "/".join(map(str, path)).startswith(keep)
    }
    assert poisoned  # there is something the encoder must not read
    for path, value in poisoned.items():
        variable = model
        for key in path:
            variable = variable[key] if isinstance(key, int) else getattr(variable, key)
        variable[...] = value


IMAGE_SIDE = (
    "image_net/",
    "image_meta/",
    "autoencoder/individuality_encoder_x/",
    "autoencoder/commonality_estimator_x/",
)
TEXT_SIDE = (
    "text_net/",
    "text_meta/",
    "autoencoder/individuality_encoder_y/",
    "autoencoder/commonality_estimator_y/",
)


@pytest.mark.parametrize("method, variant", METHOD_VARIANTS)
def test_encoders_take_one_modality_and_read_no_parameter_of_the_other(method, variant):
    assert list(inspect.signature(_model(method, variant).encode_image).parameters) == ["images"]
    assert list(inspect.signature(_model(method, variant).encode_text).parameters) == ["text"]
    images, text = _batch()
    for encode, inputs, keep in (
        ("encode_image", images, IMAGE_SIDE),
        ("encode_text", text, TEXT_SIDE),
    ):
        model = _model(method, variant)
        expected = np.asarray(getattr(model, encode)(inputs))
        # NaN in the other modality's nets, in C*'s encoder and in the decoders: a read would
        # turn the codes to NaN.
        _poison(model, keep)
        np.testing.assert_array_equal(getattr(model, encode)(inputs), expected, err_msg=encode)


def test_text_codes_from_the_sparse_bag_match_the_dense_text():
    model = _model()
    _, text = _batch()
    np.testing.assert_allclose(
        model.encode_text_sparse(*sparse_bag(text)), model.encode_text(text), rtol=1e-5, atol=1e-5
    )


# ---------------------------------------------------------------- MetaCMH memory


def test_metacmh_centroids_drive_the_codes_and_only_metacmh_has_them():
    model = build_model(_config("metacmh"), rngs=nnx.Rngs(0))
    images, _ = _batch()
    labels = np.eye(LABELS, dtype=np.float32)[[0, 1, 1, 0, 1]]  # label 2: no sample
    features_x = model.image_features(images)
    np.testing.assert_allclose(model.encode_image(images), features_x)  # empty memory
    centroids_x = label_centroids(features_x, labels)
    model.set_centroids(centroids_x, jnp.zeros((LABELS, BITS)))
    np.testing.assert_array_equal(model.image_meta.centroids[...], centroids_x)
    assert not np.allclose(model.encode_image(images), features_x)
    assert _paths(model, Memory) == {"image_meta/centroids", "text_meta/centroids"}
    with pytest.raises(ValueError, match="'dcmh' has no label memory"):
        _model("dcmh").set_centroids(centroids_x, centroids_x)


# ---------------------------------------------------------------- parameter groups, jit, seeds


@pytest.mark.parametrize("method", ["ltcmh", "metacmh"])
def test_parameter_groups_split_the_parameters_by_owner(method):
    model = _model(method)
    image, text, autoencoder, rest = nnx.split(
        model, IMAGE_PARAMS, TEXT_PARAMS, AUTOENCODER_PARAMS, ...
    )[1:]
    image_paths, text_paths = _paths_of(image), _paths_of(text)
    assert image_paths and all(p.startswith(("image_net/", "image_meta/")) for p in image_paths)
    assert text_paths and all(p.startswith(("text_net/", "text_meta/")) for p in text_paths)
    assert all(p.startswith("autoencoder/") for p in _paths_of(autoencoder))
    assert bool(_paths_of(autoencoder)) == (method == "ltcmh")
    # Every parameter is in exactly one group; what is left is MetaCMH's memory.
    assert not _paths_of(nnx.filter_state(rest, nnx.Param))
    assert _paths_of(rest) == (
        {"image_meta/centroids", "text_meta/centroids"} if method == "metacmh" else set()
    )


def _paths_of(state) -> set[str]:
    return {"/".join(map(str, path)) for path, _ in nnx.to_flat_state(state)}


def test_an_optimizer_over_image_params_updates_theta_x_only():
    model = _model()
    images, text = _batch()
    optimizer = nnx.Optimizer(model, optax.adam(1e-2), wrt=IMAGE_PARAMS)
    before = {path: np.asarray(v[...]) for path, v in nnx.to_flat_state(nnx.state(model))}

    def loss(model):
        return jnp.mean((model.encode_image(images) - model.encode_text(text)) ** 2)

    grads = nnx.grad(loss, argnums=nnx.DiffState(0, IMAGE_PARAMS))(model)
    optimizer.update(model, grads)
    changed = {
        "/".join(map(str, path))
        for path, v in nnx.to_flat_state(nnx.state(model))
        if not np.array_equal(np.asarray(v[...]), before[path])
    }
    assert changed and all(p.startswith(("image_net/", "image_meta/")) for p in changed)


@pytest.mark.parametrize("method", ["ltcmh", "metacmh"])
def test_jitted_pure_forward_through_split_and_merge_matches_eager(method):
    model = _model(method)
    images, text = _batch()
    graphdef, state = nnx.split(model)

    @jax.jit
    def encode(state, images, text):
        model = nnx.merge(graphdef, state)
        features_x, features_y = model.image_features(images), model.text_features(text)
        return (
            model.encode_image(images),
            model.encode_text(text),
            model.autoencode(features_x, features_y),
        )

    codes_x, codes_y, parts = encode(state, images, text)
    np.testing.assert_allclose(codes_x, model.encode_image(images), rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(codes_y, model.encode_text(text), rtol=1e-5, atol=1e-6)
    assert isinstance(parts, AEOutput)


def test_initialisation_is_deterministic_for_a_seed():
    def leaves(seed):
        return jax.tree.leaves(nnx.state(_model("ltcmh", "full", seed=seed)))

    for first, again in zip(leaves(0), leaves(0), strict=True):
        np.testing.assert_array_equal(first, again)
    assert not all(np.array_equal(a, b) for a, b in zip(leaves(0), leaves(1), strict=True))


# ---------------------------------------------------------------- LtCMH commonality memory


def _memory_model(seed=0):
    model = build_model(_config(commonality_path="memory"), rngs=nnx.Rngs(seed))
    rng = np.random.default_rng(seed)
    model.autoencoder.set_commonality_centroids(rng.normal(size=(LABELS, BITS)))
    return model


def test_the_commonality_memory_is_attention_over_the_label_means_of_c_star():
    model = _memory_model()
    images, _ = _batch()
    features_x = np.asarray(model.image_features(images))
    reader = model.autoencoder.commonality_estimator_x.attention
    kernel, bias = np.asarray(reader.kernel[...]), np.asarray(reader.bias[...])
    normalized = features_x / np.sqrt(np.mean(features_x**2, axis=1, keepdims=True) + 1e-12)
    logits = normalized @ kernel + bias
    weights = np.exp(logits - logits.max(1, keepdims=True))
    weights /= weights.sum(1, keepdims=True)
    centroids = np.asarray(model.autoencoder.commonality_centroids[...])
    np.testing.assert_allclose(
        model.autoencoder.commonality_estimate_x(features_x), weights @ centroids, rtol=1e-5
    )
    # No MLP estimator, one memory shared by both readers; the other paths have none.
    assert _paths(model, Memory) == {"autoencoder/commonality_centroids"}
    assert _paths(_model(), Memory) == set()
    assert not _config().has_commonality_memory
    assert not _config(variant="wo_c", commonality_path="memory").has_commonality_memory


def test_commonality_memory_encoders_read_their_side_and_the_shared_memory_only():
    images, text = _batch()
    memory = ("autoencoder/commonality_centroids",)
    for encode, inputs, keep in (
        ("encode_image", images, IMAGE_SIDE + memory),
        ("encode_text", text, TEXT_SIDE + memory),
    ):
        model = _memory_model()
        expected = np.asarray(getattr(model, encode)(inputs))
        _poison(model, keep)
        np.testing.assert_array_equal(getattr(model, encode)(inputs), expected, err_msg=encode)


def test_a_bad_commonality_memory_is_refused_naming_what_is_wrong():
    with pytest.raises(ValueError, match="commonality_path"):
        _config(commonality_path="attention")
    with pytest.raises(ValueError, match="num_labels"):
        _config(commonality_path="memory", num_labels=0)
    with pytest.raises(ValueError, match=r"shape \(3, 8\)"):
        _memory_model().autoencoder.set_commonality_centroids(np.zeros((2, BITS)))
    with pytest.raises(ValueError, match="no memory"):
        _model().autoencoder.set_commonality_centroids(np.zeros((LABELS, BITS)))


@pytest.mark.parametrize("method", ["dcmh", "ltcmh"])
def test_a_model_without_a_label_memory_has_nothing_to_refresh(method):
    model = _model(method)
    assert not model.has_label_memory
    before = nnx.state(model)
    features = {"image": jnp.ones((4, BITS)), "text": jnp.ones((4, BITS))}
    model.refresh_label_memories(features, jnp.eye(4, LABELS))
    for (path, old), (_, new) in zip(
        nnx.to_flat_state(before), nnx.to_flat_state(nnx.state(model)), strict=True
    ):
        np.testing.assert_array_equal(np.asarray(old[...]), np.asarray(new[...]), err_msg=str(path))


def test_metacmh_and_the_commonality_memory_have_label_memories_to_refresh():
    assert _model("metacmh").has_label_memory
    assert _memory_model().has_label_memory
