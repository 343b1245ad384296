"""Label sets with a coverage guarantee: split-conformal over the head's out-of-fold estimates.

A set such as {dent, deep_scratch} built so that, over photos like the indexed cases, it holds
ALL of a photo's true labels with probability >= 1 - alpha:

- **Conformity score** of a catalogue row: ``max_{l ∈ labels(row)} (1 - p_l)`` with ``p`` the
  row's *out-of-fold* calibrated probabilities (10 group folds: a head that never saw the row's
  photo), so the rows play the part of exchangeable calibration data.
- **Threshold** for ``alpha``: the ``ceil((n + 1)(1 - alpha))``-th smallest score (infinite when
  that exceeds n: the set is then every label). A query's set is ``{l : 1 - p_l <= threshold}``;
  it holds all true labels exactly when the query's own score is below the threshold, which
  happens with probability >= 1 - alpha for an exchangeable query.
- **Stored** as thresholds for alpha = 0.01 … 0.50 (:data:`ALPHAS`) in the manifest's label-head
  section (no extra file): a requested alpha between grid points uses the next smaller grid
  alpha, never a looser one.

Crops of one photo are not independent, so the guarantee is over photos like the indexed ones,
never a statement about this photo; the evaluation reports the empirical coverage and its spread
over photos.
"""

from __future__ import annotations

import math

import numpy as np
import numpy.typing as npt

F64 = npt.NDArray[np.float64]
ALPHAS = tuple(round(a / 100, 2) for a in range(1, 51))
DEFAULT_ALPHA = 0.1


def conformity_scores(proba: F64, y: F64) -> F64:
    """(n,) ``max over the row's true labels of 1 - p``; 0 for a row without labels."""
    miss = np.where(y > 0, 1.0 - proba, -np.inf).max(1)
    return np.asarray(np.where(np.isfinite(miss), miss, 0.0), np.float64)


def threshold(scores: F64, alpha: float) -> float:
    """The split-conformal threshold for miscoverage ``alpha`` (``inf``: every label)."""
    n = len(scores)
    rank = math.ceil((n + 1) * (1.0 - alpha))
    return float("inf") if rank > n else float(np.sort(scores)[rank - 1])


def thresholds(scores: F64) -> list[float | None]:
    """The threshold of every alpha in :data:`ALPHAS` (``None`` for an infinite one: JSON-safe)."""
    out: list[float | None] = []
    for a in ALPHAS:
        t = threshold(scores, a)
        out.append(None if math.isinf(t) else round(t, 6))
    return out


def grid_threshold(stored: list[float | None], alpha: float) -> float:
    """The stored threshold for ``alpha`` (the next smaller grid alpha between points)."""
    if not 0.0 < alpha < 1.0:
        raise ValueError(f"alpha must be in (0, 1), got {alpha}")
    usable = [i for i, a in enumerate(ALPHAS) if a <= alpha + 1e-12]
    if not usable or not stored:
        return float("inf")
    value = stored[usable[-1]]
    return float("inf") if value is None else float(value)


def label_set(proba: npt.ArrayLike, cut: float) -> npt.NDArray[np.bool_]:
    """(L,) or (n, L) membership: labels whose ``1 - p`` is within the threshold."""
    return np.asarray(1.0 - np.asarray(proba, np.float64) <= cut + 1e-12)
