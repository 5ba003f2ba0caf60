"""RBF anchor features for the closed-form floors (`--floor_anchors`), against explicit formulas
and a case a linear floor cannot separate."""

import dataclasses
import types

import numpy as np
import pytest

from ltcmh_jax import classical, metrics
from ltcmh_jax.files import json_safe
from ltcmh_jax.train import TrainConfig, floors
from ltcmh_jax.train.run_dir import differing_flags


def test_rbf_features_match_the_formula_on_a_hand_checked_view():
    view = np.array([[0.0, 1.0], [2.0, 1.0], [4.0, 1.0]])  # column 1 constant
    kernel = classical.fit_rbf_features(view, anchors=3, seed=0)
    # Column 0: mean 2, population spread sqrt(8 / 3); column 1 has spread 0, floored to 1e-3 of
    # the mean spread, so its (zero) deviations stay zero instead of dividing by zero.
    np.testing.assert_allclose(kernel.mean, [2.0, 1.0])
    np.testing.assert_allclose(kernel.scale[0], np.sqrt(8 / 3))
    standard = (view[:, 0] - 2.0) / np.sqrt(8 / 3)  # -1.2247, 0, 1.2247; all rows are anchors
    distances = np.abs(standard[:, None] - standard[None, :])
    np.testing.assert_allclose(kernel.bandwidth, distances.mean())
    expected = np.exp(-(distances**2) / (2 * distances.mean() ** 2))
    np.testing.assert_allclose(kernel(view), expected, atol=1e-12)
    np.testing.assert_allclose(np.diag(kernel(view)), 1.0)


def test_rbf_features_are_fitted_on_training_rows_and_applied_to_new_ones():
    rng = np.random.default_rng(0)
    train = rng.normal(5.0, 3.0, (50, 4))
    kernel = classical.fit_rbf_features(train, anchors=10, seed=1)
    # Each anchor is a training row: its own kernel value is 1.
    assert kernel(train).max(axis=0) == pytest.approx(np.ones(10))
    new = rng.normal(5.0, 3.0, (7, 4))
    standard = (new - kernel.mean) / kernel.scale
    squared = ((standard[:, None, :] - kernel.anchors[None]) ** 2).sum(-1)
    np.testing.assert_allclose(kernel(new), np.exp(-squared / (2 * kernel.bandwidth**2)))


def rings(num_rows, seed):
    """Two classes on concentric circles (radius 1 and 3) in both views: no line separates them."""
    rng = np.random.default_rng(seed)
    inner = rng.random(num_rows) < 0.5
    radius = np.where(inner, 1.0, 3.0)

    def view():
        angle = rng.uniform(0, 2 * np.pi, num_rows)
        points = radius[:, None] * np.stack([np.cos(angle), np.sin(angle)], axis=1)
        return points + 0.1 * rng.standard_normal((num_rows, 2))

    labels = np.stack([inner, ~inner], axis=1).astype(np.float64)
    return view(), view(), labels


def cross_modal_map(model, image, text, labels):
    return [
        metrics.mean_average_precision(query, database, labels, labels)
        for query, database in (
            (model.encode_image(image), model.encode_text(text)),
            (model.encode_text(text), model.encode_image(image)),
        )
    ]


def test_kernel_floor_separates_what_no_linear_floor_can():
    image, text, labels = rings(400, seed=0)
    test_image, test_text, test_labels = rings(300, seed=1)
    raw = classical.fit_scm(image, text, labels, bits=2)
    kernel = classical.fit_on_rbf_features(
        classical.fit_scm, image, text, labels, bits=8, anchors=100, seed=0
    )
    assert isinstance(kernel, classical.KernelHashing) and kernel.bits == 8
    raw_map = cross_modal_map(raw, test_image, test_text, test_labels)
    kernel_map = cross_modal_map(kernel, test_image, test_text, test_labels)
    # Chance is 0.5. Measured when written: raw 0.509 / 0.507, kernel 1.000 / 1.000.
    assert max(raw_map) < 0.6
    assert min(kernel_map) > 0.9


def test_kernel_floor_gives_more_bits_than_the_view_has_columns():
    image, text, labels = rings(200, seed=0)
    with pytest.raises(ValueError, match="^bits: 16 exceeds 2"):
        classical.fit_cca_itq(image, text, bits=16)
    model = classical.fit_on_rbf_features(
        classical.fit_cca_itq, image, text, bits=16, anchors=50, seed=0
    )
    assert model.encode_image(image).shape == (200, 16)
    assert set(np.unique(model.encode_text(text))) <= {-1, 1}


@pytest.mark.parametrize(
    "call, match",
    [
        (lambda: classical.fit_rbf_features(np.ones((5, 2)), anchors=6), "^--floor_anchors: 6"),
        (lambda: classical.fit_rbf_features(np.ones((5, 2)), anchors=0), "^--floor_anchors: exp"),
        (
            lambda: classical.fit_rbf_features(np.ones((5, 2)), anchors=2)(np.ones((1, 3))),
            "^features: has 3 feature columns but the kernel features were fitted on 2",
        ),
        (
            lambda: TrainConfig(method="dcmh", floor_anchors=10).validate(),
            "^--floor_anchors: kernel features are for the closed-form floors",
        ),
    ],
)
def test_bad_kernel_input_is_one_line_naming_the_argument(call, match):
    with pytest.raises(ValueError, match=match) as error:
        call()
    assert "\n" not in str(error.value)


def test_a_run_saved_before_a_setting_existed_matches_its_earlier_value():
    config = TrainConfig(method="scm")
    saved = json_safe(config.run_fields())
    del saved["floor_anchors"], saved["weight_decay"]
    # floor_anchors=0 is what floors computed before the setting; weight decay 1.0 is not what
    # runs before --weight_decay computed (they had none), so the default differs from them.
    assert differing_flags(saved, dataclasses.replace(config, weight_decay=0.0)) == {}
    assert differing_flags(saved, config) == {"weight_decay": (None, 1.0)}
    with_anchors = dataclasses.replace(config, weight_decay=0.0, floor_anchors=9)
    assert differing_flags(saved, with_anchors) == {"floor_anchors": (None, 9)}
    del saved["alpha"]  # no earlier value: a missing key always differs
    assert "alpha" in differing_flags(saved, dataclasses.replace(config, weight_decay=0.0))


def test_floor_run_suggests_anchors_and_uses_them():
    image, text, labels = rings(120, seed=0)
    dataset = types.SimpleNamespace(image=image, text=text, labels=labels)
    rows = np.arange(100)
    config = TrainConfig(method="cca_itq", bits=16)
    with pytest.raises(ValueError, match=r"^--bits: 16 exceeds 2, .*--floor_anchors=500"):
        floors.fit_floor(config, dataset, rows)
    hashing = floors.fit_floor(dataclasses.replace(config, floor_anchors=30), dataset, rows)
    assert isinstance(hashing, classical.KernelHashing)
    assert hashing.image_map.dims == 30 and hashing.bits == 16
    codes = floors.floor_codes(hashing, dataset, np.arange(100, 120))
    assert codes["image"].shape == codes["text"].shape == (20, 16)


def test_more_anchors_than_rows_is_its_own_error_a_benchmark_can_report():
    with pytest.raises(classical.TooManyAnchorsError, match="6 anchors exceed the 5 training rows"):
        classical.fit_rbf_features(np.ones((5, 2)), anchors=6)
