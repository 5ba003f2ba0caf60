"""The cross-modal hashing model: feature networks, auto-encoder and meta features per method.

Submodules (absent ones are None and hold no parameters):
  `image_net`, `text_net`  one per modality of `config.modalities` (F^x, F^y);
  `autoencoder`            ltcmh unless variant wo_ic (theta_z);
  `image_meta`             ltcmh (MetaFeature) unless wo_ic / wo_mi; metacmh (MemoryMetaFeature);
  `text_meta`              likewise unless wo_ic / wo_mt.
Codes are sign(M^x), sign(M^y) with M^v from `encode_image` / `encode_text`.

The image-only protocol (paper Table 4) is `modalities=("image",)`: the same model without its
text side, whose auto-encoder reads the image alone (`IndividualityCommonalityAE`).
"""

import dataclasses

import jax
from flax import nnx

from ltcmh_jax.models.autoencoder import (
    COMMONALITY_PATHS,
    AEOutput,
    IndividualityCommonalityAE,
)
from ltcmh_jax.models.image import CNNF, ImageMLP
from ltcmh_jax.models.meta import MemoryMetaFeature, MetaFeature, label_centroids
from ltcmh_jax.models.text import TextMLP

METHODS = ("ltcmh", "dcmh", "metacmh")
VARIANTS = ("full", "wo_c", "wo_i", "wo_ic", "wo_mi", "wo_mt")
IMAGE_NETS = ("mlp", "cnnf")
# The modalities a model may hold, in the order their parameters are created.
MODALITIES = ("image", "text")
MODALITY_SETS = (("image", "text"), ("image",))

# Parameter groups of the alternating optimisation, e.g. nnx.Optimizer(model, tx, wrt=IMAGE_PARAMS)
# or nnx.split(model, IMAGE_PARAMS, ...). MetaCMH's centroids are a Memory, not a Param: no group.
IMAGE_PARAMS = nnx.All(
    nnx.Param, nnx.Any(nnx.PathContains("image_net"), nnx.PathContains("image_meta"))
)
"""theta_x: the image network and the image meta-feature module."""
TEXT_PARAMS = nnx.All(
    nnx.Param, nnx.Any(nnx.PathContains("text_net"), nnx.PathContains("text_meta"))
)
"""theta_y: the text network and the text meta-feature module."""
AUTOENCODER_PARAMS = nnx.All(nnx.Param, nnx.PathContains("autoencoder"))
"""theta_z: the individuality-commonality auto-encoder (with the commonality estimators)."""
MODALITY_PARAMS = {"image": IMAGE_PARAMS, "text": TEXT_PARAMS}
"""The parameter group each modality's hashing phase trains."""


@dataclasses.dataclass(frozen=True)
class ModelConfig:
    """What to build. `image_dim` is unused by `image_net="cnnf"` (raw 3x224x224 images)."""

    method: str = "ltcmh"
    variant: str = "full"
    bits: int = 64
    image_net: str = "mlp"
    image_dim: int = 4096
    image_hidden: tuple[int, ...] = ()
    text_dim: int = 1386
    text_hidden: int = 8192
    ae_hidden: int = 256
    num_labels: int = 0
    # ("image",): the single-modality protocol (Table 4), image -> image retrieval.
    modalities: tuple[str, ...] = ("image", "text")
    # Eq. 8's selectors read F^v / rms(F^v) instead of F^v (`MetaFeature`).
    normalize_selector_input: bool = False
    # LtCMH's query-time estimate of C*: "estimator" (an MLP per modality) or "memory"
    # (attention over per-label means of C*; `CommonalityReader`).
    commonality_path: str = "estimator"

    def __post_init__(self):
        object.__setattr__(self, "image_hidden", tuple(int(h) for h in self.image_hidden))
        object.__setattr__(self, "modalities", tuple(self.modalities))
        for field, choices in (
            ("method", METHODS),
            ("variant", VARIANTS),
            ("image_net", IMAGE_NETS),
            ("modalities", MODALITY_SETS),
            ("commonality_path", COMMONALITY_PATHS),
        ):
            if getattr(self, field) not in choices:
                raise ValueError(
                    f"ModelConfig.{field} must be one of {choices}, got {getattr(self, field)!r}"
                )
        if self.method != "ltcmh" and self.variant != "full":
            raise ValueError(
                f"ModelConfig.variant {self.variant!r} is an LtCMH ablation; method "
                f"{self.method!r} needs variant 'full'"
            )
        if self.variant in ("wo_mi", "wo_mt") and len(self.modalities) == 1:
            raise ValueError(
                f"ModelConfig.variant {self.variant!r} removes one modality's meta features; "
                f"modalities {self.modalities} have one"
            )
        for field in ("bits", "image_dim", "text_dim", "text_hidden", "ae_hidden"):
            if int(getattr(self, field)) < 1:
                raise ValueError(
                    f"ModelConfig.{field} must be positive, got {getattr(self, field)}"
                )
        if any(h < 1 for h in self.image_hidden):
            raise ValueError(f"ModelConfig.image_hidden must be positive, got {self.image_hidden}")
        if self.has_commonality_memory and self.num_labels < 1:
            raise ValueError(
                "ModelConfig.num_labels must be positive for the commonality memory, got "
                f"{self.num_labels}"
            )
        if self.method == "metacmh" and self.num_labels < 1:
            raise ValueError(
                "ModelConfig.num_labels must be positive for metacmh's label memory, got "
                f"{self.num_labels}"
            )

    @property
    def uses_commonality(self) -> bool:
        return self.method == "ltcmh" and self.variant not in ("wo_c", "wo_ic")

    @property
    def has_commonality_memory(self) -> bool:
        """LtCMH with a commonality, two modalities and `commonality_path="memory"`."""
        return (
            self.commonality_path == "memory"
            and self.uses_commonality
            and len(self.modalities) == 2
        )

    @property
    def uses_individuality(self) -> bool:
        return self.method == "ltcmh" and self.variant not in ("wo_i", "wo_ic")


class HashingModel(nnx.Module):
    """LtCMH, DCMH or MetaCMH, chosen by `config.method` (and LtCMH's ablation by `variant`)."""

    def __init__(self, config: ModelConfig, *, rngs: nnx.Rngs):
        self.config = config
        bits = config.bits
        if config.image_net == "cnnf":
            self.image_net = CNNF(bits, rngs=rngs)
        else:
            self.image_net = ImageMLP(config.image_dim, config.image_hidden, bits, rngs=rngs)
        has_text = "text" in config.modalities
        # Created in this order (image net, text net, auto-encoder, meta features), which fixes
        # the random numbers each is initialised from.
        self.text_net = (
            TextMLP(config.text_dim, config.text_hidden, bits, rngs=rngs) if has_text else None
        )
        autoencoder = image_meta = text_meta = None
        if config.method == "ltcmh" and config.variant != "wo_ic":
            use = dict(
                use_commonality=config.uses_commonality,
                use_individuality=config.uses_individuality,
            )
            autoencoder = IndividualityCommonalityAE(
                bits,
                config.ae_hidden,
                num_modalities=len(config.modalities),
                commonality_path=config.commonality_path,
                num_labels=config.num_labels,
                **use,
                rngs=rngs,
            )
            if config.variant != "wo_mi":
                image_meta = MetaFeature(
                    bits,
                    **use,
                    normalize_selector_input=config.normalize_selector_input,
                    rngs=rngs,
                )
            if config.variant != "wo_mt" and has_text:
                text_meta = MetaFeature(
                    bits,
                    **use,
                    normalize_selector_input=config.normalize_selector_input,
                    rngs=rngs,
                )
        elif config.method == "metacmh":
            image_meta = MemoryMetaFeature(bits, config.num_labels, rngs=rngs)
            if has_text:
                text_meta = MemoryMetaFeature(bits, config.num_labels, rngs=rngs)
        # NNX fixes an attribute as data or static on first assignment, so assign each once.
        self.autoencoder = autoencoder
        self.image_meta = image_meta
        self.text_meta = text_meta

    def image_features(
        self, images: jax.Array, *, dropout_rate: float = 0.0, dropout_key: jax.Array | None = None
    ) -> jax.Array:
        """F^x `[n, bits]` from images (`[n, image_dim]` features or `[n, 3, 224, 224]` raw).

        With a `dropout_key`: a training pass, `models.dropout` at `dropout_rate` on the net's
        hidden layers (`TrainConfig.dropout`); without one, the evaluation pass."""
        return self.image_net(images, dropout_rate=dropout_rate, dropout_key=dropout_key)

    def text_features(
        self, text: jax.Array, *, dropout_rate: float = 0.0, dropout_key: jax.Array | None = None
    ) -> jax.Array:
        """F^y `[n, bits]` from bag-of-words text `[n, text_dim]` (dropout as above)."""
        return self.text_net(text, dropout_rate=dropout_rate, dropout_key=dropout_key)

    def text_features_sparse(
        self,
        indices: jax.Array,
        values: jax.Array,
        *,
        dropout_rate: float = 0.0,
        dropout_key: jax.Array | None = None,
    ) -> jax.Array:
        """F^y from `sparse_bag` output (`[n, nnz]` each): same numbers as `text_features`."""
        return self.text_net.sparse(
            indices, values, dropout_rate=dropout_rate, dropout_key=dropout_key
        )

    def autoencode(self, features_x: jax.Array, features_y: jax.Array | None = None) -> AEOutput:
        """The auto-encoder's P^x, P^y, C*, C_hat^x, C_hat^y and reconstructions (Eqs. 1, 2, 6);
        all None for a model without one (dcmh, metacmh, wo_ic). `features_y` is None for an
        image-only model."""
        if self.autoencoder is None:
            return AEOutput()
        return self.autoencoder(features_x, features_y)

    def meta_image(self, features_x: jax.Array) -> jax.Array:
        """M^x `[n, bits]` from F^x alone (Eq. 8 with P^x and C_hat^x; identity without meta)."""
        if self.image_meta is None:
            return features_x
        if isinstance(self.image_meta, MemoryMetaFeature):
            return self.image_meta(features_x)
        return self.image_meta(
            features_x,
            commonality=self.autoencoder.commonality_estimate_x(features_x),
            individuality=self.autoencoder.individuality_x(features_x),
        )

    def meta_text(self, features_y: jax.Array) -> jax.Array:
        """M^y `[n, bits]` from F^y alone (Eq. 8 with P^y and C_hat^y; identity without meta)."""
        if self.text_meta is None:
            return features_y
        if isinstance(self.text_meta, MemoryMetaFeature):
            return self.text_meta(features_y)
        return self.text_meta(
            features_y,
            commonality=self.autoencoder.commonality_estimate_y(features_y),
            individuality=self.autoencoder.individuality_y(features_y),
        )

    def encode_image(self, images: jax.Array) -> jax.Array:
        """M^x for a batch of images; the image hash codes are sign(M^x)."""
        return self.meta_image(self.image_features(images))

    def encode_text(self, text: jax.Array) -> jax.Array:
        """M^y for a batch of bag-of-words text; the text hash codes are sign(M^y)."""
        return self.meta_text(self.text_features(text))

    def encode_text_sparse(self, indices: jax.Array, values: jax.Array) -> jax.Array:
        """`encode_text` on `sparse_bag` output."""
        return self.meta_text(self.text_features_sparse(indices, values))

    def set_centroids(self, *centroids: jax.Array) -> None:
        """Stores MetaCMH's label centroids `[num_labels, bits]`, one array per modality of
        `config.modalities` (see `label_centroids`); only a metacmh model has a memory."""
        if not isinstance(self.image_meta, MemoryMetaFeature):
            raise ValueError(f"set_centroids: method {self.config.method!r} has no label memory")
        if len(centroids) != len(self.config.modalities):
            raise ValueError(
                f"set_centroids: one array per modality {self.config.modalities}, got "
                f"{len(centroids)}"
            )
        for modality, centroid in zip(self.config.modalities, centroids, strict=True):
            getattr(self, f"{modality}_meta").set_centroids(centroid)

    @property
    def has_label_memory(self) -> bool:
        """Whether `refresh_label_memories` has anything to refresh (metacmh; ltcmh with
        `commonality_path="memory"`)."""
        return isinstance(self.image_meta, MemoryMetaFeature) or self.config.has_commonality_memory

    def refresh_label_memories(self, features: dict, labels: jax.Array) -> None:
        """Sets every label memory the model holds to per-label means over the training set.

        `features` maps each modality of `config.modalities` to its buffered F^v `[n, bits]`,
        `labels` is `[n, c]` multi-hot. MetaCMH's memories hold the means of F^v; LtCMH's
        commonality memory the means of C* computed from F^x, F^y. A label with no sample keeps
        a zero centroid (`label_centroids`); a model without a memory is left as it is.
        """
        if self.config.has_commonality_memory:
            commonality = self.autoencoder.commonality(features["image"], features["text"])
            self.autoencoder.set_commonality_centroids(label_centroids(commonality, labels))
        if isinstance(self.image_meta, MemoryMetaFeature):
            self.set_centroids(
                *(label_centroids(features[name], labels) for name in self.config.modalities)
            )


def build_model(config: ModelConfig, *, rngs: nnx.Rngs) -> HashingModel:
    """The model `config` describes, initialised deterministically from `rngs`."""
    if not isinstance(config, ModelConfig):
        raise ValueError(f"build_model expects a ModelConfig, got {type(config).__name__}")
    return HashingModel(config, rngs=rngs)
