"""Metrics against brute-force references written here (sort, loop); tie-aware AP vs tie orders."""

import itertools
import math

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

from ltcmh_jax import hamming, metrics
from ltcmh_jax.index import PackedCodes, pack_codes


def random_problem(seed, *, num_query=12, num_db=60, bits=8, num_labels=4, label_rate=0.3):
    """Small codes with many ties and labels with some queries that have no relevant item."""
    rng = np.random.default_rng(seed)
    query_codes = np.where(rng.random((num_query, bits)) < 0.5, -1.0, 1.0).astype(np.float32)
    db_codes = np.where(rng.random((num_db, bits)) < 0.5, -1, 1).astype(np.int8)
    query_labels = (rng.random((num_query, num_labels)) < label_rate).astype(np.int64)
    db_labels = (rng.random((num_db, num_labels)) < label_rate).astype(np.float32)
    return query_codes, db_codes, query_labels, db_labels


def reference_distances(query_codes, db_codes):
    bits = query_codes.shape[1]
    return (bits - np.asarray(query_codes, np.int64) @ np.asarray(db_codes, np.int64).T) // 2


def reference_relevance(query_labels, db_labels):
    return (np.asarray(query_labels, np.int64) @ np.asarray(db_labels, np.int64).T) > 0


def reference_ap(distance, relevant, *, top_k=None, tie_order=None):
    """AP of one query from a full sort; ties follow `tie_order` (default: database index)."""
    tie_order = np.arange(distance.size) if tie_order is None else tie_order
    order = np.lexsort((tie_order, distance))
    ranked = relevant[order][:top_k]
    found = 0
    total = 0.0
    for position, is_relevant in enumerate(ranked, start=1):
        if is_relevant:
            found += 1
            total += found / position
    return total / found if found else 0.0


def reference_aps(query_codes, db_codes, query_labels, db_labels, *, top_k=None):
    distances = reference_distances(query_codes, db_codes)
    relevance = reference_relevance(query_labels, db_labels)
    return np.array(
        [reference_ap(d, r, top_k=top_k) for d, r in zip(distances, relevance, strict=True)]
    )


@pytest.mark.parametrize("bits, num_labels", [(8, 4), (64, 4), (100, 70)])
@pytest.mark.parametrize("top_k", [None, 1, 5, 59, 60, 1000])
def test_index_order_ap_matches_sort_reference(bits, num_labels, top_k):
    problem = random_problem(bits + num_labels, bits=bits, num_labels=num_labels)
    expected = reference_aps(*problem, top_k=top_k)
    got = metrics.average_precision(*problem, top_k=top_k)
    np.testing.assert_allclose(got, expected, rtol=0, atol=1e-12)
    assert metrics.mean_average_precision(*problem, top_k=top_k) == pytest.approx(
        expected.mean(), abs=1e-12
    )


def test_query_chunking_changes_nothing(monkeypatch):
    problem = random_problem(3, num_query=23)
    whole = metrics.average_precision(*problem, tie_break="expected")
    whole_index = metrics.average_precision(*problem)
    monkeypatch.setattr(metrics, "_QUERY_CHUNK", 5)
    np.testing.assert_array_equal(metrics.average_precision(*problem, tie_break="expected"), whole)
    np.testing.assert_array_equal(metrics.average_precision(*problem), whole_index)


def enumerate_tie_orders(distance, relevant, top_k):
    """Exact mean AP over every order of the database (hence every order within tie buckets)."""
    values = [
        reference_ap(distance, relevant, top_k=top_k, tie_order=np.array(permutation))
        for permutation in itertools.permutations(range(distance.size))
    ]
    return float(np.mean(values))


@pytest.mark.parametrize("top_k", [None, 1, 2, 3, 4, 6])
def test_expected_ap_equals_the_mean_over_all_tie_orders(top_k):
    # 7 items over 3 distances: every bucket holds ties; the cut at top_k lands inside buckets.
    rng = np.random.default_rng(top_k or 0)
    bits, num_db = 2, 7
    query_codes = np.ones((3, bits))
    db_codes = np.where(rng.random((num_db, bits)) < 0.5, -1, 1)
    query_labels = np.array([[1, 0], [0, 1], [1, 1]])
    db_labels = (rng.random((num_db, 2)) < 0.5).astype(int)
    db_labels[0] = [1, 1]
    distances = reference_distances(query_codes, db_codes)
    relevance = reference_relevance(query_labels, db_labels)
    expected = [
        enumerate_tie_orders(d, r, top_k) for d, r in zip(distances, relevance, strict=True)
    ]
    got = metrics.average_precision(
        query_codes, db_codes, query_labels, db_labels, top_k=top_k, tie_break="expected"
    )
    np.testing.assert_allclose(got, expected, rtol=0, atol=1e-12)


@pytest.mark.parametrize("top_k", [None, 10])
def test_expected_ap_matches_the_average_over_random_tie_orders(top_k):
    query_codes, db_codes, query_labels, db_labels = random_problem(
        7, num_query=4, num_db=40, bits=4, num_labels=3, label_rate=0.4
    )
    distances = reference_distances(query_codes, db_codes)
    relevance = reference_relevance(query_labels, db_labels)
    rng = np.random.default_rng(0)
    num_orders = 4000
    samples = np.array(
        [
            [
                reference_ap(d, r, top_k=top_k, tie_order=rng.permutation(d.size))
                for _ in range(num_orders)
            ]
            for d, r in zip(distances, relevance, strict=True)
        ]
    )
    got = metrics.average_precision(
        query_codes, db_codes, query_labels, db_labels, top_k=top_k, tie_break="expected"
    )
    standard_error = samples.std(axis=1) / math.sqrt(num_orders)
    assert np.all(np.abs(got - samples.mean(axis=1)) <= 5 * standard_error + 1e-12)
    # And the tie order matters here, so the test can tell the two modes apart.
    assert not np.allclose(
        got, metrics.average_precision(query_codes, db_codes, query_labels, db_labels, top_k=top_k)
    )


@pytest.mark.parametrize(
    "before, count",
    [(0, 1), (0, 64), (0, 65), (3, 500), (31, 100), (1000, 65), (150_000, 40_000), (10, 200_000)],
)
def test_harmonic_difference_is_accurate(before, count):
    exact = math.fsum(1.0 / (before + p) for p in range(1, count + 1))
    assert hamming.harmonic_difference(before, count) == pytest.approx(exact, rel=1e-14)


def test_expected_ap_on_large_buckets_matches_the_direct_sum():
    # Buckets far above the direct-sum size exercise the digamma path: one query, two buckets.
    num_db, bits = 3000, 1
    db_codes = np.ones((num_db, bits))
    db_codes[1000:] = -1
    db_labels = (np.random.default_rng(1).random((num_db, 1)) < 0.3).astype(int)
    histogram = np.zeros((1, 4), np.int64)
    relevant = db_labels[:, 0].astype(bool)
    for distance, rows in ((0, slice(0, 1000)), (1, slice(1000, None))):
        histogram[0, 2 * distance + 1] = relevant[rows].sum()
        histogram[0, 2 * distance] = (~relevant[rows]).sum()
    # Direct per-item expectation: E[precision] of a relevant item at in-bucket slot p.
    total = 0.0
    before, relevant_before = 0, 0
    for distance in range(2):
        size = histogram[0, 2 * distance] + histogram[0, 2 * distance + 1]
        rel = histogram[0, 2 * distance + 1]
        terms = [
            (relevant_before + 1 + (p - 1) * (rel - 1) / (size - 1)) / (before + p)
            for p in range(1, size + 1)
        ]
        total += rel / size * math.fsum(terms)
        before += size
        relevant_before += rel
    got = metrics.average_precision(
        np.ones((1, bits)), db_codes, np.ones((1, 1), int), db_labels, tie_break="expected"
    )
    assert got[0] == pytest.approx(total / relevant_before, rel=1e-13)


def test_top_k_larger_than_database_is_map_at_all():
    problem = random_problem(11)
    for tie_break in metrics.TIE_BREAKS:
        assert metrics.mean_average_precision(
            *problem, top_k=10_000, tie_break=tie_break
        ) == metrics.mean_average_precision(*problem, tie_break=tie_break)


def test_queries_without_relevant_items_count_as_zero():
    query_codes = np.array([[1, 1, -1], [1, -1, -1]])
    db_codes = np.array([[1, 1, -1], [-1, -1, 1], [1, 1, 1]])
    query_labels = np.array([[1, 0, 0], [0, 0, 1]])  # label 2 annotates no database item
    db_labels = np.array([[1, 0, 0], [0, 1, 0], [1, 1, 0]])
    for tie_break in metrics.TIE_BREAKS:
        aps = metrics.average_precision(
            query_codes, db_codes, query_labels, db_labels, tie_break=tie_break
        )
        # Query 0: relevant items at distance 0 (rank 1) and 1 (rank 2): AP 1.
        np.testing.assert_allclose(aps, [1.0, 0.0])
        assert metrics.mean_average_precision(
            query_codes, db_codes, query_labels, db_labels, tie_break=tie_break
        ) == pytest.approx(0.5)


def test_top_k_with_no_relevant_item_in_the_top_is_zero():
    query_codes = np.array([[1, 1]])
    db_codes = np.array([[1, 1], [1, -1], [-1, -1]])
    query_labels = np.array([[1, 0]])
    db_labels = np.array([[0, 1], [0, 1], [1, 0]])  # the only relevant item ranks last
    for tie_break in metrics.TIE_BREAKS:
        assert metrics.average_precision(
            query_codes, db_codes, query_labels, db_labels, top_k=2, tie_break=tie_break
        ) == pytest.approx([0.0])
        assert metrics.average_precision(
            query_codes, db_codes, query_labels, db_labels, top_k=3, tie_break=tie_break
        ) == pytest.approx([1 / 3])


def test_top_k_normalises_by_the_relevant_items_found_there():
    # Relevant at ranks 1 and 4 of 4; top_k=2 sees one of them: AP@2 = 1/1, not 1/2.
    query_codes = np.array([[1, 1, 1]])
    db_codes = np.array([[1, 1, 1], [1, 1, -1], [1, -1, -1], [-1, -1, -1]])
    query_labels = np.array([[1]])
    db_labels = np.array([[1], [0], [0], [1]])
    assert metrics.average_precision(
        query_codes, db_codes, query_labels, db_labels, top_k=2
    ) == pytest.approx([1.0])
    assert metrics.average_precision(
        query_codes, db_codes, query_labels, db_labels
    ) == pytest.approx([(1 + 2 / 4) / 2])


@pytest.mark.parametrize("tie_break", metrics.TIE_BREAKS)
def test_signed_and_packed_codes_give_identical_results(tie_break):
    query_codes, db_codes, query_labels, db_labels = random_problem(5, bits=70)
    reference = metrics.average_precision(
        query_codes, db_codes, query_labels, db_labels, tie_break=tie_break
    )
    variants = [
        (query_codes.astype(np.float64), db_codes.astype(np.int64)),
        (query_codes.astype(np.int32), db_codes.astype(np.float32)),
        (pack_codes(query_codes), pack_codes(db_codes)),
        (pack_codes(query_codes), db_codes),
    ]
    for query_variant, db_variant in variants:
        np.testing.assert_array_equal(
            metrics.average_precision(
                query_variant, db_variant, query_labels, db_labels, tie_break=tie_break
            ),
            reference,
        )


def test_plain_uint64_words_are_read_as_whole_words():
    query_codes, db_codes, query_labels, db_labels = random_problem(6, bits=128)
    plain_query = np.asarray(pack_codes(query_codes))
    plain_db = np.asarray(pack_codes(db_codes))
    assert type(plain_query) is np.ndarray
    np.testing.assert_array_equal(
        metrics.average_precision(plain_query, plain_db, query_labels, db_labels),
        metrics.average_precision(query_codes, db_codes, query_labels, db_labels),
    )


def test_precision_at_k_matches_reference():
    problem = random_problem(8, num_db=30)
    distances = reference_distances(problem[0], problem[1])
    relevance = reference_relevance(problem[2], problem[3])
    for top_k in (1, 4, 30, 50):
        expected = np.mean(
            [
                r[np.argsort(d, kind="stable")][:top_k].sum()
                for d, r in zip(distances, relevance, strict=True)
            ]
        ) / min(top_k, 30)
        assert metrics.precision_at_k(*problem, top_k=top_k) == pytest.approx(expected, abs=1e-12)


def test_expected_precision_at_k_equals_mean_over_tie_orders():
    rng = np.random.default_rng(2)
    query_codes = np.ones((2, 2))
    db_codes = np.where(rng.random((6, 2)) < 0.5, -1, 1)
    query_labels = np.array([[1, 0], [0, 1]])
    db_labels = (rng.random((6, 2)) < 0.5).astype(int)
    distances = reference_distances(query_codes, db_codes)
    relevance = reference_relevance(query_labels, db_labels)
    for top_k in (1, 2, 3, 5):
        per_query = []
        for d, r in zip(distances, relevance, strict=True):
            counts = [
                r[np.lexsort((np.array(p), d))][:top_k].sum()
                for p in itertools.permutations(range(6))
            ]
            per_query.append(np.mean(counts) / top_k)
        got = metrics.precision_at_k(
            query_codes, db_codes, query_labels, db_labels, top_k=top_k, tie_break="expected"
        )
        assert got == pytest.approx(np.mean(per_query), abs=1e-12)


def test_pr_curve_by_radius_matches_reference():
    problem = random_problem(9, bits=6, num_db=50)
    distances = reference_distances(problem[0], problem[1])
    relevance = reference_relevance(problem[2], problem[3])
    curve = metrics.pr_curve_by_radius(*problem)
    np.testing.assert_array_equal(curve.radius, np.arange(7))
    for radius in range(7):
        precisions, recalls = [], []
        for d, r in zip(distances, relevance, strict=True):
            retrieved = d <= radius
            if retrieved.any():
                precisions.append((r & retrieved).sum() / retrieved.sum())
            if r.any():
                recalls.append((r & retrieved).sum() / r.sum())
        expected_precision = np.mean(precisions) if precisions else np.nan
        np.testing.assert_allclose(curve.precision[radius], expected_precision, atol=1e-12)
        np.testing.assert_allclose(curve.recall[radius], np.mean(recalls), atol=1e-12)
    assert curve.recall[-1] == pytest.approx(1.0)


def test_per_label_and_head_tail_map_match_reference():
    problem = random_problem(10, num_query=30, num_labels=5)
    aps = reference_aps(*problem)
    query_labels = problem[2].astype(bool)
    query_labels[:, 4] = False  # a label no query has: NaN, left out of the tail mean
    problem = (problem[0], problem[1], query_labels, problem[3])
    aps = reference_aps(*problem)
    per_label = metrics.per_label_map(*problem)
    for label in range(4):
        assert per_label[label] == pytest.approx(aps[query_labels[:, label]].mean(), abs=1e-12)
    assert np.isnan(per_label[4])
    head_tail = metrics.head_tail_map(*problem, head_labels=[0, 2])
    assert head_tail["head"] == pytest.approx(np.mean(per_label[[0, 2]]), abs=1e-12)
    assert head_tail["tail"] == pytest.approx(np.mean(per_label[[1, 3]]), abs=1e-12)
    mask = np.array([True, False, True, False, False])
    assert metrics.head_tail_map(*problem, head_labels=mask) == head_tail


def reference_label_ap(query_codes, db_codes, query_labels, db_labels, label, *, top_k=None):
    """Tail-only AP of one label: queries carrying it, relevant = database items carrying it."""
    distances = reference_distances(query_codes, db_codes)
    relevant = np.asarray(db_labels)[:, label] > 0
    rows = np.flatnonzero(np.asarray(query_labels)[:, label] > 0)
    if not rows.size:
        return math.nan
    return np.mean([reference_ap(distances[row], relevant, top_k=top_k) for row in rows])


@pytest.mark.parametrize("top_k", [None, 7])
def test_label_ap_and_tail_only_map_match_reference(top_k):
    problem = random_problem(21, num_query=30, num_db=80, num_labels=5)
    query_labels = problem[2].copy()
    query_labels[:, 4] = 0  # a label no query carries: NaN, left out of the tail mean
    problem = (problem[0], problem[1], query_labels, problem[3])
    expected = [reference_label_ap(*problem, label, top_k=top_k) for label in range(5)]
    np.testing.assert_allclose(
        metrics.label_ap(*problem, top_k=top_k), expected, atol=1e-12, equal_nan=True
    )
    np.testing.assert_allclose(
        metrics.label_ap(*problem, labels=[3, 1], top_k=top_k), [expected[3], expected[1]]
    )
    tail = metrics.tail_only_map(*problem, [1, 3, 4], top_k=top_k)
    assert tail == pytest.approx(np.mean([expected[1], expected[3]]), abs=1e-12)
    assert math.isnan(metrics.tail_only_map(*problem, [4]))


def test_label_ap_gives_no_credit_for_a_shared_head_label():
    # Every item carries head label 0; the tail query (labels 0 and 1) ranks the one tail item
    # last: its any-shared-label AP is 1, its tail-only AP 1/4.
    query_codes = np.array([[1, 1, 1, 1]])
    db_codes = np.array([[1, 1, 1, 1], [1, 1, 1, -1], [1, 1, -1, -1], [1, -1, -1, -1]])
    query_labels = np.array([[1, 1]])
    db_labels = np.array([[1, 0], [1, 0], [1, 0], [1, 1]])
    problem = (query_codes, db_codes, query_labels, db_labels)
    assert metrics.per_label_map(*problem)[1] == pytest.approx(1.0)
    np.testing.assert_allclose(metrics.label_ap(*problem), [1.0, 0.25])
    assert metrics.tail_only_map(*problem, [1]) == pytest.approx(0.25)


def test_label_ap_refuses_bad_label_ids():
    problem = random_problem(3)
    with pytest.raises(ValueError, match=r"^labels: ids must be in \[0, 4\)"):
        metrics.label_ap(*problem, labels=[0, 4])
    with pytest.raises(ValueError, match="^labels: expected a list of label ids"):
        metrics.label_ap(*problem, labels=[0.5])


def test_evaluate_returns_both_directions_and_head_tail():
    rng = np.random.default_rng(12)
    bits, num_query, num_db, num_labels = 16, 10, 40, 4
    codes = {
        name: np.where(rng.random((n, bits)) < 0.5, -1, 1)
        for name, n in (("qi", num_query), ("qt", num_query), ("di", num_db), ("dt", num_db))
    }
    query_labels = (rng.random((num_query, num_labels)) < 0.4).astype(int)
    db_labels = (rng.random((num_db, num_labels)) < 0.4).astype(int)
    results = metrics.evaluate(
        codes["qi"],
        codes["qt"],
        codes["di"],
        codes["dt"],
        query_labels,
        db_labels,
        head_labels=[0, 1],
    )
    assert set(results) == {
        "map_i2t",
        "map_t2i",
        "map_i2t_head",
        "map_i2t_tail",
        "map_t2i_head",
        "map_t2i_tail",
        "map_i2t_tail_only",
        "map_t2i_tail_only",
    }
    assert results["map_i2t"] == pytest.approx(
        reference_aps(codes["qi"], codes["dt"], query_labels, db_labels).mean(), abs=1e-12
    )
    assert results["map_t2i"] == pytest.approx(
        reference_aps(codes["qt"], codes["di"], query_labels, db_labels).mean(), abs=1e-12
    )
    head_tail = metrics.head_tail_map(codes["qt"], codes["di"], query_labels, db_labels, [0, 1])
    assert results["map_t2i_head"] == head_tail["head"]
    assert results["map_t2i_tail"] == head_tail["tail"]
    assert results["map_i2t_tail_only"] == pytest.approx(
        metrics.tail_only_map(codes["qi"], codes["dt"], query_labels, db_labels, [2, 3]),
        abs=1e-12,
    )
    plain = metrics.evaluate(
        codes["qi"], codes["qt"], codes["di"], codes["dt"], query_labels, db_labels
    )
    assert set(plain) == {"map_i2t", "map_t2i"}


def _good():
    return random_problem(13, num_query=3, num_db=5, bits=8, num_labels=3)


@pytest.mark.parametrize(
    "change, message",
    [
        (lambda p: (p[0][:, :4], *p[1:]), r"query_codes have k=4 bits but db_codes have k=8"),
        (lambda p: (np.where(p[0] > 0, 1, 0), *p[1:]), r"query_codes: codes must be -1 or \+1"),
        (lambda p: (p[0], p[1] > 0, *p[2:]), r"db_codes: dtype bool"),
        (lambda p: (p[0], p[1].astype(np.uint8), *p[2:]), r"db_codes: dtype uint8"),
        (lambda p: (p[0][0], *p[1:]), r"query_codes: expected codes \[n, k\]"),
        (lambda p: (np.full_like(p[0], np.nan), *p[1:]), r"query_codes: codes must be -1 or \+1"),
        (lambda p: (p[0][:0], p[1], p[2][:0], p[3]), r"query_codes: no queries"),
        (lambda p: (p[0], p[1][:0], p[2], p[3][:0]), r"db_codes: the database is empty"),
        (lambda p: (*p[:2], p[2] * 2, p[3]), r"query_labels: labels must be 0 or 1"),
        (lambda p: (*p[:2], p[2][:2], p[3]), r"query_labels: has 2 rows but query_codes has 3"),
        (lambda p: (*p[:3], p[3][:, :2]), r"query_labels have c=3 labels but db_labels have c=2"),
        (lambda p: (*p[:3], p[3][:, 0]), r"db_labels: expected multi-hot labels"),
        (
            lambda p: (PackedCodes(pack_codes(p[0]), 4), *p[1:]),
            r"query_codes: row \d+ has bits set beyond k=4",
        ),
        (
            lambda p: (np.asarray(pack_codes(p[0])), *p[1:]),
            r"k=64 bits but db_codes have k=8 .*PackedCodes",
        ),
    ],
)
def test_bad_input_raises_a_clear_error(change, message):
    with pytest.raises(ValueError, match=message):
        metrics.mean_average_precision(*change(_good()))


@pytest.mark.parametrize("top_k", [0, -3, 2.5, True, "10"])
def test_bad_top_k_is_refused(top_k):
    with pytest.raises(ValueError, match="top_k"):
        metrics.mean_average_precision(*_good(), top_k=top_k)
    with pytest.raises(ValueError, match="top_k"):
        metrics.precision_at_k(*_good(), top_k=top_k)


def test_bad_tie_break_and_head_labels_are_refused():
    with pytest.raises(ValueError, match="tie_break"):
        metrics.mean_average_precision(*_good(), tie_break="random")
    with pytest.raises(ValueError, match=r"head_labels: label ids must be in \[0, 3\)"):
        metrics.head_tail_map(*_good(), head_labels=[0, 3])
    with pytest.raises(ValueError, match="head_labels: a boolean mask needs shape"):
        metrics.head_tail_map(*_good(), head_labels=np.array([True, False]))
    with pytest.raises(ValueError, match="query_image_codes"):
        query_codes, db_codes, query_labels, db_labels = _good()
        metrics.evaluate(query_codes * 0, query_codes, db_codes, db_codes, query_labels, db_labels)


_bad_values = st.sampled_from([0.0, 2.0, -0.5, np.nan, np.inf])
_valid_dtypes = st.sampled_from([np.float32, np.float64, np.int8, np.int64])
_other_dtypes = st.sampled_from([np.uint8, np.bool_, np.uint16])
_rarely = st.sampled_from([False] * 9 + [True])


@st.composite
def arbitrary_inputs(draw):
    """Random inputs, mostly valid, sometimes with a bad value, dtype, shape or code length."""
    num_query = draw(st.sampled_from([1, 2, 3, 4, 4, 0]))
    num_db = draw(st.sampled_from([1, 2, 5, 6, 6, 0]))
    bits = draw(st.integers(1, 70))
    query_bits = draw(st.sampled_from([bits] * 5 + [max(1, bits - 1)]))
    num_labels = draw(st.integers(1, 3))

    def codes(rows, width):
        signs = draw(hnp.arrays(np.float64, (rows, width), elements=st.sampled_from([-1.0, 1.0])))
        if rows and draw(_rarely):
            signs[draw(st.integers(0, rows - 1)), draw(st.integers(0, width - 1))] = draw(
                _bad_values
            )
        dtype = draw(_other_dtypes) if draw(_rarely) else draw(_valid_dtypes)
        with np.errstate(invalid="ignore", over="ignore"):
            return signs > 0 if dtype == np.bool_ else signs.astype(dtype)

    def labels(rows):
        values = draw(hnp.arrays(np.int64, (rows, num_labels), elements=st.sampled_from([0, 1])))
        if rows and draw(_rarely):
            values[0, 0] = 2
        return values

    return (
        codes(num_query, query_bits),
        codes(num_db, bits),
        labels(num_query),
        labels(draw(st.sampled_from([num_db] * 9 + [num_db + 1]))),
    )


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(arbitrary_inputs(), st.sampled_from(metrics.TIE_BREAKS), st.sampled_from([None, 1, 3]))
def test_random_arrays_either_work_or_raise_value_error(inputs, tie_break, top_k):
    try:
        result = metrics.mean_average_precision(*inputs, top_k=top_k, tie_break=tie_break)
    except ValueError as error:
        assert str(error) and "\n" not in str(error)
        return
    assert 0.0 <= result <= 1.0
    if tie_break == "index":
        assert result == pytest.approx(reference_aps(*inputs, top_k=top_k).mean(), abs=1e-12)


@settings(max_examples=60, deadline=None)
@given(
    st.integers(0, 2**32 - 1),
    st.integers(1, 9),
    st.integers(1, 12),
    st.sampled_from([None, 1, 2, 5]),
)
def test_property_index_and_expected_bounds(seed, bits, num_db, top_k):
    problem = random_problem(seed, num_query=3, num_db=num_db, bits=bits, num_labels=2)
    index_order = metrics.average_precision(*problem, top_k=top_k)
    expected = metrics.average_precision(*problem, top_k=top_k, tie_break="expected")
    np.testing.assert_allclose(index_order, reference_aps(*problem, top_k=top_k), atol=1e-12)
    assert np.all((expected >= -1e-12) & (expected <= 1 + 1e-12))
    # Without ties (distinct distances for every item) the two modes agree.
    distances = reference_distances(problem[0], problem[1])
    for query in range(3):
        if np.unique(distances[query]).size == num_db:
            assert expected[query] == pytest.approx(index_order[query], abs=1e-12)


def test_chance_map_is_the_mean_share_of_relevant_items():
    query = np.array([[1, 0], [0, 1]])
    database = np.array([[1, 0], [1, 0], [0, 1], [1, 1]])
    assert metrics.chance_map(query, database, chunk=1) == pytest.approx((3 / 4 + 2 / 4) / 2)


def test_direction_maps_rank_each_database_modality_for_each_query_modality():
    # One query of label 0; database items of labels 0, 1, 0. Ranked by Hamming distance:
    # i2i and t2t put the irrelevant item first (AP (1/2 + 2/3) / 2 = 7/12), i2t and t2i last (1).
    query = {"image": np.array([[1, 1]]), "text": np.array([[-1, -1]])}
    database = {
        "image": np.array([[-1, -1], [1, 1], [1, -1]]),
        "text": np.array([[1, 1], [-1, -1], [1, -1]]),
    }
    query_labels = np.array([[1, 0]])
    db_labels = np.array([[1, 0], [0, 1], [1, 0]])
    maps = metrics.direction_maps(query, database, query_labels, db_labels)
    assert list(maps) == ["i2i", "i2t", "t2i", "t2t"]
    assert maps == pytest.approx({"i2i": 7 / 12, "i2t": 1.0, "t2i": 1.0, "t2t": 7 / 12})
    image_only = metrics.direction_maps(
        {"image": query["image"]}, {"image": database["image"]}, query_labels, db_labels
    )
    assert image_only == pytest.approx({"i2i": 7 / 12})


def test_score_map_ranks_by_score_and_counts_queries_without_relevant_items():
    # Query 0 (label 0): scores rank items 2, 0, 1 (item 0 and 2 relevant): AP 1.
    # Query 1 (label 1): items 0 and 1 tie at 0.5 and keep database order, so item 1 (relevant)
    # is second: AP 1/2. Query 2 (label 2) has no relevant item: AP 0.
    scores = np.array([[0.5, 0.1, 0.9], [0.5, 0.5, 0.2], [0.3, 0.2, 0.1]])
    query_labels = np.array([[1, 0, 0], [0, 1, 0], [0, 0, 1]])
    db_labels = np.array([[1, 0, 0], [0, 1, 0], [1, 0, 0]])
    assert metrics.score_map(scores, query_labels, db_labels) == pytest.approx((1 + 0.5 + 0) / 3)


@pytest.mark.parametrize("seed", [0, 1])
def test_score_map_of_negative_hamming_distance_is_the_hamming_map(seed):
    query_codes, db_codes, query_labels, db_labels = random_problem(seed)
    scores = -reference_distances(query_codes, db_codes).astype(np.float64)
    assert metrics.score_map(scores, query_labels, db_labels) == pytest.approx(
        metrics.mean_average_precision(query_codes, db_codes, query_labels, db_labels)
    )


@pytest.mark.parametrize(
    ("scores", "message"),
    [(np.zeros((2, 3)), r"scores: expected shape \(1, 3\)"), (np.full((1, 3), np.nan), "finite")],
)
def test_score_map_names_bad_scores(scores, message):
    with pytest.raises(ValueError, match=message):
        metrics.score_map(scores, np.array([[1, 0]]), np.array([[1, 0], [0, 1], [1, 1]]))
