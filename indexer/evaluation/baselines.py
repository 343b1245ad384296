"""Query-independent baselines, ranked over the same candidate pools as the configurations and
scored by the same function (:func:`~indexer.evaluation.results.score_rankings`).

- ``majority``: pool items carrying the most frequent label set first, i.e. always retrieving
  (and, by kNN vote, predicting) the majority label set. Order: number of pool items with the
  same exact label set, then the sum over the item's labels of how many pool items carry each
  label, then id.
- ``random``: uniform random rankings of the pool, metrics averaged over ``random_repeats``
  draws with a fixed seed.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
from typing import Any

import numpy as np
import numpy.typing as npt

from indexer.evaluation.metrics import LabelSet
from indexer.evaluation.results import Neighbour, RunResult, Scoring, score_rankings


def majority_ranking(
    items: Sequence[Any], item_sets: Sequence[LabelSet], rows: npt.NDArray[np.int64], k: int
) -> list[Neighbour]:
    """Pool items carrying the most frequent label set first (then by label frequency, id)."""
    sets = Counter(item_sets[r] for r in rows)
    freq = Counter(label for r in rows for label in item_sets[r])

    def key(r: int) -> tuple[int, int, str]:
        return (-sets[item_sets[r]], -sum(freq[lb] for lb in item_sets[r]), items[r].id)

    ranked = sorted(rows.tolist(), key=key)[:k]
    return [Neighbour(items[r].id, 0.0, tuple(sorted(item_sets[r]))) for r in ranked]


def majority_baseline(
    scoring: Scoring,
    items: Sequence[Any],
    item_sets: Sequence[LabelSet],
    pools: Sequence[npt.NDArray[np.int64]],
) -> RunResult:
    """Every query answered with :func:`majority_ranking` of its pool."""
    rankings = [majority_ranking(items, item_sets, rows, max(scoring.ks)) for rows in pools]
    return score_rankings("majority-label baseline", rankings, scoring)


def random_baseline(
    scoring: Scoring,
    items: Sequence[Any],
    item_sets: Sequence[LabelSet],
    pools: Sequence[npt.NDArray[np.int64]],
    *,
    repeats: int,
    seed: int,
) -> RunResult:
    """Uniform random rankings of each pool, metrics averaged over ``repeats`` seeded draws."""
    rng = np.random.default_rng(seed)
    ks, kmax = scoring.ks, max(scoring.ks)
    draws: list[RunResult] = []
    for _ in range(max(1, repeats)):
        rankings = []
        for rows in pools:
            pick = rng.choice(rows, size=min(kmax, len(rows)), replace=False) if len(rows) else rows
            rankings.append(
                [Neighbour(items[r].id, 0.0, tuple(sorted(item_sets[r]))) for r in pick]
            )
        draws.append(score_rankings("random", rankings, scoring))
    summary = {key: float(np.mean([d.summary[key] for d in draws])) for key in draws[0].summary}
    plr: dict[int, dict[str, tuple[float, int]]] = {}
    for k in ks:
        plr[k] = {
            label: (float(np.mean([d.per_label_recall[k][label][0] for d in draws])), n)
            for label, (_, n) in draws[0].per_label_recall[k].items()
        }
    return RunResult(
        name=f"random-retrieval baseline (mean of {len(draws)} draws, seed {seed})",
        summary=summary,
        per_label_recall=plr,
    )
