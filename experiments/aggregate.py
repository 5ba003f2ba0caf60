"""The paper's tables and figures from a grid's results: mean +- std over seeds per cell, the
markdown table in the paper's layout, a CSV and the PNG figures."""

from __future__ import annotations

import csv
import dataclasses
import math
import os
from collections.abc import Iterable, Sequence

import numpy as np

from experiments.grid import DIRECTIONS, METHOD_NAMES, METRICS, TITLES, VARIANT_NAMES, Run


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
    experiment: str,
    cells: dict[tuple[str, str, int], Cell],
    path_prefix: str,
    *,
    dataset: str = "",
) -> list[str]:
    """Figure 2 (head vs tail MAP per method) or Figure 3 (LtCMH and its ablations), one PNG per
    code length `<path_prefix>-<bits>bits.png`: bars at the mean over seeds, error bars the std."""
    from ltcmh_jax import plots

    dataset_note = f", {dataset}" if dataset else ""

    written = []
    keys = METRICS[experiment]
    for b in sorted(_ordered(cells, 2)):
        by_arm = {
            arm: {
                metric: cells[(arm, metric, b)].mean for metric in keys if (arm, metric, b) in cells
            }
            for arm in _ordered(cells, 0)
        }
        spread = {
            arm: {
                metric: cells[(arm, metric, b)].std for metric in keys if (arm, metric, b) in cells
            }
            for arm in _ordered(cells, 0)
        }
        title = (
            f"Head and tail MAP{dataset_note}, {b} bits"
            if experiment == "figure2"
            else f"LtCMH and its ablations{dataset_note}, {b} bits"
        )
        written.append(
            plots.plot_head_tail(
                by_arm, f"{path_prefix}-{b}bits.png", keys=keys, title=title, errors=spread
            )
        )
    return written


def write_outputs(
    experiment: str,
    records: Sequence[tuple[Run, dict]],
    out_dir: str,
    *,
    title: str = "",
    dataset: str = "",
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
        outputs["figures"] = write_figure(
            experiment, cells, os.path.join(out_dir, experiment), dataset=dataset
        )
    return outputs
