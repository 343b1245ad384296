"""Metrics on small hand-computed rankings (values worked out by hand in the comments)."""

from __future__ import annotations

import math

import pytest

from indexer.evaluation.metrics import (
    average_precision_at_k,
    count_relevant,
    hit_at_k,
    jaccard,
    label_set,
    latency_summary,
    ndcg_at_k,
    per_label_recall,
    precision_at_k,
    query_metrics,
    recall_at_k,
    reciprocal_rank,
    tie_break,
)
from indexer.evaluation.prediction import confusion, f1_scores, knn_vote
from indexer.evaluation.results import aggregate

A, B, C, D, Z = "a", "b", "c", "d", "z"


def s(*labels: str) -> frozenset[str]:
    return frozenset(labels)


# query {a, b}; neighbours {c}, {a}, {a, b}, {d}
Q = s(A, B)
RANKING = [s(C), s(A), s(A, B), s(D)]
POOL = {s(A, B): 2, s(A): 1, s(C): 1, s(D): 1}


def test_label_set_no_damage_convention() -> None:
    assert label_set({}) == s("no_damage")
    assert label_set(None) == s("no_damage")
    assert label_set({"dent": 0}) == s("no_damage")
    assert label_set({"dent": 2, "crack": 1}) == s("dent", "crack")
    assert label_set(["dent", "dent"]) == s("dent")
    # a no-damage query is answered well by a no-damage neighbour
    assert hit_at_k(label_set({}), [label_set([])], 1) == 1.0


def test_several_labels_recall_hit_precision() -> None:
    assert recall_at_k(Q, RANKING, 1) == 0.0
    assert recall_at_k(Q, RANKING, 2) == 0.5  # {a} found, {b} not yet
    assert recall_at_k(Q, RANKING, 3) == 1.0
    assert hit_at_k(Q, RANKING, 1) == 0.0
    assert hit_at_k(Q, RANKING, 2) == 1.0
    assert precision_at_k(Q, RANKING, 1) == 0.0
    assert precision_at_k(Q, RANKING, 3) == pytest.approx(2 / 3)
    assert precision_at_k(Q, RANKING, 4) == 0.5
    assert reciprocal_rank(Q, RANKING) == 0.5


def test_average_precision() -> None:
    # relevant at ranks 2 and 3: precisions 1/2 and 2/3
    assert average_precision_at_k(Q, RANKING, 3) == pytest.approx((1 / 2 + 2 / 3) / 2)
    # 3 relevant items exist in the pool, so the normaliser is min(3, 3) = 3
    assert count_relevant(Q, POOL) == 3
    assert average_precision_at_k(Q, RANKING, 3, n_relevant=3) == pytest.approx((7 / 6) / 3)
    assert average_precision_at_k(Q, RANKING, 1, n_relevant=3) == 0.0


def test_ndcg_jaccard_gain() -> None:
    assert jaccard(Q, s(A)) == 0.5
    dcg = 0 + 0.5 / math.log2(3) + 1 / math.log2(4)
    # ranking-only ideal: gains sorted [1, 0.5, 0]
    assert ndcg_at_k(Q, RANKING, 3) == pytest.approx(dcg / (1 + 0.5 / math.log2(3)))
    # pool ideal: two {a, b} items and one {a}: [1, 1, 0.5]
    ideal = 1 + 1 / math.log2(3) + 0.5 / math.log2(4)
    assert ndcg_at_k(Q, RANKING, 3, pool=POOL) == pytest.approx(dcg / ideal)
    assert ndcg_at_k(Q, [s(A, B), s(A, B)], 2, pool=POOL) == pytest.approx(1.0)


def test_ties_are_broken_by_id_so_order_of_equal_scores_does_not_matter() -> None:
    assert tie_break(["b", "a", "c"], [0.5, 0.5, 0.9]) == [2, 1, 0]
    labels = {"a": s(Z), "b": s(C), "c": s(D)}
    query = s(Z)
    for ids, scores in ((["a", "b"], [0.5, 0.5]), (["b", "a"], [0.5, 0.5])):
        ranking = [labels[ids[i]] for i in tie_break(ids, scores)]
        assert reciprocal_rank(query, ranking) == 1.0
        assert precision_at_k(query, ranking, 1) == 1.0


def test_k_larger_than_index() -> None:
    ranking = [s(A)]
    pool = {s(A): 1}
    assert recall_at_k(s(A), ranking, 10) == 1.0
    assert hit_at_k(s(A), ranking, 10) == 1.0
    assert precision_at_k(s(A), ranking, 10) == pytest.approx(0.1)  # missing slots count as misses
    assert average_precision_at_k(s(A), ranking, 10, n_relevant=1) == 1.0
    assert ndcg_at_k(s(A), ranking, 10, pool=pool) == pytest.approx(1.0)
    assert knn_vote(ranking, 10) == s(A)


def test_query_labels_that_never_occur_in_the_index() -> None:
    ranking = [s(A), s(B)]
    pool = {s(A): 1, s(B): 1}
    m = query_metrics(s(Z), ranking, [1, 2], pool=pool)
    assert all(v == 0.0 for v in m.values()), m
    # it still counts in per-label recall (support 1, recall 0), never silently dropped
    assert per_label_recall([s(Z), s(A)], [ranking, ranking], 1) == {A: (1.0, 1), Z: (0.0, 1)}


def test_empty_ranking() -> None:
    m = query_metrics(Q, [], [1, 5], pool=POOL)
    assert all(v == 0.0 for v in m.values())
    assert knn_vote([], 3) == frozenset()
    assert ndcg_at_k(Q, [], 3) == 0.0
    with pytest.raises(ValueError):
        recall_at_k(Q, [], 0)


def test_knn_vote_half_threshold_and_fallback() -> None:
    ranking = [s(A, B), s(A), s(C)]
    assert knn_vote(ranking, 3) == s(A)  # a: 2 of 3; b, c: 1 of 3
    assert knn_vote(ranking, 2) == s(A, B)  # b: 1 of 2 is half
    assert knn_vote([s(A), s(B), s(C)], 3) == s(A)  # nobody at half: most voted, first by order
    order = {C: 0, B: 1, A: 2}.__getitem__
    assert knn_vote([s(A), s(B), s(C)], 3, order=order) == s(C)


def test_f1_micro_macro() -> None:
    truths = [s(A), s(A, B), s(C)]
    preds = [s(A), s(A), s(B)]
    r = f1_scores(truths, preds)
    # tp a=2; fp b=1; fn b=1, c=1 -> micro p=2/3, r=2/4
    assert r.micro_precision == pytest.approx(2 / 3)
    assert r.micro_recall == pytest.approx(0.5)
    assert r.micro_f1 == pytest.approx(4 / 7)
    assert r.per_label[A].f1 == 1.0 and r.per_label[B].f1 == 0.0 and r.per_label[C].f1 == 0.0
    assert r.per_label[C].support == 1 and r.per_label[B].predicted == 1
    assert r.macro_f1 == pytest.approx(1 / 3)


def test_confusion_multi_label() -> None:
    m = confusion([s(A), s(A, B), s(C), s(A)], [s(A), s(A), s(B), s()], [A, B, C])
    assert m.tolist() == [
        [2, 0, 0, 1],  # true a: predicted a twice, once nothing
        [1, 0, 0, 0],  # true b: predicted a
        [0, 1, 0, 0],  # true c: predicted b
    ]


def test_aggregate_means_and_macro() -> None:
    queries = [s(A), s(B)]
    rankings = [[s(A), s(B)], [s(A), s(A)]]
    summary, rows = aggregate(queries, rankings, [1, 2])
    assert [r["recall@1"] for r in rows] == [1.0, 0.0]
    assert summary["recall@1"] == 0.5
    assert summary["recall@2"] == 0.5
    assert summary["mrr"] == 0.5
    assert summary["label_recall_macro@1"] == 0.5  # a: 1/1, b: 0/1
    # votes at k=2: q1 {a, b} (each 1 of 2), q2 {a}: tp 1, fp 2 (b, a), fn 1 (b)
    assert summary["knn_micro_f1@2"] == pytest.approx(0.4)  # p = 1/3, r = 1/2


def test_latency_percentiles() -> None:
    out = latency_summary({"search": [0.001, 0.002, 0.003, 0.004], "empty": []})
    assert out["search"]["p50_ms"] == pytest.approx(2.5)
    assert out["search"]["p95_ms"] == pytest.approx(3.85)
    assert out["search"]["n"] == 4
    assert "empty" not in out
