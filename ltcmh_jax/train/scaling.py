"""Input scaling: each view standardised with statistics of the training split only.

The statistics are part of the trained model: a run stores them (`input_scaling.npz` in its
workdir) and applies the same transformation to queries and database items at encoding time.
"""

from __future__ import annotations

import dataclasses

import numpy as np

# A column whose spread is below this share of the median column's spread is divided by that
# floor instead: a near-constant column (a border pixel of an icon, set in a handful of rows)
# must not become rare spikes of 30 standard deviations; such a column is amplified at most 10x
# more than a typical one.
SPREAD_FLOOR = 0.1


@dataclasses.dataclass(frozen=True)
class InputScaling:
    """`(x - mean) * scale`, elementwise over the columns of `[n, d]` inputs.

    Attributes:
      mean: `[d]` subtracted first (zeros for a sparse view, which keeps its zeros).
      scale: `[d]` multiplier.
    """

    mean: np.ndarray
    scale: np.ndarray

    def apply(self, values) -> np.ndarray:
        """`[n, d]` float32 scaled inputs (rows of more than one axis are flattened first)."""
        values = np.asarray(values, np.float32)
        return (values.reshape(len(values), -1) - self.mean) * self.scale

    def arrays(self, prefix: str) -> dict[str, np.ndarray]:
        """The statistics as named arrays, for `input_scaling.npz`."""
        return {f"{prefix}_mean": self.mean, f"{prefix}_scale": self.scale}


def fit_input_scaling(train_values, *, mode: str, sparse: bool = False) -> InputScaling:
    """Standardisation statistics of a view's training rows.

    Args:
      train_values: `[n, d]` the view's training rows.
      mode: "per_feature" (z-score per column, spread floored at `SPREAD_FLOOR` times the
        median column spread) or "global" (the mean row and one overall spread:
        unit variance per column on average, relative scales kept).
      sparse: a sparse bag of words: not centred (its zeros stay zeros, and the embedding-bag
        path keeps working); divided by the root mean square of its nonzero entries, which is
        exactly 1 (no change) for a binary bag.

    Returns:
      The `InputScaling`.
    """
    values = np.asarray(train_values, np.float64)
    if values.ndim != 2 or values.shape[0] == 0:
        raise ValueError(f"fit_input_scaling: expected [n, d] training rows, got {values.shape}")
    width = values.shape[1]
    if sparse:
        nonzero = values[values != 0]
        rms = float(np.sqrt(np.mean(nonzero**2))) if nonzero.size else 1.0
        return InputScaling(np.zeros(width, np.float32), np.full(width, 1.0 / rms, np.float32))
    mean = values.mean(axis=0)
    centred = values - mean
    if mode == "global":
        spread = float(np.sqrt(np.mean(centred**2)))
        scale = np.full(width, 1.0 / spread if spread > 0 else 1.0)
    elif mode == "per_feature":
        spreads = np.sqrt(np.mean(centred**2, axis=0))
        typical = float(np.median(spreads))
        floor = SPREAD_FLOOR * typical if typical > 0 else 1.0
        scale = 1.0 / np.maximum(spreads, floor)
    else:
        raise ValueError(f"--input_scaling: must be per_feature or global, got {mode!r}")
    return InputScaling(mean.astype(np.float32), scale.astype(np.float32))
