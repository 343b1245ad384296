"""The label estimates in an evaluation: leakage-free probabilities and how good they are.

- Leave-one-out: :func:`query_heads` cross-fits the head by group
  (:func:`indexer.labels.head.cross_fit_heads`, one source image held out at a time), so the head
  that scores a query (mode ``probe``, its weight, and the estimate metrics) never saw the
  query's group. The stored head is never used there: it saw every item.
- Held-out queries: the stored head, fitted on the catalogue (train) only.

:func:`estimate_quality`: micro/macro F1 of the thresholded estimates (labels with p >= 0.5, else
the most probable one), of the leading estimate alone (the label with the largest prior-corrected
evidence, :func:`indexer.labels.agreement.label_evidence`: the first estimate the service shows),
Brier score and 10-bin ECE over all query x label pairs;
:func:`reliability` the bins of the reliability diagram.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import replace
from typing import TYPE_CHECKING, Any

import numpy as np
import numpy.typing as npt

from indexer.evaluation.prediction import f1_scores
from indexer.index.catalogue_head import item_groups, label_matrix
from indexer.labels.agreement import label_evidence
from indexer.labels.head import LabelHead, cross_fit_heads

if TYPE_CHECKING:
    from indexer.index.artifacts import Artifacts

F64 = npt.NDArray[np.float64]
BINS = 10


def loo_heads(artifacts: Artifacts) -> list[LabelHead] | None:
    """Per catalogue row, the head fitted without the row's group (None: the index has none)."""
    head = artifacts.label_head
    if head is None:
        return None
    nd = artifacts.manifest.taxonomy.no_damage_id
    y = label_matrix(artifacts.items, head.labels, nd)
    assignment, heads = cross_fit_heads(
        np.asarray(artifacts.image_vectors, np.float64), y, item_groups(artifacts.items)
    )
    labelled = [replace(h, labels=head.labels) for h in heads]
    return [labelled[int(f)] for f in assignment]


def reliability(proba: F64, y: F64, bins: int = BINS) -> list[dict[str, float]]:
    """Per probability bin: mean predicted probability, observed frequency, pair count."""
    p, t = proba.ravel(), y.ravel()
    index = np.minimum((p * bins).astype(int), bins - 1)
    return [
        {
            "bin": b / bins,
            "mean_probability": float(p[index == b].mean()),
            "frequency": float(t[index == b].mean()),
            "count": int((index == b).sum()),
        }
        for b in range(bins)
        if (index == b).any()
    ]


def estimate_quality(
    proba: F64, y: F64, labels: Sequence[str], evidence: F64 | None = None
) -> dict[str, float]:
    """Micro/macro F1 of the thresholded estimates (and of the leading one), Brier, 10-bin ECE."""
    pred = proba >= 0.5
    empty = ~pred.any(1)
    pred[empty, proba[empty].argmax(1)] = True
    truths = [frozenset(labels[int(j)] for j in np.flatnonzero(r)) for r in y]
    f1 = f1_scores(truths, [frozenset(labels[int(j)] for j in np.flatnonzero(r)) for r in pred])
    n = proba.size
    ece = sum(
        abs(b["mean_probability"] - b["frequency"]) * b["count"] / n for b in reliability(proba, y)
    )
    leading = proba if evidence is None else evidence
    lead = f1_scores(truths, [frozenset({labels[int(j)]}) for j in leading.argmax(1)])
    return {
        "micro_f1": f1.micro_f1,
        "macro_f1": f1.macro_f1,
        "leading_micro_f1": lead.micro_f1,
        "leading_macro_f1": lead.macro_f1,
        "brier": float(((proba - y) ** 2).mean()),
        "ece": float(ece),
    }


def estimates_section(
    proba: F64, y: F64, labels: Sequence[str], prior: F64, source: str, evidence: F64
) -> dict[str, Any]:
    """What metrics.json records: the head's and the priors' estimate quality, reliability bins."""
    priors = np.tile(prior, (proba.shape[0], 1))
    return {
        "source": source,
        "labels": list(labels),
        "head": estimate_quality(proba, y, labels, evidence),
        "prior": estimate_quality(priors, y, labels),
        "reliability": reliability(proba, y),
    }


def query_heads(
    artifacts: Artifacts, queries: Sequence[Any], leave_one_out: bool
) -> list[LabelHead] | None:
    """The head that scores each query: cross-fitted (leave-one-out) or the stored one."""
    head = artifacts.label_head
    if head is None:
        return None
    if not leave_one_out:
        return [head] * len(queries)
    heads = loo_heads(artifacts)
    assert heads is not None
    rows = [artifacts.row_of(q.id) for q in queries]
    if any(r is None for r in rows):
        raise ValueError("a leave-one-out query is not in the catalogue")
    return [heads[int(r)] for r in rows if r is not None]


def query_evidence(heads: Sequence[LabelHead], vectors: Sequence[Any]) -> F64:
    """(q, L) each query's prior-corrected evidence profile from its own head."""
    return np.stack(
        [
            label_evidence(h.scores(np.asarray(v, np.float64).reshape(1, -1))[0], h.prior)
            for h, v in zip(heads, vectors, strict=True)
        ]
    )


def query_probas(heads: Sequence[LabelHead], vectors: Sequence[Any]) -> F64:
    """(q, L) each query's calibrated probabilities from its own head."""
    return np.stack(
        [
            h.predict_proba(np.asarray(v, np.float64).reshape(1, -1))[0]
            for h, v in zip(heads, vectors, strict=True)
        ]
    )


def truth_matrix(artifacts: Artifacts, queries: Sequence[Any]) -> F64:
    """(q, L) the queries' verified labels in the head's label order."""
    assert artifacts.label_head is not None
    nd = artifacts.manifest.taxonomy.no_damage_id
    return label_matrix(queries, artifacts.label_head.labels, nd)
