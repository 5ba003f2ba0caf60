"""The individuality-commonality auto-encoder (Eqs. 1, 2, 6)."""

import numpy as np
import pytest
from flax import nnx

from ltcmh_jax.models import AEOutput, IndividualityCommonalityAE

BITS, HIDDEN = 6, 10


def _features(seed: int) -> np.ndarray:
    return np.random.default_rng(seed).normal(size=(5, BITS)).astype(np.float32)


def test_full_autoencoder_outputs_every_part_with_k_columns():
    autoencoder = IndividualityCommonalityAE(BITS, HIDDEN, rngs=nnx.Rngs(0))
    output = autoencoder(_features(0), _features(1))
    assert isinstance(output, AEOutput)
    for name in AEOutput._fields:
        assert getattr(output, name).shape == (5, BITS), name
    # Decoders read [C*, P^v] (Eq. 6).
    assert autoencoder.decoder_x.sizes[0] == 2 * BITS


def test_each_part_reads_what_its_equation_says():
    autoencoder = IndividualityCommonalityAE(BITS, HIDDEN, rngs=nnx.Rngs(0))
    features_x = _features(0)
    base = autoencoder(features_x, _features(1))
    other_text = autoencoder(features_x, _features(2))
    # Image-only parts ignore the text features ...
    for name in ("individuality_x", "commonality_estimate_x"):
        np.testing.assert_array_equal(getattr(other_text, name), getattr(base, name), name)
    # ... while C* (Eq. 2) and, through it, the image reconstruction (Eq. 6) use both.
    for name in ("commonality", "reconstruction_x", "individuality_y", "commonality_estimate_y"):
        assert not np.allclose(getattr(other_text, name), getattr(base, name)), name


@pytest.mark.parametrize(
    "use_individuality, use_commonality, absent",
    [
        (True, False, ("commonality", "commonality_estimate_x", "commonality_estimate_y")),
        (False, True, ("individuality_x", "individuality_y")),
    ],
)
def test_a_removed_part_has_no_output_and_no_parameters(use_individuality, use_commonality, absent):
    autoencoder = IndividualityCommonalityAE(
        BITS,
        HIDDEN,
        use_individuality=use_individuality,
        use_commonality=use_commonality,
        rngs=nnx.Rngs(0),
    )
    output = autoencoder(_features(0), _features(1))
    for name in absent:
        assert getattr(output, name) is None, name
    assert output.reconstruction_x.shape == (5, BITS)
    assert autoencoder.decoder_x.sizes[0] == BITS
    removed = "commonality" if not use_commonality else "individuality"
    paths = ["/".join(map(str, path)) for path, _ in nnx.to_flat_state(nnx.state(autoencoder))]
    assert paths and not [path for path in paths if removed in path]


def test_an_autoencoder_with_nothing_to_encode_is_refused():
    with pytest.raises(ValueError, match="individuality or commonality"):
        IndividualityCommonalityAE(
            BITS, HIDDEN, use_individuality=False, use_commonality=False, rngs=nnx.Rngs(0)
        )


def test_mismatched_feature_shapes_are_named():
    autoencoder = IndividualityCommonalityAE(BITS, HIDDEN, rngs=nnx.Rngs(0))
    with pytest.raises(ValueError, match=r"\(5, 6\) and \(4, 6\)"):
        autoencoder(_features(0), _features(1)[:4])
