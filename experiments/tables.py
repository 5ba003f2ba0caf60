r"""The paper's tables and figures in one command (runs reused, so an interrupted one resumes).

  python -m experiments.tables --table=2 --quick --workdir=runs/tables
  python -m experiments.tables --figure=3 --bits=32 --repeats=5 --workdir=runs/tables

Writes `<workdir>/<table2|...>.md` (mean ± std in the paper's layout), `.csv` and, for figures,
`<workdir>/figure<N>-<bits>bits.png`; the runs live in `<workdir>/table<N>/<method>-<variant>-
<bits>-seed<k>` (Figures 2 and 3 reuse Table 2's long-tail runs).
"""

from __future__ import annotations

import logging as std_logging
import os
import sys

from absl import app, flags, logging

_TABLE = flags.DEFINE_enum(
    "table", None, ["2", "3", "4"], "Table: 2 long-tail, 3 balanced, 4 image modality alone."
)
_FIGURE = flags.DEFINE_enum("figure", None, ["2", "3"], "Figure: 2 head vs tail MAP, 3 ablations.")
_REPEATS = flags.DEFINE_integer("repeats", 5, "Seeds per cell (the paper: 10).")
_DATASET = flags.DEFINE_enum(
    "dataset",
    "synthetic",
    ["synthetic", "mdi_icons", "mirflickr25k", "nuswide"],
    "synthetic or mdi_icons (embedded, no download), or the real set from --data_dir with its "
    "flagfiles.",
)
_DATA_DIR = flags.DEFINE_string("data_dir", "", "Folder of the real data set's .mat files.")
_BITS = flags.DEFINE_list("bits", ["16", "32", "64"], "Code lengths.")
_WORKDIR = flags.DEFINE_string("workdir", "runs/tables", "Runs and outputs go here.")
_QUICK = flags.DEFINE_bool(
    "quick", False, "Fewer epochs and no checkpoints (Table 2 in about 10 minutes on 2 CPU cores)."
)
_KEEP_CHECKPOINTS = flags.DEFINE_bool(
    "keep_checkpoints", False, "Keep each finished run's checkpoints (default: delete them)."
)
_CONFIGS_DIR = flags.DEFINE_string(
    "configs_dir",
    os.path.join(os.path.dirname(os.path.abspath(__file__)), "configs"),
    "Folder of the flagfiles each grid starts from.",
)


def main(argv):
    if len(argv) > 1:
        raise app.UsageError(f"unexpected arguments: {' '.join(argv[1:])}")
    if (_TABLE.value is None) == (_FIGURE.value is None):
        raise app.UsageError("give exactly one of --table and --figure")
    logging.set_verbosity(logging.WARNING)
    std_logging.getLogger("ltcmh_jax").setLevel(std_logging.INFO)
    experiment = f"table{_TABLE.value}" if _TABLE.value else f"figure{_FIGURE.value}"
    from ltcmh_jax.train import TrainingInterrupted

    try:
        from experiments import aggregate, grid

        bits = [int(value) for value in _BITS.value]
        runs = grid.grid(
            experiment,
            dataset=_DATASET.value,
            bits=bits,
            repeats=_REPEATS.value,
            configs_dir=_CONFIGS_DIR.value,
            data_dir=_DATA_DIR.value,
            quick=_QUICK.value,
        )
        records = grid.run_grid(runs, _WORKDIR.value, keep_checkpoints=_KEEP_CHECKPOINTS.value)
        outputs = aggregate.write_outputs(
            experiment, records, _WORKDIR.value, dataset=_DATASET.value
        )
    except TrainingInterrupted as interrupted:
        # Finished runs are kept; the same command reuses them and resumes this one.
        print(f"interrupted: {interrupted}", file=sys.stderr)
        sys.exit(130)
    except (ValueError, FileNotFoundError, PermissionError, FloatingPointError) as error:
        logging.debug("failed", exc_info=True)
        sys.exit(f"error: {error}")
    print(outputs["text"])
    print("written: " + ", ".join([outputs["markdown"], outputs["csv"], *outputs["figures"]]))


def run():
    """The console script (`pyproject.toml` [project.scripts])."""
    app.run(main)


if __name__ == "__main__":
    run()
