"""`python -m experiments.index build / search` on small files, run as a user would (subprocess)."""

import os
import subprocess
import sys

import numpy as np
import pytest

from ltcmh_jax.index import HammingIndex, pack_codes

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def run_cli(*args):
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [ROOT, env.get("PYTHONPATH")]))
    return subprocess.run(
        [sys.executable, "-m", "experiments.index", *args],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )


def parse_search_output(stdout):
    lines = stdout.strip().splitlines()
    assert lines[0] == "query\trank\tid\tdistance"
    table = np.array([[int(field) for field in line.split("\t")] for line in lines[1:]])
    return table


@pytest.fixture(scope="module")
def files(tmp_path_factory):
    folder = tmp_path_factory.mktemp("cli")
    rng = np.random.default_rng(0)
    db = np.where(rng.random((50, 32)) < 0.5, -1, 1).astype(np.int8)
    queries = np.where(rng.random((3, 32)) < 0.5, -1.0, 1.0).astype(np.float32)
    np.save(folder / "db.npy", db)
    # As a run's codes.npz: db_indices are the data-set rows of the database codes.
    db_indices = np.arange(1000, 1050) * 3
    np.savez(
        folder / "codes.npz", query_image_codes=queries, db_text_codes=db, db_indices=db_indices
    )
    np.save(folder / "queries_16.npy", queries[:, :16])
    np.save(folder / "queries_packed.npy", np.asarray(pack_codes(queries)))
    index_path = folder / "db.index"
    result = run_cli("build", f"--codes={folder / 'db.npy'}", f"--out={index_path}")
    assert result.returncode == 0, result.stderr
    assert "50 codes of k=32 bits" in result.stdout
    return folder, db, queries, index_path


def test_search_with_ids_prints_the_data_set_rows(files):
    folder, db, queries, index_path = files
    arguments = ("search", f"--index={index_path}", f"--queries={folder / 'codes.npz'}")
    by_row = parse_search_output(run_cli(*arguments, "--key=query_image_codes").stdout)
    result = run_cli(*arguments, "--key=query_image_codes", f"--ids={folder / 'codes.npz'}")
    assert result.returncode == 0, result.stderr
    by_data_row = parse_search_output(result.stdout)
    np.testing.assert_array_equal(by_data_row[:, 2], (1000 + by_row[:, 2]) * 3)
    np.testing.assert_array_equal(by_data_row[:, [0, 1, 3]], by_row[:, [0, 1, 3]])


def test_build_then_search_prints_ids_and_distances(files):
    folder, db, queries, index_path = files
    result = run_cli(
        "search",
        f"--index={index_path}",
        f"--queries={folder / 'codes.npz'}",
        "--key=query_image_codes",
        "--k=4",
    )
    assert result.returncode == 0, result.stderr
    table = parse_search_output(result.stdout)
    distances, ids = HammingIndex(db).search(queries, 4)
    np.testing.assert_array_equal(table[:, 0], np.repeat(np.arange(3), 4))
    np.testing.assert_array_equal(table[:, 1], np.tile(np.arange(4), 3))
    np.testing.assert_array_equal(table[:, 2], ids.ravel())
    np.testing.assert_array_equal(table[:, 3], distances.ravel())
    packed = run_cli(
        "search",
        f"--index={index_path}",
        f"--queries={folder / 'queries_packed.npy'}",
        "--bits=32",
        "--k=4",
    )
    assert packed.returncode == 0, packed.stderr
    assert packed.stdout == result.stdout


@pytest.mark.parametrize(
    "arguments, message",
    [
        (("search", "--queries={folder}/queries_16.npy"), "k=16 bits but the index holds k=32"),
        (("search", "--queries={folder}/missing.npy"), "missing.npy"),
        (("search", "--queries={folder}/codes.npz"), "codes.npz: holds 3 arrays; pass --key"),
        (
            ("search", "--queries={folder}/codes.npz", "--key=query_text_codes"),
            "codes.npz: no array 'query_text_codes' (--key); it holds",
        ),
        (("search", "--queries={folder}/db.npy", "--k=0"), "--k must be a positive integer"),
        (("search", "--queries={folder}/queries_packed.npy"), "k=64 bits but the index holds k=32"),
        (("build", "--out={folder}/x.index"), "--codes is required"),
    ],
)
def test_bad_input_exits_with_one_line_naming_it(files, arguments, message):
    folder, _, _, index_path = files
    arguments = [argument.format(folder=folder) for argument in arguments]
    if arguments[0] == "search":
        arguments.append(f"--index={index_path}")
    result = run_cli(*arguments)
    assert result.returncode != 0
    assert message in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1, result.stderr
    assert "Traceback" not in result.stderr


def test_corrupt_index_file_is_refused(files, tmp_path):
    folder, _, _, index_path = files
    broken = tmp_path / "broken.index"
    broken.write_bytes(index_path.read_bytes()[:-5])
    result = run_cli("search", f"--index={broken}", f"--queries={folder / 'db.npy'}")
    assert result.returncode != 0
    assert f"{broken}: truncated or padded HammingIndex file" in result.stderr
    assert "Traceback" not in result.stderr
