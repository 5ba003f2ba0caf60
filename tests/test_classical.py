"""Classical floors against hand-checked toys and references written here from the equations."""

import numpy as np
import pytest
import scipy.linalg

from ltcmh_jax import classical, metrics
from ltcmh_jax.classical import canonical
from ltcmh_jax.data import make_synthetic_longtail

# Four samples, two classes: feature 0 carries the class in both views, feature 1 is orthogonal
# to the class, to feature 0 and to the constant, so the only semantic direction is e_0.
TOY_IMAGE = np.array([[1.0, 1.0], [1.0, -1.0], [-1.0, 1.0], [-1.0, -1.0]])
TOY_TEXT = np.array([[2.0, 1.0], [2.0, -1.0], [-2.0, -1.0], [-2.0, 1.0]])
TOY_LABELS = np.array([[1, 0], [1, 0], [0, 1], [0, 1]])


def regularized(features, regularization):
    """`Sigma + r tr(Sigma) / d I`, the covariance the fits whiten with, from its definition."""
    centred = features - features.mean(axis=0)
    covariance = centred.T @ centred / len(features)
    dim = covariance.shape[0]
    return covariance + regularization * np.trace(covariance) / dim * np.eye(dim)


def explicit_similarity(labels):
    """`S = 2 cos(L, L) - 1`, `[n, n]`, written out (zero rows: cosine 0)."""
    num_rows = labels.shape[0]
    cosine = np.zeros((num_rows, num_rows))
    for i in range(num_rows):
        for j in range(num_rows):
            norms = np.linalg.norm(labels[i]) * np.linalg.norm(labels[j])
            cosine[i, j] = labels[i] @ labels[j] / norms if norms > 0 else 0.0
    return 2.0 * cosine - 1.0


def generalized_top_pairs(cross, image_covariance, text_covariance, count):
    """The reference code's route: eig(C Syy^-1 C^T, Sxx), then w_y ∝ Syy^-1 C^T w_x."""
    values, vectors = scipy.linalg.eigh(
        cross @ np.linalg.solve(text_covariance, cross.T), image_covariance
    )
    image_directions = vectors[:, ::-1][:, :count]
    text_directions = np.linalg.solve(text_covariance, cross.T @ image_directions)
    return image_directions, text_directions, values[::-1][:count]


def assert_same_directions(actual, expected):
    """Columns equal up to scale and sign: |cos| = 1."""
    actual = actual / np.linalg.norm(actual, axis=0)
    expected = expected / np.linalg.norm(expected, axis=0)
    np.testing.assert_allclose(np.abs(np.sum(actual * expected, axis=0)), 1.0, atol=1e-8)


def random_views(seed, *, num_rows=40, image_dim=5, text_dim=6, num_labels=3):
    rng = np.random.default_rng(seed)
    labels = (rng.random((num_rows, num_labels)) < 0.4).astype(np.float64)
    labels[0] = 0.0  # an unlabelled row
    image = labels @ rng.standard_normal((num_labels, image_dim)) + rng.standard_normal(
        (num_rows, image_dim)
    )
    text = labels @ rng.standard_normal((num_labels, text_dim)) + rng.standard_normal(
        (num_rows, text_dim)
    )
    return image + 3.0, text - 1.0, labels


@pytest.mark.parametrize("variant", classical.SCM_VARIANTS)
def test_scm_finds_the_only_semantic_direction(variant):
    model = classical.fit_scm(TOY_IMAGE, TOY_TEXT, TOY_LABELS, bits=1, variant=variant)
    assert_same_directions(model.image.projection, np.array([[1.0], [0.0]]))
    assert_same_directions(model.text.projection, np.array([[1.0], [0.0]]))
    image_codes, text_codes = model.encode_image(TOY_IMAGE), model.encode_text(TOY_TEXT)
    np.testing.assert_array_equal(image_codes, text_codes)
    assert abs(image_codes[:, 0].tolist() @ np.array([1, 1, -1, -1])) == 4


def test_semantic_factors_equal_the_explicit_n_by_n_form():
    image, text, labels = random_views(0, num_rows=9)
    image_mean, text_mean = image.mean(axis=0), text.mean(axis=0)
    similarity = explicit_similarity(labels)
    for x_mean, y_mean in ((image_mean, text_mean), (np.zeros(5), np.ones(6))):
        left, right = classical.semantic_cross_covariance_factors(
            image, x_mean, text, y_mean, labels
        )
        expected = (image - x_mean).T @ similarity @ (text - y_mean)
        np.testing.assert_allclose(left @ right.T, expected, rtol=1e-10, atol=1e-10)


def test_scm_orth_is_the_generalized_eigenproblem_on_explicit_s():
    image, text, labels = random_views(1)
    bits, regularization = 3, 0.05
    model = classical.fit_scm(
        image, text, labels, bits=bits, variant="orth", regularization=regularization
    )
    cross = bits * (image - image.mean(0)).T @ explicit_similarity(labels) @ (text - text.mean(0))
    image_directions, text_directions, _ = generalized_top_pairs(
        cross, regularized(image, regularization), regularized(text, regularization), bits
    )
    assert_same_directions(model.image.projection, image_directions)
    assert_same_directions(model.text.projection, text_directions)


def test_scm_seq_second_bit_fits_the_explicit_residual():
    image, text, labels = random_views(2)
    bits, regularization = 2, 0.05
    model = classical.fit_scm(
        image, text, labels, bits=bits, variant="seq", regularization=regularization
    )
    image_covariance = regularized(image, regularization)
    text_covariance = regularized(text, regularization)
    centred_image, centred_text = image - image.mean(0), text - text.mean(0)
    residual = bits * explicit_similarity(labels)
    first_x, first_y, _ = generalized_top_pairs(
        centred_image.T @ residual @ centred_text, image_covariance, text_covariance, 1
    )
    image_bit = np.where(centred_image @ first_x >= 0, 1.0, -1.0)
    text_bit = np.where(centred_text @ first_y >= 0, 1.0, -1.0)
    residual = residual - image_bit @ text_bit.T
    second_x, second_y, _ = generalized_top_pairs(
        centred_image.T @ residual @ centred_text, image_covariance, text_covariance, 1
    )
    assert_same_directions(model.image.projection, np.hstack([first_x, second_x]))
    assert_same_directions(model.text.projection, np.hstack([first_y, second_y]))


def test_cca_recovers_a_shared_latent_and_matches_principal_angles():
    rng = np.random.default_rng(0)
    num_rows = 3000
    latent = rng.standard_normal((num_rows, 2))
    image = np.hstack([latent @ rng.standard_normal((2, 4)), rng.standard_normal((num_rows, 3))])
    text = np.hstack([latent @ rng.standard_normal((2, 3)), rng.standard_normal((num_rows, 3))])
    image += 0.05 * rng.standard_normal(image.shape)
    text += 0.05 * rng.standard_normal(text.shape)
    pairs = classical.canonical_correlation(image, text, dims=4, regularization=0.0)
    # Unregularised canonical correlations are the cosines of the principal angles between the
    # centred column spaces.
    image_basis = np.linalg.qr(image - image.mean(0))[0]
    text_basis = np.linalg.qr(text - text.mean(0))[0]
    cosines = np.linalg.svd(image_basis.T @ text_basis, compute_uv=False)[:4]
    np.testing.assert_allclose(pairs.correlations, cosines, atol=1e-9)
    assert pairs.correlations[1] > 0.95 and pairs.correlations[2] < 0.1
    projected = (image - pairs.image_mean) @ pairs.image_directions[:, :2]
    np.testing.assert_allclose(projected.T @ projected / num_rows, np.eye(2), atol=1e-9)
    fit = np.linalg.lstsq(projected, latent - latent.mean(0), rcond=None)[1]
    assert np.all(fit / np.sum((latent - latent.mean(0)) ** 2, axis=0) < 0.01)


def test_itq_recovers_a_rotated_hypercube():
    rng = np.random.default_rng(0)
    corners = np.where(rng.random((200, 2)) < 0.5, -1.0, 1.0)
    angle = np.deg2rad(30.0)
    rotation = np.array([[np.cos(angle), -np.sin(angle)], [np.sin(angle), np.cos(angle)]])
    learned, losses = classical.itq_rotation(corners @ rotation.T, iterations=20, seed=0)
    assert losses[0] > 1.0 and losses[-1] < 1e-20
    np.testing.assert_allclose(np.abs(corners @ rotation.T @ learned), 1.0, atol=1e-10)


def test_itq_loss_never_increases_and_rotation_is_orthogonal():
    projected = np.random.default_rng(1).standard_normal((300, 8)) * np.linspace(0.5, 2.0, 8)
    rotation, losses = classical.itq_rotation(projected, iterations=30, seed=3)
    assert np.all(np.diff(losses) <= 1e-9 * losses[0])
    assert losses[-1] < 0.95 * losses[0]
    np.testing.assert_allclose(rotation.T @ rotation, np.eye(8), atol=1e-12)
    assert losses[-1] == pytest.approx(classical.quantization_loss(projected, rotation))


def test_linear_floor_is_sign_of_projected_ridge_predictions():
    image, text, labels = random_views(3)
    bits, ridge, seed = 7, 0.3, 5
    model = classical.fit_linear_floor(image, text, labels, bits=bits, ridge=ridge, seed=seed)
    projection = np.random.default_rng(seed).standard_normal((labels.shape[1], bits))
    for features, codes in ((image, model.encode_image(image)), (text, model.encode_text(text))):
        centred = features - features.mean(0)
        weights = np.linalg.solve(
            regularized(features, ridge), centred.T @ (labels - labels.mean(0)) / len(features)
        )
        predicted = centred @ weights + labels.mean(0)
        np.testing.assert_array_equal(codes, np.where(predicted @ projection >= 0, 1, -1))
    as_bool = classical.fit_linear_floor(
        image, text, labels.astype(bool), bits=bits, ridge=ridge, seed=seed
    )
    np.testing.assert_array_equal(as_bool.encode_text(text), model.encode_text(text))


def test_codes_are_plus_minus_one_balanced_and_seeded():
    image, text, labels = random_views(4, num_rows=400, image_dim=12, text_dim=10)
    first = classical.fit_cca_itq(image, text, bits=8, seed=0)
    again = classical.fit_cca_itq(image, text, bits=8, seed=0)
    other = classical.fit_cca_itq(image, text, bits=8, seed=1)
    codes = first.encode_image(image)
    assert codes.dtype == np.int8 and set(np.unique(codes)) == {-1, 1}
    np.testing.assert_array_equal(codes, again.encode_image(image))
    assert not np.array_equal(first.text.projection, other.text.projection)
    for model in (first, classical.fit_scm(image, text, labels, bits=8, variant="orth")):
        for view_codes in (model.encode_image(image), model.encode_text(text)):
            assert np.abs(view_codes.mean(axis=0)).max() < 0.25


FITS = {
    "scm_seq": lambda x, y, labels: classical.fit_scm(x, y, labels, bits=16, variant="seq"),
    "scm_orth": lambda x, y, labels: classical.fit_scm(x, y, labels, bits=16, variant="orth"),
    "cca_itq": lambda x, y, labels: classical.fit_cca_itq(x, y, bits=16, regularization=0.1),
    "linear_floor": lambda x, y, labels: classical.fit_linear_floor(x, y, labels, bits=16),
}


@pytest.fixture(scope="module")
def small_synthetic():
    data = make_synthetic_longtail(
        num_samples=1600,
        num_labels=8,
        image_dim=64,
        text_dim=128,
        seed=0,
        image_noise=2.0,
        background_words=5.0,
        evidence_dropout=0.05,
    )
    order = np.random.default_rng(0).permutation(data.num_samples)
    return data, order[:800], order[800:1000], order[1000:]


@pytest.mark.parametrize("method", sorted(FITS))
def test_each_floor_beats_chance_on_synthetic(method, small_synthetic):
    data, train, query, database = small_synthetic
    model = FITS[method](data.image[train], data.text[train], data.labels[train])
    query_labels, db_labels = data.labels[query], data.labels[database]
    chance = float(np.mean((query_labels @ db_labels.T > 0).mean(axis=1)))
    for query_codes, db_codes in (
        (model.encode_image(data.image[query]), model.encode_text(data.text[database])),
        (model.encode_text(data.text[query]), model.encode_image(data.image[database])),
    ):
        assert (
            metrics.mean_average_precision(query_codes, db_codes, query_labels, db_labels)
            > chance + MARGIN[method]
        )


# About half of what each floor measured above chance (0.30) when this test was written: seq
# 0.52 / 0.50, linear 0.48 / 0.44, orth 0.36 / 0.35 (8 of its 16 bits are beyond rank c = 8),
# CCA-ITQ 0.35 / 0.34 (unsupervised).
MARGIN = {"scm_seq": 0.10, "scm_orth": 0.03, "cca_itq": 0.02, "linear_floor": 0.07}


@pytest.mark.parametrize(
    "call, match",
    [
        (lambda: classical.fit_scm(TOY_IMAGE, TOY_TEXT[:3], TOY_LABELS, bits=1), "^text: has 3"),
        (lambda: classical.fit_scm(TOY_IMAGE, TOY_TEXT, TOY_LABELS[:2], bits=1), "^labels: has"),
        (lambda: classical.fit_scm(TOY_IMAGE, TOY_TEXT, TOY_LABELS, bits=3), "^bits: 3 exceeds"),
        (lambda: classical.fit_cca_itq(TOY_IMAGE, TOY_TEXT, bits=3), "^bits: 3 exceeds"),
        (lambda: classical.fit_cca_itq(TOY_IMAGE, TOY_TEXT, bits=0), "^bits: expected"),
        (
            lambda: classical.fit_scm(TOY_IMAGE, TOY_TEXT, 2 * TOY_LABELS, bits=1),
            "^labels: must be 0 or 1",
        ),
        (
            lambda: classical.fit_cca_itq(np.where(TOY_IMAGE > 0, np.nan, 0), TOY_TEXT, bits=1),
            "^image: non-finite value nan at row 0, column 0",
        ),
        (
            lambda: classical.fit_scm(TOY_IMAGE, TOY_TEXT, TOY_LABELS, bits=1, variant="x"),
            "^variant: must be one of",
        ),
        (
            lambda: classical.fit_linear_floor(TOY_IMAGE, TOY_TEXT, TOY_LABELS, bits=1, ridge=-1),
            "^ridge: must be",
        ),
        (
            lambda: classical.fit_cca_itq(TOY_IMAGE, TOY_TEXT, bits=1).encode_text(
                TOY_IMAGE[:, :1]
            ),
            "^text: has 1 feature columns",
        ),
    ],
)
def test_bad_input_is_one_line_naming_the_argument(call, match):
    with pytest.raises(ValueError, match=match) as error:
        call()
    assert "\n" not in str(error.value)


def test_linear_floor_allows_more_bits_than_labels_or_features():
    model = classical.fit_linear_floor(TOY_IMAGE, TOY_TEXT, TOY_LABELS, bits=5, ridge=0.1)
    assert model.encode_image(TOY_IMAGE).shape == (4, 5)


def test_orthonormal_completion_is_orthogonal_to_the_basis():
    basis = np.linalg.qr(np.random.default_rng(0).standard_normal((6, 2)))[0]
    completion = canonical.orthonormal_completion(basis, 3, seed=0)
    np.testing.assert_allclose(completion.T @ completion, np.eye(3), atol=1e-12)
    np.testing.assert_allclose(basis.T @ completion, 0.0, atol=1e-12)


def test_scm_orth_beyond_the_rank_takes_whitened_orthogonal_directions():
    # X^T S Y has rank 1 on the toy; the second bit's direction is undetermined by the objective
    # and must be Sigma-orthogonal to the first, which in 2-D leaves only e_1.
    model = classical.fit_scm(TOY_IMAGE, TOY_TEXT, TOY_LABELS, bits=2, variant="orth")
    assert_same_directions(model.image.projection, np.eye(2))
    assert_same_directions(model.text.projection, np.eye(2))


def test_scm_without_semantic_signal_falls_back_to_cca():
    # All-zero labels make S = -1 1^T, so X^T S Y = 0 for centred data: SCM-Seq's residual has no
    # leading pair from the first bit on, and the reference fills every bit with plain CCA.
    image, text, labels = random_views(5)
    model = classical.fit_scm(
        image, text, np.zeros_like(labels), bits=3, variant="seq", regularization=0.05
    )
    pairs = classical.canonical_correlation(image, text, dims=3, regularization=0.05)
    assert_same_directions(model.image.projection, pairs.image_directions)
    assert_same_directions(model.text.projection, pairs.text_directions)
    orth = classical.fit_scm(
        image, text, np.zeros_like(labels), bits=3, variant="orth", regularization=0.05
    )
    covariance = regularized(image, 0.05)
    np.testing.assert_allclose(
        orth.image.projection.T @ covariance @ orth.image.projection, np.eye(3), atol=1e-10
    )
