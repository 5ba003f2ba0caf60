"""Tests of ltcmh_jax/train/report.py: epoch summaries, the progress line, TensorBoard events."""

import importlib.util
import io
import logging
import os
import struct
import subprocess
import sys

import numpy as np
import pytest

from ltcmh_jax.train import report


def test_epoch_summary_and_format_use_the_short_names_in_order():
    terms = {
        "text": {"total": np.array([1.0, 3.0])},
        "autoencoder": {"total": np.array([4.0]), "j2_hsic": np.array([0.5])},
        "image": {"extra": np.array([2.0])},
    }
    summary = report.epoch_summary(terms)
    assert summary == {
        "text/total": 2.0,
        "autoencoder/total": 4.0,
        "autoencoder/j2_hsic": 0.5,
        "image/extra": 2.0,
    }
    assert report.format_terms(summary) == "loss1=4 j2=0.5 loss2_y=2 image/extra=2"


def test_clock_and_progress_bar():
    assert report.clock(75) == "01:15" and report.clock(3725) == "1:02:05"
    assert report.clock(float("nan")) == "--:--"
    stream = io.StringIO()
    bar = report.ProgressBar(4, stream=stream)
    bar.update(1.5, "image")  # neither a terminal nor a notebook: no bar, the summaries speak
    bar.update(2, final=True)
    assert stream.getvalue() == "" and not bar.enabled


class _Terminal(io.StringIO):
    def isatty(self):
        return True


def test_progress_bar_redraws_one_line_in_a_terminal_with_the_eta_from_after_warm_up():
    stream = _Terminal()
    bar = report.ProgressBar(4, stream=stream)
    bar.update(0.5, "image")
    bar.update(1, final=True)
    assert bar.bar.initial == 1  # the rate (and so the ETA) counts from the end of epoch 1
    bar.update(4, final=True)
    bar.close()
    assert bar.bar is None
    text = stream.getvalue()
    assert "\n" not in text.rstrip("\n")  # redrawn in place with carriage returns
    assert "\r" in text and "4.0/4 epochs" in text and "image" in text


def test_console_handler_prints_bare_messages():
    stream = io.StringIO()
    logger = logging.getLogger("test_console_handler")
    logger.addHandler(report.ConsoleHandler(stream))
    logger.propagate = False
    logger.warning("epoch %d/%d", 3, 5)
    assert stream.getvalue() == "epoch 3/5\n"


def test_summary_every_interval_shows_phase_totals_only(caplog, monkeypatch):
    # An entry-point test earlier in the run may have stopped "ltcmh_jax" from propagating to the
    # root logger (its console handler); caplog listens at the root.
    for name in ("ltcmh_jax", "ltcmh_jax.train"):
        monkeypatch.setattr(logging.getLogger(name), "propagate", True)
    assert report.summary_interval(50) == 5 and report.summary_interval(3) == 1
    assert report.summary_interval(50, eval_every=10) == 10
    row = {
        "epoch": 5,
        "seconds": 1.25,
        "autoencoder/total": 2.0,
        "autoencoder/j1_commonality": 9.0,
        "image/total": 0.5,
        "map_i2t": 0.25,
    }
    with caplog.at_level(logging.INFO, logger="ltcmh_jax.train"):
        report.log_epoch(row, 50, every=5)
        report.log_epoch({**row, "epoch": 6}, 50, every=5)
        report.log_epoch({**row, "epoch": 1}, 50, every=5)
    assert [record.getMessage() for record in caplog.records] == [
        "epoch 5/50 1.2s loss1=2 loss2_x=0.5 map_i2t=0.2500",
        "epoch 1/50 1.2s loss1=2 loss2_x=0.5 map_i2t=0.2500",
    ]


def _scalar_events(logdir) -> dict[str, list[tuple[int, float]]]:
    """`{tag: [(step, value)]}` of the TFRecord event files in `logdir` (tensorboardX's protos;
    each record is a length, its CRC, the Event bytes and their CRC)."""
    from tensorboardX.proto import event_pb2

    scalars = {}
    for name in sorted(os.listdir(logdir)):
        with open(os.path.join(logdir, name), "rb") as stream:
            data = stream.read()
        offset = 0
        while offset < len(data):
            (length,) = struct.unpack("<Q", data[offset : offset + 8])
            event = event_pb2.Event.FromString(data[offset + 12 : offset + 12 + length])
            offset += 12 + length + 4
            for value in event.summary.value:
                scalars.setdefault(value.tag, []).append((event.step, value.simple_value))
    return scalars


def test_scalar_writer_writes_every_numeric_key_as_a_tensorboard_event(tmp_path):
    writer = report.ScalarWriter(str(tmp_path))
    writer.write({"epoch": 1, "seconds": 2.0, "image/total": 0.5, "final": True, "mech/flip": 3})
    writer.write({"epoch": 2, "seconds": 1.0, "image/total": 0.25, "map_i2t": 0.75})
    writer.close()
    assert _scalar_events(tmp_path) == {
        "run/seconds": [(1, 2.0), (2, 1.0)],
        "loss/image/total": [(1, 0.5), (2, 0.25)],
        "mech/flip": [(1, 3.0)],
        "map/i2t": [(2, 0.75)],
    }


@pytest.mark.skipif(
    importlib.util.find_spec("torch") is None, reason="only PyTorch being installed can slow this"
)
def test_the_tensorboard_writer_does_not_import_torch(tmp_path):
    # tensorboardX imports torch when it can (5-40 s per run here); the writer must not let it.
    script = (
        "import sys\n"
        "from ltcmh_jax.train import report\n"
        f"writer = report.ScalarWriter({str(tmp_path)!r})\n"
        "writer.write({'epoch': 1, 'loss': 0.5})\n"
        "writer.close()\n"
        "assert 'torch' not in sys.modules, 'torch was imported (or its marker left behind)'\n"
    )
    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    env = dict(os.environ, PYTHONPATH=root + os.pathsep + os.environ.get("PYTHONPATH", ""))
    done = subprocess.run(
        [sys.executable, "-c", script], env=env, capture_output=True, text=True, timeout=300
    )
    assert done.returncode == 0, done.stderr[-2000:]
    assert any(name.startswith("events.out.tfevents") for name in os.listdir(tmp_path))
