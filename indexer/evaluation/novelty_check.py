"""The novelty score under a held-out-label protocol: does it flag damage the index never saw?

For each label carried by at least :data:`MIN_ITEMS` catalogue items and by fewer than half of
them: its items are removed from the catalogue; every item then queries what is left (its own
source photo excluded), and the items carrying the held-out label should come out less close
(:func:`indexer.retrieval.novelty.closeness`, with the p-value against the reduced catalogue's
own leave-one-photo-out reference). AUROC of "carries the held-out label" against 1 - p (0.5 is
chance; ties averaged).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import numpy.typing as npt
from scipy.stats import rankdata

from indexer.retrieval.novelty import closeness, p_value, reference

MIN_ITEMS = 5
F64 = npt.NDArray[np.float64]


def auroc(truth: npt.NDArray[np.bool_], score: F64) -> float:
    """Area under the ROC curve (Mann-Whitney, ties averaged)."""
    ranks = rankdata(score)
    n_pos, n_neg = int(truth.sum()), int((~truth).sum())
    return float((ranks[truth].sum() - n_pos * (n_pos + 1) / 2) / (n_pos * n_neg))


def held_out_labels(
    vectors: npt.ArrayLike, y: F64, labels: Sequence[str], groups: Sequence[str]
) -> list[dict[str, Any]]:
    """Per eligible label: items held out, AUROC of the novelty p-value and of the raw score."""
    x = np.asarray(vectors, np.float64)
    x = x / np.maximum(np.linalg.norm(x, axis=1, keepdims=True), 1e-12)
    g = np.asarray(groups, dtype=object).astype(str)
    out = []
    for j, label in enumerate(labels):
        held = y[:, j] > 0
        if held.sum() < MIN_ITEMS or held.mean() >= 0.5:
            continue
        keep = ~held
        sims = x @ x[keep].T
        sims[g[:, None] == g[keep][None, :]] = -np.inf
        score = closeness(sims)
        p = p_value(score, reference(x[keep], list(g[keep])))
        out.append(
            {
                "label": label,
                "held_out": int(held.sum()),
                "auroc": auroc(held, 1.0 - p),
                "auroc_score": auroc(held, -score),
            }
        )
    return out
