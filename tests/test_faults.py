"""Faults during a run: SIGKILL (mid-checkpoint and at a random time), a truncated latest
checkpoint, a NaN loss, a full disk or unwritable workdir. After each, running the same command
again must give the codes of an uninterrupted run, and nothing good may be lost.
"""

import dataclasses
import errno
import glob
import json
import logging
import os
import random
import shutil
import signal
import subprocess
import sys
import textwrap
import time

import jax
import numpy as np
import pytest
from conftest import ROOT, TINY

from ltcmh_jax import files
from ltcmh_jax import train as train_lib
from ltcmh_jax.checkpoint import Checkpointer
from ltcmh_jax.train import run_dir

# experiments.main as `python -m` runs it; with LTCMH_TEST_KILL_AT_SAVE=<epoch> the process
# SIGKILLs itself inside that checkpoint's save, after Orbax has written every item into the
# temporary step folder and before the rename that commits it: the worst moment for a kill.
_MAIN = textwrap.dedent(
    """
    import os, runpy, signal, sys
    kill_at = os.environ.get("LTCMH_TEST_KILL_AT_SAVE")
    if kill_at:
        from orbax.checkpoint._src.path import atomicity
        commit = atomicity.AtomicRenameTemporaryPath.finalize
        async def finalize(self):
            if self._final_path.name == kill_at:
                os.kill(os.getpid(), signal.SIGKILL)
            return await commit(self)
        atomicity.AtomicRenameTemporaryPath.finalize = finalize
    sys.argv[0] = "experiments.main"
    runpy.run_module("experiments.main", run_name="__main__", alter_sys=True)
    """
)
_TINY_FLAGS = (
    "--flagfile=experiments/configs/tiny.flags",
    "--checkpoint_every=1",
    "--eval_every=0",
    "--progress=false",
    "--plots=false",
)


def _start(workdir, *flags, kill_at_save=None) -> subprocess.Popen:
    env = dict(os.environ, JAX_PLATFORMS="cpu")
    env["PYTHONPATH"] = ROOT + os.pathsep + env.get("PYTHONPATH", "")
    env.pop("LTCMH_TEST_KILL_AT_SAVE", None)
    if kill_at_save is not None:
        env["LTCMH_TEST_KILL_AT_SAVE"] = str(kill_at_save)
    return subprocess.Popen(
        [sys.executable, "-c", _MAIN, *_TINY_FLAGS, *flags, f"--workdir={workdir}"],
        cwd=ROOT,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def _finish(process: subprocess.Popen, timeout: float = 300) -> tuple[int, str]:
    _, stderr = process.communicate(timeout=timeout)
    return process.returncode, stderr


def _codes(workdir) -> dict[str, np.ndarray]:
    with np.load(os.path.join(workdir, "codes.npz")) as codes:
        return {name: codes[name] for name in codes.files}


def _assert_same_codes(workdir, reference) -> None:
    expected = _codes(reference)
    got = _codes(workdir)
    assert set(got) == set(expected)
    for name, value in expected.items():
        assert np.array_equal(got[name], value), name


def _epochs_logged(workdir) -> list[int]:
    with open(os.path.join(workdir, "metrics.jsonl")) as stream:
        return [json.loads(line)["epoch"] for line in stream]


# In-process runs of the tiny configuration: 5 epochs, a checkpoint after each.
FIVE = dataclasses.replace(TINY, epochs=5, checkpoint_every=1, keep_checkpoints=3)


def _stop_at(epoch_to_stop: int, before=None):
    """A `Trainer.run_epoch` that raises KeyboardInterrupt (as a kill would end the run) at
    0-based epoch `epoch_to_stop`, and calls `before(epoch, state)` (which may return a new state)
    first."""
    original = train_lib.Trainer.run_epoch

    def run_epoch(self, state, epoch, progress=None):
        if before is not None:
            state = before(epoch, state) or state
        if epoch == epoch_to_stop:
            raise KeyboardInterrupt
        return original(self, state, epoch, progress)

    return run_epoch


@pytest.fixture(scope="module")
def straight_run(tmp_path_factory):
    workdir = str(tmp_path_factory.mktemp("straight"))
    train_lib.train_and_evaluate(FIVE, workdir)
    return workdir


@pytest.fixture(scope="module")
def interrupted_run(tmp_path_factory):
    """A workdir whose run stopped in epoch 4: checkpoints 1, 2, 3 and no results."""
    workdir = str(tmp_path_factory.mktemp("interrupted"))
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(train_lib.Trainer, "run_epoch", _stop_at(3))
        with pytest.raises(KeyboardInterrupt):
            train_lib.train_and_evaluate(FIVE, workdir)
    assert Checkpointer(os.path.join(workdir, "checkpoints")).all_epochs() == [1, 2, 3]
    return workdir


def _copy(workdir, tmp_path) -> str:
    copy = str(tmp_path / "run")
    shutil.copytree(workdir, copy)
    return copy


def _steps_on_disk(workdir) -> list[str]:
    return sorted(os.listdir(os.path.join(workdir, "checkpoints")))


def test_sigkill_inside_a_checkpoint_write_then_rerun_gives_the_uninterrupted_codes(
    tmp_path, straight_run
):
    # tiny.flags with FIVE's epochs: the same run as `straight_run`, through the entry point.
    killed = str(tmp_path / "killed")
    code, stderr = _finish(_start(killed, "--epochs=5", kill_at_save=2))
    assert code == -signal.SIGKILL, stderr[-2000:]
    steps = os.listdir(os.path.join(killed, "checkpoints"))
    assert "1" in steps and "2" not in steps, steps  # epoch 2 was written but never committed
    assert not os.path.exists(os.path.join(killed, "results.json"))

    code, stderr = _finish(_start(killed, "--epochs=5"))
    assert code == 0, stderr[-3000:]
    assert "resuming from" in stderr and "at epoch 1" in stderr
    _assert_same_codes(killed, straight_run)
    assert _epochs_logged(killed) == [1, 2, 3, 4, 5]
    assert not glob.glob(os.path.join(killed, "checkpoints", "*tmp*"))


@pytest.mark.slow
def test_sigkill_at_random_times_then_rerun_gives_the_uninterrupted_codes(tmp_path):
    seed = random.SystemRandom().randrange(2**32)
    rng = random.Random(seed)
    epochs = ("--epochs=30", "--keep_checkpoints=2")
    reference, killed = str(tmp_path / "reference"), str(tmp_path / "killed")
    train_lib.train_and_evaluate(dataclasses.replace(FIVE, epochs=30), reference)
    for attempt in range(2):
        process = _start(killed, *epochs)
        # Anywhere from start-up (import, compile) to well inside training; the second kill
        # lands after the resume.
        first = os.path.join(killed, "checkpoints", "1")
        deadline = time.monotonic() + 300
        while attempt == 0 and not os.path.isdir(first) and time.monotonic() < deadline:
            time.sleep(0.05)
        delay = rng.uniform(0.0, 3.0) if attempt == 0 else rng.uniform(2.0, 12.0)
        time.sleep(delay)
        assert process.poll() is None, f"the run ended before the kill (seed {seed})"
        process.send_signal(signal.SIGKILL)
        _finish(process)
    code, stderr = _finish(_start(killed, *epochs))
    assert code == 0, f"seed {seed}: {stderr[-3000:]}"
    _assert_same_codes(killed, reference)
    assert _epochs_logged(killed) == list(range(1, 31)), f"seed {seed}"


def test_truncated_latest_checkpoint_falls_back_naming_both(
    interrupted_run, straight_run, tmp_path, caplog, monkeypatch
):
    workdir = _copy(interrupted_run, tmp_path)
    latest = os.path.join(workdir, "checkpoints", "3")
    truncated = 0
    for path in glob.glob(os.path.join(latest, "**", "*"), recursive=True):
        if os.path.isfile(path) and os.path.getsize(path) > 1:
            with open(path, "r+b") as stream:
                stream.truncate(os.path.getsize(path) // 2)
            truncated += 1
    assert truncated >= 3

    seen = {}
    original = train_lib.Trainer.run_epoch

    def run_epoch(self, state, epoch, progress=None):
        seen.setdefault("first_epoch", epoch)
        seen.setdefault("on_disk", _steps_on_disk(workdir))
        return original(self, state, epoch, progress)

    monkeypatch.setattr(train_lib.Trainer, "run_epoch", run_epoch)
    with caplog.at_level(logging.WARNING):
        train_lib.train_and_evaluate(FIVE, workdir)
    warnings = [r.getMessage() for r in caplog.records if r.levelno >= logging.WARNING]
    good = os.path.join(workdir, "checkpoints", "2")
    assert any(latest in w and "unreadable" in w for w in warnings), warnings
    assert any(f"previous good checkpoint {good};" in w for w in warnings), warnings
    # Resumed after epoch 2 (not from scratch) with the good ones, and the bad one, still there.
    assert seen == {"first_epoch": 2, "on_disk": ["1", "2", "3"]}
    _assert_same_codes(workdir, straight_run)


def test_nan_loss_stops_with_one_line_and_keeps_the_last_good_checkpoint(
    interrupted_run, straight_run, tmp_path, monkeypatch
):
    workdir = _copy(interrupted_run, tmp_path)

    def blow_up(epoch, state):
        # A diverged update: the image net's weights become NaN in epoch 4 (0-based 3).
        if epoch == 3:
            image = state.modalities["image"]
            broken = image.replace(params=jax.tree.map(lambda x: x * np.nan, image.params))
            return state.replace(modalities={**state.modalities, "image": broken})
        return None

    monkeypatch.setattr(train_lib.Trainer, "run_epoch", _stop_at(-1, before=blow_up))
    with pytest.raises(FloatingPointError) as error:
        train_lib.train_and_evaluate(FIVE, workdir)
    message = str(error.value)
    kept = os.path.join(workdir, "checkpoints", "3")
    assert "\n" not in message
    assert message.startswith("epoch 4, image phase step 0: loss term '"), message
    assert message.endswith(f"is nan; the last good checkpoint is kept ({kept})"), message
    assert _steps_on_disk(workdir) == ["1", "2", "3"]
    assert not os.path.exists(os.path.join(workdir, "results.json"))
    # That checkpoint is readable and finite, and the same command without the fault finishes
    # with the uninterrupted run's codes.
    assert Checkpointer(os.path.join(workdir, "checkpoints")).read_meta(3)["epoch"] == 3
    monkeypatch.undo()
    train_lib.train_and_evaluate(FIVE, workdir)
    _assert_same_codes(workdir, straight_run)


def test_disk_full_at_the_results_then_rerun_finishes(
    interrupted_run, straight_run, tmp_path, monkeypatch
):
    workdir = _copy(interrupted_run, tmp_path)
    results = os.path.join(workdir, "results.json")
    replace = os.replace

    def full_disk(source, target):
        if str(target).endswith("results.json"):
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
        return replace(source, target)

    monkeypatch.setattr(files.os, "replace", full_disk)
    with pytest.raises(OSError, match=f"^{results}: cannot write \\(No space left on device\\)$"):
        train_lib.train_and_evaluate(FIVE, workdir)
    assert not os.path.exists(results)
    assert not glob.glob(os.path.join(workdir, ".tmp-*"))
    monkeypatch.undo()

    # The last checkpoint holds the finished training: the rerun only evaluates.
    def no_training(self, state, epoch, progress=None):
        raise AssertionError(f"epoch {epoch} trained again")

    monkeypatch.setattr(train_lib.Trainer, "run_epoch", no_training)
    train_lib.train_and_evaluate(FIVE, workdir)
    _assert_same_codes(workdir, straight_run)
    with open(results) as stream:
        assert json.load(stream)["epochs"] == 5


@pytest.mark.parametrize("failing", ["replace", "fsync", "write"])
def test_a_failed_write_leaves_the_old_file_intact(tmp_path, monkeypatch, failing):
    path = str(tmp_path / "results.json")
    train_lib.write_json_atomic(path, {"map_i2t": 0.5})
    before = open(path).read()

    def no_space(*args, **kwargs):
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))

    if failing == "write":
        real_fdopen = os.fdopen

        class HalfWritten:
            """Writes half of what it is given, then reports a full disk."""

            def __init__(self, stream):
                self.stream = stream

            def __enter__(self):
                return self

            def __exit__(self, *exc):
                self.stream.close()

            def write(self, data):
                self.stream.write(data[: len(data) // 2])
                no_space()

        monkeypatch.setattr(files.os, "fdopen", lambda *a, **k: HalfWritten(real_fdopen(*a, **k)))
    else:
        monkeypatch.setattr(files.os, failing, no_space)
    with pytest.raises(OSError, match=f"^{path}: cannot write \\(No space left on device\\)$"):
        train_lib.write_json_atomic(path, {"map_i2t": 0.9, "padding": "x" * 10000})
    monkeypatch.undo()
    assert open(path).read() == before
    assert json.loads(before) == {"map_i2t": 0.5}
    assert os.listdir(tmp_path) == ["results.json"]


def test_unwritable_workdir_fails_before_any_work(tmp_path, monkeypatch):
    blocker = tmp_path / "a_file"
    blocker.write_text("")
    with pytest.raises(OSError, match=f"^--workdir: {blocker}/run is not a writable directory"):
        train_lib.train_and_evaluate(FIVE, str(blocker / "run"))

    # A read-only or full file system (root passes os.access checks): the probe write fails.
    def read_only(*args, **kwargs):
        raise OSError(errno.EROFS, os.strerror(errno.EROFS))

    monkeypatch.setattr(run_dir.tempfile, "TemporaryFile", read_only)
    monkeypatch.setattr(train_lib, "load_dataset", lambda config: pytest.fail("data was read"))
    with pytest.raises(OSError, match="--workdir: .* \\(Read-only file system\\)$"):
        train_lib.train_and_evaluate(FIVE, str(tmp_path / "run"))
