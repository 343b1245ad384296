"""The kNN-vote prediction of the evaluation and how it is scored (multi-label F1, confusion).

The prediction is the one vote rule of :mod:`indexer.retrieval.votes` (the labels ``/context``
reports as
predicted and ``rerank`` describes) applied to the top-k neighbours of a ranking: a label is
predicted when at least half of the returned top-k neighbours carry it (``votes >= n/2``,
n = min(k, hits), unweighted); if none reaches half, the most voted label (ties by canonical
order), so every non-empty ranking predicts something.
Micro F1 pools (query, label) decisions; macro F1 averages per-label F1 over the labels present in
the ground truth or the predictions.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np

from indexer.evaluation.metrics import NO_DAMAGE, LabelSet
from indexer.retrieval.votes import predicted_labels, tally


def knn_vote(
    ranking: Sequence[LabelSet],
    k: int,
    *,
    scores: Sequence[float] | None = None,
    order: Callable[[str], object] | None = None,
    no_damage: str = NO_DAMAGE,
) -> LabelSet:
    """The labels :mod:`indexer.retrieval.votes` predicts from the top-k neighbours (with their
    scores;
    all equal when none are given)."""
    if k < 1:
        raise ValueError(f"k must be >= 1, got {k}")
    top = ranking[:k]
    weights = [0.0] * len(top) if scores is None else list(scores[:k])
    votes = tally(top, weights, no_damage=no_damage, order=order or (lambda label: label))
    return predicted_labels(votes)


@dataclass(frozen=True)
class LabelScores:
    precision: float
    recall: float
    f1: float
    support: int  # queries whose ground truth carries the label
    predicted: int  # queries predicted to carry it


@dataclass(frozen=True)
class F1Report:
    micro_precision: float
    micro_recall: float
    micro_f1: float
    macro_f1: float
    per_label: dict[str, LabelScores]


def _f1(p: float, r: float) -> float:
    return 2 * p * r / (p + r) if p + r > 0 else 0.0


def f1_scores(truths: Sequence[LabelSet], predictions: Sequence[LabelSet]) -> F1Report:
    """Multi-label micro/macro F1; macro over labels seen in the truths or the predictions."""
    if len(truths) != len(predictions):
        raise ValueError("truths and predictions differ in length")
    tp: Counter[str] = Counter()
    fp: Counter[str] = Counter()
    fn: Counter[str] = Counter()
    support: Counter[str] = Counter()
    predicted: Counter[str] = Counter()
    for t, p in zip(truths, predictions, strict=True):
        support.update(t)
        predicted.update(p)
        tp.update(t & p)
        fp.update(p - t)
        fn.update(t - p)
    per_label: dict[str, LabelScores] = {}
    for label in sorted(set(support) | set(predicted)):
        prec = tp[label] / (tp[label] + fp[label]) if tp[label] + fp[label] else 0.0
        rec = tp[label] / (tp[label] + fn[label]) if tp[label] + fn[label] else 0.0
        per_label[label] = LabelScores(prec, rec, _f1(prec, rec), support[label], predicted[label])
    stp, sfp, sfn = sum(tp.values()), sum(fp.values()), sum(fn.values())
    mp = stp / (stp + sfp) if stp + sfp else 0.0
    mr = stp / (stp + sfn) if stp + sfn else 0.0
    macro = float(np.mean([s.f1 for s in per_label.values()])) if per_label else 0.0
    return F1Report(mp, mr, _f1(mp, mr), macro, per_label)


def confusion(
    truths: Sequence[LabelSet], predictions: Sequence[LabelSet], labels: Sequence[str]
) -> np.ndarray:
    """Multi-label confusion counts: ``m[i, j]`` = queries with true label i predicted label j.

    The extra last column counts queries with true label i and an empty prediction.
    """
    index = {label: i for i, label in enumerate(labels)}
    m = np.zeros((len(labels), len(labels) + 1), dtype=np.int64)
    for t, p in zip(truths, predictions, strict=True):
        for tl in t:
            if tl not in index:
                continue
            if not p:
                m[index[tl], -1] += 1
            for pl in p:
                if pl in index:
                    m[index[tl], index[pl]] += 1
    return m
