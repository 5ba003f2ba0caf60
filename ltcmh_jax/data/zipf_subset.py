"""The training rows of a long-tail split: an LP over the database rows, then a local repair.

`longtail_split` (in `longtail`) asks for a subset of the database whose per-label counts follow
the Zipf targets; `zipf_subset` solves that through the LP relaxation of the integer program, and
`fairness_constraints` builds the fair sampler's constraints on it. NumPy, and SciPy's LP solver
imported on use, so `import ltcmh_jax.data` stays light.
"""

from __future__ import annotations

import numpy as np

# Labels per training sample may differ from the database's by this fraction in the LP; rounding
# and repair add a little, and the promise to callers is 10%.
_CARDINALITY_TOLERANCE = 0.03
# LP cost of one label per training set outside that band: below the 2 that one sample off a
# label's count costs at least, so the counts come first, above the priority of a row.
_SOFT_PENALTY = 1.0


def fairness_constraints(labels: np.ndarray, head: np.ndarray):
    """`(hard [k, m], soft [2, m])`: linear constraints `A x <= 0` on the choice `x` of rows.

    Each is a ratio over the chosen rows held to the database's own ratio, written as a linear
    inequality by multiplying out the denominator. Hard: for each tail label, and for all tail
    samples together, the share that carries a head label. Soft (the LP pays for any excess): labels
    per row within `_CARDINALITY_TOLERANCE`, because on label-dense data a Zipf training set cannot
    reach the database's cardinality without missing its counts (head labels are what it drops).
    """
    as_float = labels.astype(np.float64)
    cardinality = as_float.sum(axis=1)
    labelled = cardinality > 0
    mean_cardinality = cardinality[labelled].mean() if labelled.any() else 0.0
    soft = np.stack(
        [
            cardinality - mean_cardinality * (1 + _CARDINALITY_TOLERANCE),
            mean_cardinality * (1 - _CARDINALITY_TOLERANCE) - cardinality,
        ]
    )
    hard = []
    has_head = labels[:, head].any(axis=1).astype(np.float64)
    tail_labels = np.flatnonzero(~head)
    if head.any() and tail_labels.size:
        has_tail = labels[:, tail_labels].any(axis=1).astype(np.float64)
        for members in [*as_float[:, tail_labels].T, has_tail]:
            if members.any():
                share = (members * has_head).sum() / members.sum()
                hard.append(members * (has_head - share))
    return np.stack(hard) if hard else np.zeros((0, labels.shape[0])), soft


def zipf_subset(
    labels: np.ndarray,
    targets: np.ndarray,
    rng: np.random.Generator,
    *,
    hard: np.ndarray | None = None,
    soft: np.ndarray | None = None,
) -> np.ndarray:
    """Sorted row indices of `labels` (`[m, c]` bool) whose label counts come closest to `targets`.

    The subset problem is the integer program: choose `x in {0, 1}^m` minimising the deviation of
    `labels^T x` from `targets`, subject to `hard @ x <= 0` (`[k, m]`), paying
    `_SOFT_PENALTY * max(soft @ x, 0)` (`[j, m]`). Its LP relaxation (HiGHS) has `2 c + k + j`
    constraint rows, so a vertex solution has few fractional entries: rounding them and a short
    local search then lose at most a few samples per label. Each row also costs a random priority
    in `[0, 1)`, so among subsets with equal counts the LP takes the lowest-priority rows (a seeded
    random choice within each label pattern) rather than whatever vertex the solver happens to
    reach first. Unlabelled rows are never taken.
    """
    from scipy import optimize, sparse  # Lazy: keeps `import ltcmh_jax.data` light.

    num_rows, num_labels = labels.shape
    hard = np.zeros((0, num_rows)) if hard is None else hard
    soft = np.zeros((0, num_rows)) if soft is None else soft
    num_soft = soft.shape[0]
    targets = targets.astype(np.float64)
    priority = rng.random(num_rows)
    # One sample more or less on any label (relative 1 / targets[b] >= 1 / max(targets)) costs at
    # least 2, more than any single row's priority, so priority only chooses among near-equal
    # subsets. A far larger weight would guarantee strict precedence but strains HiGHS's tolerances.
    weight = 2.0 * targets.max()
    # Variables: x [m], over [c], under [c], worst, excess [j]; labels^T x - over + under =
    # targets, (over + under) / targets <= worst, hard x <= 0, soft x - excess <= 0. Objective:
    # weight * (c * worst + sum((over + under) / targets)) + penalty * sum(excess) + priority . x.
    eye = sparse.identity(num_labels, format="csr")
    inverse = sparse.diags(1.0 / targets)
    zeros = sparse.csr_matrix
    equality = sparse.hstack(
        [zeros(labels.T.astype(np.float64)), -eye, eye, zeros((num_labels, 1 + num_soft))]
    )
    upper = sparse.vstack(
        [
            sparse.hstack(
                [
                    zeros((num_labels, num_rows)),
                    inverse,
                    inverse,
                    -np.ones((num_labels, 1)),
                    zeros((num_labels, num_soft)),
                ]
            ),
            sparse.hstack([zeros(hard), zeros((hard.shape[0], 2 * num_labels + 1 + num_soft))]),
            sparse.hstack(
                [
                    zeros(soft),
                    zeros((num_soft, 2 * num_labels + 1)),
                    -sparse.identity(num_soft),
                ]
            ),
        ]
    )
    objective = np.concatenate(
        [
            priority,
            weight / targets,
            weight / targets,
            [weight * num_labels],
            np.full(num_soft, _SOFT_PENALTY),
        ]
    )
    bounds = np.zeros((objective.size, 2))
    bounds[:num_rows, 1] = labels.any(axis=1)
    bounds[num_rows:, 1] = np.inf
    result = optimize.linprog(
        objective,
        A_ub=upper,
        b_ub=np.zeros(upper.shape[0]),
        A_eq=equality,
        b_eq=targets,
        bounds=bounds,
        method="highs",
    )
    if result.status != 0:
        raise RuntimeError(f"longtail_split: the LP solver failed: {result.message}")
    taken = result.x[:num_rows] > 0.5
    taken = _improve(labels, targets, taken, priority, hard=hard, soft=soft / weight)
    return np.flatnonzero(taken).astype(np.int64)


def _improve(
    labels: np.ndarray,
    targets: np.ndarray,
    taken: np.ndarray,
    priority: np.ndarray,
    *,
    hard: np.ndarray,
    soft: np.ndarray,
) -> np.ndarray:
    """Single-row additions and removals while they lower the LP's objective on the counts.

    Rounding the LP's few fractional rows can leave a label a sample or two off; this repairs it.
    A move may not push any row of `hard @ x <= 0` further above 0 than it already is; `soft`
    (already divided by the LP's count weight) adds `_SOFT_PENALTY * max(soft @ x, 0)`.
    """
    taken = taken.copy()
    as_float = labels.astype(np.float64)
    num_labels = labels.shape[1]
    labelled = labels.any(axis=1)

    def objective(deviation: np.ndarray, soft_values: np.ndarray) -> np.ndarray:
        relative = np.abs(deviation) / targets
        excess = _SOFT_PENALTY * np.maximum(soft_values, 0.0).sum(axis=0)
        return num_labels * relative.max(axis=-1) + relative.sum(axis=-1) + excess

    # Each step strictly lowers a non-negative objective that takes finitely many values; the cap
    # only bounds the time on pathological inputs.
    for _ in range(4 * num_labels + 64):
        deviation = as_float[taken].sum(axis=0) - targets
        soft_now = soft @ taken
        current = objective(deviation, soft_now)
        change = np.where(taken, -1.0, 1.0)
        candidates = objective(
            deviation + change[:, None] * as_float, soft_now[:, None] + soft * change[None, :]
        )
        hard_now = hard @ taken
        moved = hard_now[:, None] + hard * change[None, :]
        # 1e-9: the shares are floats; a move that keeps a constraint exactly at 0 is fine.
        allowed = (labelled | taken) & (
            np.maximum(moved, 0.0) <= np.maximum(hard_now, 0.0)[:, None] + 1e-9
        ).all(axis=0)
        candidates = np.where(allowed, candidates, np.inf)
        # Ties go to the lowest-priority row to add or the highest-priority row to drop, as the LP.
        order = np.lexsort((np.where(taken, -priority, priority), candidates))
        best = order[0]
        if candidates[best] >= current - 1e-12:
            break
        taken[best] = not taken[best]
    return taken
