"""Query / database / train splits: the paper's long-tail protocol (Table 1), DCMH's balanced one.

The LP that picks the training rows is `zipf_subset`. NumPy (and SciPy's LP solver, imported on
use) only, so `import ltcmh_jax.data` stays light.
"""

from __future__ import annotations

import dataclasses
import math

import numpy as np

from ltcmh_jax.data.zipf_subset import fairness_constraints, zipf_subset

# Share of labels (head to tail) that count as head where no count is given: the training job's
# default for data sets without one of their own (train.py, `--num_head`).
HEAD_SHARE = 0.6
SAMPLERS = ("fair", "fewest_rows")


def zipf_counts(num_labels: int, z1: int, imbalance_factor: float) -> np.ndarray:
    """Per-rank sample counts of a Zipf long tail (paper, Problem Overview).

    `z_a = round(z1 * a^-mu)` for ranks `a = 1..c`, with `mu = ln(IF) / ln(c)`, so that
    `z_1 = z1` and `z_c = z1 / IF`. Halves round up.

    Args:
      num_labels: `c`, the number of labels.
      z1: samples of the head label.
      imbalance_factor: `IF = z_1 / z_c`, at least 1.

    Returns:
      `[c]` int64 counts, head (rank 1) first, non-increasing.
    """
    if int(num_labels) != num_labels or num_labels < 1:
        raise ValueError(f"num_labels: must be a positive integer, got {num_labels!r}")
    if int(z1) != z1 or z1 <= 0:
        raise ValueError(f"z1: must be a positive integer count, got {z1!r}")
    if not math.isfinite(imbalance_factor) or imbalance_factor < 1:
        raise ValueError(
            f"imbalance_factor: must be a finite number >= 1, got {imbalance_factor!r}"
        )
    if num_labels == 1:
        if imbalance_factor != 1:
            raise ValueError(
                f"imbalance_factor: a single label has z_c = z_1, so it must be 1, got "
                f"{imbalance_factor!r}"
            )
        return np.array([int(z1)], dtype=np.int64)
    mu = math.log(imbalance_factor) / math.log(num_labels)
    ranks = np.arange(1, num_labels + 1, dtype=np.float64)
    counts = np.floor(z1 * ranks**-mu + 0.5).astype(np.int64)
    if counts[-1] < 1:
        raise ValueError(
            f"imbalance_factor: z1 / imbalance_factor = {z1 / imbalance_factor:.3g} rounds to no "
            "samples for the tail label; lower imbalance_factor or raise z1"
        )
    return counts


@dataclasses.dataclass(frozen=True, eq=False)
class Split:
    """Index arrays into a dataset, and the label statistics of the training part.

    Attributes:
      query: `[n_query]` int64 sample indices, sorted.
      database: `[n_base]` int64, sorted, every sample not in `query`.
      train: `[n_train]` int64, sorted, a subset of `database`.
      label_order: `[c]` int64 label ids from head to tail, by frequency in the database (ties by
        id). `label_order[:num_head]` are the head labels of the head/tail MAP.
      target_counts: `[c]` int64 per label id, the Zipf count asked of `train`; None for a
        balanced split.
      achieved_counts: `[c]` int64 per label id, samples of `train` carrying the label.
    """

    query: np.ndarray
    database: np.ndarray
    train: np.ndarray
    label_order: np.ndarray
    target_counts: np.ndarray | None
    achieved_counts: np.ndarray


def _check_labels(labels) -> np.ndarray:
    labels = np.asarray(labels)
    if labels.ndim != 2:
        raise ValueError(f"labels: expected a [n, c] multi-hot array, got shape {labels.shape}")
    bad = ~np.isin(labels, (0, 1)).all(axis=1)
    if bad.any():
        raise ValueError(f"labels: row {int(np.flatnonzero(bad)[0])} has values outside {{0, 1}}")
    return labels.astype(bool)


def _check_num_query(num_query: int, num_samples: int) -> None:
    if int(num_query) != num_query or not 1 <= num_query < num_samples:
        raise ValueError(
            f"num_query: must be an integer in [1, n) with n = {num_samples} samples, got "
            f"{num_query!r}"
        )


def _query_and_database(num_samples: int, num_query: int, rng: np.random.Generator):
    is_query = np.zeros(num_samples, dtype=bool)
    is_query[rng.choice(num_samples, size=int(num_query), replace=False)] = True
    return np.flatnonzero(is_query).astype(np.int64), np.flatnonzero(~is_query).astype(np.int64)


def _frequency_order(label_counts: np.ndarray) -> np.ndarray:
    # Stable sort on the negated counts: ties go to the lower label id, so the order is a pure
    # function of the counts.
    return np.argsort(-label_counts, kind="stable").astype(np.int64)


def default_num_head(num_labels: int) -> int:
    """Head labels of a `num_labels`-label set when none are named: `HEAD_SHARE` of them, at least
    one, and at least one tail label left when there are two or more labels."""
    if int(num_labels) != num_labels or num_labels < 1:
        raise ValueError(f"num_labels: must be a positive integer, got {num_labels!r}")
    if num_labels == 1:
        return 1
    return int(min(max(round(HEAD_SHARE * num_labels), 1), num_labels - 1))


def _check_num_head(num_head, num_labels: int) -> int:
    if num_head is None:
        return default_num_head(num_labels)
    if isinstance(num_head, bool) or int(num_head) != num_head or not 0 <= num_head <= num_labels:
        raise ValueError(f"num_head: must be an integer in [0, {num_labels}], got {num_head!r}")
    return int(num_head)


def longtail_split(
    labels: np.ndarray,
    *,
    z1: int,
    imbalance_factor: float,
    num_query: int,
    seed: int,
    sampler: str = "fair",
    num_head: int | None = None,
) -> Split:
    """The paper's long-tail protocol: random queries, the rest as database, a Zipf training set.

    `num_query` samples drawn uniformly form the query set; the database is every other sample;
    the training set is a subset of the database whose per-label counts follow
    `zipf_counts(c, z1, imbalance_factor)`, with labels ranked head to tail by their frequency in
    the database (Table 1: Flickr25K 3000 (60), NUS-WIDE 5000 (100), IF 50).

    Multi-label samples make exact counts impossible in general (a sample counts for all its
    labels, and a tail label's samples also carry head labels). The training set is the integer
    program "choose database rows whose label counts deviate least from the targets" (worst
    relative deviation first, then the total), solved through its LP relaxation, whose vertex
    solution has few fractional rows, then rounded and repaired by single-row moves. A seeded
    random priority per row decides among equally good subsets, so within each label pattern the
    rows are a uniform random choice. (A greedy "rarest label first" sampler overfills middle
    labels whenever tail samples carry them; see docs/DESIGN.md.)

    Fixed label counts leave the number of rows free, and a positive per-row priority makes the
    LP take as few rows as it can, that is the rows with the most labels: tail samples that also
    carry head labels. `sampler="fair"` forbids that with linear constraints on the same LP:
    - hard: for each tail label b, the share of b's training samples that carry a head label at
      most the share among b's database samples, and the same for the tail samples as a whole;
    - soft: labels per training sample within 3% of the database's (labelled rows), paid for below
      the price of one sample off a count, so the counts come first: on label-dense data a Zipf
      set has fewer labels per sample than its database, since head labels are what it drops.
    Head labels are the `num_head` most frequent in the database. `sampler="fewest_rows"` is the
    LP without these constraints, the sampler of December 2026 and before, kept so older splits
    can be rebuilt row for row.

    Args:
      labels: `[n, c]` multi-hot.
      z1: head-label count of the training set.
      imbalance_factor: `z_1 / z_c` of the training set, at least 1.
      num_query: size of the query set, in `[1, n)`.
      seed: the split is a pure function of the arguments.
      sampler: "fair" or "fewest_rows" (`SAMPLERS`).
      num_head: head labels for the fair sampler's constraint; None: `default_num_head(c)`, the
        training job's head/tail default.

    Returns:
      A `Split` with `target_counts` and `achieved_counts`.

    Raises:
      ValueError: on a bad argument, or when some label has fewer database samples than the count
        its rank asks for (no clipping: a silently shorter tail would change the benchmark).
    """
    labels = _check_labels(labels)
    num_samples, num_labels = labels.shape
    zipf = zipf_counts(num_labels, z1, imbalance_factor)
    _check_num_query(num_query, num_samples)
    if sampler not in SAMPLERS:
        raise ValueError(f"sampler: expected one of {SAMPLERS}, got {sampler!r}")
    num_head = _check_num_head(num_head, num_labels)
    rng = np.random.default_rng(seed)
    query, database = _query_and_database(num_samples, num_query, rng)

    database_labels = labels[database]
    database_counts = database_labels.sum(axis=0).astype(np.int64)
    label_order = _frequency_order(database_counts)
    target_counts = np.empty(num_labels, dtype=np.int64)
    target_counts[label_order] = zipf
    short = np.flatnonzero(database_counts < target_counts)
    if short.size:
        label = int(short[0])
        rank = int(np.flatnonzero(label_order == label)[0]) + 1
        raise ValueError(
            f"labels: label {label} (rank {rank} of {num_labels}) has {database_counts[label]} "
            f"database samples but the long-tail split asks for {target_counts[label]}; lower z1 "
            "or imbalance_factor"
        )

    hard = soft = None
    if sampler == "fair":
        head = np.zeros(num_labels, dtype=bool)
        head[label_order[:num_head]] = True
        hard, soft = fairness_constraints(database_labels, head)
    taken = zipf_subset(database_labels, target_counts, rng, hard=hard, soft=soft)
    train = database[taken]
    return Split(
        query=query,
        database=database,
        train=train,
        label_order=label_order,
        target_counts=target_counts,
        achieved_counts=labels[train].sum(axis=0).astype(np.int64),
    )


def balanced_split(labels: np.ndarray, *, num_query: int, num_train: int, seed: int) -> Split:
    """DCMH's balanced protocol (Table 3): random queries, the rest as database, random train.

    Args:
      labels: `[n, c]` multi-hot.
      num_query: size of the query set, in `[1, n)`.
      num_train: size of the training set, drawn uniformly without replacement from the database,
        in `[1, n - num_query]`.
      seed: the split is a pure function of the arguments.

    Returns:
      A `Split` with `target_counts=None`.
    """
    labels = _check_labels(labels)
    num_samples = labels.shape[0]
    _check_num_query(num_query, num_samples)
    num_base = num_samples - int(num_query)
    if int(num_train) != num_train or not 1 <= num_train <= num_base:
        raise ValueError(
            f"num_train: must be an integer in [1, {num_base}] (the database size), got "
            f"{num_train!r}"
        )
    rng = np.random.default_rng(seed)
    query, database = _query_and_database(num_samples, num_query, rng)
    train = np.sort(rng.choice(database, size=int(num_train), replace=False)).astype(np.int64)
    return Split(
        query=query,
        database=database,
        train=train,
        label_order=_frequency_order(labels[database].sum(axis=0).astype(np.int64)),
        target_counts=None,
        achieved_counts=labels[train].sum(axis=0).astype(np.int64),
    )


def _head_given_tail(labels: np.ndarray, head: np.ndarray) -> float:
    has_tail = labels[:, ~head].any(axis=1)
    if not has_tail.any():
        return math.nan
    return float(labels[has_tail][:, head].any(axis=1).mean())


def _tail_partner_share(labels: np.ndarray, head: np.ndarray) -> float:
    """Of the pairs (i, j), i != j, where i carries tail label t and i, j share a label (S_ij =
    1), the share where j carries t too; mean over tail labels with such a pair (NaN: none).

    `labels` `[n, c]` bool, `head` `[c]` bool. Each row's similar partners are counted once, by
    the union of its labels' rows (n x |l_i| work per distinct label set, not n x c per row).
    """
    partners_of = {}
    shares = []
    for label in np.flatnonzero(~head):
        rows = np.flatnonzero(labels[:, label])
        partners = 0
        for row in rows:
            columns = tuple(np.flatnonzero(labels[row]))
            if columns not in partners_of:
                partners_of[columns] = int(np.count_nonzero(labels[:, columns].any(axis=1))) - 1
            partners += partners_of[columns]
        if partners:
            shares.append(rows.size * (rows.size - 1) / partners)
    return float(np.mean(shares)) if shares else math.nan


def describe(dataset, split: Split, *, num_head: int | None = None) -> dict:
    """The paper's Table 1 statistics of the split actually built, and how fair its sampler was.

    Counts are recomputed from `dataset.labels[split.train]`, not read from the split, so the
    table describes the data that training will see.

    Args:
      dataset: a `MultiModalDataset` (anything with `[n, c]` `labels`).
      split: a `Split` of that dataset.
      num_head: head labels (`split.label_order[:num_head]`) for `head_given_tail_*`; None:
        `default_num_head(c)`.

    Returns:
      `n_base` (database size), `n_query`, `n_train`, `z1` (most frequent label's training count),
      `zc` (least frequent), `c` (labels), `imbalance_factor` (`z1 / zc`, inf when `zc = 0`);
      `labels_per_sample_train` and `labels_per_sample_base` (mean labels per sample of the
      training set and of the database); `head_given_tail_train` and `head_given_tail_base` (the
      share of samples carrying a tail label that also carry a head label; NaN without tail
      samples). A fair long-tail sampler keeps each `_train` figure near its `_base` one.
      `tail_partner_share_train`: of a tail sample's similar partners in the training set
      (S_ij = 1: they share a label), the share that carry its tail label, averaged over tail
      labels (NaN without a tail pair). It says how much of the likelihood's evidence about a tail
      sample is about its tail label at all: 0.03 on the synthetic set, where 92% of tail samples
      also carry a head label, 0.36 on the icons (docs/DESIGN.md, Splits and the synthetic set).
    """
    labels = np.asarray(dataset.labels)
    num_samples = labels.shape[0]
    for name in ("query", "database", "train"):
        indices = np.asarray(getattr(split, name))
        if indices.size and (indices.min() < 0 or indices.max() >= num_samples):
            raise ValueError(
                f"split.{name}: indices outside [0, {num_samples}), the dataset's rows; is the "
                "split from another dataset?"
            )
    num_head = _check_num_head(num_head, labels.shape[1])
    head = np.zeros(labels.shape[1], dtype=bool)
    head[np.asarray(split.label_order)[:num_head]] = True
    train_labels = labels[np.asarray(split.train)] != 0
    base_labels = labels[np.asarray(split.database)] != 0
    train_counts = train_labels.sum(axis=0).astype(np.int64)
    z1 = int(train_counts.max()) if train_counts.size else 0
    zc = int(train_counts.min()) if train_counts.size else 0
    return {
        "n_base": int(np.asarray(split.database).size),
        "n_query": int(np.asarray(split.query).size),
        "n_train": int(np.asarray(split.train).size),
        "z1": z1,
        "zc": zc,
        "c": int(labels.shape[1]),
        "imbalance_factor": z1 / zc if zc else math.inf,
        "labels_per_sample_train": float(train_labels.sum(axis=1).mean())
        if train_labels.shape[0]
        else math.nan,
        "labels_per_sample_base": float(base_labels.sum(axis=1).mean())
        if base_labels.shape[0]
        else math.nan,
        "head_given_tail_train": _head_given_tail(train_labels, head),
        "head_given_tail_base": _head_given_tail(base_labels, head),
        "tail_partner_share_train": _tail_partner_share(train_labels, head),
    }
