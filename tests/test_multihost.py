"""Multi-host training through `jax.distributed`: two local processes with four simulated CPU
devices each (gloo collectives, coordinator on 127.0.0.1) run the tiny configuration's first epochs,
and every step's loss terms and the final codes match one process with eight devices.

Each process passes the whole global batch to `sharding.put_batch` and keeps its own rows, so the
numbers may differ from the single-process run only by the order of the cross-device reductions.
"""

import json
import os
import socket
import subprocess
import sys
import textwrap

import numpy as np
import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
EPOCHS = 2

# argv: epochs, then for a multi-host run the coordinator address, process count and process id.
_WORKER = textwrap.dedent(
    """
    import json, sys
    import jax
    sys.path.insert(0, "tests")
    from ltcmh_jax import sharding
    if len(sys.argv) > 2:
        address, processes, process_id = sys.argv[2], int(sys.argv[3]), int(sys.argv[4])
        assert sharding.maybe_initialize_distributed(address, processes, process_id)
    from conftest import TINY
    from test_train_trainer import tiny_epochs
    terms, codes = tiny_epochs(TINY, epochs=int(sys.argv[1]))
    print(json.dumps({"process": jax.process_index(), "processes": jax.process_count(),
                      "devices": jax.device_count(), "local": jax.local_device_count(),
                      "terms": terms, "codes": [c.tolist() for c in codes]}))
    """
)


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def _env(devices: int) -> dict:
    env = dict(os.environ, JAX_PLATFORMS="cpu")
    env["XLA_FLAGS"] = f"--xla_force_host_platform_device_count={devices}"
    env["JAX_CPU_COLLECTIVES_IMPLEMENTATION"] = "gloo"
    env["PYTHONPATH"] = ROOT + os.pathsep + env.get("PYTHONPATH", "")
    return env


def _start(devices: int, *args) -> subprocess.Popen:
    return subprocess.Popen(
        [sys.executable, "-c", _WORKER, str(EPOCHS), *map(str, args)],
        cwd=ROOT,
        env=_env(devices),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def _result(process: subprocess.Popen, timeout: float) -> dict:
    try:
        stdout, stderr = process.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        process.kill()
        stdout, stderr = process.communicate()
        pytest.fail(f"worker timed out:\n{stderr[-3000:]}")
    assert process.returncode == 0, stderr[-3000:]
    return json.loads(stdout.strip().splitlines()[-1])


@pytest.mark.slow
def test_two_processes_of_four_devices_match_one_process_of_eight():
    single = _result(_start(8), timeout=400)
    assert (single["processes"], single["devices"]) == (1, 8)

    address = f"127.0.0.1:{_free_port()}"
    workers = [_start(4, address, 2, process_id) for process_id in range(2)]
    results = [_result(worker, timeout=400) for worker in workers]
    for process_id, result in enumerate(results):
        assert (result["process"], result["processes"]) == (process_id, 2)
        assert (result["devices"], result["local"]) == (8, 4)
        assert set(result["terms"]) == set(single["terms"])
        for name, values in single["terms"].items():
            np.testing.assert_allclose(
                result["terms"][name], values, rtol=1e-5, atol=1e-7, err_msg=name
            )
        for codes, expected in zip(result["codes"], single["codes"], strict=True):
            np.testing.assert_array_equal(np.asarray(codes), np.asarray(expected))
