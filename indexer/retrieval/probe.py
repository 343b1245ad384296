"""Mode ``probe`` and the label estimates: image-search candidates re-scored by the label head.

- :func:`query_head`: the index's stored head, or the caller's own (the leave-one-out evaluation
  passes a head cross-fitted without the query's group, with its own nested weight).
- :func:`probe_rank`: the first hit picked by the prior-corrected agreement of
  :mod:`indexer.labels.agreement`, the rest in image order; the hits keep their cosine as the
  score.
- :func:`label_estimates`: every head label with its probability and display names, the leading
  estimate (largest prior-corrected evidence) first, then by probability.

The default weight is the head's (chosen from the catalogue when it is fitted, recorded in the
manifest by :mod:`indexer.index.catalogue_head`), the candidate count the manifest's.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np
import numpy.typing as npt

from indexer.index.catalogue_head import DEFAULT_CANDIDATES, label_matrix
from indexer.labels.agreement import label_evidence, probe_order
from indexer.query import LabelEstimate, Name, QueryError

if TYPE_CHECKING:
    from indexer.index.artifacts import Artifacts
    from indexer.labels.head import LabelHead
    from models.taxonomy import Taxonomy

F64 = npt.NDArray[np.float64]


def no_head_reason(artifacts: Artifacts) -> str:
    section = artifacts.manifest.label_head
    if section is None:
        return "this index was written before label heads: rebuild or re-import it for 'probe'"
    return f"this index has no label head ({section.reason or 'not fitted'}): 'probe' needs one"


def query_head(artifacts: Artifacts, given: LabelHead | None = None) -> LabelHead | None:
    """The head that scores this query: the caller's, else the index's (None: no head)."""
    head = artifacts.label_head
    if given is None or head is None:
        return head
    if given.labels != head.labels:
        raise QueryError("the given label head's labels differ from the index's head")
    return given


def query_proba(head: LabelHead | None, vector: npt.ArrayLike) -> F64 | None:
    """(L,) calibrated probabilities in the head's label order; ``None`` without a head."""
    if head is None:
        return None
    return head.predict_proba(np.asarray(vector, np.float64).reshape(1, -1))[0]


def probe_settings(
    artifacts: Artifacts, head: LabelHead | None, weight: float | None
) -> tuple[float, int]:
    """The probe weight (the request's, else the head's) and the candidate count."""
    section = artifacts.manifest.label_head
    w = (head.weight if head is not None else 1.0) if weight is None else weight
    if not np.isfinite(w) or w < 0:
        raise QueryError(f"probe_weight must be a finite number >= 0, got {w}")
    return float(w), section.probe_candidates if section is not None else DEFAULT_CANDIDATES


def probe_rank(
    artifacts: Artifacts,
    rows: npt.NDArray[np.int64],
    cosines: npt.NDArray[np.float32],
    head: LabelHead | None,
    vector: npt.ArrayLike,
    k: int,
    weight: float,
) -> tuple[npt.NDArray[np.int64], npt.NDArray[np.float32]]:
    """The top ``k`` of the candidates (first by agreement, then by cosine); their cosines."""
    if head is None:
        raise QueryError(no_head_reason(artifacts))
    items = [artifacts.items[int(r)] for r in rows]
    y = label_matrix(items, head.labels, artifacts.manifest.taxonomy.no_damage_id)
    evidence = label_evidence(head.scores(np.asarray(vector).reshape(1, -1))[0], head.prior)
    order = probe_order([it.id for it in items], cosines, y, evidence, weight=weight)[:k]
    return rows[order], cosines[order]


def label_estimates(
    head: LabelHead | None,
    proba: F64 | None,
    taxonomy: Taxonomy,
    vector: npt.ArrayLike | None = None,
) -> tuple[LabelEstimate, ...]:
    """Every head label with its probability: the leading estimate first (the label whose
    prior-corrected evidence stands out most: it carries more than the most probable label,
    which is the frequent one for almost every query), then by probability."""
    if head is None or proba is None or vector is None:
        return ()
    evidence = label_evidence(head.scores(np.asarray(vector).reshape(1, -1))[0], head.prior)
    lead = head.labels[int(evidence.argmax())]
    pairs = sorted(
        zip(head.labels, proba.tolist(), strict=True),
        key=lambda p: (p[0] != lead, -p[1], p[0]),
    )
    estimates = []
    for label_id, p in pairs:
        label = taxonomy.normalise(label_id)
        estimates.append(
            LabelEstimate(
                label=label_id, name=Name(label.en, label.es), probability=round(float(p), 4)
            )
        )
    return tuple(estimates)
