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

The kNN-vote prediction and its F1 / confusion scores are in
:mod:`indexer.evaluation.prediction`; :func:`indexer.evaluation.results.aggregate` averages these
metrics and those scores over a set of queries.

Per query, at cut-off k over the ranking ``N_1..N_n`` and query labels ``Q``:

- ``recall@k`` = |Q ∩ (N_1 ∪ … ∪ N_k)| / |Q| (the reference project's label recall);
- ``hit@k`` = 1 if any of the top k is relevant;
- ``precision@k`` = (number of relevant neighbours in the top k) / k;
- ``rr`` = 1 / rank of the first relevant neighbour in the returned list (0 if none);
- ``ap@k`` = Σ_{i≤k, N_i relevant} precision@i / min(R, k), R = relevant items the search could
  have returned (the candidate pool); 0 when R = 0;
- ``ndcg@k`` = DCG@k / IDCG@k, gain_i = Jaccard(Q, N_i), discount 1/log2(i+1); the ideal ranking
  is the pool's k largest gains; 0 when the ideal is 0 (the query's labels occur nowhere).

"""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Iterable, Mapping, Sequence

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
