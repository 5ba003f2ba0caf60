r"""Train and evaluate LtCMH (or a baseline): flags in, `ltcmh_jax.train.train_and_evaluate` out.

  python -m experiments.main --flagfile=experiments/configs/synthetic.flags

Running the same command again resumes from `<workdir>/checkpoints`; a finished run is reported
from its `results.json` without training again.
"""

from __future__ import annotations

import logging as std_logging
import os
import sys

from absl import app, flags, logging

from experiments import settings

settings.define_flags()
_WORKDIR = flags.DEFINE_string(
    "workdir",
    "runs/synthetic",
    "Output directory: results.json, codes.npz, metrics.jsonl, plots, checkpoints/.",
)
_COORDINATOR_ADDRESS = flags.DEFINE_string(
    "coordinator_address", None, "Multi-host: host:port of process 0 (jax.distributed)."
)
_NUM_PROCESSES = flags.DEFINE_integer("num_processes", None, "Multi-host: number of processes.")
_PROCESS_ID = flags.DEFINE_integer("process_id", None, "Multi-host: this process's index.")


def _print_results(results: dict, workdir: str) -> None:
    statistics = results.get("split_statistics", {})
    print(
        f"{results['method']} ({results['variant']}) on {results['dataset']} "
        f"{results['split']}, {results['bits']} bits, seed {results['seed']}: "
        f"{results['epochs']} epochs in {results['train_seconds']:.1f} s"
    )
    print("split: " + ", ".join(f"{key}={value}" for key, value in statistics.items()))
    print(f"{'':6} {'all':>7} {'head':>7} {'tail':>7}")  # see the legend line below
    directions = (("i2t", "I->T"), ("t2i", "T->I"))
    if "map_i2i" in results:
        directions = (("i2i", "I->I"),)
    for direction, name in directions:
        row = [results.get(f"map_{direction}{part}") for part in ("", "_head", "_tail")]
        print(
            f"{name:6} "
            + " ".join(f"{value:7.4f}" if value is not None else f"{'-':>7}" for value in row)
        )
    print(
        "all: MAP over the queries; head, tail: mean of the per-label MAP over the head / tail "
        "labels (paper Fig. 2)"
    )
    print(f"chance-level MAP {results['chance_map']:.4f}; results in {workdir}/results.json")


def remove_if_empty(workdir: str, *, existed: bool) -> None:
    """Removes a --workdir this failed run created and left empty (it would only mislead)."""
    if not existed and os.path.isdir(workdir) and not os.listdir(workdir):
        os.rmdir(workdir)


def check_bits(config) -> None:
    """Refuses a code length above what the Hamming index and metrics take (`MAX_BITS`), which
    otherwise aborts inside XLA (exit 134) allocating `[n, k]` buffers.

    Raises:
      ValueError: naming --bits.
    """
    from ltcmh_jax.hamming import MAX_BITS

    if config.bits > MAX_BITS:
        raise ValueError(
            f"--bits: at most {MAX_BITS} (the Hamming index's limit), got {config.bits}"
        )


def check_npz_split_flags(config) -> None:
    """One error for every split flag `--dataset=npz --split=longtail` lacks, with values suggested
    from the archive's label counts (`ltcmh_jax.suggest_longtail_split`).

    Raises:
      ValueError: naming the flags and the file.
    """
    if config.dataset != "npz" or config.split != "longtail":
        return
    missing = [name for name in ("z1", "imbalance_factor") if getattr(config, name) is None]
    if not missing:
        return
    import numpy as np

    from ltcmh_jax import data as data_lib
    from ltcmh_jax.api import suggest_longtail_split

    labels = data_lib.load_npz(config.data_path).labels
    num_query = config.num_query or min(2000, max(1, labels.shape[0] // 10))
    suggested = suggest_longtail_split(np.asarray(labels), num_query=num_query)
    flags = " ".join(f"--{name}={suggested[name]:g}" for name in missing)
    raise ValueError(
        f"{', '.join('--' + name for name in missing)}: required for --dataset=npz "
        f"--split=longtail; suggested from the label counts of {config.data_path}: {flags} "
        "(or --split=balanced)"
    )


def main(argv):
    if len(argv) > 1:
        raise app.UsageError(f"unexpected arguments: {' '.join(argv[1:])}")
    # Orbax logs every save at INFO through absl; keep those at WARNING and the library's own
    # (standard logging, "ltcmh_jax") lines at INFO: one line per epoch.
    logging.set_verbosity(logging.WARNING)
    library_log = std_logging.getLogger("ltcmh_jax")
    library_log.setLevel(std_logging.INFO)
    # Bare lines above the progress line, not absl's 60-character prefix on each.
    from ltcmh_jax.train.report import ConsoleHandler

    if not any(isinstance(handler, ConsoleHandler) for handler in library_log.handlers):
        library_log.addHandler(ConsoleHandler())
    library_log.propagate = False
    workdir_existed = os.path.exists(_WORKDIR.value)
    try:
        from ltcmh_jax import sharding
        from ltcmh_jax.train import TrainingInterrupted, train_and_evaluate

        sharding.maybe_initialize_distributed(
            _COORDINATOR_ADDRESS.value, _NUM_PROCESSES.value, _PROCESS_ID.value
        )
        config = settings.config_from_flags()
        check_bits(config)
        check_npz_split_flags(config)
        try:
            results = train_and_evaluate(config, _WORKDIR.value)
        except TrainingInterrupted as interrupted:
            # 128 + SIGINT, the shell's code for a run stopped by Ctrl-C.
            print(f"interrupted: {interrupted}", file=sys.stderr)
            sys.exit(130)
    except (ValueError, OSError, FloatingPointError, RuntimeError) as error:
        # OSError covers a missing file, an unwritable --workdir and a full disk; every message
        # names the file or flag, so one line is the whole report.
        logging.debug("failed", exc_info=True)
        remove_if_empty(_WORKDIR.value, existed=workdir_existed)
        sys.exit(f"error: {error}")
    _print_results(results, _WORKDIR.value)


def run():
    """The console script (`pyproject.toml` [project.scripts])."""
    app.run(main)


if __name__ == "__main__":
    run()
