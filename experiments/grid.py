"""The paper's experiments as grids of training runs: Tables 2-4 and Figures 2-3.

A grid is a list of `Run`s (a `TrainConfig` and the sub-folder it trains in); `run_grid` trains
each through `train.train_and_evaluate`, which returns the saved results of a finished run without
training again, so an interrupted grid resumes where it stopped (`experiments.aggregate` turns
the results into tables and figures). Each grid starts from a flagfile, read through absl
(`experiments.settings.read_flagfile`).

Folders: `<root>/table2/<method>-<variant>-<bits>-seed<k>` (long-tail, cross-modal: Table 2,
Figure 2 and Figure 3 share these runs), `<root>/table3/...` (balanced), `<root>/table4/...`
(image modality alone).
"""

from __future__ import annotations

import dataclasses
import logging
import os
import shutil
from collections.abc import Callable, Sequence

from experiments import settings
from ltcmh_jax import models
from ltcmh_jax.train import TrainConfig

EXPERIMENTS = ("table2", "table3", "table4", "figure2", "figure3")
METHODS = ("dcmh", "metacmh", "ltcmh")
# The closed-form floors every cross-modal table reports next to the deep methods (about a
# second a run); Table 4 (image only) has none, they are cross-modal.
FLOORS = ("scm", "cca_itq")
METHOD_NAMES = {
    "scm": "SCM",
    "cca_itq": "CCA-ITQ",
    "dcmh": "DCMH",
    "metacmh": "MetaCMH",
    "ltcmh": "LtCMH",
}
VARIANT_NAMES = {
    "full": "LtCMH",
    "wo_c": "LtCMH-w/oC",
    "wo_i": "LtCMH-w/oI",
    "wo_ic": "LtCMH-w/oIC",
    "wo_mi": "LtCMH-w/oMI",
    "wo_mt": "LtCMH-w/oMT",
}
DIRECTIONS = {"map_i2t": "I->T", "map_t2i": "T->I", "map_i2i": "I->I"}
HEAD_TAIL_KEYS = ("map_i2t_head", "map_i2t_tail", "map_t2i_head", "map_t2i_tail")
# Tail-only AP (relevance = carries the query's tail label; docs/DESIGN.md), next to head / tail
# MAP so that head labels a tail query also carries do not hide the tail effect.
TAIL_ONLY_KEYS = ("map_i2t_tail_only", "map_t2i_tail_only")
# What each experiment reports, and which folder (protocol) its runs live in.
METRICS = {
    "table2": ("map_i2t", "map_t2i"),
    "table3": ("map_i2t", "map_t2i"),
    "table4": ("map_i2i",),
    "figure2": HEAD_TAIL_KEYS + TAIL_ONLY_KEYS,
    "figure3": ("map_i2t", "map_t2i"),
}
TITLES = {
    "table2": "Table 2: MAP on the long-tail split",
    "table3": "Table 3: MAP on the balanced split",
    "table4": "Table 4: image->image MAP, image modality alone, long-tail split",
    "figure2": "Figure 2: head and tail MAP on the long-tail split",
    "figure3": "Figure 3: LtCMH and its ablations on the long-tail split",
}
FOLDERS = {
    "table2": "table2",
    "table3": "table3",
    "table4": "table4",
    "figure2": "table2",
    "figure3": "table2",
}
# `--quick`: fewer epochs (the rest of the flagfile unchanged) and no checkpoints, so that Table 2
# (3 methods x 3 code lengths x 5 seeds) takes about 10 minutes on 2 CPU cores (docs/RESULTS.md).
QUICK_EPOCHS = 15
# A balanced synthetic training set as large as the long-tail one (n_train of data.SYNTHETIC_SPLIT
# on the default synthetic set, version 2), so Tables 2 and 3 differ in the label distribution
# only.
SYNTHETIC_BALANCED_TRAIN = 3099  # the fair sampler on version 2, seed 0 (main job log)

# The data sets with a single flagfile (`<dataset>.flags`) and no download.
EMBEDDED_DATASETS = ("synthetic", "mdi_icons")

log = logging.getLogger("ltcmh_jax.experiments")


@dataclasses.dataclass(frozen=True)
class Run:
    """One training run of a grid: its configuration and its folder under the grid's root."""

    folder: str
    config: TrainConfig

    @property
    def name(self) -> str:
        config = self.config
        return f"{config.method}-{config.variant}-{config.bits}-seed{config.seed}"

    def workdir(self, root: str) -> str:
        return os.path.join(root, self.folder, self.name)


def base_config(
    dataset: str,
    *,
    split: str,
    bits: int,
    configs_dir: str,
    data_dir: str = "",
    quick: bool = False,
) -> TrainConfig:
    """The main job's settings for one data set, split and code length.

    synthetic, mdi_icons: `<dataset>.flags` (synthetic whatever its split: a balanced split trains
    on `SYNTHETIC_BALANCED_TRAIN` samples; the icons long-tail only); mirflickr25k / nuswide:
    `<dataset>_<split>_<bits>.flags`.
    Every method and variant of a grid starts from this one config.
    """
    if dataset in EMBEDDED_DATASETS:
        if split == "balanced" and dataset != "synthetic":
            raise ValueError(
                f"--table: 3 (balanced split) needs a balanced training-set size; {dataset} has "
                "only its long-tail flagfile (Table 2, 4 and the figures)"
            )
        path = os.path.join(configs_dir, f"{dataset}.flags")
    else:
        path = os.path.join(configs_dir, f"{dataset}_{split}_{bits}.flags")
    if not os.path.exists(path):
        raise FileNotFoundError(f"--dataset: no flagfile {path} for {dataset} {split} {bits} bits")
    fields = settings.read_flagfile(path)
    fields.update(split=split, bits=bits, progress=False, eval_every=0)
    if split == "balanced":
        for name in ("z1", "imbalance_factor"):
            fields.pop(name, None)
        if dataset == "synthetic":
            fields.setdefault("num_train", SYNTHETIC_BALANCED_TRAIN)
    if data_dir:
        fields["data_dir"] = data_dir
    if quick:
        # The step budget would raise the epochs back to the full run's length.
        fields.update(epochs=QUICK_EPOCHS, min_steps=0, checkpoint_every=0)
    return TrainConfig(**fields)


def grid(
    experiment: str,
    *,
    dataset: str = "synthetic",
    bits: Sequence[int] = (16, 32, 64),
    repeats: int = 5,
    configs_dir: str,
    data_dir: str = "",
    quick: bool = False,
) -> list[Run]:
    """The runs of one experiment, seeds 0 .. repeats - 1 (the split, the initialisation and the
    batches change with the seed; the data set does not).

    table2 / figure2: scm, cca_itq, dcmh, metacmh, ltcmh on the long-tail split; table3: the
    same on the balanced split; table4: the three deep methods on the image modality alone;
    figure3: LtCMH and its five
    ablations on the long-tail split.
    """
    if experiment not in EXPERIMENTS:
        raise ValueError(f"--table/--figure: must be one of {EXPERIMENTS}, got {experiment!r}")
    if repeats < 1:
        raise ValueError(f"--repeats: must be positive, got {repeats}")
    if not bits or any(int(b) < 1 for b in bits):
        raise ValueError(f"--bits: positive code lengths expected, got {list(bits)}")
    split = "balanced" if experiment == "table3" else "longtail"
    if experiment == "figure3":
        arms = [("ltcmh", variant) for variant in models.VARIANTS]
    else:
        floors = () if experiment == "table4" else FLOORS
        arms = [(method, "full") for method in floors + METHODS]
    modality = "image" if experiment == "table4" else "both"
    runs = []
    for length in bits:
        base = base_config(
            dataset,
            split=split,
            bits=int(length),
            configs_dir=configs_dir,
            data_dir=data_dir,
            quick=quick,
        )
        for method, variant in arms:
            for seed in range(repeats):
                config = dataclasses.replace(
                    base, method=method, variant=variant, modality=modality, seed=seed
                )
                runs.append(Run(FOLDERS[experiment], config.validate()))
    return runs


def run_grid(
    runs: Sequence[Run],
    root: str,
    *,
    train_fn: Callable[[TrainConfig, str], dict] | None = None,
    keep_checkpoints: bool = False,
) -> list[tuple[Run, dict]]:
    """Trains every run (a finished one is read back by `train_and_evaluate`) and returns
    `(run, results)` pairs in order. Unless `keep_checkpoints`, a finished run's checkpoints are
    deleted: its results.json and codes.npz are what the tables read, and 64-bit checkpoints
    of the 8192-wide text net take tens of MB per run."""
    if train_fn is None:
        from ltcmh_jax.train import train_and_evaluate as train_fn
    records = []
    for number, run in enumerate(runs, 1):
        workdir = run.workdir(root)
        log.info("run %d/%d: %s", number, len(runs), workdir)
        results = train_fn(run.config, workdir)
        if not keep_checkpoints:
            shutil.rmtree(os.path.join(workdir, "checkpoints"), ignore_errors=True)
        records.append((run, results))
    return records
