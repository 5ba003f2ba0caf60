"""Tests of ltcmh_jax/train/report.py: the per-epoch line, the clock and the progress bar."""

import io

import numpy as np

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
    bar.update(1.5, "image")  # not a terminal: only the per-epoch lines are printed
    bar.update(2, final=True)
    lines = stream.getvalue().splitlines()
    assert len(lines) == 1 and lines[0].startswith("[" + "#" * 15 + "." * 15 + "] epoch   2.0/4")
