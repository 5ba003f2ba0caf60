"""RBF anchor features for the classical floors (`--floor_anchors`).

SCM and CCA-ITQ are linear in each view, so a view with d columns gives at most d bits: ALOI's 13
texture features cannot make a 64-bit code. The hashing literature runs these baselines on kernel
features instead: each row becomes its Gaussian-kernel values against m anchor rows drawn from the
training set. Here the view is first standardised per column (training statistics, as the deep
methods' input scaling does), so no single wide-range column decides the distances, and the
bandwidth is the mean anchor distance of the training rows: no per-data-set value.
"""

from __future__ import annotations

import dataclasses

import numpy as np

from ltcmh_jax.classical import moments
from ltcmh_jax.classical.hashing import LinearHashing

# Anchors suggested when a view has fewer columns than the code has bits, and the benchmarks'
# `+rbf` floors: a few hundred, as kernelised hashing baselines use; not tuned on any data set.
SUGGESTED_ANCHORS = 500
# Training rows the bandwidth is averaged over: enough for a stable mean, cheap at n = 200,000.
_BANDWIDTH_ROWS = 2000
# A column whose spread is below this share of the mean spread is scaled as if it had the mean
# spread: a near-constant column (an icon's border pixel) must not become a huge coordinate.
_SPREAD_FLOOR = 1e-3


@dataclasses.dataclass(frozen=True)
class RBFFeatures:
    """`phi(x)_j = exp(-||z(x) - a_j||^2 / (2 sigma^2))`, `z(x) = (x - mean) / scale`.

    Attributes:
      mean: `[d]` float64 training column means.
      scale: `[d]` float64 training column spreads (floored).
      anchors: `[m, d]` float64 standardised anchor rows.
      bandwidth: sigma, the mean distance of standardised training rows to the anchors.
    """

    mean: np.ndarray
    scale: np.ndarray
    anchors: np.ndarray
    bandwidth: float

    @property
    def dims(self) -> int:
        return self.anchors.shape[0]

    def distances_squared(self, features, *, name: str = "features") -> np.ndarray:
        """`[n, m]` float64 squared distances of standardised `features` `[n, d]` to the anchors."""
        features = moments.check_features(features, name)
        if features.shape[1] != self.mean.size:
            raise ValueError(
                f"{name}: has {features.shape[1]} feature columns but the kernel features were "
                f"fitted on {self.mean.size}"
            )
        anchor_norms = (self.anchors**2).sum(axis=1)
        out = np.empty((features.shape[0], self.dims))
        for rows in moments.row_chunks(features.shape[0], features.shape[1] + self.dims):
            standard = (features[rows].astype(np.float64) - self.mean) / self.scale
            cross = standard @ self.anchors.T
            squared = (standard**2).sum(axis=1)[:, None] + anchor_norms - 2.0 * cross
            out[rows] = np.maximum(squared, 0.0)
        return out

    def __call__(self, features, *, name: str = "features") -> np.ndarray:
        """`[n, m]` float64 kernel values in (0, 1] of `features` `[n, d]`."""
        squared = self.distances_squared(features, name=name)
        return np.exp(-squared / (2.0 * self.bandwidth**2))


class TooManyAnchorsError(ValueError):
    """`anchors` above the training rows a kernel floor can pick them from."""


def fit_rbf_features(features, *, anchors: int, seed: int = 0, name: str = "features"):
    """`RBFFeatures` with `anchors` distinct training rows of `features` `[n, d]` as anchors.

    Raises:
      ValueError: one line naming `name` or `anchors` (more anchors than rows, non-finite values).
    """
    features = moments.check_features(features, name)
    num_rows = features.shape[0]
    if isinstance(anchors, bool) or not isinstance(anchors, int | np.integer) or anchors < 1:
        raise ValueError(f"--floor_anchors: expected a positive integer, got {anchors!r}")
    if anchors > num_rows:
        raise TooManyAnchorsError(
            f"--floor_anchors: {anchors} anchors exceed the {num_rows} training rows of {name}"
        )
    mean = moments.column_mean(features)
    # Column variances in row chunks: the d x d Gram would take 200 MB at d = 5,000.
    squares = np.zeros(features.shape[1])
    for rows in moments.row_chunks(*features.shape):
        squares += ((features[rows].astype(np.float64) - mean) ** 2).sum(axis=0)
    spread = np.sqrt(squares / num_rows)
    typical = spread.mean()
    scale = np.maximum(spread, _SPREAD_FLOOR * typical) if typical > 0 else np.ones_like(spread)
    rng = np.random.default_rng(seed)
    picked = np.sort(rng.choice(num_rows, size=anchors, replace=False))
    standard_anchors = (features[picked].astype(np.float64) - mean) / scale
    kernel = RBFFeatures(mean, scale, standard_anchors, 1.0)
    sample = np.sort(rng.choice(num_rows, size=min(num_rows, _BANDWIDTH_ROWS), replace=False))
    bandwidth = float(np.sqrt(kernel.distances_squared(features[sample], name=name)).mean())
    # All rows equal: every distance is 0 and any bandwidth gives the same constant features.
    return dataclasses.replace(kernel, bandwidth=bandwidth if bandwidth > 0 else 1.0)


@dataclasses.dataclass(frozen=True)
class KernelHashing:
    """A floor fitted on RBF features: `encode_image(x) = hashing.encode_image(image_map(x))`."""

    image_map: RBFFeatures
    text_map: RBFFeatures
    hashing: LinearHashing

    @property
    def bits(self) -> int:
        return self.hashing.bits

    def encode_image(self, image) -> np.ndarray:
        """`image` `[n, d_x]` -> `[n, k]` int8 codes in {-1, +1}."""
        return self.hashing.encode_image(self.image_map(image, name="image"))

    def encode_text(self, text) -> np.ndarray:
        """`text` `[n, d_y]` -> `[n, k]` int8 codes in {-1, +1}."""
        return self.hashing.encode_text(self.text_map(text, name="text"))


def fit_on_rbf_features(fit, image, text, *args, anchors: int, seed: int = 0, **kwargs):
    """`KernelHashing`: `fit(phi_x(image), phi_y(text), *args, seed=seed, **kwargs)` with
    `anchors` RBF anchors per view (`fit_scm`, `fit_cca_itq`, `fit_linear_floor`)."""
    image_map = fit_rbf_features(image, anchors=anchors, seed=seed, name="image")
    text_map = fit_rbf_features(text, anchors=anchors, seed=seed + 1, name="text")
    hashing = fit(
        image_map(image, name="image"), text_map(text, name="text"), *args, seed=seed, **kwargs
    )
    return KernelHashing(image_map, text_map, hashing)
