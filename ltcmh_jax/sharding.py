"""Device mesh and shardings for data-parallel training: batches split on "data", rest replicated.

The model, optimizer states and the per-sample buffers (`F^x`, `F^y`, `M^x`, `M^y`, `B`) are small
next to the likelihood against the whole buffer, so every device keeps a full copy and only the
batch (and the `[b, n]` similarity rows it needs) is split across devices.
"""

from __future__ import annotations

import logging

import jax
import numpy as np
from jax.sharding import AxisType, Mesh, NamedSharding, PartitionSpec

DATA_AXIS = "data"


def maybe_initialize_distributed(
    coordinator_address: str | None, num_processes: int | None, process_id: int | None
) -> bool:
    """Calls `jax.distributed.initialize` when the coordinator flags are set; returns if it did.

    Raises:
      ValueError: naming the flag, when only some of the three are given.
    """
    given = {
        "coordinator_address": coordinator_address,
        "num_processes": num_processes,
        "process_id": process_id,
    }
    present = [name for name, value in given.items() if value not in (None, "")]
    if not present:
        return False
    missing = [name for name in given if name not in present]
    if missing:
        raise ValueError(
            f"--{missing[0]}: multi-host training needs --coordinator_address, --num_processes "
            f"and --process_id together (got only {', '.join('--' + p for p in present)})"
        )
    if num_processes < 1 or not 0 <= process_id < num_processes:
        raise ValueError(
            f"--process_id: {process_id} is not in [0, --num_processes={num_processes})"
        )
    jax.distributed.initialize(
        coordinator_address=coordinator_address,
        num_processes=num_processes,
        process_id=process_id,
    )
    logging.info(
        "jax.distributed: process %d of %d, %d global devices",
        jax.process_index(),
        jax.process_count(),
        jax.device_count(),
    )
    return True


def make_data_mesh(devices=None) -> Mesh:
    """A 1-D mesh named "data" over `devices` (all global devices by default).

    The axis is `AxisType.Auto` (jax 0.10's default is `Explicit`): the steps gather batch rows
    out of replicated buffers with sharded indices and scatter them back, and with Auto axes the
    compiler propagates shardings from `in_shardings` and `with_sharding_constraint` instead of
    needing an `out_sharding` on every gather.
    """
    devices = list(jax.devices() if devices is None else devices)
    return jax.make_mesh((len(devices),), (DATA_AXIS,), (AxisType.Auto,), devices=devices)


def replicated(mesh: Mesh) -> NamedSharding:
    """Every device holds the whole array."""
    return NamedSharding(mesh, PartitionSpec())


def batch_sharded(mesh: Mesh, *, axis: int = 0) -> NamedSharding:
    """Split along array axis `axis` (the batch axis) over the "data" mesh axis."""
    spec = (None,) * axis + (DATA_AXIS,)
    return NamedSharding(mesh, PartitionSpec(*spec))


def data_parallel_size(mesh: Mesh) -> int:
    return int(mesh.shape[DATA_AXIS])


def round_batch_size(batch_size: int, mesh: Mesh) -> int:
    """The smallest multiple of the number of data-parallel devices that is >= `batch_size`.

    A global batch has to split evenly over the devices; rounding up keeps every device busy and
    changes the paper's 128 only on device counts that do not divide it.
    """
    devices = data_parallel_size(mesh)
    rounded = -(-batch_size // devices) * devices
    if rounded != batch_size:
        logging.warning(
            "--batch_size=%d rounded up to %d to split evenly over %d devices",
            batch_size,
            rounded,
            devices,
        )
    return rounded


def put_replicated(tree, mesh: Mesh):
    """Host arrays (the same on every process) to global arrays replicated over the mesh."""
    sharding = replicated(mesh)
    return jax.tree.map(
        lambda x: jax.make_array_from_process_local_data(sharding, np.asarray(x)), tree
    )


def put_batch(tree, mesh: Mesh, *, axis: int = 0):
    """Host batch arrays to global arrays split on the "data" axis along array axis `axis`.

    Every process passes the whole global batch (all processes draw the same permutation from the
    seed) and keeps only the rows of its own devices, so single- and multi-host runs see the same
    numbers.
    """
    sharding = batch_sharded(mesh, axis=axis)

    def put(x):
        x = np.asarray(x)
        if jax.process_count() == 1:
            return jax.device_put(x, sharding)
        rows = x.shape[axis] // jax.process_count()
        start = jax.process_index() * rows
        local = np.take(x, np.arange(start, start + rows), axis=axis)
        return jax.make_array_from_process_local_data(sharding, local, x.shape)

    return jax.tree.map(put, tree)
