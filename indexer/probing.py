"""Mode ``probe`` and the label estimates, over loaded artifacts (the retriever's half of it).

- :func:`query_proba`: the query's calibrated label probabilities from the index's stored head,
  or the caller's own (the leave-one-out evaluation passes cross-fitted ones, so the head that
  scores a query never saw its group).
- :func:`probe_rank`: image-search candidates re-ranked by :func:`indexer.probe.probe_scores`
  (``cos + weight · Σ_{l ∈ labels(c)} p_l(q)``); the hits keep their cosine as the score.
- :func:`label_estimates`: every head label with its probability, most probable first.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np
import numpy.typing as npt

from indexer.index.head import item_label_set, label_matrix
from indexer.probe import DEFAULT_CANDIDATES, DEFAULT_WEIGHT, probe_scores
from indexer.query import LabelEstimate, QueryError

if TYPE_CHECKING:
    from indexer.index.artifacts import Artifacts

F64 = npt.NDArray[np.float64]


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
    scores = probe_scores(cosines, y, proba, weight=weight)
    order = sorted(range(len(rows)), key=lambda i: (-float(scores[i]), items[i].id))[:k]
    return rows[order], cosines[order]


def label_estimates(artifacts: Artifacts, proba: F64 | None) -> tuple[LabelEstimate, ...]:
    head = artifacts.label_head
    if head is None or proba is None:
        return ()
    pairs = sorted(zip(head.labels, proba.tolist(), strict=True), key=lambda p: (-p[1], p[0]))
    return tuple(LabelEstimate(label=lb, probability=round(float(p), 4)) for lb, p in pairs)


def label_frequencies(artifacts: Artifacts) -> dict[str, float]:
    """Each label's share of the catalogue items carrying it (rerank's prior-corrected vote)."""
    nd = artifacts.manifest.taxonomy.no_damage_id
    counts: dict[str, int] = {}
    for it in artifacts.items:
        for lb in item_label_set(it.labels, nd):
            counts[lb] = counts.get(lb, 0) + 1
    n = max(1, len(artifacts.items))
    return {lb: c / n for lb, c in counts.items()}
