"""The metrics an evaluation report carries for every run and baseline, all fractions."""

from __future__ import annotations

# one of each kind at the k (1, 3, 5) the tests evaluate; each lies in [0, 1]
FRACTION_METRICS = (
    "recall@5",
    "hit@1",
    "precision@3",
    "map@5",
    "ndcg@5",
    "mrr",
    "knn_micro_f1@5",
    "knn_macro_f1@5",
)
