"""What an evaluation produces: neighbours, per-query outcomes, per-run results, and how a set of
rankings is scored into a :class:`RunResult` (the same functions for every configuration and
baseline)."""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt

from indexer.evaluation.metrics import LabelSet, per_label_recall, query_metrics
from indexer.evaluation.prediction import F1Report, confusion, f1_scores, knn_vote
from indexer.evaluation.queries import Query


@dataclass(frozen=True)
class Neighbour:
    id: str
    score: float
    labels: tuple[str, ...]
    image: Path | None = None


@dataclass
class QueryOutcome:
    query: Query
    neighbours: list[Neighbour]
    metrics: dict[str, float]
    predicted: LabelSet
    pseudo_text: str | None = None


@dataclass
class RunResult:
    """Scores of one configuration (or baseline) over all queries."""

    name: str
    summary: dict[str, float]
    per_label_recall: dict[int, dict[str, tuple[float, int]]]
    knn: F1Report | None = None
    confusion: npt.NDArray[np.int64] | None = None
    outcomes: list[QueryOutcome] = field(default_factory=list)
    latency: dict[str, dict[str, float]] = field(default_factory=dict)
    alpha: float | None = None
    mode: str = ""


@dataclass
class Evaluation:
    setting: dict[str, Any]
    runs: list[RunResult]
    baselines: dict[str, RunResult]
    labels: list[str]  # label order for per-label views (taxonomy order, seen labels only)
    vote_k: int
    ks: tuple[int, ...]
    warnings: list[str] = field(default_factory=list)
    # label-estimate quality (head vs priors: F1, Brier, ECE, reliability bins); None: no head
    estimates: dict[str, Any] | None = None
    # paired group-bootstrap intervals of each run vs image / majority; None: --bootstrap 0
    uncertainty: dict[str, Any] | None = None
    # held-out-label AUROC of the novelty score per label (leave-one-out only)
    novelty: list[dict[str, Any]] | None = None
    # pointing game and overlap of "where is the damage" (--unit region, indexer.evaluation.
    # localisation); None: not measured
    localisation: dict[str, Any] | None = None


@dataclass(frozen=True)
class Scoring:
    """What every ranking of one evaluation is scored against (configurations and baselines)."""

    queries: Sequence[Query]
    truths: Sequence[LabelSet]
    pool_counts: Sequence[Mapping[LabelSet, int]]  # per query: label set -> pool items carrying it
    ks: Sequence[int]
    vote_k: int
    labels: Sequence[str]  # label order of the confusion matrix
    order: Callable[[str], int]


def aggregate(
    queries: Sequence[LabelSet],
    rankings: Sequence[Sequence[LabelSet]],
    ks: Sequence[int],
    *,
    pools: Sequence[Mapping[LabelSet, int] | None] | None = None,
    scores: Sequence[Sequence[float]] | None = None,
    order: Callable[[str], object] | None = None,
) -> tuple[dict[str, float], list[dict[str, float]]]:
    """Mean metrics over queries plus per-query rows.

    Adds ``label_recall_macro@k`` (mean per-label recall), ``knn_micro_f1@k`` and
    ``knn_macro_f1@k`` to the query means.
    """
    if pools is None:
        pools = [None] * len(queries)
    rows = [
        query_metrics(q, r, ks, pool=p) for q, r, p in zip(queries, rankings, pools, strict=True)
    ]
    summary: dict[str, float] = {}
    if rows:
        for key in rows[0]:
            summary[key] = float(np.mean([row[key] for row in rows]))
    for k in ks:
        plr = per_label_recall(queries, rankings, k)
        summary[f"label_recall_macro@{k}"] = (
            float(np.mean([v for v, _ in plr.values()])) if plr else 0.0
        )
        predicted = [
            knn_vote(r, k, scores=None if scores is None else scores[i], order=order)
            for i, r in enumerate(rankings)
        ]
        report = f1_scores(queries, predicted)
        summary[f"knn_micro_f1@{k}"] = report.micro_f1
        summary[f"knn_macro_f1@{k}"] = report.macro_f1
    return summary, rows


def score_rankings(
    name: str, rankings: Sequence[Sequence[Neighbour]], scoring: Scoring
) -> RunResult:
    """Score one ranking per query (same metrics for configurations and baselines)."""
    truths, order = scoring.truths, scoring.order
    sets = [[frozenset(n.labels) for n in r] for r in rankings]
    scores = [[n.score for n in r] for r in rankings]
    summary, rows = aggregate(
        truths, sets, scoring.ks, pools=scoring.pool_counts, scores=scores, order=order
    )
    predicted = [
        knn_vote(s, scoring.vote_k, scores=w, order=order)
        for s, w in zip(sets, scores, strict=True)
    ]
    outcomes = [
        QueryOutcome(q, list(r), m, p)
        for q, r, m, p in zip(scoring.queries, rankings, rows, predicted, strict=True)
    ]
    return RunResult(
        name=name,
        summary=summary,
        per_label_recall={k: per_label_recall(truths, sets, k) for k in scoring.ks},
        knn=f1_scores(truths, predicted),
        confusion=confusion(truths, predicted, scoring.labels),
        outcomes=outcomes,
    )


def summary_rows(evaluation: Evaluation, keys: Iterable[str] | None = None) -> list[dict[str, Any]]:
    """One row per metric: each run's value beside the majority and random baselines."""
    first = evaluation.runs[0].summary if evaluation.runs else {}
    rows = []
    for key in keys or first.keys():
        row: dict[str, Any] = {"metric": key}
        for run in evaluation.runs:
            row[run.name] = run.summary.get(key)
        row["majority"] = evaluation.baselines["majority"].summary.get(key)
        row["random"] = evaluation.baselines["random"].summary.get(key)
        rows.append(row)
    return rows
