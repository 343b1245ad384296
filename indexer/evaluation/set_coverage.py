"""How well the conformal label sets keep their promise: empirical coverage and set size.

For each level (80/90/95 %) every query gets the label set of the head that scores it (in
leave-one-out the head fitted without the query's photo, whose thresholds came from its own
out-of-fold rows), and the evaluation reports:

- **coverage**: the share of queries whose set holds ALL their true labels (the promise is
  >= the level over photos like the indexed ones);
- **interval**: the 95 % percentile interval of that share over 1000 resamples of the photos
  (a drawn photo brings all its crops, as in :mod:`indexer.evaluation.uncertainty`);
- **mean size**: labels per set (a set of every label covers trivially and says nothing).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import numpy.typing as npt

from indexer.evaluation.uncertainty import group_draws
from indexer.labels.head import LabelHead

LEVELS = (0.8, 0.9, 0.95)
F64 = npt.NDArray[np.float64]


def coverage_section(
    heads: Sequence[LabelHead],
    vectors: Sequence[Any],
    y: F64,
    groups: Sequence[str],
    *,
    repeats: int = 1000,
    seed: int = 0,
) -> list[dict[str, Any]]:
    """Per level: coverage, its interval over groups, mean and max set size, label count."""
    counts, index = group_draws(groups, repeats, seed)
    out = []
    for level in LEVELS:
        sets = np.stack(
            [
                h.label_sets(np.asarray(v, np.float64).reshape(1, -1), 1.0 - level)[0]
                for h, v in zip(heads, vectors, strict=True)
            ]
        )
        covered = ((y > 0) <= sets).all(1).astype(np.float64)
        per_group = np.bincount(index, weights=covered, minlength=counts.shape[1])
        size = np.bincount(index, minlength=counts.shape[1]).astype(np.float64)
        resampled = (counts @ per_group) / np.maximum(counts @ size, 1.0)
        out.append(
            {
                "level": level,
                "coverage": float(covered.mean()),
                "low": float(np.quantile(resampled, 0.025)),
                "high": float(np.quantile(resampled, 0.975)),
                "mean_size": float(sets.sum(1).mean()),
                "labels": int(y.shape[1]),
            }
        )
    return out
