"""The head's ridge strength and mode probe's weight, chosen from the catalogue alone.

Both from out-of-fold estimates (each row's from a head that never saw the row's group):

- **Strength**: the ridge's own criterion, the out-of-fold squared error per label divided by the
  label's variance and averaged over labels (so a rare label counts as much as the frequent one).
  A regression error over every row is far less noisy than recall on a few rare crops: choosing
  the strength by recall too lost 0.006 macro@1 on the DINOv3 crops (``bench/probe.py``).
- **Weight**: every catalogue row (at most :data:`MAX_QUERIES`, drawn by the seed, so the choice
  stays bounded as the catalogue grows) queries the rest of the catalogue as the service would:
  its :data:`CANDIDATES` nearest rows by cosine from *other* groups, the first hit picked by
  :func:`indexer.labels.agreement.probe_order`'s rule. The weight with the best micro + macro
  label recall@1 wins; ties go to the smaller weight. Weight 0 is in the grid: where the
  evidence does not help, probe falls back to image search.

Nothing here sees an evaluation query: the leave-one-out evaluation refits the head, and so
repeats this choice, without the query's group.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np
import numpy.typing as npt

from indexer.labels.agreement import agreement, first_pick_recall, label_evidence
from indexer.labels.calibration import other_group_sims

F64 = npt.NDArray[np.float64]
CANDIDATES = 50
MAX_QUERIES = 2000


def choose(
    x: F64,
    y: F64,
    groups: Sequence[str],
    oof: Mapping[float, F64],
    prior: F64,
    weights: Sequence[float],
    *,
    seed: int = 0,
) -> tuple[float, float]:
    """``(strength, weight)``: the least balanced out-of-fold error, then the best first pick."""
    var = np.maximum(y.var(0), 1e-12)
    reg = min(
        sorted(oof, reverse=True), key=lambda r: float((((oof[r] - y) ** 2).mean(0) / var).mean())
    )
    if len(weights) == 1:
        return reg, float(weights[0])
    rows, sims = next(other_group_sims(x, groups, MAX_QUERIES, seed=seed))
    n = min(CANDIDATES, len(x) - 1)
    cands = np.argpartition(-sims, n - 1, axis=1)[:, :n]
    cos = np.take_along_axis(sims, cands, 1)
    keep = np.isfinite(cos).all(1)  # rows with fewer candidates than N are left out
    rows, cands, cos = rows[keep], cands[keep], cos[keep]
    if len(rows) == 0:
        return reg, 0.0
    ev = label_evidence(oof[reg][rows], prior)
    agree = np.stack([agreement(e, y[c]) for e, c in zip(ev, cands, strict=True)])
    best: tuple[float, float] | None = None
    for w in sorted(weights):
        pick = np.argmax(cos + w * agree, axis=1)
        micro, macro = first_pick_recall(y[rows], y[cands[np.arange(len(rows)), pick]])
        if best is None or micro + macro > best[0] + 1e-12:
            best = (micro + macro, float(w))
    assert best is not None
    return reg, best[1]
