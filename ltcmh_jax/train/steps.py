"""The pure updates of LtCMH's alternating optimisation.

Every update takes a `TrainState` (and a batch) and returns a new `TrainState` (and its loss
terms); `nnx.merge` rebuilds the model inside the trace, so a step is a plain function that
`jax.jit` and `jax.lax.scan` can take (`ltcmh_jax.train.compile`). With one modality (Table 4) the
same steps run: the likelihood pairs the image's M^x with its own buffer, Loss1 keeps J1 (against
R^x alone) and J3, and B = sign(M^x).

A batch is a dict of rows of the training set:
  "indices": `[b]` int32 rows into the training set (and its buffers),
  "labels": `[b, c]` float32,
  "image": `[b, d_x]` features or `[b, 3, 224, 224]` images (image phase only),
  "text": `[b, d_t]`, or "text_indices" / "text_values": `[b, nnz]` from `models.sparse_bag`
          (text phase only).
"""

from __future__ import annotations

from collections.abc import Callable

import jax
import jax.numpy as jnp
import optax
from flax import nnx

from ltcmh_jax import losses, models
from ltcmh_jax.train.state import LossWeights, TrainState, merge_model

BATCH_FIELDS = {
    "autoencoder": ("indices", "labels"),
    "image": ("indices", "labels", "image"),
    "text": ("indices", "labels", "text", "text_indices", "text_values"),
}


def non_parameters(model: nnx.Module) -> nnx.State:
    """The variables a forward pass may advance besides parameters (RNG counters, memories)."""
    return nnx.state(model, nnx.Not(nnx.Param))


def modality_features(model, modality: str, batch: dict, **dropout) -> jax.Array:
    """F^v `[b, k]` of a batch: images, or text from its dense bag or its `sparse_bag` form.

    `dropout`: `dropout_rate=`, `dropout_key=` for a training pass (`HashingModel.image_features`).
    """
    if modality == "image":
        return model.image_features(batch["image"], **dropout)
    if "text_indices" in batch:
        return model.text_features_sparse(batch["text_indices"], batch["text_values"], **dropout)
    return model.text_features(batch["text"], **dropout)


def dropout_key(seed: int, modality: str, opt_state: optax.OptState) -> jax.Array:
    """The dropout key of theta_v's next step: a function of the run's seed, the modality and the
    step count in the optimizer's state, so a resumed run draws the masks the uninterrupted one
    would have drawn."""
    count = optax.tree_utils.tree_get_all_with_path(opt_state, "count")[0][1]
    key = jax.random.fold_in(jax.random.key(seed), models.MODALITIES.index(modality))
    return jax.random.fold_in(key, count)


def modality_meta(model, modality: str, features: jax.Array) -> jax.Array:
    """M^v `[b, k]` from F^v alone (Eq. 8)."""
    return model.meta_image(features) if modality == "image" else model.meta_text(features)


def _not_in_batch(indices: jax.Array, num_rows: int) -> jax.Array:
    # A mask rather than total - batch sum: padding may repeat a row, which must not count twice.
    return jnp.ones((num_rows,), jnp.float32).at[indices].set(0.0)


def _loss1(model, state: TrainState, batch: dict, weights: LossWeights):
    """Loss1 (Eq. 7) of a batch and its terms, from the buffered F^v of the batch rows."""
    indices = batch["indices"]
    image = state.modalities["image"]
    features_x = image.features[indices]
    if "text" not in state.modalities:
        # One modality: no HSIC (J2 needs two) and no estimator matching (J4: C* reads F^x).
        out = model.autoencode(features_x)
        terms = {"j3_reconstruction": losses.reconstruction_loss(features_x, out.reconstruction_x)}
        total = terms["j3_reconstruction"]
        if out.commonality is not None:
            terms["j1_commonality"] = losses.commonality_regularizer(
                out.commonality,
                batch["labels"],
                image.similarity,
                jnp.zeros_like(image.similarity),
                normalization=weights.j1_normalization,
            )
            total = total + weights.alpha * terms["j1_commonality"]
        terms["total"] = total
        return total, terms
    text = state.modalities["text"]
    features_y = text.features[indices]
    out = model.autoencode(features_x, features_y)
    estimates = tuple(
        estimate
        for estimate in (out.commonality_estimate_x, out.commonality_estimate_y)
        if estimate is not None
    )
    total, terms = losses.autoencoder_loss(
        features_x=features_x,
        features_y=features_y,
        reconstruction_x=out.reconstruction_x,
        reconstruction_y=out.reconstruction_y,
        labels=batch["labels"],
        r_x=image.similarity,
        r_y=text.similarity,
        commonality=out.commonality,
        individuality_x=out.individuality_x,
        individuality_y=out.individuality_y,
        commonality_estimates=estimates,
        alpha=weights.alpha,
        beta=weights.beta,
        j1_normalization=weights.j1_normalization,
        hsic_normalization=weights.hsic_normalization,
    )
    # A term the variant removes is not logged at all (a logged 0 would read as converged).
    removed = set()
    if out.commonality is None:
        removed |= {"j1_commonality", "j4_match"}
    if out.individuality_x is None:
        removed.add("j2_hsic")
    return total, {name: value for name, value in terms.items() if name not in removed}


def autoencoder_step(
    state: TrainState,
    batch: dict,
    train_labels: jax.Array,
    *,
    graphdef,
    optimizer: optax.GradientTransformation,
    weights: LossWeights,
):
    """One SGD step on Loss1 (Eq. 7) for theta_z, from the buffered F^x, F^y of the batch rows.

    Returns:
      `(state, terms)` with the terms of `losses.autoencoder_loss`, less those of a part the
      variant removes (wo_c: j1_commonality, j4_match; wo_i: j2_hsic); with one modality
      "j3_reconstruction", "j1_commonality" (when the model has C*) and "total".
    """
    del train_labels

    def loss_fn(params_z):
        model = merge_model(graphdef, state, autoencoder=params_z)
        total, terms = _loss1(model, state, batch, weights)
        return total, (terms, non_parameters(model))

    grads, (terms, rest) = jax.grad(loss_fn, has_aux=True)(state.autoencoder_params)
    updates, opt = optimizer.update(grads, state.autoencoder_opt, state.autoencoder_params)
    params = optax.apply_updates(state.autoencoder_params, updates)
    return state.replace(autoencoder_params=params, autoencoder_opt=opt, rest=rest), terms


def hash_step(
    state: TrainState,
    batch: dict,
    train_labels: jax.Array,
    *,
    modality: str,
    graphdef,
    optimizer: optax.GradientTransformation,
    weights: LossWeights,
    likelihood_block: int | None = None,
    compute_dtype=jnp.float32,
    dropout_rate: float = 0.0,
    dropout_seed: int = 0,
):
    """One SGD step on Loss2 (Eq. 10) for theta_v of `modality`, with the other modality's M
    buffer and B fixed; writes the batch's F^v and M^v into the buffers. With one modality
    (Table 4) the likelihood runs against the modality's own M buffer. With `dropout_rate` > 0
    the feature net's hidden layers drop units (`models.dropout`, key `dropout_key`), and the
    buffers receive that training pass's F^v and M^v, as DCMH writes its training forward pass.

    As DCMH does, the batch's likelihood runs against the whole buffer of the other modality, the
    balance term adds the (constant) column sum of the buffer rows outside the batch, and the loss
    is divided by `b * n`. The likelihood is the fused one (`losses.blocked_dcmh_likelihood`,
    `likelihood_block` buffer rows at a time, its products' inputs in `compute_dtype`).
    """
    indices = batch["indices"]
    own = state.modalities[modality]
    others = [name for name in state.modalities if name != modality]
    other_meta = state.modalities[others[0]].meta if others else own.meta
    balance_offset = _not_in_batch(indices, own.meta.shape[0]) @ own.meta
    codes_batch = state.codes[indices]
    label_weights = None if weights.label_weights is None else jnp.asarray(weights.label_weights)
    dropout = {}
    if dropout_rate > 0:
        dropout = dict(
            dropout_rate=dropout_rate, dropout_key=dropout_key(dropout_seed, modality, own.opt)
        )

    def loss_fn(params):
        model = merge_model(graphdef, state, params={modality: params})
        features = modality_features(model, modality, batch, **dropout)
        meta = modality_meta(model, modality, features)
        total, terms = losses.hash_loss(
            meta,
            other_meta,
            None,
            codes_batch,
            gamma=weights.gamma,
            eta=weights.eta,
            balance_offset=balance_offset,
            quantization_per_entry=weights.quantization == "per_entry",
            labels=(batch["labels"], train_labels),
            block_size=likelihood_block,
            compute_dtype=compute_dtype,
            pair_weights=weights.pair_weights,
            label_weights=label_weights,
        )
        return total, (terms, features, meta, non_parameters(model))

    grads, (terms, features, meta, rest) = jax.grad(loss_fn, has_aux=True)(own.params)
    updates, opt = optimizer.update(grads, own.opt, own.params)
    updated = own.replace(
        params=optax.apply_updates(own.params, updates),
        opt=opt,
        features=own.features.at[indices].set(jax.lax.stop_gradient(features)),
        meta=own.meta.at[indices].set(jax.lax.stop_gradient(meta)),
    )
    return state.replace(modalities={**state.modalities, modality: updated}, rest=rest), terms


def sign_codes(values: jax.Array) -> jax.Array:
    """`sign` with sign(0) = +1, so every bit is in {-1, +1} (a 0 would match both halves)."""
    return jnp.where(values >= 0, 1.0, -1.0).astype(jnp.float32)


def update_codes(state: TrainState) -> TrainState:
    """B = sign(M^x + M^y) (Eq. 13; sign(M^x) with one modality), the maximiser of
    tr(B (M^x + M^y)^T) over {-1, +1}."""
    metas = [state.modalities[name].meta for name in models.MODALITIES if name in state.modalities]
    total = metas[0]
    for meta in metas[1:]:
        total = total + meta
    return state.replace(codes=sign_codes(total))


def update_label_similarity(
    state: TrainState, train_labels: jax.Array, *, block_size: int = 1024, scale: str = "paper"
) -> TrainState:
    """R^v (Eq. 4) of each modality from the average Hausdorff distances of its F^v buffer."""
    modalities = {
        name: modality.replace(
            similarity=losses.label_similarity(
                losses.average_hausdorff(modality.features, train_labels, block_size=block_size),
                scale=scale,
            )
        )
        for name, modality in state.modalities.items()
    }
    return state.replace(modalities=modalities)


def update_centroids(state: TrainState, train_labels: jax.Array, *, graphdef) -> TrainState:
    """The model's label memories become per-label means over the training set's buffered
    features (`HashingModel.refresh_label_memories`: MetaCMH's of F^v, LtCMH's commonality memory
    of C*)."""
    model = merge_model(graphdef, state)
    model.refresh_label_memories(
        {name: modality.features for name, modality in state.modalities.items()}, train_labels
    )
    return state.replace(rest=non_parameters(model))


def forward(state: TrainState, batch: dict, *, graphdef, modality: str):
    """`(F^v, M^v)` of a batch of one modality alone, both `[b, k]`."""
    model = merge_model(graphdef, state)
    features = modality_features(model, modality, batch)
    return features, modality_meta(model, modality, features)


def gather_batch(data: dict, indices: jax.Array, fields) -> dict:
    """Rows `indices` of the training arrays in `data` that a phase needs (`fields`)."""
    batch = {"indices": indices}
    for name in fields:
        if name != "indices" and name in data:
            batch[name] = data[name][indices]
    return batch


def scan_phase(step: Callable, fields, batch_sharding=None) -> Callable:
    """`run(state, data, batch_indices [steps, b]) -> (state, terms [steps])`: one phase of an
    epoch as a single `lax.scan` whose body is `step`.

    One call per phase instead of one per step removes the per-step dispatch and lets XLA reuse
    the step's temporaries across iterations.
    """

    def run(state, data, batch_indices):
        def body(state, indices):
            batch = gather_batch(data, indices, fields)
            if batch_sharding is not None:
                batch = jax.lax.with_sharding_constraint(batch, batch_sharding)
            return step(state, batch, data["labels"])

        return jax.lax.scan(body, state, batch_indices)

    return run
