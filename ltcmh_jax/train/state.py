"""The training state: parameters, optimizer states and buffers, nested per modality.

The model lives as NNX state split into the parameter groups the paper alternates over (theta_x:
`image_net` + `image_meta`; theta_y: `text_net` + `text_meta`; theta_z: `autoencoder`) and the
rest (non-trained variables such as MetaCMH's centroid memory). An image-only run (Table 4) has
one entry in `TrainState.modalities`; nothing else about it differs.
"""

from __future__ import annotations

import dataclasses

import flax.struct
import jax
import jax.numpy as jnp
import numpy as np
import optax
from flax import nnx

from ltcmh_jax import losses, models, optimizers


@flax.struct.dataclass
class ModalityState:
    """What one modality v carries from step to step.

    Attributes:
      params: theta_v (`nnx.State` of the feature net and meta-feature module).
      opt: the optax state of theta_v's optimizer.
      features: `[n, k]` buffer of the direct features F^v of the training set.
      meta: `[n, k]` buffer of the meta features M^v (Eq. 8).
      similarity: `[c, c]` label similarity R^v (Eq. 4).
    """

    params: nnx.State
    opt: optax.OptState
    features: jax.Array
    meta: jax.Array
    similarity: jax.Array


@flax.struct.dataclass
class TrainState:
    """Everything the alternating optimisation carries (all on device).

    Attributes:
      modalities: `{"image": ModalityState, "text": ModalityState}` (image only for Table 4).
      autoencoder_params, autoencoder_opt: theta_z and its optax state (empty without one).
      rest: the model's other variables (e.g. MetaCMH's centroid memory).
      codes: `[n, k]` the unified codes B in {-1, +1} (Eq. 13).
    """

    modalities: dict[str, ModalityState]
    autoencoder_params: nnx.State
    autoencoder_opt: optax.OptState
    rest: nnx.State
    codes: jax.Array


@dataclasses.dataclass(frozen=True)
class LossWeights:
    """alpha, beta weigh J1 and J2 in Loss1 (Eq. 7); gamma, eta the quantization and balance terms
    of Loss2 (Eq. 10). The paper sets 0.05, 0.05, 1, 1. The forms of R, J1 and J2
    (`TrainConfig.label_similarity`, `j1_normalization`, `hsic_normalization`) default to the
    equations as printed here; `TrainConfig`'s defaults are the scale-free ones."""

    alpha: float = 0.05
    beta: float = 0.05
    gamma: float = 1.0
    eta: float = 1.0
    label_similarity: str = "paper"
    j1_normalization: str = "sum"
    hsic_normalization: str = "none"
    quantization: str = "dcmh"
    # `(w_similar, w_dissimilar)` of the likelihood's pairs (`losses.balanced_pair_weights` with
    # `TrainConfig.pair_weighting="balanced"`); (1, 1) is Eq. 10.
    pair_weights: tuple[float, float] = (1.0, 1.0)
    # `[c]` label weights of `TrainConfig.pair_weighting="label_rarity"`
    # (`losses.label_rarity_weights`), a tuple so the weights stay hashable; None: not used.
    label_weights: tuple[float, ...] | None = None

    @classmethod
    def from_config(cls, config, *, train_labels=None) -> LossWeights:
        """The weights and forms a `TrainConfig` sets (its fields of the same names); the pair
        or label weights from `train_labels` `[n, c]` when the config asks for balanced or
        label-rarity pairs."""
        derived = ("pair_weights", "label_weights")
        names = [field.name for field in dataclasses.fields(cls) if field.name not in derived]
        weights = cls(**{name: getattr(config, name) for name in names})
        if config.pair_weighting in ("balanced", "label_rarity") and train_labels is None:
            raise ValueError(
                f"LossWeights.from_config: --pair_weighting={config.pair_weighting} needs "
                "train_labels"
            )
        if config.pair_weighting == "balanced":
            pair_weights = losses.balanced_pair_weights(train_labels)
            weights = dataclasses.replace(weights, pair_weights=pair_weights)
        if config.pair_weighting == "label_rarity":
            label_weights = tuple(float(w) for w in losses.label_rarity_weights(train_labels))
            weights = dataclasses.replace(weights, label_weights=label_weights)
        return weights


@dataclasses.dataclass(frozen=True)
class LearningRates:
    """The optimiser of each parameter group: peak rates of theta_x, theta_y, theta_z, the
    recipe (`ltcmh_jax.optimizers`) and the run's length in epochs of `steps_per_epoch` steps."""

    image: float
    text: float
    autoencoder: float
    final: float
    epochs: int
    steps_per_epoch: int
    optimizer: str = "sgd"
    clip_norm: float = 0.0
    warmup: float = 0.0
    weight_decay: float = 0.0

    @classmethod
    def from_config(
        cls, config, *, epochs: int, steps_per_epoch: int, regulariser_scale: float = 1.0
    ) -> LearningRates:
        """A `TrainConfig`'s rates and recipe for a run of `epochs` x `steps_per_epoch` steps;
        its weight decay times `regulariser_scale` (`regulariser_scale()`)."""
        return cls(
            image=config.lr_image,
            text=config.lr_text,
            autoencoder=config.lr_autoencoder,
            final=config.lr_final,
            epochs=epochs,
            steps_per_epoch=steps_per_epoch,
            optimizer=config.optimizer,
            clip_norm=config.clip_norm,
            warmup=config.warmup,
            weight_decay=config.weight_decay * regulariser_scale,
        )


def _labels_with_a_sample(train_labels: np.ndarray) -> int:
    """The columns of `train_labels` `[n, c]` that at least one row carries."""
    return int(np.count_nonzero(np.asarray(train_labels).any(axis=0)))


def batch_label_rate(train_labels: np.ndarray, batch_size: int) -> float:
    """The expected number of samples of a label in one batch: min(B, n) * a / (n * c), with
    `train_labels` `[n, c']`, a its label assignments and c its labels that have a training
    sample (a label without one is left out). 10.6 for the synthetic set, 2.8 for the icons,
    12.8 for mfeat, 0.128 for ALOI (1,000 labels, batch 128)."""
    train_labels = np.asarray(train_labels) > 0
    rows = train_labels.shape[0]
    labels = _labels_with_a_sample(train_labels)
    if rows == 0 or labels == 0:
        return 1.0
    return min(batch_size, rows) * float(train_labels.sum()) / (rows * labels)


def regulariser_scale(
    scaling: str, *, bits: int, train_labels: np.ndarray, batch_size: int
) -> float:
    """The factor on weight decay and dropout (`TrainConfig.regulariser_scaling`).

    "batch_label_rate" (the default): min(1, `batch_label_rate`). Weight decay shrinks every
    weight at every step, while a label's samples pull on the weights only in the batches that
    hold one; where a batch holds less than one sample of a label on average, the decay erases
    between visits what the label's samples taught. Every set we report but ALOI holds 2.8 or
    more and trains exactly as with "none"; ALOI (0.128) and a 300-object ALOI with 28 samples
    per label (0.43) gain 2-3x MAP (docs/DESIGN.md, Training recipe, session 10).
    "bits_per_label": min(1, bits / labels), labels those with a training sample (session 9; it
    costs the icon set at 32 bits and the synthetic set at 16). "none": 1.

    Args:
      scaling: "batch_label_rate", "bits_per_label" or "none".
      bits: code length k.
      train_labels: the training rows' labels `[n, c]`.
      batch_size: the global batch size B.
    """
    if scaling == "none":
        return 1.0
    if scaling == "batch_label_rate":
        return min(1.0, batch_label_rate(train_labels, batch_size))
    if scaling != "bits_per_label":
        raise ValueError(f"--regulariser_scaling: unknown value {scaling!r}")
    return min(1.0, bits / max(_labels_with_a_sample(train_labels), 1))


def make_optimizers(rates: LearningRates) -> dict[str, optax.GradientTransformation]:
    """One `optimizers.make_optimizer` chain per parameter group: "image", "text",
    "autoencoder"."""
    warmup_steps = int(round(rates.warmup * rates.epochs * rates.steps_per_epoch))

    def chain(rate):
        return optimizers.make_optimizer(
            rates.optimizer,
            rate=rate,
            epochs=rates.epochs,
            steps_per_epoch=rates.steps_per_epoch,
            final_rate=rates.final,
            clip_norm=rates.clip_norm,
            warmup_steps=warmup_steps,
            weight_decay=rates.weight_decay,
        )

    return {
        "image": chain(rates.image),
        "text": chain(rates.text),
        "autoencoder": chain(rates.autoencoder),
    }


@dataclasses.dataclass(frozen=True)
class ModelParts:
    """`nnx.split` of a `HashingModel` into its parameter groups.

    Attributes:
      graphdef: the model's structure, what `merge_model` rebuilds it from.
      modalities: the modalities of the model, the order of `params`.
      params: theta_v per modality.
      autoencoder: theta_z (empty without an auto-encoder).
      rest: everything that is not a parameter.
    """

    graphdef: nnx.GraphDef
    modalities: tuple[str, ...]
    params: dict[str, nnx.State]
    autoencoder: nnx.State
    rest: nnx.State


def split_model(model: models.HashingModel) -> ModelParts:
    """The parameter groups of `model`.

    Raises:
      ValueError: when a parameter sits outside the groups, where no phase would train it.
    """
    modalities = tuple(model.config.modalities)
    filters = [models.MODALITY_PARAMS[name] for name in modalities]
    graphdef, *groups = nnx.split(model, *filters, models.AUTOENCODER_PARAMS, ...)
    *modality_params, autoencoder, rest = groups
    stray = [
        "/".join(str(part) for part in path)
        for path, _ in nnx.to_flat_state(nnx.filter_state(rest, nnx.Param))
    ]
    if stray:
        raise ValueError(
            f"model parameters outside image_net/image_meta/text_net/text_meta/autoencoder would "
            f"never be trained: {stray[:3]}"
        )
    return ModelParts(
        graphdef=graphdef,
        modalities=modalities,
        params=dict(zip(modalities, modality_params, strict=True)),
        autoencoder=autoencoder,
        rest=rest,
    )


def merge_model(
    graphdef, state: TrainState, *, params: dict | None = None, autoencoder=None, rest=None
) -> models.HashingModel:
    """The model of `state`, with modalities' `params`, theta_z or `rest` replaced."""
    merged = {name: modality.params for name, modality in state.modalities.items()}
    merged.update(params or {})
    order = [name for name in models.MODALITIES if name in merged]
    return nnx.merge(
        graphdef,
        *(merged[name] for name in order),
        state.autoencoder_params if autoencoder is None else autoencoder,
        state.rest if rest is None else rest,
    )


def initial_state(
    parts: ModelParts,
    optimizers: dict[str, optax.GradientTransformation],
    *,
    num_train: int,
    bits: int,
    num_labels: int,
) -> TrainState:
    """The parameters of `parts`, fresh optimizer states and zero buffers. Under `jax.eval_shape`
    this is the structure a checkpoint restores into, without touching a device."""
    zeros = jnp.zeros((num_train, bits), jnp.float32)
    return TrainState(
        modalities={
            name: ModalityState(
                params=params,
                opt=optimizers[name].init(params),
                features=zeros,
                meta=zeros,
                similarity=jnp.zeros((num_labels, num_labels), jnp.float32),
            )
            for name, params in parts.params.items()
        },
        autoencoder_params=parts.autoencoder,
        autoencoder_opt=optimizers["autoencoder"].init(parts.autoencoder),
        rest=parts.rest,
        codes=zeros,
    )
