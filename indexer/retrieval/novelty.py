""" "No close verified case": how far a query's nearest indexed cases are, as a p-value.

- :func:`closeness`: the mean cosine of a query's :data:`K` nearest catalogue items (the plain
  score that separated unseen damage best in issue 22's trials).
- :func:`reference`: the same score for catalogue rows against the *other* groups (leave one
  source photo out), at most :data:`MAX_ROWS` rows drawn by the seed, sorted: what "close" means
  for this catalogue.
- :func:`p_value`: ``(1 + #{reference <= score}) / (n + 1)``, the conformal p-value of the query
  being as close to the catalogue as the catalogue's own photos are to each other; a small value
  says no indexed case is close to this photo.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import numpy.typing as npt

from indexer.labels.calibration import other_group_sims

F64 = npt.NDArray[np.float64]
K = 5
MAX_ROWS = 2000
CHUNK = 256  # reference rows a block: 256 x N similarities at a time, never MAX_ROWS x N


def closeness(sims: npt.ArrayLike, k: int = K) -> F64:
    """(q,) mean of each row's ``k`` largest finite similarities (``-inf`` marks excluded)."""
    s = np.asarray(sims, np.float64)
    k = min(k, s.shape[1])
    top = -np.partition(-s, k - 1, axis=1)[:, :k]
    top = np.where(np.isfinite(top), top, np.nan)
    return np.asarray(np.nanmean(top, axis=1), np.float64)


def reference(vectors: npt.ArrayLike, groups: Sequence[str], *, k: int = K, seed: int = 0) -> F64:
    """Sorted closeness of catalogue rows to the rows of other groups."""
    blocks = other_group_sims(vectors, groups, MAX_ROWS, seed=seed, chunk=CHUNK)
    return np.sort(np.concatenate([closeness(sims, k) for _, sims in blocks]))


def p_value(score: npt.ArrayLike, ref: F64) -> F64:
    """(q,) conformal p-values: small when the query is less close than the catalogue's rows."""
    below = np.searchsorted(ref, np.asarray(score, np.float64), side="right")
    return np.asarray((1.0 + below) / (len(ref) + 1.0), np.float64)
