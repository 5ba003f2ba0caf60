"""Tests of ltcmh_jax/train/loop.py's stops and extensions: SIGINT checkpoints at the next epoch
boundary and a rerun resumes; a larger --epochs continues a finished run; other changes refused."""

import dataclasses
import json
import os
import signal
import subprocess
import sys
import time

import numpy as np
import pytest
from conftest import ROOT, TINY

from ltcmh_jax import train as train_lib
from ltcmh_jax.train.trainer import Trainer


def _codes(workdir):
    with np.load(os.path.join(workdir, "codes.npz")) as codes:
        return {name: codes[name] for name in codes.files}


def _epochs_logged(workdir):
    with open(os.path.join(workdir, "metrics.jsonl")) as stream:
        return [json.loads(line)["epoch"] for line in stream]


def test_a_larger_epochs_continues_a_finished_run(tmp_path, monkeypatch):
    workdir = str(tmp_path / "run")
    three = dataclasses.replace(TINY, epochs=3)
    assert train_lib.train_and_evaluate(three, workdir)["epochs"] == 3
    trained = []
    original = Trainer.run_epoch

    def recorded(self, state, epoch, progress=None):
        trained.append(epoch)
        return original(self, state, epoch, progress)

    monkeypatch.setattr(Trainer, "run_epoch", recorded)
    five = train_lib.train_and_evaluate(dataclasses.replace(TINY, epochs=5), workdir)
    assert trained == [3, 4]
    assert five["epochs"] == 5
    assert _epochs_logged(workdir) == [1, 2, 3, 4, 5]
    with open(os.path.join(workdir, "metrics.jsonl")) as stream:
        last = json.loads(stream.readlines()[-1])
    # The final evaluation is in metrics.jsonl, on the last epoch's row.
    assert last["final"] is True and last["map_i2t"] == five["map_i2t"]
    # Other differences are refused with every differing flag named.
    with pytest.raises(ValueError, match=r"--bits=16 there, 32 now; --seed=0 there, 1 now"):
        train_lib.train_and_evaluate(dataclasses.replace(TINY, epochs=5, bits=32, seed=1), workdir)
    with pytest.raises(ValueError, match=r"--epochs=5 there, 4 now"):
        train_lib.train_and_evaluate(TINY, workdir)


def _main_job(workdir, epochs):
    flags = [
        "--flagfile=experiments/configs/tiny.flags",
        f"--workdir={workdir}",
        f"--epochs={epochs}",
        "--eval_every=0",
        "--progress=false",
        "--plots=false",
    ]
    return [sys.executable, "-m", "experiments.main", *flags]


@pytest.mark.slow
def test_sigint_checkpoints_and_a_rerun_finishes_with_the_codes_of_an_uninterrupted_run(tmp_path):
    epochs = 12
    interrupted_dir = str(tmp_path / "interrupted")
    job = subprocess.Popen(
        _main_job(interrupted_dir, epochs),
        cwd=ROOT,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    metrics = os.path.join(interrupted_dir, "metrics.jsonl")
    deadline = time.monotonic() + 300
    while not os.path.exists(metrics) and job.poll() is None and time.monotonic() < deadline:
        time.sleep(0.1)
    job.send_signal(signal.SIGINT)
    _, stderr = job.communicate(timeout=300)
    assert job.returncode == 130, stderr
    last_line = stderr.strip().splitlines()[-1]
    assert last_line.startswith("interrupted: stopped after epoch ")
    assert "run the same command again to resume" in last_line
    assert "Traceback" not in stderr
    stopped_at = _epochs_logged(interrupted_dir)[-1]
    assert stopped_at < epochs
    assert str(stopped_at) in os.listdir(os.path.join(interrupted_dir, "checkpoints"))

    resumed = subprocess.run(
        _main_job(interrupted_dir, epochs), cwd=ROOT, capture_output=True, text=True
    )
    assert resumed.returncode == 0, resumed.stderr
    assert _epochs_logged(interrupted_dir) == list(range(1, epochs + 1))

    config = dataclasses.replace(
        TINY, epochs=epochs, checkpoint_every=2, seed=0, synthetic_samples=1500
    )
    train_lib.train_and_evaluate(config, str(tmp_path / "straight"))
    for name, value in _codes(tmp_path / "straight").items():
        np.testing.assert_array_equal(_codes(interrupted_dir)[name], value, err_msg=name)
