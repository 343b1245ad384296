"""Conformal label sets: the coverage promise holds on exchangeable data, thresholds behave."""

from __future__ import annotations

import math

import numpy as np

from indexer.labels.conformal import ALPHAS, grid_threshold, threshold, thresholds
from indexer.labels.head import fit_label_head

LABELS = ["crack", "dent", "surface_scratch"]


def _draw(rng: np.random.Generator, n: int, centres: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Noisy multi-label rows: a majority label, two rarer ones, overlapping clusters."""
    y = np.zeros((n, 3))
    y[:, 2] = rng.random(n) < 0.7
    y[:, 1] = rng.random(n) < 0.25
    y[:, 0] = rng.random(n) < 0.1
    y[y.sum(1) == 0, 2] = 1
    x = y @ centres + rng.normal(size=(n, centres.shape[1])) * 1.5
    return x, y


def test_sets_hold_all_true_labels_at_the_promised_rate_on_exchangeable_data() -> None:
    rng = np.random.default_rng(0)
    centres = rng.normal(size=(3, 12))
    x, y = _draw(rng, 400, centres)
    head = fit_label_head(x, y, LABELS, [f"g{i // 2}" for i in range(400)])
    xt, yt = _draw(rng, 3000, centres)  # fresh photos from the same distribution
    for alpha in (0.2, 0.1, 0.05):
        sets = head.label_sets(xt, alpha)
        coverage = ((yt > 0) <= sets).all(1).mean()
        assert 1 - alpha - 0.03 <= coverage <= 1 - alpha + 0.05, (alpha, coverage)
    # informative: at 80 % most sets are smaller than every label
    assert head.label_sets(xt, 0.2).sum(1).mean() < 2.5


def test_threshold_is_the_conformal_quantile_and_the_grid_never_loosens() -> None:
    scores = np.linspace(0.0, 0.99, 100)
    assert threshold(scores, 0.1) == scores[math.ceil(101 * 0.9) - 1]
    assert math.isinf(threshold(scores[:5], 0.1))  # too few rows: every label
    stored = thresholds(scores)
    assert len(stored) == len(ALPHAS)
    assert grid_threshold(stored, 0.1) == stored[ALPHAS.index(0.1)]
    assert grid_threshold(stored, 0.105) == stored[ALPHAS.index(0.1)]  # smaller alpha: wider
    assert math.isinf(grid_threshold(stored, 0.005))
