"""The single-modality protocol (paper Table 4): hashing models over the image modality alone.

LtCMH without a second modality (docs/DESIGN.md, Baselines): individuality P^x = f_enI(F^x) and
commonality C* = f_enC(F^x) both from the image, a decoder F^x ~ f_de([C*, P^x]), and
M^x = F^x + tanh(FC1(F^x)) * C* + tanh(FC2(F^x)) * P^x (Eq. 8 with one modality). DCMH and MetaCMH
keep their image side (M^x = F^x, resp. the label-memory feature). Submodule names match the
cross-modal model's, so `IMAGE_PARAMS` / `AUTOENCODER_PARAMS` select theta_x and theta_z.
"""

import jax
import jax.numpy as jnp
from flax import nnx

from ltcmh_jax.models.autoencoder import AEOutput
from ltcmh_jax.models.image import CNNF, ImageMLP
from ltcmh_jax.models.meta import MemoryMetaFeature, MetaFeature
from ltcmh_jax.models.mlp import MLP

SINGLE_MODALITY_VARIANTS = ("full", "wo_c", "wo_i", "wo_ic")


class ImageAutoencoder(nnx.Module):
    """Individuality-commonality auto-encoder of one modality, all parts `bits -> hidden -> bits`.

    P^x = f_enI(F^x), C* = f_enC(F^x), F^x ~ f_de([C*, P^x]); a part the variant removes is None.
    """

    def __init__(
        self,
        bits: int,
        hidden: int,
        *,
        use_individuality: bool = True,
        use_commonality: bool = True,
        rngs: nnx.Rngs,
    ):
        if not (use_individuality or use_commonality):
            raise ValueError("ImageAutoencoder needs individuality or commonality (or both)")
        self.individuality_encoder_x = (
            MLP((bits, hidden, bits), rngs=rngs) if use_individuality else None
        )
        self.commonality_encoder = MLP((bits, hidden, bits), rngs=rngs) if use_commonality else None
        decoder_input = bits * (int(use_individuality) + int(use_commonality))
        self.decoder_x = MLP((decoder_input, hidden, bits), rngs=rngs)

    def individuality_x(self, features_x: jax.Array) -> jax.Array | None:
        """P^x `[n, bits]`; None without individuality."""
        encoder = self.individuality_encoder_x
        return encoder(features_x) if encoder is not None else None

    def commonality(self, features_x: jax.Array) -> jax.Array | None:
        """C* `[n, bits]` from the image alone; None without commonality."""
        encoder = self.commonality_encoder
        return encoder(features_x) if encoder is not None else None

    def __call__(self, features_x: jax.Array) -> AEOutput:
        individuality = self.individuality_x(features_x)
        commonality = self.commonality(features_x)
        parts = [part for part in (commonality, individuality) if part is not None]
        return AEOutput(
            individuality_x=individuality,
            commonality=commonality,
            reconstruction_x=self.decoder_x(jnp.concatenate(parts, axis=-1)),
        )


class ImageOnlyHashingModel(nnx.Module):
    """`image_net`, and per method: ltcmh `autoencoder` + `image_meta` (MetaFeature, unless
    wo_ic), metacmh `image_meta` (MemoryMetaFeature), dcmh nothing more. Codes are sign(M^x)."""

    def __init__(self, config, *, rngs: nnx.Rngs):
        if config.variant not in SINGLE_MODALITY_VARIANTS:
            raise ValueError(
                f"ModelConfig.variant {config.variant!r} removes a modality's meta features; "
                f"with modality 'image' use one of {SINGLE_MODALITY_VARIANTS}"
            )
        self.config = config
        bits = config.bits
        if config.image_net == "cnnf":
            self.image_net = CNNF(bits, rngs=rngs)
        else:
            self.image_net = ImageMLP(config.image_dim, config.image_hidden, bits, rngs=rngs)
        autoencoder = image_meta = None
        if config.method == "ltcmh" and config.variant != "wo_ic":
            use = dict(
                use_commonality=config.uses_commonality,
                use_individuality=config.uses_individuality,
            )
            autoencoder = ImageAutoencoder(bits, config.ae_hidden, **use, rngs=rngs)
            image_meta = MetaFeature(bits, **use, rngs=rngs)
        elif config.method == "metacmh":
            image_meta = MemoryMetaFeature(bits, config.num_labels, rngs=rngs)
        self.autoencoder = autoencoder
        self.image_meta = image_meta

    def image_features(self, images: jax.Array) -> jax.Array:
        """F^x `[n, bits]`."""
        return self.image_net(images)

    def autoencode_image(self, features_x: jax.Array) -> AEOutput:
        """P^x, C*, reconstruction of F^x; an empty AEOutput without an auto-encoder."""
        if self.autoencoder is None:
            return AEOutput()
        return self.autoencoder(features_x)

    def meta_image(self, features_x: jax.Array) -> jax.Array:
        """M^x `[n, bits]` (Eq. 8 with C* and P^x of the image; identity without meta)."""
        if self.image_meta is None:
            return features_x
        if isinstance(self.image_meta, MemoryMetaFeature):
            return self.image_meta(features_x)
        return self.image_meta(
            features_x,
            commonality=self.autoencoder.commonality(features_x),
            individuality=self.autoencoder.individuality_x(features_x),
        )

    def encode_image(self, images: jax.Array) -> jax.Array:
        """M^x of a batch of images; the codes are sign(M^x)."""
        return self.meta_image(self.image_features(images))

    def set_centroids(self, centroids_x: jax.Array) -> None:
        """MetaCMH's image label centroids `[num_labels, bits]`."""
        if not isinstance(self.image_meta, MemoryMetaFeature):
            raise ValueError(f"set_centroids: method {self.config.method!r} has no label memory")
        self.image_meta.set_centroids(centroids_x)
