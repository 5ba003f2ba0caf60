"""Tests of experiments/grid.py, experiments/aggregate.py and experiments/tables.py: grids,
resuming, tables and figures."""

import csv
import os
import subprocess
import sys

import pytest

from experiments import aggregate, grid, settings
from ltcmh_jax import train as train_lib

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
CONFIGS = os.path.join(ROOT, "experiments", "configs")

# A one-epoch version of tiny.flags, standing in for synthetic.flags.
TINY_FLAGS = """# tiny test grid
--method=ltcmh
--dataset=synthetic
--synthetic_samples=1500
--split=longtail
--z1=150
--imbalance_factor=10
--num_query=200
--bits=16
--epochs=1
--batch_size=64
--min_steps=0
--lr_image=0.01
--lr_text=0.01
--lr_autoencoder=0.01
--text_hidden=128
--ae_hidden=32
--checkpoint_every=0
--plots=false
--workdir=runs/tiny
"""


@pytest.fixture()
def tiny_configs(tmp_path):
    folder = tmp_path / "configs"
    folder.mkdir()
    (folder / "synthetic.flags").write_text(TINY_FLAGS)
    return str(folder)


def test_read_flagfile_gives_typed_training_fields_and_names_a_bad_line(tmp_path):
    fields = settings.read_flagfile(os.path.join(CONFIGS, "synthetic.flags"))
    assert fields["bits"] == 64 and fields["epochs"] == 40 and fields["method"] == "ltcmh"
    assert "workdir" not in fields
    train_lib.TrainConfig(**fields).validate()
    bad = tmp_path / "bad.flags"
    bad.write_text("--bits=16\n--colour=red\n")
    with pytest.raises(ValueError, match=r"bad.flags: .*colour"):
        settings.read_flagfile(str(bad))


def test_grids_hold_the_paper_arms_with_one_base_config():
    table2 = grid.grid("table2", bits=(16, 32), repeats=3, configs_dir=CONFIGS, quick=True)
    assert len(table2) == 5 * 2 * 3
    assert {run.config.method for run in table2} == {"scm", "cca_itq", "dcmh", "metacmh", "ltcmh"}
    assert {run.folder for run in table2} == {"table2"}
    assert {run.config.seed for run in table2} == {0, 1, 2}
    assert {run.config.epochs for run in table2} == {grid.QUICK_EPOCHS}
    assert {run.config.min_steps for run in table2} == {0}  # no step budget undoing --quick
    # Every method of a code length shares every other setting (same rates, same eta).
    for bits in (16, 32):
        fields = [
            {k: v for k, v in run.config.run_fields().items() if k not in ("method", "seed")}
            for run in table2
            if run.config.bits == bits
        ]
        assert all(field == fields[0] for field in fields)
    assert table2[0].workdir("/r") == "/r/table2/scm-full-16-seed0"
    figure3 = grid.grid("figure3", bits=(32,), repeats=2, configs_dir=CONFIGS)
    assert [run.name for run in figure3[::2]] == [
        f"ltcmh-{variant}-32-seed0"
        for variant in ("full", "wo_c", "wo_i", "wo_ic", "wo_mi", "wo_mt")
    ]
    assert {run.folder for run in figure3} == {"table2"}  # shares Table 2's runs
    table3 = grid.grid("table3", bits=(16,), repeats=1, configs_dir=CONFIGS)
    assert {(run.config.split, run.config.num_train, run.config.z1) for run in table3} == {
        ("balanced", grid.SYNTHETIC_BALANCED_TRAIN, None)
    }
    table4 = grid.grid("table4", bits=(16,), repeats=1, configs_dir=CONFIGS)
    assert {run.config.modality for run in table4} == {"image"}
    assert {run.config.method for run in table4} == {"dcmh", "metacmh", "ltcmh"}
    icons = grid.grid("figure3", dataset="mdi_icons", bits=(64,), repeats=3, configs_dir=CONFIGS)
    assert {(run.config.dataset, run.config.seed) for run in icons} == {
        ("mdi_icons", seed) for seed in range(3)
    }
    with pytest.raises(ValueError, match="--table: 3"):
        grid.grid("table3", dataset="mdi_icons", configs_dir=CONFIGS)
    with pytest.raises(ValueError, match="--repeats"):
        grid.grid("table2", repeats=0, configs_dir=CONFIGS)
    with pytest.raises(FileNotFoundError, match="--dataset"):
        grid.grid("table2", dataset="nuswide", configs_dir="/nonexistent")


def _record(method, bits, seed, **results):
    config = train_lib.TrainConfig(method=method, bits=bits, seed=seed)
    return grid.Run("table2", config), results


def test_aggregate_markdown_and_comparisons_use_mean_and_sample_std():
    records = [
        _record("dcmh", 16, 0, map_i2t=0.40, map_t2i=0.50),
        _record("dcmh", 16, 1, map_i2t=0.44, map_t2i=0.50),
        _record("ltcmh", 16, 0, map_i2t=0.50, map_t2i=0.45),
        _record("ltcmh", 16, 1, map_i2t=0.54, map_t2i=float("nan")),
    ]
    cells = aggregate.aggregate(records, ("map_i2t", "map_t2i"))
    assert cells[("DCMH", "map_i2t", 16)].mean == pytest.approx(0.42)
    assert cells[("DCMH", "map_i2t", 16)].std == pytest.approx(0.028284, abs=1e-6)
    assert cells[("LtCMH", "map_t2i", 16)].values == (0.45,)  # NaN left out
    text = aggregate.markdown_table(cells)
    assert "| I->T | LtCMH | **.520 ± .028** |" in text
    assert "| I->T | DCMH | .420 ± .028 |" in text
    assert "| T->I | DCMH | **.500 ± .000** |" in text
    lines = aggregate.comparison_lines(cells)
    assert lines[0] == (
        "- I->T 16 bits: LtCMH vs DCMH +0.100 (+3.5 sd; paired +0.100 ± 0.000, 2/2 seeds)"
    )
    assert lines[1] == "- T->I 16 bits: LtCMH vs DCMH -0.050 (sd n/a)"  # one LtCMH seed


def test_runner_produces_tables_figures_and_resumes_without_training_again(
    tmp_path, tiny_configs, monkeypatch
):
    root = str(tmp_path / "runs")
    runs = grid.grid("table2", bits=(16,), repeats=1, configs_dir=tiny_configs)
    epochs_run = []
    original = train_lib.Trainer.run_epoch

    def counting(self, state, epoch, progress=None):
        epochs_run.append(self.config.method)
        return original(self, state, epoch, progress)

    monkeypatch.setattr(train_lib.Trainer, "run_epoch", counting)

    # Interrupted in the fourth run (the two floors, then DCMH, finished)...
    calls = []

    def interrupted(config, workdir):
        if len(calls) == 3:
            raise KeyboardInterrupt
        calls.append(workdir)
        return train_lib.train_and_evaluate(config, workdir)

    with pytest.raises(KeyboardInterrupt):
        grid.run_grid(runs, root, train_fn=interrupted)
    assert epochs_run == ["dcmh"]
    finished = {path: os.path.getmtime(os.path.join(path, "results.json")) for path in calls}
    # ... then resumed: only MetaCMH and LtCMH train.
    records = grid.run_grid(runs, root)
    assert epochs_run == ["dcmh", "metacmh", "ltcmh"] and len(records) == 5
    for path, mtime in finished.items():
        assert os.path.getmtime(os.path.join(path, "results.json")) == mtime
    # A third pass trains nothing.
    grid.run_grid(runs, root)
    assert len(epochs_run) == 3

    out = tmp_path / "out"
    table = aggregate.write_outputs("table2", records, str(out))
    text = (out / "table2.md").read_text()
    for method in ("SCM", "CCA-ITQ", "DCMH", "MetaCMH", "LtCMH"):
        assert f"| I->T | {method} |" in text and f"| T->I | {method} |" in text
    assert "LtCMH vs SCM" in text and "vs DCMH" in text and "vs MetaCMH" in text
    assert table["figures"] == []
    with open(out / "table2.csv") as stream:
        rows = list(csv.DictReader(stream))
    assert len(rows) == 5 * 2 and {row["repeats"] for row in rows} == {"1"}
    figure = aggregate.write_outputs("figure2", records, str(out))
    assert figure["figures"] == [str(out / "figure2-16bits.png")]
    assert os.path.getsize(figure["figures"][0]) > 1000
    assert "| i2t_tail | LtCMH |" in (out / "figure2.md").read_text()
    assert "| t2i_tail_only | LtCMH |" in (out / "figure2.md").read_text()


def test_finished_runs_lose_their_checkpoints_unless_kept(tmp_path):
    runs = grid.grid("table4", bits=(16,), repeats=1, configs_dir=CONFIGS)[:2]

    def fake_train(config, workdir):
        os.makedirs(os.path.join(workdir, "checkpoints", "1"))
        return {"map_i2i": 0.5}

    grid.run_grid(runs[:1], str(tmp_path), train_fn=fake_train)
    grid.run_grid(runs[1:], str(tmp_path), train_fn=fake_train, keep_checkpoints=True)
    assert not os.path.exists(os.path.join(runs[0].workdir(str(tmp_path)), "checkpoints"))
    assert os.path.exists(os.path.join(runs[1].workdir(str(tmp_path)), "checkpoints"))


def test_figure3_draws_every_ablation(tmp_path):
    records = []
    for number, variant in enumerate(grid.VARIANT_NAMES):
        for seed in range(2):
            config = train_lib.TrainConfig(variant=variant, bits=32, seed=seed)
            results = {"map_i2t": 0.3 + 0.01 * number + 0.005 * seed, "map_t2i": 0.4}
            records.append((grid.Run("table2", config), results))
    outputs = aggregate.write_outputs("figure3", records, str(tmp_path))
    assert outputs["figures"] == [str(tmp_path / "figure3-32bits.png")]
    text = outputs["text"]
    for name in grid.VARIANT_NAMES.values():
        assert f"| {name} |" in text
    assert "LtCMH vs LtCMH-w/oC -0.010" in text


@pytest.mark.slow
def test_command_line_writes_table4(tmp_path, tiny_configs):
    command = [
        sys.executable,
        "-m",
        "experiments.tables",
        "--table=4",
        "--bits=8",
        "--repeats=1",
        f"--configs_dir={tiny_configs}",
        f"--workdir={tmp_path}",
    ]
    done = subprocess.run(command, cwd=ROOT, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr[-2000:]
    assert "| I->I | LtCMH |" in done.stdout
    assert (tmp_path / "table4.md").exists() and (tmp_path / "table4.csv").exists()
    assert (tmp_path / "table4" / "ltcmh-full-8-seed0" / "results.json").exists()


def test_command_line_refuses_both_table_and_figure():
    done = subprocess.run(
        [sys.executable, "-m", "experiments.tables", "--table=2", "--figure=3"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode != 0 and "exactly one of --table and --figure" in done.stderr
