"""The model every classical floor fits: one linear projection per modality, then the sign."""

from __future__ import annotations

import dataclasses

import numpy as np

from ltcmh_jax.classical.moments import check_features, row_chunks


@dataclasses.dataclass(frozen=True)
class LinearEncoder:
    """`h(x) = sign((x - mean) P + offset)`, with sign(0) = +1.

    No separate feature scale: any scaling of the centred input is linear and lives in `P`.

    Attributes:
      mean: `[d]` float64, the training mean that centres the input.
      projection: `[d, k]` float64.
      offset: `[k]` float64 added before the sign (zero for SCM and CCA-ITQ).
    """

    mean: np.ndarray
    projection: np.ndarray
    offset: np.ndarray

    def __post_init__(self):
        if self.mean.shape != (self.projection.shape[0],):
            raise ValueError(
                f"mean: shape {self.mean.shape} does not match projection {self.projection.shape}"
            )
        if self.offset.shape != (self.projection.shape[1],):
            raise ValueError(
                f"offset: shape {self.offset.shape} does not match projection "
                f"{self.projection.shape}"
            )

    @property
    def bits(self) -> int:
        return self.projection.shape[1]

    def scores(self, features, *, name: str = "features") -> np.ndarray:
        """Real-valued `(x - mean) P + offset`, `[n, k]` float64, in row chunks."""
        features = check_features(features, name)
        if features.shape[1] != self.mean.size:
            raise ValueError(
                f"{name}: has {features.shape[1]} feature columns but the encoder was fitted on "
                f"{self.mean.size}"
            )
        bias = self.offset - self.mean @ self.projection
        out = np.empty((features.shape[0], self.bits))
        for rows in row_chunks(*features.shape):
            out[rows] = features[rows].astype(np.float64) @ self.projection + bias
        return out

    def encode(self, features, *, name: str = "features") -> np.ndarray:
        """`[n, k]` int8 codes in {-1, +1}."""
        return np.where(self.scores(features, name=name) >= 0, 1, -1).astype(np.int8)


@dataclasses.dataclass(frozen=True)
class LinearHashing:
    """A fitted cross-modal hash: one `LinearEncoder` per modality, both with `bits` outputs."""

    image: LinearEncoder
    text: LinearEncoder

    def __post_init__(self):
        if self.image.bits != self.text.bits:
            raise ValueError(
                f"text: encoder has {self.text.bits} bits but the image encoder has "
                f"{self.image.bits}"
            )

    @property
    def bits(self) -> int:
        return self.image.bits

    def encode_image(self, image) -> np.ndarray:
        """`image` `[n, d_x]` -> `[n, k]` int8 codes in {-1, +1}."""
        return self.image.encode(image, name="image")

    def encode_text(self, text) -> np.ndarray:
        """`text` `[n, d_y]` -> `[n, k]` int8 codes in {-1, +1}."""
        return self.text.encode(text, name="text")


def linear_hashing(image_mean, image_projection, text_mean, text_projection, *, offset=None):
    """`LinearHashing` from means and projections; `offset` `[2, k]` (image, text) or zero."""
    bits = image_projection.shape[1]
    offset = np.zeros((2, bits)) if offset is None else np.asarray(offset, np.float64)
    return LinearHashing(
        image=LinearEncoder(np.asarray(image_mean, np.float64), image_projection, offset[0]),
        text=LinearEncoder(np.asarray(text_mean, np.float64), text_projection, offset[1]),
    )
