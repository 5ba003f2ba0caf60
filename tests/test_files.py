"""Tests of ltcmh_jax/files.py: the atomic writer (failures mid-write: test_faults.py), and the
Hamming index written through it."""

import json
import os

import numpy as np
import pytest

from ltcmh_jax import files
from ltcmh_jax.index import HammingIndex


def test_writers_replace_the_file_and_leave_no_temporary(tmp_path):
    path = tmp_path / "results.json"
    files.write_json_atomic(
        str(path), {"map": np.float32(0.5), "bad": float("nan"), "n": np.int64(3)}
    )
    assert json.loads(path.read_text()) == {"bad": None, "map": 0.5, "n": 3}
    files.write_lines_atomic(str(tmp_path / "m.jsonl"), [{"epoch": 1}, {"epoch": 2}])
    assert (tmp_path / "m.jsonl").read_text() == '{"epoch": 1}\n{"epoch": 2}\n'
    files.save_npz_atomic(str(tmp_path / "codes.npz"), {"codes": np.ones((2, 3), np.int8)})
    with np.load(tmp_path / "codes.npz") as saved:
        np.testing.assert_array_equal(saved["codes"], np.ones((2, 3), np.int8))
    assert sorted(os.listdir(tmp_path)) == ["codes.npz", "m.jsonl", "results.json"]


def test_index_save_is_atomic_through_the_shared_writer(tmp_path, monkeypatch):
    path = tmp_path / "db.hidx"
    codes = np.where(np.random.default_rng(0).random((20, 16)) < 0.5, -1, 1).astype(np.int8)
    HammingIndex(codes).save(path)
    before = path.read_bytes()

    def full_disk(*args, **kwargs):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(files.os, "replace", full_disk)
    with pytest.raises(OSError, match="db.hidx: cannot write"):
        HammingIndex(codes[:5]).save(path)
    assert path.read_bytes() == before
    assert os.listdir(tmp_path) == ["db.hidx"]
