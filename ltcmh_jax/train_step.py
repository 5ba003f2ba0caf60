"""The pure updates of LtCMH's alternating optimisation, and their jitted, sharded forms.

The model lives as NNX state split into the three parameter groups the paper alternates over
(theta_x: `image_net` + `image_meta`; theta_y: `text_net` + `text_meta`; theta_z: `autoencoder`)
and the rest (non-trained variables such as MetaCMH's centroid memory). Every update takes a
`TrainState` and a batch and returns a new `TrainState` and its loss terms; `nnx.merge` rebuilds
the model inside the trace, so the step is a plain function that `jax.jit` and `jax.lax.scan`
can take.

A batch is a dict of rows of the training set:
  "indices": `[b]` int32 rows into the training set (and its buffers),
  "labels": `[b, c]` float32,
  "image": `[b, d_x]` features or `[b, 3, 224, 224]` images (image phase only),
  "text": `[b, d_t]`, or "text_indices" / "text_values": `[b, nnz]` from `models.sparse_bag`
          (text phase only).
"""

from __future__ import annotations

import dataclasses
import functools
from collections.abc import Callable

import flax.struct
import jax
import jax.numpy as jnp
import optax
from flax import nnx

from ltcmh_jax import losses
from ltcmh_jax import sharding as sharding_lib
from ltcmh_jax.models import AUTOENCODER_PARAMS, IMAGE_PARAMS, TEXT_PARAMS, label_centroids

BATCH_FIELDS = {
    "autoencoder": ("indices", "labels"),
    "image": ("indices", "labels", "image"),
    "text": ("indices", "labels", "text", "text_indices", "text_values"),
}


@flax.struct.dataclass
class TrainState:
    """Everything the alternating optimisation carries from step to step (all on device).

    Attributes:
      params_x, params_y, params_z: theta_x, theta_y, theta_z as `nnx.State`.
      rest: the model's other variables (e.g. MetaCMH's centroid memory).
      opt_x, opt_y, opt_z: optax states of the three SGD optimizers.
      features_x, features_y: `[n, k]` buffers of the direct features F^x, F^y of the training set.
      meta_x, meta_y: `[n, k]` buffers of the meta features M^x, M^y (Eq. 8).
      codes: `[n, k]` the unified codes B in {-1, +1} (Eq. 13).
      similarity_x, similarity_y: `[c, c]` label similarities R^x, R^y (Eq. 4).
      key: PRNG key; a step's key is `fold_in(key, step)`.
    """

    params_x: nnx.State
    params_y: nnx.State
    params_z: nnx.State
    rest: nnx.State
    opt_x: optax.OptState
    opt_y: optax.OptState
    opt_z: optax.OptState
    features_x: jax.Array
    features_y: jax.Array
    meta_x: jax.Array
    meta_y: jax.Array
    codes: jax.Array
    similarity_x: jax.Array
    similarity_y: jax.Array
    key: jax.Array


@dataclasses.dataclass(frozen=True)
class LossWeights:
    """alpha, beta weigh J1 and J2 in Loss1 (Eq. 7); gamma, eta the quantization and balance terms
    of Loss2 (Eq. 10). The paper sets 0.05, 0.05, 1, 1."""

    alpha: float = 0.05
    beta: float = 0.05
    gamma: float = 1.0
    eta: float = 1.0


@dataclasses.dataclass(frozen=True)
class Optimizers:
    """The three optax transformations of theta_x, theta_y and theta_z."""

    image: optax.GradientTransformation
    text: optax.GradientTransformation
    autoencoder: optax.GradientTransformation


def epoch_linear_decay(
    initial: float, final: float, *, epochs: int, steps_per_epoch: int
) -> optax.Schedule:
    """DCMH's schedule: constant within an epoch, linear from `initial` (first epoch) to `final`
    (last epoch), i.e. `np.linspace(initial, final, epochs)[epoch]` with epoch = count // steps."""
    last = max(epochs - 1, 1)

    def schedule(count):
        fraction = jnp.minimum(count // steps_per_epoch, epochs - 1) / last
        # Written as a blend so the last epoch gets exactly `final` in float32.
        return initial * (1 - fraction) + final * fraction

    return schedule


@dataclasses.dataclass(frozen=True)
class LearningRates:
    """SGD rates of theta_x, theta_y, theta_z (paper: 10^-1.5, 10^-1.5, 10^-2), each decaying
    linearly per epoch to `final` over `epochs` epochs of `steps_per_epoch` steps."""

    image: float
    text: float
    autoencoder: float
    final: float
    epochs: int
    steps_per_epoch: int


def make_optimizers(rates: LearningRates) -> Optimizers:
    """Plain SGD per parameter group with `epoch_linear_decay`."""

    def sgd(rate):
        return optax.sgd(
            epoch_linear_decay(
                rate, rates.final, epochs=rates.epochs, steps_per_epoch=rates.steps_per_epoch
            )
        )

    return Optimizers(sgd(rates.image), sgd(rates.text), sgd(rates.autoencoder))


def split_model(model: nnx.Module):
    """`(graphdef, params_x, params_y, params_z, rest)` of a `HashingModel`.

    Raises:
      ValueError: when a parameter sits outside the three groups, where no phase would train it.
    """
    graphdef, params_x, params_y, params_z, rest = nnx.split(
        model, IMAGE_PARAMS, TEXT_PARAMS, AUTOENCODER_PARAMS, ...
    )
    stray = [
        "/".join(str(part) for part in path)
        for path, _ in nnx.to_flat_state(nnx.filter_state(rest, nnx.Param))
    ]
    if stray:
        raise ValueError(
            f"model parameters outside image_net/image_meta/text_net/text_meta/autoencoder would "
            f"never be trained: {stray[:3]}"
        )
    return graphdef, params_x, params_y, params_z, rest


def merge_model(graphdef, state: TrainState, **replace) -> nnx.Module:
    """The model of `state`, with any of params_x/params_y/params_z/rest replaced by keyword."""
    parts = {
        "params_x": state.params_x,
        "params_y": state.params_y,
        "params_z": state.params_z,
        "rest": state.rest,
    }
    parts.update(replace)
    return nnx.merge(
        graphdef, parts["params_x"], parts["params_y"], parts["params_z"], parts["rest"]
    )


def _rest_after(model: nnx.Module) -> nnx.State:
    # Non-parameter variables a forward pass may advance (RNG counters of a dropout stream).
    return nnx.state(model, nnx.Not(nnx.Param))


def text_features(model: nnx.Module, batch: dict) -> jax.Array:
    """F^y of a batch from its dense bag of words or its `sparse_bag` form."""
    if "text_indices" in batch:
        return model.text_features_sparse(batch["text_indices"], batch["text_values"])
    return model.text_features(batch["text"])


def _not_in_batch(indices: jax.Array, num_rows: int) -> jax.Array:
    # A mask rather than total - batch sum: padding may repeat a row, which must not count twice.
    return jnp.ones((num_rows,), jnp.float32).at[indices].set(0.0)


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
      variant removes (wo_c: j1_commonality, j4_match; wo_i: j2_hsic).
    """
    del train_labels
    features_x = state.features_x[batch["indices"]]
    features_y = state.features_y[batch["indices"]]

    def loss_fn(params_z):
        model = merge_model(graphdef, state, params_z=params_z)
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
            r_x=state.similarity_x,
            r_y=state.similarity_y,
            commonality=out.commonality,
            individuality_x=out.individuality_x,
            individuality_y=out.individuality_y,
            commonality_estimates=estimates,
            alpha=weights.alpha,
            beta=weights.beta,
        )
        # A term the variant removes is not logged at all (a logged 0 would read as converged).
        removed = set()
        if out.commonality is None:
            removed |= {"j1_commonality", "j4_match"}
        if out.individuality_x is None:
            removed.add("j2_hsic")
        terms = {name: value for name, value in terms.items() if name not in removed}
        return total, (terms, _rest_after(model))

    grads, (terms, rest) = jax.grad(loss_fn, has_aux=True)(state.params_z)
    updates, opt_z = optimizer.update(grads, state.opt_z, state.params_z)
    params_z = optax.apply_updates(state.params_z, updates)
    return state.replace(params_z=params_z, opt_z=opt_z, rest=rest), terms


def _hash_step(
    state: TrainState,
    batch: dict,
    train_labels: jax.Array,
    *,
    modality: str,
    graphdef,
    optimizer: optax.GradientTransformation,
    weights: LossWeights,
    single_modality: bool = False,
):
    """One SGD step on Loss2 (Eq. 10) for theta_x (`modality="image"`) or theta_y ("text"),
    with the other modality's M buffer and B fixed; writes the batch's F and M into the buffers.
    With `single_modality` (Table 4's protocol) the likelihood runs against the batch's own
    modality's M buffer instead.

    As DCMH does, the batch's likelihood runs against the whole buffer of the other modality, the
    balance term adds the (constant) column sum of the buffer rows outside the batch, and the loss
    is divided by `b * n`.
    """
    indices = batch["indices"]
    is_image = modality == "image"
    params = state.params_x if is_image else state.params_y
    own_meta = state.meta_x if is_image else state.meta_y
    other_meta = state.meta_y if is_image else state.meta_x
    if single_modality:
        other_meta = own_meta
    similarity = losses.similarity_matrix(batch["labels"], train_labels)
    balance_offset = _not_in_batch(indices, own_meta.shape[0]) @ own_meta
    codes_batch = state.codes[indices]

    def loss_fn(params):
        if is_image:
            model = merge_model(graphdef, state, params_x=params)
            features = model.image_features(batch["image"])
            meta = model.meta_image(features)
        else:
            model = merge_model(graphdef, state, params_y=params)
            features = text_features(model, batch)
            meta = model.meta_text(features)
        total, terms = losses.hash_loss(
            meta,
            other_meta,
            similarity,
            codes_batch,
            gamma=weights.gamma,
            eta=weights.eta,
            balance_offset=balance_offset,
        )
        return total, (terms, features, meta, _rest_after(model))

    grads, (terms, features, meta, rest) = jax.grad(loss_fn, has_aux=True)(params)
    opt_state = state.opt_x if is_image else state.opt_y
    updates, opt_state = optimizer.update(grads, opt_state, params)
    params = optax.apply_updates(params, updates)
    features = jax.lax.stop_gradient(features)
    meta = jax.lax.stop_gradient(meta)
    if is_image:
        state = state.replace(
            params_x=params,
            opt_x=opt_state,
            features_x=state.features_x.at[indices].set(features),
            meta_x=state.meta_x.at[indices].set(meta),
        )
    else:
        state = state.replace(
            params_y=params,
            opt_y=opt_state,
            features_y=state.features_y.at[indices].set(features),
            meta_y=state.meta_y.at[indices].set(meta),
        )
    return state.replace(rest=rest), terms


image_step = functools.partial(_hash_step, modality="image")
text_step = functools.partial(_hash_step, modality="text")


def sign_codes(values: jax.Array) -> jax.Array:
    """`sign` with sign(0) = +1, so every bit is in {-1, +1} (a 0 would match both halves)."""
    return jnp.where(values >= 0, 1.0, -1.0).astype(jnp.float32)


def update_codes(state: TrainState) -> TrainState:
    """B = sign(M^x + M^y) (Eq. 13), the maximiser of tr(B (M^x + M^y)^T) over {-1, +1}."""
    return state.replace(codes=sign_codes(state.meta_x + state.meta_y))


def update_label_similarity(
    state: TrainState, train_labels: jax.Array, *, block_size: int = 1024
) -> TrainState:
    """R^x, R^y (Eq. 4) from the average Hausdorff distances of the buffered F^x, F^y."""
    similarity_x = losses.label_similarity(
        losses.average_hausdorff(state.features_x, train_labels, block_size=block_size)
    )
    similarity_y = losses.label_similarity(
        losses.average_hausdorff(state.features_y, train_labels, block_size=block_size)
    )
    return state.replace(similarity_x=similarity_x, similarity_y=similarity_y)


def update_centroids(state: TrainState, train_labels: jax.Array, *, graphdef) -> TrainState:
    """MetaCMH: the label memories become the per-label means of the buffered F^x and F^y.

    A label with no training sample keeps a zero centroid (`models.label_centroids`).
    """
    model = merge_model(graphdef, state)
    model.set_centroids(
        label_centroids(state.features_x, train_labels),
        label_centroids(state.features_y, train_labels),
    )
    return state.replace(rest=_rest_after(model))


def forward_image(state: TrainState, batch: dict, *, graphdef):
    """`(F^x, M^x)` of a batch of images from the image modality alone, both `[b, k]`."""
    model = merge_model(graphdef, state)
    features = model.image_features(batch["image"])
    return features, model.meta_image(features)


def forward_text(state: TrainState, batch: dict, *, graphdef):
    """`(F^y, M^y)` of a batch of text from the text modality alone, both `[b, k]`."""
    model = merge_model(graphdef, state)
    features = text_features(model, batch)
    return features, model.meta_text(features)


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


def jit_step(step: Callable, mesh) -> Callable:
    """`step(state, batch, train_labels)` jitted: state and labels replicated, batch split on
    "data", the state donated (its buffers are updated in place)."""
    replicated = sharding_lib.replicated(mesh)
    return jax.jit(
        step,
        in_shardings=(replicated, sharding_lib.batch_sharded(mesh), replicated),
        out_shardings=(replicated, replicated),
        donate_argnums=0,
    )


def jit_scan_phase(step: Callable, fields, mesh) -> Callable:
    """`scan_phase(step)` jitted: state and training data replicated, batch indices
    `[steps, b]` split on "data" along b, the state donated."""
    replicated = sharding_lib.replicated(mesh)
    run = scan_phase(step, fields, sharding_lib.batch_sharded(mesh))
    return jax.jit(
        run,
        in_shardings=(replicated, replicated, sharding_lib.batch_sharded(mesh, axis=1)),
        out_shardings=(replicated, replicated),
        donate_argnums=0,
    )


@dataclasses.dataclass(frozen=True)
class JittedUpdates:
    """Every jitted function of a run, compiled once per (model structure, mesh, rates, weights).

    `step[phase]` and `scan[phase]` for phase in "autoencoder", "image", "text" share one step
    function; `forward[modality]` gives `(F, M)` of a batch of one modality.
    """

    optimizers: Optimizers
    step: dict
    scan: dict
    update_codes: Callable
    update_similarity: Callable
    update_centroids: Callable
    forward: dict


@functools.lru_cache(maxsize=16)
def jitted_updates(graphdef, mesh, rates: LearningRates, weights: LossWeights) -> JittedUpdates:
    """The jitted updates of a run. Cached, so runs that share a configuration in one process
    (tests, repeated seeds of an experiment table) compile once."""
    optimizers = make_optimizers(rates)
    replicated = sharding_lib.replicated(mesh)
    common = dict(graphdef=graphdef, weights=weights)
    bound = {
        "autoencoder": functools.partial(
            autoencoder_step, optimizer=optimizers.autoencoder, **common
        ),
        "image": functools.partial(image_step, optimizer=optimizers.image, **common),
        "text": functools.partial(text_step, optimizer=optimizers.text, **common),
    }

    def jit_state_update(function):
        return jax.jit(
            function,
            in_shardings=(replicated, replicated),
            out_shardings=replicated,
            donate_argnums=0,
        )

    batch = sharding_lib.batch_sharded(mesh)
    return JittedUpdates(
        optimizers=optimizers,
        step={name: jit_step(fn, mesh) for name, fn in bound.items()},
        scan={name: jit_scan_phase(fn, BATCH_FIELDS[name], mesh) for name, fn in bound.items()},
        update_codes=jax.jit(
            update_codes, in_shardings=replicated, out_shardings=replicated, donate_argnums=0
        ),
        update_similarity=jit_state_update(update_label_similarity),
        update_centroids=jit_state_update(functools.partial(update_centroids, graphdef=graphdef)),
        forward={
            name: jax.jit(
                functools.partial(fn, graphdef=graphdef),
                in_shardings=(replicated, batch),
                out_shardings=replicated,
            )
            for name, fn in (("image", forward_image), ("text", forward_text))
        },
    )
