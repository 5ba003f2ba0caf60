"""PNG figures for evaluation and training (matplotlib, Agg backend, so no display is needed).

Each function takes plain data plus an output path, writes one PNG (creating the folder), closes the
figure and returns the path.
"""

from __future__ import annotations

import json
import math
import numbers
import os
from collections.abc import Iterable, Mapping, Sequence

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402  (the backend must be chosen first)
import matplotlib.ticker  # noqa: E402
import numpy as np  # noqa: E402

HEAD_TAIL_KEYS = ("map_i2t_head", "map_i2t_tail", "map_t2i_head", "map_t2i_tail")


def _save(figure, path) -> str:
    path = os.fspath(path)
    folder = os.path.dirname(path)
    if folder:
        os.makedirs(folder, exist_ok=True)
    figure.savefig(path, dpi=120, bbox_inches="tight")
    plt.close(figure)
    return path


def _require(data, name: str) -> None:
    if not data:
        raise ValueError(f"{name}: nothing to plot")


def plot_pr_curves(
    curves: Mapping[str, object],
    path,
    *,
    title: str = "PR by Hamming radius",
    chance: float | None = None,
) -> str:
    """Precision against recall, one line per curve, a marker at each Hamming radius.

    Args:
      curves: name -> `metrics.PRCurve` (or any `(radius, precision, recall)` triple or an object
        with `precision` and `recall` attributes), e.g. `{"I->T": ..., "T->I": ...}`.
      path: the PNG to write.
      title: e.g. "LtCMH, synthetic, 16 bits: PR by Hamming radius".
      chance: the precision of a random ranking (the mean share of relevant database items),
        drawn as a dashed line.
    """
    _require(curves, "curves")
    figure, axes = plt.subplots(figsize=(5, 4))
    for name, curve in curves.items():
        if hasattr(curve, "precision"):
            precision, recall = curve.precision, curve.recall
        else:
            _, precision, recall = curve
        precision = np.asarray(precision, float)
        recall = np.asarray(recall, float)
        if precision.shape != recall.shape:
            raise ValueError(
                f"curves[{name!r}]: precision {precision.shape} and recall {recall.shape} differ"
            )
        axes.plot(recall, precision, marker=".", label=name)
    if chance is not None:
        axes.axhline(chance, color="grey", linestyle="--", linewidth=1, label="chance")
    axes.set_xlabel("recall")
    axes.set_ylabel("precision")
    axes.set_xlim(0, 1.02)
    axes.set_ylim(0, 1.02)
    axes.set_title(title)
    axes.grid(alpha=0.3)
    axes.legend()
    return _save(figure, path)


def plot_map_vs_bits(
    results: Mapping[str, Mapping[int, float]], path, *, title: str = "MAP vs code length"
) -> str:
    """MAP against code length k, one line per series.

    Args:
      results: series name (e.g. "LtCMH I->T") -> {bits: MAP}.
      path: the PNG to write.
    """
    _require(results, "results")
    figure, axes = plt.subplots(figsize=(5, 4))
    all_bits = set()
    for name, by_bits in results.items():
        _require(by_bits, f"results[{name!r}]")
        bits = sorted(int(b) for b in by_bits)
        all_bits.update(bits)
        axes.plot(bits, [float(by_bits[b]) for b in bits], marker="o", label=name)
    axes.set_xticks(sorted(all_bits))
    axes.set_xlabel("bits")
    axes.set_ylabel("MAP")
    axes.set_title(title)
    axes.grid(alpha=0.3)
    axes.legend()
    return _save(figure, path)


def plot_head_tail(
    results: Mapping[str, Mapping[str, float]],
    path,
    *,
    keys: Sequence[str] = HEAD_TAIL_KEYS,
    title: str = "Head and tail MAP",
    errors: Mapping[str, Mapping[str, float]] | None = None,
    chance: float | None = None,
) -> str:
    """Grouped bars (the paper's Figure 2): for each key, one bar per method.

    Args:
      results: method -> a dict holding `keys`, e.g. `metrics.evaluate(..., head_labels=...)`.
      keys: which entries to draw; a method lacking one gets no bar there.
      path: the PNG to write.
      title: say the data set and bits, e.g. "Head and tail MAP, synthetic, 32 bits".
      errors: method -> key -> half-length of an error bar (the std over seeds).
      chance: chance-level MAP, drawn as a dashed line.
    """
    _require(results, "results")
    _require(keys, "keys")
    figure, axes = plt.subplots(figsize=(1.6 * len(keys) + 3.5, 4), layout="constrained")
    width = 0.8 / len(results)
    positions = np.arange(len(keys))
    tops = []
    for offset, (method, values) in enumerate(results.items()):
        heights = [float(values.get(key, math.nan)) for key in keys]
        spread = None
        if errors is not None and method in errors:
            spread = [float(errors[method].get(key, 0.0)) for key in keys]
        axes.bar(
            positions + offset * width - 0.4 + width / 2,
            heights,
            width,
            yerr=spread,
            capsize=2,
            label=method,
        )
        tops += [
            h + (e if spread else 0.0) for h, e in zip(heights, spread or heights, strict=True)
        ]
    if chance is not None:
        axes.axhline(chance, color="grey", linestyle="--", linewidth=1, label="chance")
    finite = [top for top in tops if math.isfinite(top)]
    if finite:
        axes.set_ylim(0, max(finite) * 1.08)
    axes.set_xticks(positions)
    axes.set_xticklabels([key.removeprefix("map_") for key in keys])
    axes.set_ylabel("MAP")
    axes.set_title(title)
    axes.grid(axis="y", alpha=0.3)
    # Outside the axes, so no legend hides a bar.
    axes.legend(loc="upper left", bbox_to_anchor=(1.01, 1.0), frameon=False)
    return _save(figure, path)


def _read_rows(rows) -> list[dict]:
    if isinstance(rows, str | os.PathLike):
        with open(rows) as stream:
            parsed = []
            for line_number, line in enumerate(stream, 1):
                if not line.strip():
                    continue
                try:
                    parsed.append(json.loads(line))
                except json.JSONDecodeError as error:
                    raise ValueError(
                        f"{os.fspath(rows)}:{line_number}: not JSON ({error})"
                    ) from None
        return parsed
    return list(rows)


def panel_of(key: str) -> str:
    """The panel a metrics.jsonl key is drawn in: the loss terms of a phase together (`image/*`),
    query-set MAP together, per-label head / tail MAP together (not on the query-set MAP's scale:
    they average over labels, not queries), time alone; other `group/name` keys by their group."""
    if key.startswith("map_") and key.endswith(("_head", "_tail", "_tail_only")):
        return "MAP per label: head / tail"
    if key.startswith("map_") or key == "chance_map":
        return "MAP (query set)"
    if key in ("seconds", "train_seconds"):
        return "seconds per epoch"
    # The mechanism diagnostics and weighted loss terms, one panel per kind and phase (one per
    # key made 21 panels that took most of a short run's plotting time and were hard to read).
    if key.startswith("weighted_"):
        phase = next((p for p in ("autoencoder", "image", "text") if key[9:].startswith(p)), "")
        return f"{phase or 'loss'} terms x weights"
    if key.startswith(("diag_bits_flipped", "diag_meta_sign_agreement", "diag_gate_")):
        return "meta features: bits flipped, sign agreement of M - F with F, mean |E|"
    if key.startswith("diag_commonality"):
        return "commonality at query time vs C*"
    if key.startswith("diag_r_"):
        return "label similarity R: related / unrelated"
    group, _, name = key.partition("/")
    return group if name else key


def plot_training_curves(
    rows: Iterable[Mapping] | str | os.PathLike,
    path,
    *,
    keys: Sequence[str] | None = None,
    title: str = "Training",
    chance: float | None = None,
) -> str:
    """Metrics against epoch (or step, or row number), keys grouped into panels by `panel_of`.

    Loss terms of one phase share a panel (each on its own scale would hide none, but 16 panels
    were unreadable): terms are drawn relative to their first value when their magnitudes differ
    by more than 10x, and the panel says so.

    Args:
      rows: dicts, one per logged epoch (the rows of `metrics.jsonl`), or the path of that file.
      keys: metrics to draw; default every numeric key except the x axis.
      path: the PNG to write.
      title: say the method, data set and bits.
      chance: chance-level MAP, a dashed line in the MAP panel.
    """
    rows = _read_rows(rows)
    _require(rows, "rows")
    x_key = next((key for key in ("step", "epoch") if all(key in row for row in rows)), None)
    if keys is None:
        keys = []
        for row in rows:
            for key, value in row.items():
                if (
                    key != x_key
                    and key not in keys
                    and isinstance(value, numbers.Real)
                    and not isinstance(value, bool)
                ):
                    keys.append(key)
    _require(keys, "rows (no numeric metric)")
    panels: dict[str, list[str]] = {}
    for key in keys:
        panels.setdefault(panel_of(key), []).append(key)
    columns = min(3, len(panels))
    num_rows = math.ceil(len(panels) / columns)
    figure, axes = plt.subplots(
        num_rows,
        columns,
        figsize=(4.6 * columns, 3.4 * num_rows),
        squeeze=False,
        layout="constrained",
    )
    for panel, (name, panel_keys) in zip(axes.flat, panels.items(), strict=False):
        series = {}
        for key in panel_keys:
            points = [
                (row[x_key] if x_key else index, float(row[key]))
                for index, row in enumerate(rows)
                if isinstance(row.get(key), numbers.Real) and not isinstance(row.get(key), bool)
            ]
            if points:
                series[key] = points
        scales = [abs(points[0][1]) for points in series.values() if points[0][1]]
        # MAP panels keep their absolute scale: they are compared with chance and each other; so
        # do the diagnostics, shares and correlations whose value is the point (a gate that
        # starts closed made everything else a flat line near 1 when drawn relative to epoch 1).
        relative = (
            not name.startswith("MAP")
            and not all(key.startswith("diag_") for key in series)
            and len(series) > 1
            and scales
            and max(scales) > 10 * min(scales)
        )
        for key, points in series.items():
            xs, ys = zip(*points, strict=True)
            ys = np.asarray(ys)
            if relative and ys[0]:
                ys = ys / abs(ys[0])
            label = key.partition("/")[2] or key.removeprefix("map_") or key
            panel.plot(xs, ys, marker="." if len(xs) < 30 else None, label=label)
        if name == "MAP (query set)" and chance is not None:
            panel.axhline(chance, color="grey", linestyle="--", linewidth=1, label="chance")
        panel.set_title(name + (" (relative to first)" if relative else ""), fontsize=10)
        panel.set_xlabel(x_key or "row")
        panel.xaxis.set_major_locator(matplotlib.ticker.MaxNLocator(integer=True))
        panel.grid(alpha=0.3)
        if len(series) > 1 or (name == "MAP (query set)" and chance is not None):
            panel.legend(fontsize=7, loc="best")
    for panel in list(axes.flat)[len(panels) :]:
        panel.set_visible(False)
    figure.suptitle(title)
    return _save(figure, path)
