"""Mode ``probe`` and the label estimates: image-search candidates re-scored by the label head.

- :func:`probe_scores`: a pure function over arrays, ``cos + weight · Σ_{l ∈ labels(c)} p_l(q)``
  for the top-N candidates by cosine, their verified labels (multi-hot, columns in the head's
  label order) and the query's calibrated probabilities.
- :func:`query_proba`: the query's calibrated label probabilities from the index's stored head,
  or the caller's own (the leave-one-out evaluation passes cross-fitted ones, so the head that
  scores a query never saw its group).
- :func:`probe_rank`: candidates re-ranked by :func:`probe_scores`; the hits keep their cosine as
  the score.
- :func:`label_estimates`: every head label with its probability, most probable first, and its
  display names.

The default weight and candidate count are the index's (:mod:`indexer.index.catalogue_head`
records them in the manifest when it fits the head).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np
import numpy.typing as npt

from indexer.index.catalogue_head import (
    DEFAULT_CANDIDATES,
    DEFAULT_WEIGHT,
    label_matrix,
)
from indexer.query import LabelEstimate, Name, QueryError

if TYPE_CHECKING:
    from indexer.index.artifacts import Artifacts
    from models.taxonomy import Taxonomy

F64 = npt.NDArray[np.float64]


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


def no_head_reason(artifacts: Artifacts) -> str:
    section = artifacts.manifest.label_head
    if section is None:
        return "this index was written before label heads: rebuild or re-import it for 'probe'"
    return f"this index has no label head ({section.reason or 'not fitted'}): 'probe' needs one"


def query_proba(
    artifacts: Artifacts, vector: npt.ArrayLike, given: npt.ArrayLike | None = None
) -> F64 | None:
    """(L,) probabilities in the head's label order; ``None`` when the index has no head."""
    head = artifacts.label_head
    if head is None:
        return None
    if given is not None:
        proba = np.asarray(given, np.float64).reshape(-1)
        if proba.shape[0] != len(head.labels):
            raise QueryError(
                f"{proba.shape[0]} label probabilities, the head has {len(head.labels)}"
            )
        return proba
    return head.predict_proba(np.asarray(vector, np.float64).reshape(1, -1))[0]


def probe_settings(artifacts: Artifacts, weight: float | None) -> tuple[float, int]:
    """The probe weight (the request's, else the manifest's) and the candidate count."""
    section = artifacts.manifest.label_head
    w = (
        (section.probe_weight if section is not None else DEFAULT_WEIGHT)
        if weight is None
        else weight
    )
    if not np.isfinite(w) or w < 0:
        raise QueryError(f"probe_weight must be a finite number >= 0, got {w}")
    return float(w), section.probe_candidates if section is not None else DEFAULT_CANDIDATES


def probe_rank(
    artifacts: Artifacts,
    rows: npt.NDArray[np.int64],
    cosines: npt.NDArray[np.float32],
    proba: F64 | None,
    k: int,
    weight: float,
) -> tuple[npt.NDArray[np.int64], npt.NDArray[np.float32]]:
    """The top ``k`` of the candidates by probe score (ties: item id); their cosines."""
    head = artifacts.label_head
    if head is None or proba is None:
        raise QueryError(no_head_reason(artifacts))
    items = [artifacts.items[int(r)] for r in rows]
    y = label_matrix(items, head.labels, artifacts.manifest.taxonomy.no_damage_id)
    order = probe_order([it.id for it in items], cosines, y, proba, weight=weight)[:k]
    return rows[order], cosines[order]


def label_estimates(
    artifacts: Artifacts, proba: F64 | None, taxonomy: Taxonomy
) -> tuple[LabelEstimate, ...]:
    head = artifacts.label_head
    if head is None or proba is None:
        return ()
    pairs = sorted(zip(head.labels, proba.tolist(), strict=True), key=lambda p: (-p[1], p[0]))
    estimates = []
    for label_id, p in pairs:
        label = taxonomy.normalise(label_id)
        estimates.append(
            LabelEstimate(
                label=label_id, name=Name(label.en, label.es), probability=round(float(p), 4)
            )
        )
    return tuple(estimates)
