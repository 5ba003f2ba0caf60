"""The jitted, sharded forms of the updates in `ltcmh_jax.train.steps`.

State and training labels are replicated, a batch is split on the mesh's "data" axis, and the
state is donated to each update (its buffers are updated in place). `jitted_updates` builds every
function of a run; a `Trainer` holds them, so nothing outlives the trainer that compiled it.
"""

from __future__ import annotations

import dataclasses
import functools
from collections.abc import Callable

import jax
import jax.numpy as jnp
import optax

from ltcmh_jax import sharding as sharding_lib
from ltcmh_jax.train import steps
from ltcmh_jax.train.state import LearningRates, LossWeights, make_optimizers

# Buffer rows per block of the fused likelihood on a CPU: a [128, 2048] float32 block (1 MiB)
# stays in a core's L2 cache; on the MIRFlickr shapes 512 to 4096 rows ran within noise of each
# other, and 3x faster than the unblocked form standalone (docs/DESIGN.md, Training speed).
CPU_LIKELIHOOD_BLOCK = 2048
# Rows per block of the average Hausdorff search (losses.average_hausdorff): 1024 keeps a CPU's
# tiles in cache; an accelerator wants few, large tiles (each block meets every chunk of
# membership pairs in a sequential loop, and each trip costs kernel launches; docs/DESIGN.md,
# Training speed).
CPU_HAUSDORFF_BLOCK = 1024
ACCELERATOR_HAUSDORFF_BLOCK = 8192
MIXED_PRECISION = ("auto", "on", "off")
# Where --mixed_precision=auto turns bfloat16 products on (docs/DESIGN.md, Training speed).
MIXED_PRECISION_AUTO = ("gpu", "tpu")


def likelihood_settings(mixed_precision: str, platform: str) -> tuple[int | None, jnp.dtype]:
    """`(block_size, compute_dtype)` of the fused likelihood on `platform` ("cpu", "gpu", ...).

    A CPU wants cache-sized blocks of the buffer; an accelerator takes it in one block and fuses
    the elementwise terms itself. `mixed_precision` is `TrainConfig.mixed_precision`.
    """
    if mixed_precision not in MIXED_PRECISION:
        raise ValueError(
            f"--mixed_precision: must be one of {MIXED_PRECISION}, got {mixed_precision!r}"
        )
    block = CPU_LIKELIHOOD_BLOCK if platform == "cpu" else None
    bfloat16 = mixed_precision == "on" or (
        mixed_precision == "auto" and platform in MIXED_PRECISION_AUTO
    )
    return block, jnp.dtype(jnp.bfloat16 if bfloat16 else jnp.float32)


def hausdorff_block(platform: str) -> int:
    """Rows per block of the R^x, R^y update's Hausdorff search on `platform` ("cpu", "gpu")."""
    return CPU_HAUSDORFF_BLOCK if platform == "cpu" else ACCELERATOR_HAUSDORFF_BLOCK


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
    """`steps.scan_phase(step)` jitted: state and training data replicated, batch indices
    `[steps, b]` split on "data" along b, the state donated."""
    replicated = sharding_lib.replicated(mesh)
    run = steps.scan_phase(step, fields, sharding_lib.batch_sharded(mesh))
    return jax.jit(
        run,
        in_shardings=(replicated, replicated, sharding_lib.batch_sharded(mesh, axis=1)),
        out_shardings=(replicated, replicated),
        donate_argnums=0,
    )


@dataclasses.dataclass(frozen=True)
class JittedUpdates:
    """Every jitted function of a run.

    `step[phase]` and `scan[phase]` for each phase ("autoencoder" when the model has one, then
    each modality) share one step function; `forward[modality]` gives `(F, M)` of a batch of one
    modality.
    """

    optimizers: dict[str, optax.GradientTransformation]
    step: dict
    scan: dict
    update_codes: Callable
    update_similarity: Callable
    update_centroids: Callable
    forward: dict


def jitted_updates(
    graphdef,
    mesh,
    rates: LearningRates,
    weights: LossWeights,
    *,
    modalities: tuple[str, ...],
    mixed_precision: str = "off",
    dropout_rate: float = 0.0,
    dropout_seed: int = 0,
) -> JittedUpdates:
    """The jitted updates of a run whose model has `modalities` (`jax.jit` compiles each on its
    first call); `mixed_precision` is `TrainConfig.mixed_precision`, `dropout_rate` and
    `dropout_seed` are `TrainConfig.dropout` and `seed` (the feature nets' training passes)."""
    optimizers = make_optimizers(rates)
    replicated = sharding_lib.replicated(mesh)
    common = dict(graphdef=graphdef, weights=weights)
    bound = {
        "autoencoder": functools.partial(
            steps.autoencoder_step, optimizer=optimizers["autoencoder"], **common
        )
    }
    platform = mesh.devices.flat[0].platform
    block, dtype = likelihood_settings(mixed_precision, platform)
    for modality in modalities:
        bound[modality] = functools.partial(
            steps.hash_step,
            modality=modality,
            optimizer=optimizers[modality],
            likelihood_block=block,
            compute_dtype=dtype,
            dropout_rate=dropout_rate,
            dropout_seed=dropout_seed,
            **common,
        )

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
        scan={
            name: jit_scan_phase(fn, steps.BATCH_FIELDS[name], mesh) for name, fn in bound.items()
        },
        update_codes=jax.jit(
            steps.update_codes, in_shardings=replicated, out_shardings=replicated, donate_argnums=0
        ),
        update_similarity=jit_state_update(
            functools.partial(
                steps.update_label_similarity,
                scale=weights.label_similarity,
                block_size=hausdorff_block(platform),
            )
        ),
        update_centroids=jit_state_update(
            functools.partial(steps.update_centroids, graphdef=graphdef)
        ),
        forward={
            modality: jax.jit(
                functools.partial(steps.forward, graphdef=graphdef, modality=modality),
                in_shardings=(replicated, batch),
                out_shardings=replicated,
            )
            for modality in modalities
        },
    )
