"""Retrieval and label-prediction metrics: pure functions over canonical label sets and rankings.

Everything here works on label *sets* of canonical taxonomy ids, one per query and one per ranked
neighbour. Definitions (also in ``docs/evaluation.md``):

- **Label set.** The canonical labels with a positive count. An item or query without any damage
  label has the set ``{no_damage}``, on both sides, so "no damage" is a label like any other: a
  no-damage query is answered well by no-damage neighbours. Counts are ignored.
- **Relevant neighbour.** One whose label set shares at least one label with the query's.
- **Ties.** Metrics read a ranking in the order given; :func:`tie_break` makes that order
  deterministic (score descending, then item id ascending), so tied scores never make a number
  depend on the index's internal order.
- **Short rankings** (fewer hits than k, e.g. k larger than the index): missing slots are
  non-relevant and contribute nothing; precision@k still divides by k.

Per query, at cut-off k over the ranking ``N_1..N_n`` and query labels ``Q``:

- ``recall@k`` = |Q ∩ (N_1 ∪ … ∪ N_k)| / |Q| (the reference project's label recall);
- ``hit@k`` = 1 if any of the top k is relevant;
- ``precision@k`` = (number of relevant neighbours in the top k) / k;
- ``rr`` = 1 / rank of the first relevant neighbour in the returned list (0 if none);
- ``ap@k`` = Σ_{i≤k, N_i relevant} precision@i / min(R, k), R = relevant items the search could
  have returned (the candidate pool); 0 when R = 0;
- ``ndcg@k`` = DCG@k / IDCG@k, gain_i = Jaccard(Q, N_i), discount 1/log2(i+1); the ideal ranking
  is the pool's k largest gains; 0 when the ideal is 0 (the query's labels occur nowhere).

kNN vote at k: a label is predicted when at least half of the returned top-k neighbours carry it
(``votes >= n/2``, n = min(k, hits)); if none reaches half, the most voted label is predicted
(ties by canonical order), so every non-empty ranking predicts something. Micro F1 pools
(query, label) decisions; macro F1 averages per-label F1 over the labels present in the ground
truth or the predictions.
"""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass

import numpy as np

NO_DAMAGE = "no_damage"

LabelSet = frozenset[str]


def label_set(
    labels: Mapping[str, int] | Iterable[str] | None, *, no_damage: str = NO_DAMAGE
) -> LabelSet:
    """Canonical ids with a positive count; an empty set becomes ``{no_damage}``."""
    if labels is None:
        ids: set[str] = set()
    elif isinstance(labels, Mapping):
        ids = {str(k) for k, v in labels.items() if int(v) > 0}
    else:
        ids = {str(x) for x in labels}
    return frozenset(ids) if ids else frozenset({no_damage})


def jaccard(a: LabelSet, b: LabelSet) -> float:
    union = a | b
    return len(a & b) / len(union) if union else 0.0


def tie_break(ids: Sequence[str], scores: Sequence[float]) -> list[int]:
    """Positions ordered by score descending, then id ascending (deterministic under ties)."""
    return sorted(range(len(ids)), key=lambda i: (-float(scores[i]), str(ids[i])))


def _check_k(k: int) -> None:
    if k < 1:
        raise ValueError(f"k must be >= 1, got {k}")


def relevance(query: LabelSet, ranking: Sequence[LabelSet]) -> list[bool]:
    return [bool(query & n) for n in ranking]


def recall_at_k(query: LabelSet, ranking: Sequence[LabelSet], k: int) -> float:
    """Share of the query's labels present among the top-k neighbours' labels."""
    _check_k(k)
    if not query:
        return 0.0
    found: set[str] = set().union(*ranking[:k]) if ranking[:k] else set()
    return len(query & found) / len(query)


def hit_at_k(query: LabelSet, ranking: Sequence[LabelSet], k: int) -> float:
    _check_k(k)
    return float(any(relevance(query, ranking[:k])))


def precision_at_k(query: LabelSet, ranking: Sequence[LabelSet], k: int) -> float:
    """Relevant neighbours in the top k divided by k (missing slots count as non-relevant)."""
    _check_k(k)
    return sum(relevance(query, ranking[:k])) / k


def reciprocal_rank(query: LabelSet, ranking: Sequence[LabelSet]) -> float:
    for i, rel in enumerate(relevance(query, ranking), 1):
        if rel:
            return 1.0 / i
    return 0.0


def average_precision_at_k(
    query: LabelSet, ranking: Sequence[LabelSet], k: int, *, n_relevant: int | None = None
) -> float:
    """AP@k normalised by min(R, k); ``n_relevant`` = R in the pool (default: R retrieved)."""
    _check_k(k)
    rel = relevance(query, ranking[:k])
    total = sum(rel) if n_relevant is None else n_relevant
    denom = min(total, k)
    if denom <= 0:
        return 0.0
    hits, acc = 0, 0.0
    for i, r in enumerate(rel, 1):
        if r:
            hits += 1
            acc += hits / i
    return acc / denom


def _dcg(gains: Iterable[float]) -> float:
    return sum(g / math.log2(i + 1) for i, g in enumerate(gains, 1))


def ndcg_at_k(
    query: LabelSet,
    ranking: Sequence[LabelSet],
    k: int,
    *,
    pool: Mapping[LabelSet, int] | None = None,
) -> float:
    """nDCG@k with Jaccard gain; ``pool`` = {label set: item count} the search could return.

    Without a pool the ideal is the returned ranking re-sorted (a weaker, ranking-only ideal).
    """
    _check_k(k)
    gains = [jaccard(query, n) for n in ranking[:k]]
    if pool is None:
        ideal = sorted((jaccard(query, n) for n in ranking), reverse=True)[:k]
    else:
        ideal = _top_gains(query, pool, k)
    idcg = _dcg(ideal)
    return _dcg(gains) / idcg if idcg > 0 else 0.0


def _top_gains(query: LabelSet, pool: Mapping[LabelSet, int], k: int) -> list[float]:
    out: list[float] = []
    for g, n in sorted(((jaccard(query, s), n) for s, n in pool.items()), reverse=True):
        if g <= 0 or len(out) >= k:
            break
        out.extend([g] * min(n, k - len(out)))
    return out


def count_relevant(query: LabelSet, pool: Mapping[LabelSet, int]) -> int:
    """Items in the pool sharing at least one label with the query."""
    return sum(n for s, n in pool.items() if query & s)


def knn_vote(
    ranking: Sequence[LabelSet], k: int, *, order: Callable[[str], object] | None = None
) -> LabelSet:
    """Labels carried by at least half of the top-k neighbours (else the most voted one)."""
    _check_k(k)
    top = ranking[:k]
    if not top:
        return frozenset()
    votes = Counter(label for s in top for label in s)
    kept = {label for label, v in votes.items() if 2 * v >= len(top)}
    if kept:
        return frozenset(kept)
    key = order or (lambda label: label)
    best = max(votes.values())
    return frozenset({min((lb for lb, v in votes.items() if v == best), key=key)})  # type: ignore[arg-type]


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
        p = tp[label] / (tp[label] + fp[label]) if tp[label] + fp[label] else 0.0
        r = tp[label] / (tp[label] + fn[label]) if tp[label] + fn[label] else 0.0
        per_label[label] = LabelScores(p, r, _f1(p, r), support[label], predicted[label])
    stp, sfp, sfn = sum(tp.values()), sum(fp.values()), sum(fn.values())
    mp = stp / (stp + sfp) if stp + sfp else 0.0
    mr = stp / (stp + sfn) if stp + sfn else 0.0
    macro = float(np.mean([s.f1 for s in per_label.values()])) if per_label else 0.0
    return F1Report(mp, mr, _f1(mp, mr), macro, per_label)


def per_label_recall(
    queries: Sequence[LabelSet], rankings: Sequence[Sequence[LabelSet]], k: int
) -> dict[str, tuple[float, int]]:
    """label -> (share of queries carrying it whose top-k contains it, number of such queries)."""
    _check_k(k)
    found: Counter[str] = Counter()
    support: Counter[str] = Counter()
    for q, ranking in zip(queries, rankings, strict=True):
        top: set[str] = set().union(*ranking[:k]) if ranking[:k] else set()
        support.update(q)
        found.update(q & top)
    return {label: (found[label] / n, n) for label, n in sorted(support.items())}


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


def query_metrics(
    query: LabelSet,
    ranking: Sequence[LabelSet],
    ks: Sequence[int],
    *,
    pool: Mapping[LabelSet, int] | None = None,
) -> dict[str, float]:
    """All per-query metrics at each k: ``recall@k``, ``hit@k``, ``precision@k``, ``map@k``,
    ``ndcg@k`` and ``mrr`` (over the whole returned ranking)."""
    n_rel = count_relevant(query, pool) if pool is not None else None
    out: dict[str, float] = {}
    for k in ks:
        out[f"recall@{k}"] = recall_at_k(query, ranking, k)
        out[f"hit@{k}"] = hit_at_k(query, ranking, k)
        out[f"precision@{k}"] = precision_at_k(query, ranking, k)
        out[f"map@{k}"] = average_precision_at_k(query, ranking, k, n_relevant=n_rel)
        out[f"ndcg@{k}"] = ndcg_at_k(query, ranking, k, pool=pool)
    out["mrr"] = reciprocal_rank(query, ranking)
    return out


def aggregate(
    queries: Sequence[LabelSet],
    rankings: Sequence[Sequence[LabelSet]],
    ks: Sequence[int],
    *,
    pools: Sequence[Mapping[LabelSet, int] | None] | None = None,
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
        report = f1_scores(queries, [knn_vote(r, k, order=order) for r in rankings])
        summary[f"knn_micro_f1@{k}"] = report.micro_f1
        summary[f"knn_macro_f1@{k}"] = report.macro_f1
    return summary, rows


def latency_summary(samples: Mapping[str, Sequence[float]]) -> dict[str, dict[str, float]]:
    """stage -> {p50_ms, p95_ms, mean_ms, n} from samples in seconds."""
    out: dict[str, dict[str, float]] = {}
    for stage, values in samples.items():
        if not values:
            continue
        arr = np.asarray(values, dtype=np.float64) * 1000.0
        out[stage] = {
            "p50_ms": float(np.percentile(arr, 50)),
            "p95_ms": float(np.percentile(arr, 95)),
            "mean_ms": float(arr.mean()),
            "n": int(arr.size),
        }
    return out
