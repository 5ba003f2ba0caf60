"""The paper's experiments as grids of training runs: Tables 2-4 and Figures 2-3.

A grid is a list of `Run`s (a `TrainConfig` and the sub-folder it trains in); `run_grid` trains
each through `train.train_and_evaluate`, which returns the saved results of a finished run without
training again, so an interrupted grid resumes where it stopped. `aggregate` reduces the results
to mean +- std over seeds, and the writers give the markdown table in the paper's layout, a CSV and
the PNG figure.

Folders: `<root>/table2/<method>-<variant>-<bits>-seed<k>` (long-tail, cross-modal: Table 2,
Figure 2 and Figure 3 share these runs), `<root>/table3/...` (balanced), `<root>/table4/...`
(image modality alone).
"""

from __future__ import annotations

import csv
import dataclasses
import logging
import math
import os
import shutil
import typing
from collections.abc import Callable, Iterable, Sequence

import numpy as np

from ltcmh_jax import models
from ltcmh_jax.train import TrainConfig

EXPERIMENTS = ("table2", "table3", "table4", "figure2", "figure3")
METHODS = ("dcmh", "metacmh", "ltcmh")
METHOD_NAMES = {"dcmh": "DCMH", "metacmh": "MetaCMH", "ltcmh": "LtCMH"}
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
# What each experiment reports, and which folder (protocol) its runs live in.
METRICS = {
    "table2": ("map_i2t", "map_t2i"),
    "table3": ("map_i2t", "map_t2i"),
    "table4": ("map_i2i",),
    "figure2": HEAD_TAIL_KEYS,
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
# on the default synthetic set), so Tables 2 and 3 differ in the label distribution only.
SYNTHETIC_BALANCED_TRAIN = 2746

log = logging.getLogger("ltcmh_jax.tables")


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


def _field_types() -> dict[str, type]:
    hints = typing.get_type_hints(TrainConfig)
    return {field.name: hints[field.name] for field in dataclasses.fields(TrainConfig)}


def _convert(name: str, text: str, hint) -> object:
    if hint is bool:
        if text.lower() not in ("true", "false", "1", "0"):
            raise ValueError(f"--{name}: expected true or false, got {text!r}")
        return text.lower() in ("true", "1")
    if hint is int or hint == (int | None):
        return int(text)
    if hint is float or hint == (float | None):
        return float(text)
    if hint == tuple[int, ...]:
        return tuple(int(part) for part in text.split(",") if part)
    return text


def read_flagfile(path: str) -> dict:
    """The `--name=value` lines of a flagfile as TrainConfig fields (comments and `--workdir`
    skipped).

    Raises:
      ValueError: naming the file and line of a flag TrainConfig does not have.
    """
    types = _field_types()
    fields = {}
    with open(path) as stream:
        for number, line in enumerate(stream, 1):
            line = line.strip()
            if not line or line.startswith("#"):
                continue
            name, _, value = line.removeprefix("--").partition("=")
            if name == "workdir":
                continue
            if name not in types:
                raise ValueError(f"{path}:{number}: --{name} is not a training flag")
            fields[name] = _convert(name, value, types[name])
    return fields


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

    synthetic: `synthetic.flags` (whatever its split; a balanced split trains on
    `SYNTHETIC_BALANCED_TRAIN` samples); mirflickr25k / nuswide: `<dataset>_<split>_<bits>.flags`.
    Every method and variant of a grid starts from this one config.
    """
    if dataset == "synthetic":
        path = os.path.join(configs_dir, "synthetic.flags")
    else:
        path = os.path.join(configs_dir, f"{dataset}_{split}_{bits}.flags")
    if not os.path.exists(path):
        raise FileNotFoundError(f"--dataset: no flagfile {path} for {dataset} {split} {bits} bits")
    fields = read_flagfile(path)
    fields.update(split=split, bits=bits, progress=False, eval_every=0)
    if split == "balanced":
        for name in ("z1", "imbalance_factor"):
            fields.pop(name, None)
        if dataset == "synthetic":
            fields.setdefault("num_train", SYNTHETIC_BALANCED_TRAIN)
    if data_dir:
        fields["data_dir"] = data_dir
    if quick:
        fields.update(epochs=QUICK_EPOCHS, checkpoint_every=0)
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

    table2 / figure2: dcmh, metacmh, ltcmh on the long-tail split; table3: the same on the
    balanced split; table4: the three on the image modality alone; figure3: LtCMH and its five
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
        arms = [(method, "full") for method in METHODS]
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


@dataclasses.dataclass(frozen=True)
class Cell:
    """Mean and standard deviation (ddof 1; 0 for a single value) of one metric over seeds."""

    values: tuple[float, ...]
    seeds: tuple[int, ...] = ()

    @property
    def mean(self) -> float:
        return float(np.mean(self.values))

    @property
    def std(self) -> float:
        return float(np.std(self.values, ddof=1)) if len(self.values) > 1 else 0.0


def arm_name(config_or_run) -> str:
    """The row label: the method's name, or the ablation's name for LtCMH variants."""
    config = getattr(config_or_run, "config", config_or_run)
    if config.method == "ltcmh":
        return VARIANT_NAMES[config.variant]
    return METHOD_NAMES[config.method]


def aggregate(
    records: Iterable[tuple[Run, dict]], metrics: Sequence[str]
) -> dict[tuple[str, str, int], Cell]:
    """`{(arm, metric, bits): Cell}` over the seeds of each arm; a missing or non-finite value
    (e.g. no tail query) is left out of its cell."""
    values: dict[tuple[str, str, int], list[tuple[int, float]]] = {}
    for run, results in records:
        for metric in metrics:
            value = results.get(metric)
            if value is None or not math.isfinite(value):
                continue
            key = (arm_name(run), metric, run.config.bits)
            values.setdefault(key, []).append((run.config.seed, float(value)))
    return {
        key: Cell(tuple(value for _, value in cell), tuple(seed for seed, _ in cell))
        for key, cell in values.items()
    }


def _ordered(cells: dict, position: int) -> list:
    seen = []
    for key in cells:
        if key[position] not in seen:
            seen.append(key[position])
    return seen


def _format(cell: Cell | None, bold: bool = False) -> str:
    if cell is None:
        return "-"
    text = f"{cell.mean:.3f} ± {cell.std:.3f}".replace("0.", ".")
    return f"**{text}**" if bold else text


def markdown_table(cells: dict[tuple[str, str, int], Cell], *, title: str = "") -> str:
    """The paper's layout: one block of rows per metric (I->T, then T->I), one row per arm, one
    column per code length, `mean ± std` with the best mean of each column in bold."""
    arms = _ordered(cells, 0)
    metrics = _ordered(cells, 1)
    bits = sorted(_ordered(cells, 2))
    lines = [f"**{title}**", ""] if title else []
    lines.append("| Task | Method | " + " | ".join(f"{b} bits" for b in bits) + " |")
    lines.append("|---|---|" + "---|" * len(bits))
    for metric in metrics:
        best = {
            b: max(
                (cells[(arm, metric, b)].mean for arm in arms if (arm, metric, b) in cells),
                default=None,
            )
            for b in bits
        }
        for arm in arms:
            row = []
            for b in bits:
                cell = cells.get((arm, metric, b))
                row.append(_format(cell, cell is not None and cell.mean == best[b]))
            task = DIRECTIONS.get(metric, metric.removeprefix("map_"))
            lines.append(f"| {task} | {arm} | " + " | ".join(row) + " |")
    return "\n".join(lines) + "\n"


def comparison_lines(
    cells: dict[tuple[str, str, int], Cell], *, reference: str = "LtCMH"
) -> list[str]:
    """`reference` minus every other arm, per metric and code length, in absolute MAP and in
    units of the pooled standard deviation sqrt((s_a^2 + s_b^2) / 2); where both arms ran the same
    seeds (same splits), also the per-seed (paired) differences: mean ± sd and how many seeds the
    reference wins."""
    lines = []
    for metric in _ordered(cells, 1):
        for b in sorted(_ordered(cells, 2)):
            ours = cells.get((reference, metric, b))
            if ours is None:
                continue
            parts = []
            for arm in _ordered(cells, 0):
                other = cells.get((arm, metric, b))
                if arm == reference or other is None:
                    continue
                difference = ours.mean - other.mean
                pooled = math.sqrt((ours.std**2 + other.std**2) / 2)
                ratio = f"{difference / pooled:+.1f} sd" if pooled > 0 else "sd n/a"
                if len(ours.values) > 1 and ours.seeds == other.seeds:
                    paired = np.subtract(ours.values, other.values)
                    wins = int(np.sum(paired > 0))
                    ratio += (
                        f"; paired {paired.mean():+.3f} ± {paired.std(ddof=1):.3f}, "
                        f"{wins}/{paired.size} seeds"
                    )
                parts.append(f"vs {arm} {difference:+.3f} ({ratio})")
            task = DIRECTIONS.get(metric, metric.removeprefix("map_"))
            lines.append(f"- {task} {b} bits: {reference} " + ", ".join(parts))
    return lines


def write_csv(records: Sequence[tuple[Run, dict]], metrics: Sequence[str], path: str) -> str:
    """One row per (arm, metric, bits): mean, std, the number of seeds and the per-seed values."""
    cells = aggregate(records, metrics)
    os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    with open(path, "w", newline="") as stream:
        writer = csv.writer(stream)
        writer.writerow(["method", "metric", "bits", "mean", "std", "repeats", "values"])
        for (arm, metric, bits), cell in cells.items():
            writer.writerow(
                [
                    arm,
                    metric,
                    bits,
                    f"{cell.mean:.6f}",
                    f"{cell.std:.6f}",
                    len(cell.values),
                    ";".join(f"{value:.6f}" for value in cell.values),
                ]
            )
    return path


def write_figure(
    experiment: str, cells: dict[tuple[str, str, int], Cell], path_prefix: str
) -> list[str]:
    """Figure 2 (head vs tail MAP per method) or Figure 3 (LtCMH and its ablations), one PNG per
    code length `<path_prefix>-<bits>bits.png`, bars at the mean over seeds."""
    from ltcmh_jax import plots

    written = []
    keys = METRICS[experiment]
    for b in sorted(_ordered(cells, 2)):
        by_arm = {
            arm: {
                metric: cells[(arm, metric, b)].mean for metric in keys if (arm, metric, b) in cells
            }
            for arm in _ordered(cells, 0)
        }
        title = (
            f"Head and tail MAP, {b} bits"
            if experiment == "figure2"
            else f"LtCMH and its ablations, {b} bits"
        )
        written.append(
            plots.plot_head_tail(by_arm, f"{path_prefix}-{b}bits.png", keys=keys, title=title)
        )
    return written


def write_outputs(
    experiment: str, records: Sequence[tuple[Run, dict]], out_dir: str, *, title: str = ""
) -> dict[str, object]:
    """`<out_dir>/<experiment>.md` (table + LtCMH comparisons), `.csv`, and for figures the PNGs.

    Returns:
      `{"markdown": path, "csv": path, "figures": [paths], "text": the markdown}`.
    """
    metrics = METRICS[experiment]
    cells = aggregate(records, metrics)
    if not cells:
        raise ValueError(f"{experiment}: no run reported {list(metrics)}")
    os.makedirs(out_dir, exist_ok=True)
    repeats = max(len(cell.values) for cell in cells.values())
    text = markdown_table(
        cells, title=title or f"{TITLES[experiment]}, mean ± std over {repeats} seeds"
    )
    comparisons = comparison_lines(cells)
    if comparisons:
        text += "\n" + "\n".join(comparisons) + "\n"
    markdown = os.path.join(out_dir, f"{experiment}.md")
    with open(markdown, "w") as stream:
        stream.write(text)
    outputs = {
        "markdown": markdown,
        "csv": write_csv(records, metrics, os.path.join(out_dir, f"{experiment}.csv")),
        "figures": [],
        "text": text,
    }
    if experiment.startswith("figure"):
        outputs["figures"] = write_figure(experiment, cells, os.path.join(out_dir, experiment))
    return outputs
