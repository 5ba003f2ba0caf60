"""Mechanism diagnostics: does each part of LtCMH do anything? Pure NumPy functions of arrays.

The training loop records these in metrics.jsonl every epoch (docs/DESIGN.md, Training,
Diagnostics), so a user can see, for example, that the meta features change no bits or that the
query-time commonality does not follow C*.
"""

from __future__ import annotations

import numpy as np


def flipped_bit_share(direct: np.ndarray, meta: np.ndarray) -> float:
    """Share of code bits that the meta features flip: mean(sign(M^v) != sign(F^v)).

    Args:
      direct: `[n, k]` direct features F^v.
      meta: `[n, k]` meta features M^v of the same rows.

    Returns:
      A float in [0, 1]; 0 means Eq. 8's memory terms change no code.
    """
    direct, meta = np.asarray(direct), np.asarray(meta)
    if direct.shape != meta.shape:
        raise ValueError(f"flipped_bit_share: direct {direct.shape} and meta {meta.shape} differ")
    return float(np.mean((direct >= 0) != (meta >= 0)))


def meta_sign_agreement(direct: np.ndarray, meta: np.ndarray) -> float:
    """Share of entries where what Eq. 8 adds, M^v - F^v, has the sign of F^v.

    Near 0.5: the meta term is unrelated to F^v's sign and can flip bits; near 1: it pushes F^v
    further in its own direction, changing margins but hardly any code (the text side of the
    trained models, docs/RESULTS.md). Entries where M^v = F^v are left out.

    Args:
      direct: `[n, k]` direct features F^v.
      meta: `[n, k]` meta features M^v of the same rows.

    Returns:
      A float in [0, 1], or NaN when M^v = F^v everywhere (no meta features).
    """
    direct, meta = np.asarray(direct, np.float64), np.asarray(meta, np.float64)
    if direct.shape != meta.shape:
        raise ValueError(f"meta_sign_agreement: direct {direct.shape} and meta {meta.shape} differ")
    added = meta - direct
    changed = added != 0
    if not changed.any():
        return float("nan")
    return float(np.mean((np.sign(added) == np.sign(direct))[changed]))


def correlation(first: np.ndarray, second: np.ndarray) -> float:
    """Pearson correlation of two `[n, k]` arrays over all entries, each column centred first.

    Used for the query-time commonality estimate C_hat^v against C*: 1 means C_hat^v carries
    C* up to a scale, 0 that it is unrelated (e.g. an untrained projection).
    """
    first = np.asarray(first, np.float64)
    second = np.asarray(second, np.float64)
    if first.shape != second.shape:
        raise ValueError(f"correlation: shapes {first.shape} and {second.shape} differ")
    first = first - first.mean(axis=0)
    second = second - second.mean(axis=0)
    norm = np.sqrt(np.sum(first * first) * np.sum(second * second))
    return float(np.sum(first * second) / norm) if norm > 0 else 0.0


def label_variance_share(values: np.ndarray, labels: np.ndarray) -> float:
    """Share of the variance of `values` explained by a least-squares fit on the labels (R^2).

    The fit has an intercept and one coefficient per label. Rows with the same label set get
    the same fitted value, so the residual is the spread within those groups plus a fit of the
    group means weighted by group size. When no row has two labels the group patterns (one-hot
    or empty, with the intercept) are linearly independent and the fit reproduces every group
    mean, so no least-squares solve is needed: with 1,000 ALOI labels the direct `[n, c + 1]`
    solve took about a second per epoch.

    Args:
      values: `[n, k]` e.g. C* or F^v of the training rows.
      labels: `[n, c]` multi-hot labels.

    Returns:
      R^2 in [0, 1]: how much label structure `values` carry.
    """
    values = np.asarray(values, np.float64)
    labels = np.asarray(labels)
    if labels.ndim != 2 or labels.shape[0] != values.shape[0]:
        raise ValueError(
            f"label_variance_share: values {values.shape} and labels {labels.shape} differ in n"
        )
    total = np.sum((values - values.mean(axis=0)) ** 2)
    if total <= 0:
        return 0.0
    members = labels != 0
    # Labels no row has take no part in the fit.
    patterns, group, sizes = np.unique(
        members[:, members.any(axis=0)], axis=0, return_inverse=True, return_counts=True
    )
    group = group.reshape(-1)
    means = np.zeros((len(patterns), values.shape[1]))
    np.add.at(means, group, values)
    means /= sizes[:, None]
    residual = np.sum((values - means[group]) ** 2)
    if patterns.sum(axis=1).max() > 1:
        weight = np.sqrt(sizes)[:, None]
        design = weight * np.concatenate([patterns, np.ones((len(patterns), 1))], axis=1)
        coefficients, *_ = np.linalg.lstsq(design, weight * means, rcond=None)
        residual += np.sum((design @ coefficients - weight * means) ** 2)
    return float(1.0 - residual / total)


def similarity_by_relation(similarity: np.ndarray, related: np.ndarray) -> dict[str, float]:
    """Mean off-diagonal label similarity R over related and over unrelated label pairs.

    Args:
      similarity: `[c, c]` R^v.
      related: `[c, c]` bool, True where two labels share structure (known for generated data).

    Returns:
      `{"related": mean, "unrelated": mean}` (NaN where a group is empty).
    """
    similarity, related = np.asarray(similarity, np.float64), np.asarray(related, bool)
    if similarity.shape != related.shape or similarity.ndim != 2:
        raise ValueError(
            f"similarity_by_relation: similarity {similarity.shape} and related {related.shape} "
            "must be the same [c, c]"
        )
    off_diagonal = ~np.eye(len(similarity), dtype=bool)
    result = {}
    for name, mask in (("related", related & off_diagonal), ("unrelated", ~related & off_diagonal)):
        result[name] = float(similarity[mask].mean()) if mask.any() else float("nan")
    return result


def weighted_terms(
    summary: dict[str, float], *, alpha: float, beta: float, gamma: float, eta: float
) -> dict[str, float]:
    """Each loss term times the weight it enters Loss1 (Eq. 7) or Loss2 (Eq. 10) with.

    Args:
      summary: `report.epoch_summary` keys, `"phase/term"` (unweighted epoch means).
      alpha, beta, gamma, eta: the run's weights.

    Returns:
      `{"weighted_<phase>_<term>": value}`: what each term contributes to its phase's loss.
    """
    weight_of = {
        "j1_commonality": alpha,
        "j2_hsic": beta,
        "j3_reconstruction": 1.0,
        "j4_match": 1.0,
        "likelihood": 1.0,
        "quantization": gamma,
        "balance": eta,
    }
    weighted = {}
    for key, value in summary.items():
        phase, _, term = key.partition("/")
        if term in weight_of:
            weighted[f"weighted_{phase}_{term}"] = weight_of[term] * value
    return weighted
