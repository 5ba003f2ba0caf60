"""What a run tells its user: the progress bar, per-epoch loss lines and the PNG figures."""

from __future__ import annotations

import logging
import math
import os
import sys
import time

import numpy as np

from ltcmh_jax import metrics

log = logging.getLogger("ltcmh_jax.train")

# Short names of the loss terms in the per-epoch log line, in the order they are printed.
SHORT_NAMES = {
    "autoencoder/total": "loss1",
    "autoencoder/j1_commonality": "j1",
    "autoencoder/j2_hsic": "j2",
    "autoencoder/j3_reconstruction": "j3",
    "autoencoder/j4_match": "j4",
    "image/total": "loss2_x",
    "image/likelihood": "lik_x",
    "image/quantization": "quant_x",
    "image/balance": "bal_x",
    "text/total": "loss2_y",
    "text/likelihood": "lik_y",
    "text/quantization": "quant_y",
    "text/balance": "bal_y",
}
# Retrieval directions: the code keys of the query and the database side.
DIRECTIONS = {
    "I->T": ("query_image_codes", "db_text_codes"),
    "T->I": ("query_text_codes", "db_image_codes"),
    "I->I": ("query_image_codes", "db_image_codes"),
}


class ProgressBar:
    """A one-line text progress bar with elapsed time and ETA over the run's epochs (stderr).

    On a terminal it redraws in place; in a log file it prints once per epoch.
    """

    def __init__(self, total_epochs: int, first_epoch: int = 0, *, stream=None, enabled=True):
        self.total = total_epochs
        self.first = first_epoch
        self.stream = stream or sys.stderr
        self.enabled = enabled
        self.start = time.monotonic()
        self.interactive = enabled and hasattr(self.stream, "isatty") and self.stream.isatty()

    def update(self, done_epochs: float, label: str = "", *, final: bool = False) -> None:
        if not self.enabled or (not final and not self.interactive):
            return
        elapsed = time.monotonic() - self.start
        fraction = done_epochs / max(self.total, 1)
        rate = (done_epochs - self.first) / elapsed if elapsed > 0 else 0.0
        remaining = (self.total - done_epochs) / rate if rate > 0 else float("nan")
        width = 30
        filled = int(round(width * min(max(fraction, 0.0), 1.0)))
        line = (
            f"[{'#' * filled}{'.' * (width - filled)}] epoch {done_epochs:5.1f}/{self.total} "
            f"{clock(elapsed)} elapsed, ETA {clock(remaining)} {label}"
        )
        end = "\r" if self.interactive and not final else "\n"
        self.stream.write(line.ljust(100)[:120] + end)
        self.stream.flush()


def clock(seconds: float) -> str:
    """`mm:ss` (or `h:mm:ss`); `--:--` for an unknown time."""
    if not math.isfinite(seconds):
        return "--:--"
    minutes, seconds = divmod(int(seconds), 60)
    hours, minutes = divmod(minutes, 60)
    return f"{hours}:{minutes:02d}:{seconds:02d}" if hours else f"{minutes:02d}:{seconds:02d}"


def epoch_summary(terms: dict) -> dict[str, float]:
    """Mean of each loss term over the epoch's steps, as `"phase/term"`."""
    return {
        f"{phase}/{name}": float(np.mean(values))
        for phase, phase_terms in terms.items()
        for name, values in phase_terms.items()
    }


def format_terms(summary: dict[str, float]) -> str:
    """`loss1=... j1=...` in `SHORT_NAMES` order, then any other term."""
    ordered = [key for key in SHORT_NAMES if key in summary]
    ordered += [key for key in summary if key not in SHORT_NAMES]
    return " ".join(f"{SHORT_NAMES.get(key, key)}={summary[key]:.4g}" for key in ordered)


def log_epoch(row: dict, total_epochs: int) -> None:
    """One line per epoch: its time, the mean loss terms and the MAP when it was evaluated."""
    summary = {key: value for key, value in row.items() if "/" in key}
    log.info(
        "epoch %d/%d %.1fs %s%s",
        row["epoch"],
        total_epochs,
        row["seconds"],
        format_terms(summary),
        "".join(
            f" {key}={row[key]:.4f}" for key in ("map_i2t", "map_t2i", "map_i2i") if key in row
        ),
    )


def write_plots(workdir: str, history: list[dict], codes: dict) -> list[str]:
    """Training curves and PR curves as PNGs; plotting problems never fail a finished run."""
    try:
        from ltcmh_jax import plots
    except ImportError as error:  # the plots module is optional for the training loop
        log.warning("no plots: %s", error)
        return []
    written = []
    try:
        written.append(
            plots.plot_training_curves(history, os.path.join(workdir, "training_curves.png"))
        )
        names = ("I->T", "T->I") if "db_text_codes" in codes else ("I->I",)
        curves = {
            name: metrics.pr_curve_by_radius(
                codes[DIRECTIONS[name][0]],
                codes[DIRECTIONS[name][1]],
                codes["query_labels"],
                codes["db_labels"],
            )
            for name in names
        }
        written.append(plots.plot_pr_curves(curves, os.path.join(workdir, "pr_curves.png")))
    except Exception as error:  # noqa: BLE001 -- a figure must not lose the results
        log.warning("plotting failed: %s: %s", type(error).__name__, error)
    return [str(path) for path in written]
