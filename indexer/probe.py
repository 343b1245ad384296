"""``probe`` scoring: image-search candidates re-scored by the label head's estimate for the query.

A pure function over arrays; the retriever supplies the top-N candidates by cosine, their verified
labels (multi-hot, columns in the head's label order) and the query's calibrated probabilities.
"""

from __future__ import annotations

import numpy as np
import numpy.typing as npt

DEFAULT_WEIGHT = 1.0
DEFAULT_CANDIDATES = 50


def probe_scores(
    cosines: npt.ArrayLike,
    candidate_labels: npt.ArrayLike,
    query_proba: npt.ArrayLike,
    *,
    weight: float = DEFAULT_WEIGHT,
) -> npt.NDArray[np.float64]:
    """Score of each candidate: ``cos(q, c) + weight · Σ_{l ∈ labels(c)} p_l(q)``.

    ``p_l(q)`` is the head's calibrated probability that the query carries label ``l``; with
    calibrated probabilities the sum is the expected number of the query's labels that the
    candidate carries, i.e. (for a single-label query) the chance that the candidate is a label
    hit. The weight trades that expectation against image similarity: 0 is plain image search, a
    large weight ranks by expected overlap and uses the cosine only to break ties. A candidate
    carrying several labels collects several probabilities, which is what label recall rewards.

    Args:
        cosines: (N,) cosine similarity of each candidate to the query.
        candidate_labels: (N, L) 0/1 verified labels of the candidates.
        query_proba: (L,) calibrated label probabilities of the query.
        weight: the agreement weight (>= 0).

    Returns:
        (N,) scores; rank candidates by score descending (ties: item id ascending).
    """
    if weight < 0:
        raise ValueError(f"the probe weight must be >= 0, got {weight}")
    cos = np.asarray(cosines, np.float64)
    labels = np.asarray(candidate_labels, np.float64)
    proba = np.asarray(query_proba, np.float64)
    if labels.shape != (cos.shape[0], proba.shape[0]):
        raise ValueError(
            f"candidate labels {labels.shape} do not match {cos.shape[0]} candidates x "
            f"{proba.shape[0]} labels"
        )
    return np.asarray(cos + weight * (labels @ proba), np.float64)


def probe_order(
    ids: list[str],
    cosines: npt.ArrayLike,
    candidate_labels: npt.ArrayLike,
    query_proba: npt.ArrayLike,
    *,
    weight: float = DEFAULT_WEIGHT,
) -> list[int]:
    """Candidate positions by :func:`probe_scores` descending, then id ascending."""
    scores = probe_scores(cosines, candidate_labels, query_proba, weight=weight)
    return sorted(range(len(ids)), key=lambda i: (-float(scores[i]), ids[i]))
