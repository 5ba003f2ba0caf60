"""Learning quality on data nobody tuned on: every method with the default recipe, against the
closed-form floors, on every data set we report.

    python -m benchmarks.quality                      # synthetic, mdi_icons, aloi, mfeat; 3 seeds
    python -m benchmarks.quality --datasets=mdi_icons --seeds=0

Each run is `experiments/configs/synthetic.flags` (the README's main job: TrainConfig's default
recipe) with only `--dataset`, `--method` and `--seed` changed; ALOI and mfeat (the UCI
digits, added after session 6's recipe was fixed) read the mvcluster wheel (`pip download --no-deps
mvcluster==1.16 -d data`). Runs go to `--workdir/<dataset>/<method>/
<seed>` and a finished run is reported, not retrained, so the script resumes where it stopped.
Prints one line per (data set, method): mean +- sd over the seeds of MAP I->T, T->I, tail-label
MAP I->T, T->I, the training seconds, and chance level.
"""

from __future__ import annotations

import dataclasses
import logging
import os

import numpy as np
from absl import app, flags
from absl import logging as absl_logging

from experiments import settings
from ltcmh_jax import classical
from ltcmh_jax.train import TrainConfig, train_and_evaluate

_DATASETS = flags.DEFINE_list("datasets", ["synthetic", "mdi_icons", "aloi", "mfeat"], "Data sets.")
_METHODS = flags.DEFINE_list(
    "methods",
    ["scm", "cca_itq", "scm+rbf", "cca_itq+rbf", "linear", "dcmh", "metacmh", "ltcmh"],
    "Methods, floors first (linear: the ridge floor of issue 11; FLOOR+rbf: the floor on "
    f"Gaussian-kernel features, --floor_anchors={classical.SUGGESTED_ANCHORS}).",
)
_FLOOR_ANCHORS = flags.DEFINE_integer(
    "floor_anchors",
    classical.SUGGESTED_ANCHORS,
    "RBF anchors of the FLOOR+rbf rows; at most the training rows (mfeat has about 160).",
)
_SEEDS = flags.DEFINE_list("seeds", ["0", "1", "2"], "Seeds (split, initialisation, batches).")
_WORKDIR = flags.DEFINE_string("workdir", "runs/quality", "Where the runs go.")
_ALOI_PATH = flags.DEFINE_string(
    "aloi_path",
    "data/mvcluster-1.16-py3-none-any.whl",
    "The mvcluster 1.16 wheel (ALOI and mfeat).",
)
_FLAGFILE = flags.DEFINE_string(
    "flagfile_base", "experiments/configs/synthetic.flags", "The recipe every run uses."
)

COLUMNS = ("map_i2t", "map_t2i", "map_i2t_tail", "map_t2i_tail", "train_seconds")


def run_config(base: dict, dataset: str, method: str, seed: int) -> TrainConfig:
    """The base flagfile's settings with the data set, method and seed of one run.

    `method` is a `--method` value, or a floor with `+rbf` for its kernel-feature form.
    """
    method, _, kernel = method.partition("+")
    if kernel not in ("", "rbf"):
        raise ValueError(f"--methods: {method}+{kernel}: only a floor+rbf is known")
    values = dict(base, dataset=dataset, method=method, seed=seed, progress=False)
    # One anchor count for every data set (--floor_anchors); the default is below the training
    # rows of synthetic, icons and ALOI, not of mfeat (about 160: run its +rbf rows with fewer).
    values.update(floor_anchors=_FLOOR_ANCHORS.value if kernel else 0)
    values.update(eval_every=0, checkpoint_every=0)
    if dataset in ("aloi", "mfeat"):
        values["data_path"] = _ALOI_PATH.value
    return dataclasses.replace(TrainConfig(), **values).validate()


def summary_line(dataset: str, method: str, results: list[dict]) -> str:
    """`dataset method  I->T m+-s  T->I m+-s  tail ...  seconds  chance` over the seeds."""
    cells = []
    for key in COLUMNS:
        values = np.array([result[key] for result in results], np.float64)
        spread = values.std(ddof=1) if len(values) > 1 else 0.0
        digits = 1 if key == "train_seconds" else 4
        cells.append(f"{values.mean():.{digits}f} +- {spread:.{digits}f}")
    chance = np.mean([result["chance_map"] for result in results])
    return f"| {dataset} | {method} | " + " | ".join(cells) + f" | {chance:.4f} | {len(results)} |"


def main(argv):
    del argv
    # Orbax and JAX log every checkpoint manager at INFO through absl: keep the table readable.
    absl_logging.set_verbosity(absl_logging.WARNING)
    logging.getLogger("ltcmh_jax").setLevel(logging.WARNING)
    base = settings.read_flagfile(_FLAGFILE.value)
    print(
        "| data set | method | MAP I->T | MAP T->I | tail I->T | tail T->I | train s | chance "
        "| seeds |"
    )
    print("| --- | --- | --- | --- | --- | --- | --- | --- | --- |")
    for dataset in _DATASETS.value:
        for method in _METHODS.value:
            results = []
            try:
                for seed in _SEEDS.value:
                    config = run_config(base, dataset, method, int(seed))
                    workdir = os.path.join(_WORKDIR.value, dataset, method, str(seed))
                    results.append(train_and_evaluate(config, workdir))
            except (classical.TooManyBitsError, classical.TooManyAnchorsError) as error:
                # A linear floor cannot give more bits than a view has columns (ALOI's 13
                # texture features), nor a kernel floor more anchors than training rows
                # (mfeat's 161): a row that says so, and the table goes on.
                print(f"| {dataset} | {method} | cannot run: {error} |", flush=True)
                continue
            print(summary_line(dataset, method, results), flush=True)


if __name__ == "__main__":
    app.run(main)
