"""The individuality-commonality auto-encoder of LtCMH (Eqs. 1, 2, 6) and the single-modality
commonality estimators that stand in for C* at query time (see docs/DESIGN.md, Model)."""

from typing import NamedTuple

import jax
import jax.numpy as jnp
from flax import nnx

from ltcmh_jax.models.meta import Memory, selector_scale
from ltcmh_jax.models.mlp import MLP

COMMONALITY_PATHS = ("estimator", "memory")
"""How a single modality estimates C* at query time (docs/DESIGN.md, Model): an MLP
C_hat^v = g^v(F^v), or attention over a label memory of C* (`CommonalityReader`)."""


class AEOutput(NamedTuple):
    """Everything the auto-encoder computes for a batch; parts a variant removes are None.

    All `[n, k]`: `individuality_x` P^x and `individuality_y` P^y (Eq. 1), `commonality` C*
    (Eq. 2), `commonality_estimate_x` / `_y` C_hat^x = g^x(F^x) and C_hat^y = g^y(F^y),
    `reconstruction_x` / `_y` f_de^v([C*, P^v]) (Eq. 6).
    """

    individuality_x: jax.Array | None = None
    individuality_y: jax.Array | None = None
    commonality: jax.Array | None = None
    commonality_estimate_x: jax.Array | None = None
    commonality_estimate_y: jax.Array | None = None
    reconstruction_x: jax.Array | None = None
    reconstruction_y: jax.Array | None = None


class CommonalityReader(nnx.Module):
    """C_hat^v = softmax(FC(F^v / rms(F^v))) @ centroids: a single modality's estimate of C* as
    an attention-weighted mix of the per-label means of C* (`[c, k]`, `label_centroids` of the
    training set's C*), MetaCMH's / OLTR's meta-embedding read applied to the commonality.

    A tail sample's estimate is then built from the commonality of the labels its features
    resemble, head labels included: this is how head-label knowledge can reach it. The input is
    RMS-normalised (a parameter-free norm) so a small F^y does not flatten the attention.
    `[n, bits]` -> `[n, bits]`.
    """

    def __init__(self, bits: int, num_labels: int, *, rngs: nnx.Rngs):
        self.attention = nnx.Linear(bits, num_labels, rngs=rngs)

    def __call__(self, features: jax.Array, centroids: jax.Array) -> jax.Array:
        weights = jax.nn.softmax(self.attention(selector_scale(features)), axis=-1)
        return weights @ centroids


class IndividualityCommonalityAE(nnx.Module):
    """Auto-encoder over the direct features F^x, F^y (both `[n, bits]`).

    - individuality encoders P^v = f_enI^v(F^v) (Eq. 1), when `use_individuality`;
    - commonality encoder C* = f_enC([F^x, F^y]) (Eq. 2) and estimators C_hat^v = g^v(F^v),
      trained to match C*, when `use_commonality`;
    - decoders F^v ~ f_de^v([C*, P^v]) (Eq. 6) over whichever of C*, P^v exist.
    Each part is a `bits -> hidden -> bits` MLP (the commonality encoder takes `2 * bits`).
    With `commonality_path="memory"` the estimators are `CommonalityReader`s over
    `commonality_centroids` (`[num_labels, bits]`, a `Memory` set by
    `set_commonality_centroids`, zero until then) instead of MLPs.

    With `num_modalities=1` (the image-only protocol, Table 4) only the image side exists:
    P^x = f_enI(F^x), C* = f_enC(F^x) and F^x ~ f_de([C*, P^x]). C* then reads the image alone,
    so it is its own single-modality estimate and no estimator is built.
    """

    def __init__(
        self,
        bits: int,
        hidden: int,
        *,
        use_individuality: bool = True,
        use_commonality: bool = True,
        num_modalities: int = 2,
        commonality_path: str = "estimator",
        num_labels: int = 0,
        rngs: nnx.Rngs,
    ):
        if not (use_individuality or use_commonality):
            raise ValueError(
                "IndividualityCommonalityAE needs individuality or commonality (or both)"
            )
        if num_modalities not in (1, 2):
            raise ValueError(
                f"IndividualityCommonalityAE: num_modalities 1 or 2, got {num_modalities}"
            )
        if commonality_path not in COMMONALITY_PATHS:
            raise ValueError(
                f"IndividualityCommonalityAE: commonality_path must be one of "
                f"{COMMONALITY_PATHS}, got {commonality_path!r}"
            )
        both = num_modalities == 2
        memory = commonality_path == "memory" and use_commonality and both
        if memory and num_labels < 1:
            raise ValueError(
                f"IndividualityCommonalityAE: the commonality memory needs num_labels >= 1, got "
                f"{num_labels}"
            )
        self.use_individuality = use_individuality
        self.use_commonality = use_commonality
        self.num_modalities = num_modalities

        # Parts are created in this order (x, y, C*, estimators, decoders) because the order of
        # creation fixes which random numbers each one is initialised from.
        def part(width_in: int, present: bool) -> MLP | None:
            return MLP((width_in, hidden, bits), rngs=rngs) if present else None

        self.individuality_encoder_x = part(bits, use_individuality)
        self.individuality_encoder_y = part(bits, use_individuality and both)
        self.commonality_encoder = part(num_modalities * bits, use_commonality)
        if memory:
            self.commonality_estimator_x = CommonalityReader(bits, num_labels, rngs=rngs)
            self.commonality_estimator_y = CommonalityReader(bits, num_labels, rngs=rngs)
            self.commonality_centroids = Memory(jnp.zeros((num_labels, bits), jnp.float32))
        else:
            self.commonality_estimator_x = part(bits, use_commonality and both)
            self.commonality_estimator_y = part(bits, use_commonality and both)
            self.commonality_centroids = None
        decoder_input = bits * (int(use_individuality) + int(use_commonality))
        self.decoder_x = MLP((decoder_input, hidden, bits), rngs=rngs)
        self.decoder_y = part(decoder_input, both)

    def individuality_x(self, features_x: jax.Array) -> jax.Array | None:
        """P^x = f_enI^x(F^x) (Eq. 1), `[n, bits]`; None without individuality."""
        return self.individuality_encoder_x(features_x) if self.use_individuality else None

    def individuality_y(self, features_y: jax.Array) -> jax.Array | None:
        """P^y = f_enI^y(F^y) (Eq. 1), `[n, bits]`; None without individuality."""
        return self.individuality_encoder_y(features_y) if self.use_individuality else None

    def commonality(
        self, features_x: jax.Array, features_y: jax.Array | None = None
    ) -> jax.Array | None:
        """C* = f_enC([F^x, F^y]) (Eq. 2), `[n, bits]` (f_enC(F^x) with one modality); None
        without commonality."""
        if not self.use_commonality:
            return None
        if self.num_modalities == 1:
            return self.commonality_encoder(features_x)
        return self.commonality_encoder(jnp.concatenate([features_x, features_y], axis=-1))

    def commonality_estimate_x(self, features_x: jax.Array) -> jax.Array | None:
        """C_hat^x = g^x(F^x), the image-only estimate of C*, `[n, bits]` (C* itself with one
        modality)."""
        if self.num_modalities == 1:
            return self.commonality(features_x)
        return self._estimate(self.commonality_estimator_x, features_x)

    def commonality_estimate_y(self, features_y: jax.Array) -> jax.Array | None:
        """C_hat^y = g^y(F^y), the text-only estimate of C*, `[n, bits]`."""
        return self._estimate(self.commonality_estimator_y, features_y)

    def _estimate(self, estimator, features: jax.Array) -> jax.Array | None:
        if not self.use_commonality:
            return None
        if self.commonality_centroids is None:
            return estimator(features)
        return estimator(features, self.commonality_centroids[...])

    def set_commonality_centroids(self, centroids: jax.Array) -> None:
        """Stores the per-label means of C* `[num_labels, bits]` the readers attend over."""
        if self.commonality_centroids is None:
            raise ValueError("set_commonality_centroids: this auto-encoder has no memory")
        expected = tuple(self.commonality_centroids.shape)
        if tuple(centroids.shape) != expected:
            raise ValueError(
                f"commonality centroids must have shape {expected}, got {tuple(centroids.shape)}"
            )
        self.commonality_centroids[...] = jnp.asarray(centroids, jnp.float32)

    def __call__(self, features_x: jax.Array, features_y: jax.Array | None = None) -> AEOutput:
        if self.num_modalities == 1:
            individuality_x = self.individuality_x(features_x)
            commonality = self.commonality(features_x)
            parts = [part for part in (commonality, individuality_x) if part is not None]
            return AEOutput(
                individuality_x=individuality_x,
                commonality=commonality,
                reconstruction_x=self.decoder_x(jnp.concatenate(parts, axis=-1)),
            )
        if features_y is None or features_x.shape != features_y.shape:
            raise ValueError(
                f"autoencoder expects F^x and F^y of one shape [n, k], got {features_x.shape} "
                f"and {None if features_y is None else features_y.shape}"
            )
        individuality_x = self.individuality_x(features_x)
        individuality_y = self.individuality_y(features_y)
        commonality = self.commonality(features_x, features_y)

        def decoder_input(individuality):
            parts = [part for part in (commonality, individuality) if part is not None]
            return jnp.concatenate(parts, axis=-1)

        return AEOutput(
            individuality_x=individuality_x,
            individuality_y=individuality_y,
            commonality=commonality,
            commonality_estimate_x=self.commonality_estimate_x(features_x),
            commonality_estimate_y=self.commonality_estimate_y(features_y),
            reconstruction_x=self.decoder_x(decoder_input(individuality_x)),
            reconstruction_y=self.decoder_y(decoder_input(individuality_y)),
        )
