"""Scores of each arm, and paired group-bootstrap intervals between arms.

Per arm: micro/macro F1 and per-label F1 (:func:`indexer.evaluation.prediction.f1_scores`),
exact-set accuracy, unparseable and failed answers (scored as an empty set, never dropped),
tokens from the responses' ``usage`` and the latency p50/p95 of the calls.

Intervals: the evaluation's resampling (:func:`indexer.evaluation.uncertainty.group_draws`:
query groups drawn with replacement, each bringing all its queries), both arms scored on the same
resample, percentile interval of the difference. Per-label true/false positive and false negative
counts are summed per group, so each resample's F1 is a matrix product.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import numpy.typing as npt

from indexer.evaluation.metrics import LabelSet
from indexer.evaluation.prediction import f1_scores
from indexer.evaluation.uncertainty import LEVEL, group_draws, spread

F64 = npt.NDArray[np.float64]
METRICS = ("macro_f1", "micro_f1", "exact_accuracy")


@dataclass(frozen=True)
class ArmAnswers:
    """One arm's predictions (empty when unparseable or failed) and what the calls cost."""

    predictions: tuple[LabelSet, ...]
    unparseable: int
    failed: int
    retried: int
    tokens: Mapping[str, int]
    seconds: tuple[float, ...]


def arm_scores(truths: Sequence[LabelSet], arm: ArmAnswers) -> dict[str, Any]:
    report = f1_scores(truths, arm.predictions)
    exact = [t == p for t, p in zip(truths, arm.predictions, strict=True)]
    seconds = np.asarray(arm.seconds or [0.0])
    return {
        "macro_f1": report.macro_f1,
        "micro_f1": report.micro_f1,
        "exact_accuracy": float(np.mean(exact)) if exact else 0.0,
        "per_label_f1": {lb: s.f1 for lb, s in report.per_label.items()},
        "queries": len(truths),
        "unparseable": arm.unparseable,
        "failed": arm.failed,
        "retried_calls": arm.retried,
        "tokens": dict(arm.tokens),
        "latency_s": {
            "p50": float(np.percentile(seconds, 50)),
            "p95": float(np.percentile(seconds, 95)),
        },
    }


class _Counts:
    """Per group: per-label tp/fp/fn and exact-set hits."""

    def __init__(
        self,
        truths: Sequence[LabelSet],
        predictions: Sequence[LabelSet],
        labels: Sequence[str],
        index: npt.NDArray[np.intp],
        n_groups: int,
    ) -> None:
        col = {lb: j for j, lb in enumerate(labels)}
        self.tp, self.fp, self.fn = (np.zeros((n_groups, len(labels))) for _ in range(3))
        self.exact = np.zeros(n_groups)
        self.size = np.bincount(index, minlength=n_groups).astype(np.float64)
        for g, t, p in zip(index, truths, predictions, strict=True):
            for lb in t & p:
                self.tp[g, col[lb]] += 1
            for lb in p - t:
                self.fp[g, col[lb]] += 1
            for lb in t - p:
                self.fn[g, col[lb]] += 1
            self.exact[g] += float(t == p)

    def metric(self, name: str, counts: F64) -> F64:
        tp, fp, fn = counts @ self.tp, counts @ self.fp, counts @ self.fn
        if name == "exact_accuracy":
            return (counts @ self.exact) / (counts @ self.size)
        if name == "micro_f1":
            tp, fp, fn = tp.sum(1), fp.sum(1), fn.sum(1)
            return _f1(tp, fp, fn)
        seen = (tp + fp + fn) > 0
        return np.where(seen, _f1(tp, fp, fn), 0.0).sum(1) / np.maximum(seen.sum(1), 1)


def _f1(tp: F64, fp: F64, fn: F64) -> F64:
    denominator = 2 * tp + fp + fn
    return np.divide(2 * tp, denominator, out=np.zeros_like(tp), where=denominator > 0)


def arm_intervals(
    truths: Sequence[LabelSet],
    groups: Sequence[str],
    arms: Mapping[str, Sequence[LabelSet]],
    comparisons: Sequence[tuple[str, str]],
    *,
    repeats: int = 1000,
    seed: int = 0,
    level: float = LEVEL,
) -> dict[str, Any]:
    """Intervals of ``arm - versus`` for every comparison and metric of :data:`METRICS`."""
    labels = sorted(set().union(*truths, *(set().union(*p) for p in arms.values())))
    draws, index = group_draws(groups, repeats, seed)
    counts = np.vstack([np.ones((1, draws.shape[1])), draws])  # row 0: every group once
    tables = {name: _Counts(truths, p, labels, index, draws.shape[1]) for name, p in arms.items()}
    tail = (1 - level) / 2
    rows = []
    for arm, versus in comparisons:
        for metric in METRICS:
            diff = tables[arm].metric(metric, counts) - tables[versus].metric(metric, counts)
            rows.append({"arm": arm, "versus": versus, "metric": metric, **spread(diff, tail)})
    return {
        "method": "paired bootstrap over query groups (source images), percentile interval",
        "groups": int(draws.shape[1]),
        "repeats": repeats,
        "seed": seed,
        "level": level,
        "comparisons": rows,
    }
