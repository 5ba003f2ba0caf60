"""Property tests (hypothesis) for what the loaders, splits and metrics accept: random arrays and
damaged files either work (with the documented invariants) or raise the documented one-line
error. Complements the hand-written cases in test_matfiles.py, test_longtail.py, test_metrics.py
(random codes for `mean_average_precision`) and test_index.py (random index files).
"""

import os
import tempfile

import numpy as np
import pytest
import scipy.io
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

from ltcmh_jax import metrics
from ltcmh_jax.data import balanced_split, longtail_split
from ltcmh_jax.data.matfiles import load_npz, read_mat_matrix
from ltcmh_jax.train import check_label_coverage, write_json_atomic

SETTINGS = settings(max_examples=40, deadline=None, suppress_health_check=list(HealthCheck))
# Damaged files are drawn from a fixed seed in the default run: a random search once found a .mat
# tag that crashed scipy's C reader (now refused by matreader's structure check); a crash cannot be
# reported as a failing example, so CI must not meet a new one by chance. `-m slow` searches anew.
DAMAGED_FILES = settings(SETTINGS, derandomize=True)
RANDOM_DAMAGED_FILES = settings(SETTINGS, max_examples=400)


def _one_line(error: BaseException, *, names: str | None = None) -> str:
    event("refused")
    message = str(error)
    assert message and "\n" not in message, message
    if names is not None:
        assert names in message, (names, message)
    return message


_dtypes = st.sampled_from([np.float32, np.float64, np.int8, np.uint8, np.int64, np.bool_])
_special = st.sampled_from([0.0, 1.0, -1.0, 2.0, np.nan, np.inf, -np.inf, 0.5])


@st.composite
def npz_arrays(draw):
    """image, text, labels: mostly consistent, sometimes a wrong row count, rank, dtype or value."""
    rows = draw(st.integers(0, 6))

    def array(columns, elements):
        n = draw(st.sampled_from([rows] * 6 + [rows + 1]))
        shape = draw(st.sampled_from([(n, columns)] * 8 + [(n,), (n, columns, 2)]))
        values = draw(hnp.arrays(np.float64, shape, elements=elements))
        with np.errstate(invalid="ignore", over="ignore"):
            return values.astype(draw(_dtypes))

    binary = st.sampled_from([0.0, 1.0])
    return {
        "image": array(draw(st.integers(1, 4)), st.one_of(st.floats(-9, 9), _special)),
        "text": array(draw(st.integers(1, 4)), st.one_of(binary, _special)),
        "labels": array(draw(st.integers(1, 3)), st.one_of(binary, binary, _special)),
    }


@SETTINGS
@given(npz_arrays())
def test_load_npz_random_arrays_load_consistently_or_name_the_file(arrays):
    with tempfile.TemporaryDirectory() as folder:
        path = os.path.join(folder, "data.npz")
        np.savez(path, **arrays)
        try:
            dataset = load_npz(path)
        except ValueError as error:
            _one_line(error, names=path)
            return
    # Accepted: rows agree, every value finite, labels in {0, 1}, and the values kept.
    n = dataset.num_samples
    assert dataset.image.shape[0] == dataset.text.shape[0] == dataset.labels.shape[0] == n
    assert np.isfinite(np.asarray(dataset.image, np.float64)).all()
    assert np.isfinite(dataset.text).all()
    assert set(np.unique(dataset.labels)) <= {0, 1}
    np.testing.assert_array_equal(dataset.labels, arrays["labels"].astype(dataset.labels.dtype))


def test_a_1d_array_is_refused_in_one_line(tmp_path):
    path = str(tmp_path / "flat.npz")
    np.savez(
        path, image=np.full(4, 1e-16, np.float32), text=np.zeros((4, 1)), labels=np.ones((4, 1))
    )
    with pytest.raises(ValueError) as error:
        load_npz(path)
    message = str(error.value)
    assert "\n" not in message and path in message and "shape (4,)" in message, message


def _good_npz_bytes() -> bytes:
    rng = np.random.default_rng(0)
    with tempfile.TemporaryDirectory() as folder:
        path = os.path.join(folder, "good.npz")
        np.savez_compressed(
            path,
            image=rng.standard_normal((8, 3)),
            text=(rng.random((8, 4)) < 0.5).astype(np.float32),
            labels=np.eye(8, 2, dtype=np.uint8) + np.eye(8, 2, -2, dtype=np.uint8),
        )
        with open(path, "rb") as stream:
            return stream.read()


def _good_mat_bytes() -> bytes:
    with tempfile.TemporaryDirectory() as folder:
        path = os.path.join(folder, "good.mat")
        scipy.io.savemat(path, {"LAll": np.eye(6, 3)}, do_compression=False)
        with open(path, "rb") as stream:
            return stream.read()


GOOD_NPZ, GOOD_MAT = _good_npz_bytes(), _good_mat_bytes()


@st.composite
def damaged(draw, data: bytes):
    """`data` with up to 4 byte runs overwritten by random bytes."""
    data = bytearray(data)
    for _ in range(draw(st.integers(1, 4))):
        start = draw(st.integers(0, len(data) - 1))
        patch = draw(st.binary(min_size=1, max_size=16))
        data[start : start + len(patch)] = patch[: len(data) - start]
    return bytes(data)


@DAMAGED_FILES
@given(damaged(GOOD_NPZ))
def test_damaged_npz_loads_or_names_the_file(data):
    with tempfile.TemporaryDirectory() as folder:
        path = os.path.join(folder, "damaged.npz")
        with open(path, "wb") as stream:
            stream.write(data)
        try:
            dataset = load_npz(path)
        except ValueError as error:
            _one_line(error, names=path)
            return
    # A hit on bytes that do not matter (e.g. a zip timestamp): the data is the original.
    assert (dataset.num_samples, dataset.num_labels) == (8, 2)


@DAMAGED_FILES
@given(damaged(GOOD_MAT))
def test_damaged_mat_reads_or_names_the_file(data):
    _read_damaged_mat(data)


@pytest.mark.slow
@RANDOM_DAMAGED_FILES
@given(damaged(GOOD_MAT))
def test_damaged_mat_reads_or_names_the_file_random_search(data):
    _read_damaged_mat(data)


def _read_damaged_mat(data):
    with tempfile.TemporaryDirectory() as folder:
        path = os.path.join(folder, "damaged-lall.mat")
        with open(path, "wb") as stream:
            stream.write(data)
        try:
            name, matrix = read_mat_matrix(path, ("LAll",))
        except ValueError as error:
            _one_line(error, names=path)
            return
    assert name == "LAll" and matrix.ndim == 2


_labels = hnp.arrays(
    np.uint8,
    st.tuples(st.integers(2, 40), st.integers(1, 5)),
    elements=st.sampled_from([0, 0, 1]),
)


def _check_split(split, num_samples: int) -> None:
    query, database, train = (np.asarray(a) for a in (split.query, split.database, split.train))
    np.testing.assert_array_equal(
        np.sort(np.concatenate([query, database])), np.arange(num_samples)
    )
    assert np.isin(train, database).all() and np.unique(train).size == train.size


@SETTINGS
@given(_labels, st.integers(1, 30), st.floats(1.0, 20.0), st.integers(1, 45), st.integers(0, 9))
def test_longtail_split_of_random_labels_is_a_valid_split_or_a_value_error(
    labels, z1, imbalance_factor, num_query, seed
):
    try:
        split = longtail_split(
            labels, z1=z1, imbalance_factor=imbalance_factor, num_query=num_query, seed=seed
        )
    except ValueError as error:
        _one_line(error)
        return
    _check_split(split, labels.shape[0])
    np.testing.assert_array_equal(split.achieved_counts, labels[split.train].sum(axis=0))
    # No training sample without a label, and the head label reaches its target.
    assert labels[split.train].any(axis=1).all()
    assert split.achieved_counts.max() <= max(split.target_counts.max(), labels.sum(0).max())


@SETTINGS
@given(_labels, st.integers(1, 45), st.integers(1, 45), st.integers(0, 9))
def test_balanced_split_of_random_labels_is_a_valid_split_or_a_value_error(
    labels, num_query, num_train, seed
):
    try:
        split = balanced_split(labels, num_query=num_query, num_train=num_train, seed=seed)
    except ValueError as error:
        _one_line(error)
        return
    _check_split(split, labels.shape[0])
    assert split.train.size == num_train


@SETTINGS
@given(_labels)
def test_label_coverage_refuses_exactly_empty_rows_and_columns(labels):
    empty = (~labels.any(axis=1)).any() or (~labels.any(axis=0)).any()
    if not empty:
        check_label_coverage(labels, "data.npz")
        return
    with pytest.raises(ValueError) as error:
        check_label_coverage(labels, "data.npz")
    message = _one_line(error.value, names="data.npz: labels: ")
    first_row = np.flatnonzero(~labels.any(axis=1))
    if first_row.size:
        assert f"(first: row {first_row[0]})" in message


@st.composite
def retrieval_problem(draw):
    """Codes and labels, mostly valid, sometimes with mismatched sizes or odd values."""
    bits = draw(st.integers(1, 70))
    num_query, num_db = draw(st.integers(0, 5)), draw(st.integers(0, 8))
    num_labels = draw(st.integers(1, 3))

    def codes(rows, width):
        values = draw(hnp.arrays(np.int8, (rows, width), elements=st.sampled_from([-1, 1])))
        if rows and draw(st.integers(0, 9)) == 0:
            values = values.astype(np.float32)
            values[0, 0] = draw(st.sampled_from([0.0, np.nan, 2.0]))
        return values

    def labels(rows):
        return draw(hnp.arrays(np.uint8, (rows, num_labels), elements=st.sampled_from([0, 1, 1])))

    query_bits = draw(st.sampled_from([bits] * 6 + [bits + 1]))
    db_label_rows = draw(st.sampled_from([num_db] * 6 + [num_db + 1]))
    return (
        codes(num_query, query_bits),
        codes(num_db, bits),
        labels(num_query),
        labels(db_label_rows),
    )


@SETTINGS
@given(retrieval_problem(), st.integers(-1, 10))
def test_precision_pr_curve_and_head_tail_work_or_raise_value_error(problem, k):
    query, db, query_labels, db_labels = problem
    try:
        precision = metrics.precision_at_k(query, db, query_labels, db_labels, top_k=k)
    except ValueError as error:
        _one_line(error)
    else:
        assert 0.0 <= precision <= 1.0
    try:
        curve = metrics.pr_curve_by_radius(query, db, query_labels, db_labels)
    except ValueError as error:
        _one_line(error)
    else:
        # NaN where no query retrieves anything at that radius (documented in PRCurve).
        for values in (curve.precision, curve.recall):
            values = np.asarray(values, np.float64)
            values = values[np.isfinite(values)]
            assert np.all((values >= -1e-12) & (values <= 1 + 1e-12))
        recall = np.asarray(curve.recall, np.float64)
        assert np.all(np.diff(recall[np.isfinite(recall)]) >= -1e-12)
    head = np.arange(min(1, query_labels.shape[1]))
    try:
        scores = metrics.evaluate(query, query, db, db, query_labels, db_labels, head_labels=head)
    except ValueError as error:
        _one_line(error)
    else:
        assert all(0.0 <= value <= 1.0 for value in scores.values() if np.isfinite(value))


@SETTINGS
@given(
    st.dictionaries(
        st.text(min_size=1, max_size=5),
        st.one_of(st.floats(allow_nan=True), st.integers(-5, 5), st.text(max_size=5)),
        max_size=5,
    )
)
def test_results_json_round_trips_with_non_finite_values_as_null(payload):
    import json
    import math

    with tempfile.TemporaryDirectory() as folder:
        path = os.path.join(folder, "results.json")
        write_json_atomic(path, payload)
        with open(path) as stream:
            loaded = json.load(stream)
        assert os.listdir(folder) == ["results.json"]
    for key, value in payload.items():
        if isinstance(value, float) and not math.isfinite(value):
            assert loaded[key] is None
        else:
            assert loaded[key] == value
