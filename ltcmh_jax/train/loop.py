"""`train_and_evaluate`: the main job, from a config to `results.json`."""

from __future__ import annotations

import contextlib
import logging
import os
import signal
import threading
import time

import jax
import numpy as np

from ltcmh_jax import data as data_lib
from ltcmh_jax import metrics
from ltcmh_jax import sharding as sharding_lib
from ltcmh_jax.checkpoint import Checkpointer
from ltcmh_jax.train import floors, inputs, report, run_dir
from ltcmh_jax.train.config import CLASSICAL_METHODS, TrainConfig
from ltcmh_jax.train.evaluation import evaluate_codes
from ltcmh_jax.train.mechanism import MechanismProbe
from ltcmh_jax.train.trainer import Trainer

log = logging.getLogger("ltcmh_jax.train")

# The signals that stop a run at the next epoch boundary, after a checkpoint.
STOP_SIGNALS = (signal.SIGINT, signal.SIGTERM)


class TrainingInterrupted(Exception):
    """A run stopped by SIGINT / SIGTERM after saving a checkpoint; the message says how to resume.

    Attributes:
      epoch: epochs finished (and checkpointed) when it stopped.
    """

    def __init__(self, message: str, *, epoch: int):
        super().__init__(message)
        self.epoch = epoch


def train_and_evaluate(
    config: TrainConfig, workdir: str, *, dataset: data_lib.MultiModalDataset | None = None
) -> dict:
    """Trains (or resumes) the run `config` describes in `workdir` and evaluates it.

    Each epoch: the auto-encoder on Loss1, theta_x and theta_y on Loss2, then B = sign(M^x + M^y).
    Checkpoints go to `<workdir>/checkpoints`; running again resumes from the latest one, or
    returns the saved results of a finished run.

    A larger `config.epochs` than a finished or checkpointed run's continues it from its last
    checkpoint. SIGINT / SIGTERM stop the run at the next epoch boundary with a checkpoint
    (`TrainingInterrupted`); running again resumes.

    Args:
      config: the run's settings.
      workdir: the run's directory.
      dataset: in-memory data to train on instead of the data set `config.dataset` names
        (`ltcmh_jax.fit`); its fingerprint still guards resuming.

    Returns:
      The results dict also written to `<workdir>/results.json` (with `codes.npz`,
      `metrics.jsonl` and PNG plots next to it).
    """
    config.validate()
    workdir = os.path.abspath(workdir)
    run_dir.check_workdir(workdir)
    if dataset is None:
        dataset, stored_split = inputs.load(config)
    else:
        stored_split = None
    inputs.check_label_coverage(
        dataset.labels, config.data_path or config.data_dir or config.dataset
    )
    config = inputs.resolve_defaults(config, dataset.num_samples, dataset.num_labels)
    fingerprint = run_dir.data_fingerprint(dataset)
    finished = run_dir.load_finished(workdir, config, fingerprint)
    if finished is not None:
        log.info("%s holds a finished run; not training again", workdir)
        return finished
    split = stored_split if stored_split is not None else inputs.make_split(config, dataset)
    statistics = data_lib.describe(dataset, split)
    mesh = sharding_lib.make_data_mesh()
    head_labels = np.asarray(split.label_order[: config.num_head])
    if config.method in CLASSICAL_METHODS:
        codes, train_seconds = floors.run_floor(config, dataset, split)
        log.info("%s fitted in %.1f s", config.method, train_seconds)
        started = time.monotonic()
        scores, codes = evaluate_codes(codes, dataset, split, head_labels=head_labels)
        epochs, history, input_statistics, scale = 0, [], {}, None
    else:
        trained = _train_network(config, dataset, split, mesh, workdir, statistics, head_labels)
        scores, codes, history, train_seconds, epochs, input_statistics, started, scale = trained
    results = {
        **{name: getattr(config, name) for name in ("method", "variant", "modality", "dataset")},
        **{name: getattr(config, name) for name in ("split", "bits", "seed")},
        "epochs": epochs,
        # The factor --regulariser_scaling put on --weight_decay and --dropout (None: a floor).
        "regulariser_scale": scale,
        **scores,
        "chance_map": metrics.chance_map(codes["query_labels"], codes["db_labels"]),
        "num_head": config.num_head,
        "head_labels": head_labels.tolist(),
        "train_seconds": train_seconds,
        "eval_seconds": time.monotonic() - started,
        "split_statistics": statistics,
        "devices": sharding_lib.data_parallel_size(mesh),
        "backend": jax.default_backend(),
        "config": config.run_fields(),
        "data_fingerprint": fingerprint,
    }
    if jax.process_index() == 0:
        run_dir.save_npz_atomic(os.path.join(workdir, "codes.npz"), codes)
        if input_statistics:
            # The training split's input statistics: what encoding new data needs (DESIGN.md).
            run_dir.save_npz_atomic(os.path.join(workdir, "input_scaling.npz"), input_statistics)
        run_dir.write_lines_atomic(os.path.join(workdir, "metrics.jsonl"), history)
        results["plots"] = (
            report.write_plots(
                workdir,
                history,
                codes,
                run_name=f"{config.method} ({config.variant}), {config.dataset}, "
                f"{config.bits} bits",
                chance=results["chance_map"],
            )
            if config.plots
            else []
        )
        run_dir.write_json_atomic(os.path.join(workdir, "results.json"), results)
    return run_dir.json_safe(results)


def _train_network(config, dataset, split, mesh, workdir, statistics, head_labels):
    """Trains (or resumes) a deep method and evaluates it: `(scores, codes, history,
    train_seconds, epochs, input statistics, evaluation start time, regulariser scale)`."""
    trainer = Trainer(config, dataset, split, mesh)
    log.info(
        "data %s: %s; %d devices (%s), batch %d, %d steps per phase, %d epochs (%s), text %s, "
        "weight decay and dropout x%.3g (--regulariser_scaling=%s)",
        config.dataset,
        ", ".join(f"{key}={value}" for key, value in statistics.items()),
        sharding_lib.data_parallel_size(mesh),
        jax.default_backend(),
        trainer.batch_size,
        trainer.steps_per_epoch,
        trainer.epochs,
        trainer.epoch_mode,
        "sparse" if trainer.sparse_text else "dense",
        trainer.regulariser_scale,
        config.regulariser_scaling,
    )
    checkpointer = Checkpointer(
        os.path.join(workdir, "checkpoints"), max_to_keep=config.keep_checkpoints
    )
    state, first_epoch, history, train_seconds = _start(trainer, checkpointer, config, split)
    with _stop_requests() as stop:
        state, train_seconds = _train(
            trainer, checkpointer, state, first_epoch, history, train_seconds, workdir, stop
        )
    checkpointer.close()

    started = time.monotonic()
    scores, codes = trainer.evaluate(state, head_labels=head_labels)
    if history and history[-1]["epoch"] == trainer.epochs:
        # The final evaluation joins the last epoch's row, so curves end at the reported MAP.
        history[-1].update({**scores, "final": True})
        if jax.process_index() == 0:
            scalars = report.ScalarWriter(os.path.join(workdir, "tensorboard"))
            scalars.write(history[-1])
            scalars.close()
    return (
        scores,
        codes,
        history,
        train_seconds,
        trainer.epochs,
        trainer.scaling_arrays(),
        started,
        trainer.regulariser_scale,
    )


def _start(trainer: Trainer, checkpointer: Checkpointer, config: TrainConfig, split):
    """`(state, first_epoch, history, train_seconds)`: the latest checkpoint's, or a fresh start."""
    latest = checkpointer.latest_epoch()
    latest_meta = checkpointer.read_meta(latest) if latest is not None else None
    if latest_meta is not None:
        # Before restoring: another configuration's arrays may not even have this one's shapes.
        run_dir.check_resumable(latest_meta, config, checkpointer.directory)
    restored = checkpointer.restore_latest(trainer.abstract_state())
    if restored is None:
        return trainer.init_state(), 0, [], 0.0
    first_epoch, state, saved_split, meta = restored
    run_dir.check_resumable(meta, config, checkpointer.directory)
    run_dir.check_split(saved_split, split, checkpointer.directory)
    log.info("resuming from %s at epoch %d", checkpointer.directory, first_epoch)
    history = list(meta.get("history", []))[:first_epoch]
    return state, first_epoch, history, float(meta.get("train_seconds", 0.0))


def _train(trainer, checkpointer, state, first_epoch, history, train_seconds, workdir, stop):
    """Epochs `first_epoch` to the last, with their log lines, metrics.jsonl and checkpoints;
    when `stop` is set, a checkpoint at the end of the current epoch and `TrainingInterrupted`."""
    config = trainer.config
    epochs = trainer.epochs
    is_writer = jax.process_index() == 0
    every = report.summary_interval(epochs, config.eval_every)
    probe = MechanismProbe(trainer)
    progress = report.ProgressBar(epochs, first_epoch, enabled=config.progress and is_writer)
    scalars = report.ScalarWriter(os.path.join(workdir, "tensorboard"), enabled=is_writer)
    with contextlib.closing(progress), contextlib.closing(scalars):
        for epoch in range(first_epoch, epochs):
            started = time.monotonic()
            try:
                state, terms = trainer.run_epoch(state, epoch, progress.update)
            except FloatingPointError as error:
                kept = checkpointer.latest_epoch()
                where = (
                    os.path.join(checkpointer.directory, str(kept))
                    if kept is not None
                    else "none written yet"
                )
                raise FloatingPointError(f"{error} ({where})") from None
            seconds = time.monotonic() - started
            train_seconds += seconds
            row = {"epoch": epoch + 1, "seconds": seconds, **report.epoch_summary(terms)}
            row.update(probe(state, row))
            if config.eval_every and (epoch + 1) % config.eval_every == 0 and epoch + 1 < epochs:
                row.update(trainer.evaluate(state)[0])
            history.append(row)
            progress.update(epoch + 1, final=True)
            report.log_epoch(row, epochs, every=every)
            scalars.write(row)
            if is_writer:
                run_dir.write_lines_atomic(os.path.join(workdir, "metrics.jsonl"), history)
            last = epoch + 1 == epochs
            stopping = stop.is_set() and not last
            periodic = config.checkpoint_every and (epoch + 1) % config.checkpoint_every == 0
            if stopping or (config.checkpoint_every and (periodic or last)):
                meta = {
                    "epoch": epoch + 1,
                    "config": config.run_fields(),
                    "history": run_dir.json_safe(history),
                    "train_seconds": train_seconds,
                }
                checkpointer.save(epoch + 1, state, run_dir.split_arrays(trainer.split), meta)
            if stopping:
                checkpointer.close()
                raise TrainingInterrupted(
                    f"stopped after epoch {epoch + 1}/{epochs} with a checkpoint in "
                    f"{checkpointer.directory}; run the same command again to resume",
                    epoch=epoch + 1,
                )
    return state, train_seconds


@contextlib.contextmanager
def _stop_requests():
    """A `threading.Event` set by SIGINT / SIGTERM while the block runs (main thread only); a
    second signal stops at once, as the previous handler would."""
    stop = threading.Event()
    if threading.current_thread() is not threading.main_thread():
        yield stop
        return
    # getsignal is None for a handler installed outside Python: restore the default then.
    previous = {number: signal.getsignal(number) or signal.SIG_DFL for number in STOP_SIGNALS}

    def request_stop(number, frame):
        if stop.is_set():
            signal.signal(number, previous[number])
            signal.raise_signal(number)
            return
        stop.set()
        log.warning("%s: stopping after this epoch's checkpoint", signal.Signals(number).name)

    for number in STOP_SIGNALS:
        signal.signal(number, request_stop)
    try:
        yield stop
    finally:
        for number, handler in previous.items():
            signal.signal(number, handler)
