"""End-to-end tests of experiments/main.py: the tiny flagfile in a subprocess, and bad flags."""

import ast
import json
import os
import re
import subprocess
import sys

import numpy as np
import pytest
import setuptools
import tomllib

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
RESULT_KEYS = (
    "method", "dataset", "bits", "seed", "map_i2t", "map_t2i", "map_i2t_head", "map_i2t_tail",
    "map_t2i_head", "map_t2i_tail", "train_seconds", "split_statistics", "chance_map",
)  # fmt: skip


def _main(*flags, timeout=300):
    env = dict(os.environ)
    env["PYTHONPATH"] = ROOT + os.pathsep + env.get("PYTHONPATH", "")
    return subprocess.run(
        [sys.executable, "-m", "experiments.main", *flags],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=timeout,
    )


def test_tiny_flagfile_end_to_end(tmp_path):
    workdir = str(tmp_path / "tiny")
    run = _main("--flagfile=experiments/configs/tiny.flags", f"--workdir={workdir}")
    assert run.returncode == 0, run.stderr[-3000:]
    with open(os.path.join(workdir, "results.json")) as stream:
        results = json.load(stream)
    for key in RESULT_KEYS:
        assert key in results, key
    assert results["method"] == "ltcmh" and results["bits"] == 16
    for key in ("n_base", "n_query", "n_train", "z1", "zc", "c", "imbalance_factor"):
        assert key in results["split_statistics"], key
    mean_map = (results["map_i2t"] + results["map_t2i"]) / 2
    assert mean_map > results["chance_map"] + 0.01, (mean_map, results["chance_map"])
    with np.load(os.path.join(workdir, "codes.npz")) as codes:
        assert codes["query_image_codes"].shape == (200, 16)
        assert codes["db_text_codes"].shape == (1300, 16)
        assert set(np.unique(codes["db_image_codes"])) <= {-1, 1}
    with open(os.path.join(workdir, "metrics.jsonl")) as stream:
        rows = [json.loads(line) for line in stream]
    assert [row["epoch"] for row in rows] == list(range(1, 9))
    assert all("map_i2t" in row for row in rows if row["epoch"] in (2, 4, 6))
    for name in ("training_curves.png", "pr_curves.png"):
        assert os.path.getsize(os.path.join(workdir, name)) > 0
    # Not a terminal: no progress bar; a summary at --eval_every=2 epochs and the first.
    summaries = re.findall(r"epoch (\d+)/8 ", run.stderr)
    assert summaries == ["1", "2", "4", "6", "8"], run.stderr[-2000:]
    assert "%|" not in run.stderr
    assert "I->T" in run.stdout and "chance-level MAP" in run.stdout
    assert "all: MAP over the queries; head, tail: mean of the per-label MAP" in run.stdout


@pytest.mark.parametrize(
    "flags, named",
    [
        # One checked before any data is read, one after (test_train.py covers the rest).
        (("--bits=0",), "--bits"),
        (("--synthetic_samples=1500", "--num_query=1500"), "--num_query"),
    ],
)
def test_bad_flags_fail_with_one_line_naming_the_flag(tmp_path, flags, named):
    run = _main(*flags, f"--workdir={tmp_path}", timeout=120)
    assert run.returncode != 0
    last = run.stderr.strip().splitlines()[-1]
    assert last.startswith("error: ") and named in last, run.stderr[-1000:]
    assert "Traceback" not in run.stderr


def test_console_scripts_point_at_the_entry_points_and_experiments_is_packaged():
    with open(os.path.join(ROOT, "pyproject.toml"), "rb") as stream:
        scripts = tomllib.load(stream)["project"]["scripts"]
    assert set(scripts) == {"ltcmh-train", "ltcmh-index", "ltcmh-tables"}
    for target in scripts.values():
        # Parsed, not imported: the entry points define overlapping absl flags.
        module, function = target.split(":")
        with open(os.path.join(ROOT, *module.split(".")) + ".py") as stream:
            tree = ast.parse(stream.read())
        defined = [node.name for node in tree.body if isinstance(node, ast.FunctionDef)]
        assert function in defined, target
    # What setuptools packages: the find rule of pyproject.toml, as its build would apply it.
    with open(os.path.join(ROOT, "pyproject.toml"), "rb") as stream:
        setuptools_config = tomllib.load(stream)["tool"]["setuptools"]
    packages = setuptools.find_packages(ROOT, **setuptools_config["packages"]["find"])
    assert "experiments" in packages and "ltcmh_jax.train" in packages
    assert setuptools_config["package-data"]["experiments"] == ["configs/*.flags"]
