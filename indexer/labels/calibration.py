"""Out-of-fold calibration pieces of the label head: group folds and Platt scaling.

- :func:`group_folds` assigns whole groups (e.g. source images) to folds, so crops of one photo
  never sit on both sides of a fold.
- :func:`other_group_sims`: catalogue rows (a seeded sample when there are many, in blocks)
  against the whole catalogue with each row's own group masked: the catalogue querying itself as
  a new photo would, for the head's weight choice and the novelty reference.
- :func:`fit_platt` fits ``p = sigmoid(a * score + b)`` per label by Newton's method on Platt's
  smoothed targets ``(N+ + 1)/(N+ + 2)`` and ``1/(N- + 2)``: two parameters per label, and a label
  seen once is never mapped to 0 or 1 (isotonic regression would overfit labels with a handful of
  positives into steps).
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence

import numpy as np
import numpy.typing as npt

F64 = npt.NDArray[np.float64]


def group_folds(groups: Sequence[str], folds: int, *, seed: int = 0) -> npt.NDArray[np.int64]:
    """Fold index per row; whole groups per fold, sizes balanced (largest group first).

    Groups are shuffled by ``seed`` before a stable sort by size, so equal-sized groups land in
    seed-dependent folds; each group goes to the currently smallest fold.
    """
    names = sorted(set(groups))
    if len(names) < 2:
        raise ValueError("the label head needs at least two groups to calibrate out of fold")
    k = max(2, min(int(folds), len(names)))
    size = dict.fromkeys(names, 0)
    for s in groups:
        size[s] += 1
    order = [names[i] for i in np.random.default_rng(seed).permutation(len(names))]
    order.sort(key=lambda n: -size[n])
    load = [0] * k
    fold_of: dict[str, int] = {}
    for n in order:
        f = min(range(k), key=lambda j: (load[j], j))
        fold_of[n] = f
        load[f] += size[n]
    return np.asarray([fold_of[s] for s in groups], np.int64)


def other_group_sims(
    x: npt.ArrayLike, groups: Sequence[str], max_rows: int, *, seed: int = 0, chunk: int = 0
) -> Iterator[tuple[npt.NDArray[np.int64], F64]]:
    """``(rows, sims)`` blocks: at most ``max_rows`` rows (seeded) x all rows, own group at
    ``-inf``; ``chunk`` rows a block (0: one block), so a large catalogue never holds the whole
    matrix at once."""
    g = np.unique(np.asarray(groups, dtype=object).astype(str), return_inverse=True)[1]
    n = len(g)
    rows = np.arange(n)
    if n > max_rows:
        rows = np.sort(np.random.default_rng(seed).choice(rows, max_rows, replace=False))
    x64 = np.asarray(x, np.float64)
    step = chunk or max(1, len(rows))
    for start in range(0, len(rows), step):
        block = rows[start : start + step]
        sims = x64[block] @ x64.T
        sims[g[block][:, None] == g[None, :]] = -np.inf
        yield block, sims


def fit_platt(scores: F64, y: F64) -> F64:
    """Per-label (a, b) of ``sigmoid(a*s + b)`` by Newton's method on Platt's smoothed targets."""
    out = np.zeros((y.shape[1], 2))
    for j in range(y.shape[1]):
        s, t = scores[:, j], y[:, j]
        n_pos = t.sum()
        n_neg = t.size - n_pos
        target = np.where(t > 0, (n_pos + 1) / (n_pos + 2), 1 / (n_neg + 2))
        a, b = 0.0, float(np.log((n_pos + 1) / (n_neg + 1)))
        for _ in range(100):
            p = sigmoid(a * s + b)
            r = p - target
            h = np.maximum(p * (1 - p), 1e-12)
            grad = np.array([(r * s).sum(), r.sum()])
            hess = np.array([[(h * s * s).sum(), (h * s).sum()], [(h * s).sum(), h.sum()]])
            hess += 1e-9 * np.eye(2)  # a constant score column makes the Hessian singular
            step = np.linalg.solve(hess, grad)
            a, b = a - step[0], b - step[1]
            if np.abs(step).max() < 1e-10:
                break
        out[j] = (a, b)
    return out


def sigmoid(z: F64) -> F64:
    return np.asarray(1.0 / (1.0 + np.exp(-np.clip(z, -500, 500))), np.float64)
