"""Training on the image modality alone (the paper's Table 4 protocol): image -> image retrieval.

`ImageOnlyTrainer` is the cross-modal `train.Trainer` with one hashing phase. Per epoch:
R^x = label_similarity(average_hausdorff(F^x buffer)) (Eq. 4, image only); the auto-encoder phase
on Loss1 = alpha * J1(C*, R^x) + J3(F^x) (no HSIC: J2 needs two modalities); the theta_x phase on
DCMH's loss between the batch's M^x and the M^x buffer; B = sign(M^x); MetaCMH's image centroids.
Evaluation ranks the image database codes for each image query (`map_i2i`, head and tail).
`train.train_and_evaluate` picks this trainer for `--modality=image`.
"""

from __future__ import annotations

import functools

import jax
import jax.numpy as jnp
import numpy as np
import optax

from ltcmh_jax import losses, metrics
from ltcmh_jax import sharding as sharding_lib
from ltcmh_jax import train_step as steps
from ltcmh_jax.models import label_centroids
from ltcmh_jax.train import _BUFFER_STREAM, Trainer, _check_finite


def image_autoencoder_step(
    state: steps.TrainState,
    batch: dict,
    train_labels: jax.Array,
    *,
    graphdef,
    optimizer,
    weights: steps.LossWeights,
):
    """One SGD step for theta_z on alpha * J1 (Eq. 3 with R^x alone) + J3 (Eq. 6, image).

    Returns:
      `(state, terms)` with "j1_commonality" (when the model has C*), "j3_reconstruction",
      "total".
    """
    del train_labels
    features_x = state.features_x[batch["indices"]]

    def loss_fn(params_z):
        model = steps.merge_model(graphdef, state, params_z=params_z)
        out = model.autoencode_image(features_x)
        terms = {"j3_reconstruction": losses.reconstruction_loss(features_x, out.reconstruction_x)}
        total = terms["j3_reconstruction"]
        if out.commonality is not None:
            terms["j1_commonality"] = losses.commonality_regularizer(
                out.commonality,
                batch["labels"],
                state.similarity_x,
                jnp.zeros_like(state.similarity_x),
            )
            total = total + weights.alpha * terms["j1_commonality"]
        terms["total"] = total
        return total, (terms, steps._rest_after(model))

    grads, (terms, rest) = jax.grad(loss_fn, has_aux=True)(state.params_z)
    updates, opt_z = optimizer.update(grads, state.opt_z, state.params_z)
    params_z = optax.apply_updates(state.params_z, updates)
    return state.replace(params_z=params_z, opt_z=opt_z, rest=rest), terms


def update_image_codes(state: steps.TrainState) -> steps.TrainState:
    """B = sign(M^x) (Eq. 13 with one modality)."""
    return state.replace(codes=steps.sign_codes(state.meta_x))


def update_image_similarity(
    state: steps.TrainState, train_labels: jax.Array, *, block_size: int = 1024
) -> steps.TrainState:
    """R^x (Eq. 4) from the F^x buffer; R^y is set to R^x so the state holds no stale matrix."""
    similarity = losses.label_similarity(
        losses.average_hausdorff(state.features_x, train_labels, block_size=block_size)
    )
    return state.replace(similarity_x=similarity, similarity_y=similarity)


def update_image_centroids(
    state: steps.TrainState, train_labels: jax.Array, *, graphdef
) -> steps.TrainState:
    """MetaCMH: the image label memory becomes the per-label means of the F^x buffer."""
    model = steps.merge_model(graphdef, state)
    model.set_centroids(label_centroids(state.features_x, train_labels))
    return state.replace(rest=steps._rest_after(model))


@functools.lru_cache(maxsize=16)
def image_only_updates(graphdef, mesh, rates, weights) -> steps.JittedUpdates:
    """`steps.JittedUpdates` of the image-only protocol (phases "autoencoder" and "image")."""
    optimizers = steps.make_optimizers(rates)
    replicated = sharding_lib.replicated(mesh)
    common = dict(graphdef=graphdef, weights=weights)
    bound = {
        "autoencoder": functools.partial(
            image_autoencoder_step, optimizer=optimizers.autoencoder, **common
        ),
        "image": functools.partial(
            steps.image_step, optimizer=optimizers.image, single_modality=True, **common
        ),
    }

    def jit_state_update(function):
        return jax.jit(
            function,
            in_shardings=(replicated, replicated),
            out_shardings=replicated,
            donate_argnums=0,
        )

    return steps.JittedUpdates(
        optimizers=optimizers,
        step={name: steps.jit_step(fn, mesh) for name, fn in bound.items()},
        scan={
            name: steps.jit_scan_phase(fn, steps.BATCH_FIELDS[name], mesh)
            for name, fn in bound.items()
        },
        update_codes=jax.jit(
            update_image_codes, in_shardings=replicated, out_shardings=replicated, donate_argnums=0
        ),
        update_similarity=jit_state_update(update_image_similarity),
        update_centroids=jit_state_update(
            functools.partial(update_image_centroids, graphdef=graphdef)
        ),
        forward={
            "image": jax.jit(
                functools.partial(steps.forward_image, graphdef=graphdef),
                in_shardings=(replicated, sharding_lib.batch_sharded(mesh)),
                out_shardings=replicated,
            )
        },
    )


class ImageOnlyTrainer(Trainer):
    """`Trainer` for `--modality=image`: the image net (and its auto-encoder / memory) only."""

    def __init__(self, config, dataset, split, mesh):
        super().__init__(config, dataset, split, mesh)
        self.jitted = image_only_updates(self.graphdef, mesh, self.rates, self.weights)
        self.optimizers = self.jitted.optimizers

    def init_state(self) -> steps.TrainState:
        """F^x buffer from a forward pass, M^x buffer from N(0, 1) (as the cross-modal start),
        B = sign(M^x); the M^y / F^y buffers stay zero."""
        state = self.blank_state()
        features_x, _ = self.encode(state, "image", self.train_rows)
        rng = np.random.default_rng([self.config.seed, _BUFFER_STREAM])
        shape = (self.num_train, self.config.bits)
        put = functools.partial(sharding_lib.put_replicated, mesh=self.mesh)
        state = state.replace(
            features_x=put(features_x), meta_x=put(rng.standard_normal(shape, dtype=np.float32))
        )
        state = self.jitted.update_codes(state)
        if self.has_memory:
            state = self.jitted.update_centroids(state, self.device_labels)
        return state

    def run_epoch(self, state, epoch: int, progress=None):
        """R^x, the auto-encoder phase (ltcmh), the theta_x phase, B = sign(M^x), centroids."""
        terms = {}
        phases = (("autoencoder",) if self.has_autoencoder else ()) + ("image",)
        for number, phase in enumerate(phases):
            if phase == "autoencoder" and epoch % self.config.similarity_every == 0:
                state = self.jitted.update_similarity(state, self.device_labels)

            def on_step(done, number=number, phase=phase):
                if progress is not None:
                    progress(epoch + (number + done / self.steps_per_epoch) / len(phases), phase)

            state, terms[phase] = self.run_phase(state, phase, epoch, on_step)
            _check_finite(phase, epoch + 1, terms[phase])
        state = self.jitted.update_codes(state)
        if self.has_memory:
            state = self.jitted.update_centroids(state, self.device_labels)
        jax.block_until_ready(state)
        return state, terms

    def image_codes(self, state, rows: np.ndarray) -> np.ndarray:
        """sign(M^x) of dataset rows, int8 `[len(rows), k]`."""
        _, meta_x = self.encode(state, "image", rows)
        return np.where(meta_x >= 0, 1, -1).astype(np.int8)

    def evaluate(self, state, *, head_labels=None) -> tuple[dict, dict]:
        """Image queries against image database codes: `map_i2i` (+ `_head`, `_tail`)."""
        query_codes = self.image_codes(state, self.split.query)
        db_codes = self.image_codes(state, self.split.database)
        query_labels = np.asarray(self.dataset.labels[self.split.query])
        db_labels = np.asarray(self.dataset.labels[self.split.database])
        scores = {
            "map_i2i": metrics.mean_average_precision(
                query_codes, db_codes, query_labels, db_labels
            )
        }
        if head_labels is not None:
            parts = metrics.head_tail_map(
                query_codes, db_codes, query_labels, db_labels, head_labels
            )
            scores.update(map_i2i_head=parts["head"], map_i2i_tail=parts["tail"])
        codes = {
            "query_image_codes": query_codes,
            "db_image_codes": db_codes,
            "query_labels": query_labels.astype(np.uint8),
            "db_labels": db_labels.astype(np.uint8),
            "query_indices": np.asarray(self.split.query),
            "db_indices": np.asarray(self.split.database),
        }
        return scores, codes


__all__ = [
    "ImageOnlyTrainer",
    "image_autoencoder_step",
    "image_only_updates",
    "update_image_codes",
    "update_image_centroids",
    "update_image_similarity",
]
