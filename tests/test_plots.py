"""Each figure is written as a non-empty PNG at the given path; empty input is refused."""

import json

import matplotlib.figure
import numpy as np
import pytest

from ltcmh_jax import metrics, plots

_PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


def _assert_png(path, returned):
    assert returned == str(path)
    data = path.read_bytes()
    assert data.startswith(_PNG_MAGIC) and len(data) > 1000


def test_plot_pr_curves(tmp_path):
    rng = np.random.default_rng(0)
    codes = np.where(rng.random((30, 8)) < 0.5, -1, 1)
    labels = (rng.random((30, 3)) < 0.4).astype(int)
    curve = metrics.pr_curve_by_radius(codes[:5], codes, labels[:5], labels)
    path = tmp_path / "sub" / "pr.png"
    triple = (np.arange(3), np.array([1.0, 0.8, 0.5]), np.array([0.1, 0.5, 1.0]))
    _assert_png(path, plots.plot_pr_curves({"I->T": curve, "T->I": triple}, path))
    with pytest.raises(ValueError, match="curves: nothing to plot"):
        plots.plot_pr_curves({}, tmp_path / "empty.png")
    with pytest.raises(ValueError, match=r"curves\['bad'\]: precision \(2,\) and recall \(3,\)"):
        plots.plot_pr_curves({"bad": (None, [1, 0.5], [0, 0.5, 1])}, tmp_path / "bad.png")


def test_plot_map_vs_bits(tmp_path):
    path = tmp_path / "bits.png"
    results = {"LtCMH I->T": {16: 0.6, 32: 0.65, 64: 0.7}, "DCMH I->T": {16: 0.5, 64: 0.55}}
    _assert_png(path, plots.plot_map_vs_bits(results, path))
    with pytest.raises(ValueError, match=r"results\['x'\]: nothing to plot"):
        plots.plot_map_vs_bits({"x": {}}, tmp_path / "empty.png")


def test_plot_head_tail(tmp_path):
    path = tmp_path / "head_tail.png"
    results = {
        "LtCMH": {
            "map_i2t_head": 0.7,
            "map_i2t_tail": 0.5,
            "map_t2i_head": 0.72,
            "map_t2i_tail": 0.52,
        },
        "MetaCMH": {"map_i2t_head": 0.65, "map_i2t_tail": 0.4},
    }
    _assert_png(path, plots.plot_head_tail(results, path))


def test_plot_training_curves_from_rows_and_from_jsonl(tmp_path):
    rows = [
        {"epoch": epoch, "image/total": 1.0 / (epoch + 1), "map_i2t": 0.1 * epoch, "note": "x"}
        for epoch in range(5)
    ]
    path = tmp_path / "curves.png"
    _assert_png(path, plots.plot_training_curves(rows, path))
    jsonl = tmp_path / "metrics.jsonl"
    jsonl.write_text("\n".join(json.dumps(row) for row in rows) + "\n")
    path_from_file = tmp_path / "curves_file.png"
    _assert_png(path_from_file, plots.plot_training_curves(jsonl, path_from_file, keys=["map_i2t"]))
    jsonl.write_text('{"epoch": 0}\nnot json\n')
    with pytest.raises(ValueError, match=r"metrics.jsonl:2: not JSON"):
        plots.plot_training_curves(jsonl, tmp_path / "bad.png")
    with pytest.raises(ValueError, match="no numeric metric"):
        plots.plot_training_curves([{"epoch": 0, "note": "x"}], tmp_path / "none.png")


def test_training_curves_group_keys_into_panels_with_the_chance_line(tmp_path, monkeypatch):
    assert plots.panel_of("image/likelihood") == "image"
    assert plots.panel_of("autoencoder/j2_hsic") == "autoencoder"
    assert plots.panel_of("map_t2i") == "MAP (query set)"
    assert plots.panel_of("map_t2i_head") == "MAP per label: head / tail"
    assert plots.panel_of("seconds") == "seconds per epoch"
    assert plots.panel_of("mechanism/flipped_bits") == "mechanism"  # extra scalars of the loop
    assert plots.panel_of("lr") == "lr"
    rows = [
        {"epoch": 1, "seconds": 3.0, "image/total": 2.0, "image/balance": 40.0, "map_i2t": 0.2},
        {"epoch": 2, "seconds": 1.0, "image/total": 1.0, "image/balance": 20.0, "map_i2t": 0.3},
    ]
    seen = {}
    original_savefig = matplotlib.figure.Figure.savefig

    def savefig(figure, *args, **kwargs):
        visible = [axes for axes in figure.axes if axes.get_visible()]
        seen["titles"] = [axes.get_title() for axes in visible]
        seen["lines"] = {
            axes.get_title(): [(line.get_label(), list(line.get_ydata())) for line in axes.lines]
            for axes in visible
        }
        return original_savefig(figure, *args, **kwargs)

    monkeypatch.setattr(matplotlib.figure.Figure, "savefig", savefig)
    path = tmp_path / "curves.png"
    _assert_png(path, plots.plot_training_curves(rows, path, title="t", chance=0.1))
    # image terms differ by more than 10x: drawn relative to their first value.
    assert seen["titles"] == ["seconds per epoch", "image (relative to first)", "MAP (query set)"]
    assert seen["lines"]["image (relative to first)"] == [
        ("total", [1.0, 0.5]),
        ("balance", [1.0, 0.5]),
    ]
    assert seen["lines"]["MAP (query set)"] == [("i2t", [0.2, 0.3]), ("chance", [0.1, 0.1])]


def test_diagnostics_keep_their_absolute_values(tmp_path, monkeypatch):
    rows = [
        {"epoch": 1, "diag_bits_flipped_image": 0.01, "diag_gate_commonality_image": 0.0005},
        {"epoch": 2, "diag_bits_flipped_image": 0.12, "diag_gate_commonality_image": 0.3},
    ]
    seen = {}
    original_savefig = matplotlib.figure.Figure.savefig

    def savefig(figure, *args, **kwargs):
        seen["lines"] = {
            axes.get_title(): [list(line.get_ydata()) for line in axes.lines]
            for axes in figure.axes
            if axes.get_visible()
        }
        return original_savefig(figure, *args, **kwargs)

    monkeypatch.setattr(matplotlib.figure.Figure, "savefig", savefig)
    path = tmp_path / "curves.png"
    _assert_png(path, plots.plot_training_curves(rows, path, title="t"))
    (title,) = seen["lines"]
    assert "relative" not in title
    assert seen["lines"][title] == [[0.01, 0.12], [0.0005, 0.3]]


def test_head_tail_bars_carry_error_bars_and_an_outside_legend(tmp_path):
    results = {"A": {"map_i2t_head": 0.5, "map_i2t_tail": 0.25}}
    errors = {"A": {"map_i2t_head": 0.05, "map_i2t_tail": 0.01}}
    path = tmp_path / "bars.png"
    keys = ("map_i2t_head", "map_i2t_tail")
    _assert_png(path, plots.plot_head_tail(results, path, keys=keys, errors=errors, chance=0.1))
