"""What a run tells its user: a progress line, epoch summaries, TensorBoard events, figures."""

from __future__ import annotations

import logging
import math
import os
import shutil
import sys
import time

import numpy as np
import tqdm.autonotebook
import tqdm.std

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
    """One in-place progress line over the run's epochs (tqdm: a terminal or a notebook widget).

    Disabled on a stream that is neither a terminal nor a notebook (a log file gets the per-epoch
    summaries instead). The ETA counts from the end of the first epoch trained here: that one
    pays for compilation, and timing the run from its start overstated a 50 s run as 5 minutes.
    """

    def __init__(self, total_epochs: int, first_epoch: int = 0, *, stream=None, enabled=True):
        self.total = total_epochs
        self.first = first_epoch
        self.stream = stream or sys.stderr
        # autonotebook's class is the widget one inside a Jupyter kernel, std's elsewhere.
        notebook = tqdm.autonotebook.tqdm is not tqdm.std.tqdm
        terminal = hasattr(self.stream, "isatty") and self.stream.isatty()
        self.enabled = enabled and (terminal or notebook)
        self.warm = False
        self.bar = None
        if self.enabled:
            options = dict(
                total=total_epochs,
                initial=first_epoch,
                unit="epoch",
                file=self.stream,
                # A pseudo-terminal may report 0 columns, which would truncate the line to nothing.
                dynamic_ncols=shutil.get_terminal_size((0, 0)).columns > 0,
                ncols=None if shutil.get_terminal_size((0, 0)).columns > 0 else 100,
                smoothing=0,
                bar_format="{l_bar}{bar}| {n:.1f}/{total} epochs [{elapsed}<{remaining}]{postfix}",
            )
            try:
                self.bar = tqdm.autonotebook.tqdm(**options)
            except ImportError:  # a notebook without ipywidgets: the text bar, still in place
                self.bar = tqdm.std.tqdm(**options)

    def update(self, done_epochs: float, label: str = "", *, final: bool = False) -> None:
        if self.bar is None:
            return
        self.bar.n = done_epochs
        if final and not self.warm:
            # Warm-up over: tqdm's ETA (smoothing 0) is then (epochs left) / (mean rate since).
            self.warm = True
            self.bar.start_t = time.time()  # tqdm's clock
            self.bar.initial = done_epochs
        self.bar.set_postfix_str(label, refresh=False)
        self.bar.refresh()

    def close(self) -> None:
        if self.bar is not None:
            self.bar.close()
            self.bar = None


class ConsoleHandler(logging.Handler):
    """Log records as bare messages on stderr through `tqdm.write`, which lifts the progress line
    above each message instead of printing over it."""

    def __init__(self, stream=None):
        super().__init__()
        self.stream = stream
        self.setFormatter(logging.Formatter("%(message)s"))

    def emit(self, record: logging.LogRecord) -> None:
        try:
            tqdm.std.tqdm.write(self.format(record), file=self.stream or sys.stderr)
        except Exception:  # noqa: BLE001 -- logging must not fail a run
            self.handleError(record)


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


def summary_interval(total_epochs: int, eval_every: int = 0) -> int:
    """Epochs between console summaries: `eval_every` when set, else about ten per run."""
    return eval_every if eval_every else max(1, round(total_epochs / 10))


def log_epoch(row: dict, total_epochs: int, *, every: int = 1) -> None:
    """A compact line every `every` epochs (and the first and last): time, the phase totals and
    the MAP when evaluated. Every term is in metrics.jsonl and the TensorBoard events."""
    epoch = row["epoch"]
    if epoch % every and epoch not in (1, total_epochs):
        return
    totals = {key: value for key, value in row.items() if key.endswith("/total")}
    log.info(
        "epoch %d/%d %.1fs %s%s",
        epoch,
        total_epochs,
        row["seconds"],
        format_terms(totals),
        "".join(
            f" {key}={row[key]:.4f}" for key in ("map_i2t", "map_t2i", "map_i2i") if key in row
        ),
    )


def scalar_tag(key: str) -> str:
    """The TensorBoard tag of a metrics.jsonl key: loss terms under `loss/`, MAP under `map/`,
    keys that already name a group (`group/name`) keep it, the rest under `run/`."""
    if key.startswith("map_") or key == "chance_map":
        return f"map/{key.removeprefix('map_')}"
    if key.split("/")[0] in ("autoencoder", "image", "text"):
        return f"loss/{key}"
    return key if "/" in key else f"run/{key}"


def import_summary_writer():
    """`tensorboardX.SummaryWriter`, imported without PyTorch.

    tensorboardX imports torch whenever it is installed, only so that it can accept torch tensors;
    we log Python floats. On this 2-core machine that import took 5-8 s per process, 40 s cold,
    in every run and in each test that starts one. So torch is hidden while tensorboardX loads (an
    `import torch` then raises ImportError, which tensorboardX catches) and unhidden right after:
    a later `import torch` elsewhere in the process works as usual.
    """
    hidden = "torch" not in sys.modules
    if hidden:
        sys.modules["torch"] = None  # the import system's "not importable" marker
    try:
        from tensorboardX import SummaryWriter
    finally:
        if hidden:
            del sys.modules["torch"]
    return SummaryWriter


class ScalarWriter:
    """TensorBoard event files of every numeric key of each metrics.jsonl row (tensorboardX,
    which needs no TensorFlow), at step = epoch; a no-op, with one warning, without tensorboardX."""

    def __init__(self, logdir: str, *, enabled: bool = True):
        self.writer = None
        if not enabled:
            return
        try:
            summary_writer = import_summary_writer()
        except ImportError as error:
            log.warning("no TensorBoard events: %s", error)
            return
        self.writer = summary_writer(logdir)

    def write(self, row: dict) -> None:
        if self.writer is None:
            return
        for key, value in row.items():
            if key == "epoch" or isinstance(value, bool) or not isinstance(value, int | float):
                continue
            if math.isfinite(value):
                self.writer.add_scalar(scalar_tag(key), float(value), int(row["epoch"]))

    def close(self) -> None:
        if self.writer is not None:
            self.writer.close()
            self.writer = None


def write_plots(
    workdir: str, history: list[dict], codes: dict, *, run_name: str = "", chance=None
) -> list[str]:
    """Training curves and PR curves as PNGs; plotting problems never fail a finished run.

    `run_name` (method, data set, bits) heads both titles; `chance` (the chance-level MAP) is a
    dashed line in the MAP panel and the PR plot.
    """
    try:
        from ltcmh_jax import plots
    except ImportError as error:  # the plots module is optional for the training loop
        log.warning("no plots: %s", error)
        return []
    written = []
    try:
        # A closed-form floor has no epochs, so no training curves.
        if history:
            written.append(
                plots.plot_training_curves(
                    history,
                    os.path.join(workdir, "training_curves.png"),
                    title=f"Training: {run_name}" if run_name else "Training",
                    chance=chance,
                )
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
        title = "PR by Hamming radius" + (f": {run_name}" if run_name else "")
        path = os.path.join(workdir, "pr_curves.png")
        written.append(plots.plot_pr_curves(curves, path, title=title, chance=chance))
    except Exception as error:  # noqa: BLE001 -- a figure must not lose the results
        log.warning("plotting failed: %s: %s", type(error).__name__, error)
    return [str(path) for path in written]
