"""Tests of ltcmh_jax/sharding.py: the data mesh, batch/replicated placement, multi-host flags."""

import json
import os
import subprocess
import sys
import textwrap

import jax
import numpy as np
import pytest

from ltcmh_jax import sharding

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def test_mesh_over_all_devices_with_a_data_axis():
    mesh = sharding.make_data_mesh()
    assert mesh.axis_names == ("data",)
    assert sharding.data_parallel_size(mesh) == jax.device_count()


def test_round_batch_size_to_device_multiple():
    mesh = sharding.make_data_mesh()
    devices = sharding.data_parallel_size(mesh)
    assert sharding.round_batch_size(128, mesh) % devices == 0
    assert sharding.round_batch_size(128, mesh) >= 128


def test_put_batch_and_replicated_keep_values():
    mesh = sharding.make_data_mesh()
    batch = {"x": np.arange(24, dtype=np.float32).reshape(8, 3)}
    placed = sharding.put_batch(batch, mesh)
    np.testing.assert_array_equal(np.asarray(placed["x"]), batch["x"])
    assert placed["x"].sharding.spec == jax.sharding.PartitionSpec("data")
    indices = sharding.put_batch(np.zeros((5, 8), np.int32), mesh, axis=1)
    assert indices.sharding.spec == jax.sharding.PartitionSpec(None, "data")
    replicated = sharding.put_replicated({"y": np.ones((3, 2))}, mesh)
    assert replicated["y"].sharding.is_fully_replicated


@pytest.mark.parametrize(
    "address, processes, process_id, flag",
    [("127.0.0.1:1234", None, None, "--num_processes"), (None, 2, None, "--coordinator_address")],
)
def test_partial_coordinator_flags_name_the_missing_flag(address, processes, process_id, flag):
    with pytest.raises(ValueError, match=flag):
        sharding.maybe_initialize_distributed(address, processes, process_id)


def test_process_id_out_of_range_is_refused():
    with pytest.raises(ValueError, match="--process_id"):
        sharding.maybe_initialize_distributed("127.0.0.1:1234", 2, 2)


def test_no_coordinator_flags_is_single_process():
    assert sharding.maybe_initialize_distributed(None, None, None) is False


def test_eight_simulated_devices_split_the_batch():
    script = textwrap.dedent(
        """
        import json
        import numpy as np
        import jax
        from ltcmh_jax import sharding
        mesh = sharding.make_data_mesh()
        batch = sharding.put_batch(np.arange(16 * 2, dtype=np.float32).reshape(16, 2), mesh)
        rows = sorted(shard.data.shape[0] for shard in batch.addressable_shards)
        total = float(jax.jit(lambda x: x.sum())(batch))
        print(json.dumps({"devices": jax.device_count(), "rows": rows, "total": total,
                          "batch": sharding.round_batch_size(100, mesh)}))
        """
    )
    # Simulated CPU devices, also on a machine with a GPU (which jax would otherwise pick).
    env = dict(
        os.environ, XLA_FLAGS="--xla_force_host_platform_device_count=8", JAX_PLATFORMS="cpu"
    )
    env["PYTHONPATH"] = ROOT + os.pathsep + env.get("PYTHONPATH", "")
    output = subprocess.run(
        [sys.executable, "-c", script],
        env=env,
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
        check=True,
    ).stdout
    report = json.loads(output.strip().splitlines()[-1])
    assert report["devices"] == 8
    assert report["rows"] == [2] * 8
    assert report["total"] == float(np.arange(32).sum())
    assert report["batch"] == 104
