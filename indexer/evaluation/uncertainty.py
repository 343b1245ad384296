"""How sure a difference between two runs is: a paired bootstrap over query groups.

A few hundred queries from a few dozen photos make every metric noisy: on the seed crops one crop
moves a rare label's recall by 0.08-0.5 and ``label_recall_macro@1`` by up to 0.06. So every
comparison an evaluation prints (each run against ``image`` and against the majority baseline)
also gets an interval:

- **Unit.** Groups (the query's source image; the query itself when it has none) are drawn with
  replacement, each drawn group bringing all its queries: crops of one photo are not independent,
  so resampling single crops would understate the noise.
- **Paired.** Both runs are scored on the same resample, so the interval is that of the
  difference, not two intervals side by side.
- **Metrics.** ``recall@k`` (mean over the resampled queries) and ``label_recall_macro@k``
  (per-label recall over the resampled queries, averaged over the labels they carry) — the
  evaluation's own definitions; with every group drawn once they equal the run's summary.
- **Interval.** Percentiles of the resampled differences (95 % by default), plus the share of
  resamples in which the run is ahead (``share_ahead``; 0.5 means a coin toss).

Pure numpy over hit counts summed per group, so 1000 resamples of a few runs take well under a
second and memory grows with the number of groups, not of queries.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import numpy.typing as npt

from indexer.evaluation.metrics import LabelSet, recall_at_k
from indexer.evaluation.queries import Query
from indexer.evaluation.results import RunResult

DEFAULT_REPEATS = 1000
LEVEL = 0.95
F64 = npt.NDArray[np.float64]


def group_draws(groups: Sequence[str], repeats: int, seed: int) -> tuple[F64, npt.NDArray[np.intp]]:
    """``(counts, index)``: ``counts[b, g]`` = how often resample ``b`` drew group ``g`` (each
    resample draws as many groups as there are, with replacement); ``index[i]`` = query i's
    group. A drawn group brings all its queries."""
    names, index = np.unique(np.asarray(groups, dtype=object).astype(str), return_inverse=True)
    rng = np.random.default_rng(seed)
    draws = rng.integers(0, len(names), size=(repeats, len(names)))
    counts = np.stack([np.bincount(d, minlength=len(names)) for d in draws]).astype(np.float64)
    return counts, index


def spread(diff: F64, tail: float) -> dict[str, float]:
    """``diff[0]``: the difference with every group once; ``diff[1:]``: the resamples'."""
    sample = diff[1:]
    return {
        "difference": float(diff[0]),
        "low": float(np.quantile(sample, tail)),
        "high": float(np.quantile(sample, 1 - tail)),
        "share_ahead": float((sample > 0).mean()),
    }


class _Tables:
    """One run's recall@k and per-label (found, carried) counts, summed per query group."""

    def __init__(
        self,
        truths: Sequence[LabelSet],
        rankings: Sequence[Sequence[LabelSet]],
        k: int,
        labels: Sequence[str],
        index: npt.NDArray[np.intp],
    ) -> None:
        col = {lb: j for j, lb in enumerate(labels)}
        n_groups = int(index.max()) + 1 if len(index) else 0
        self.size = np.bincount(index, minlength=n_groups).astype(np.float64)
        self.recall = np.zeros(n_groups)
        self.found = np.zeros((n_groups, len(labels)))
        self.carried = np.zeros((n_groups, len(labels)))
        for g, q, r in zip(index, truths, rankings, strict=True):
            self.recall[g] += recall_at_k(q, r, k)
            top: set[str] = set().union(*r[:k]) if r[:k] else set()
            for lb in q:
                self.carried[g, col[lb]] += 1.0
                self.found[g, col[lb]] += float(lb in top)

    def micro(self, counts: F64) -> F64:
        return (counts @ self.recall) / (counts @ self.size)

    def macro(self, counts: F64) -> F64:
        carried, found = counts @ self.carried, counts @ self.found
        present = carried > 0
        per_label = np.divide(found, carried, out=np.zeros_like(found), where=present)
        return per_label.sum(1) / np.maximum(present.sum(1), 1)


def paired_intervals(
    truths: Sequence[LabelSet],
    groups: Sequence[str],
    runs: Mapping[str, Sequence[Sequence[LabelSet]]],
    comparisons: Sequence[tuple[str, str]],
    ks: Sequence[int],
    *,
    repeats: int = DEFAULT_REPEATS,
    seed: int = 0,
    level: float = LEVEL,
) -> dict[str, Any]:
    """Bootstrap intervals of ``run - versus`` for each comparison, metric and k.

    Args:
        truths: each query's label set.
        groups: each query's resampling unit (source image; the query id when it has none).
        runs: name -> one ranking (label sets, best first) per query.
        comparisons: (run, versus) name pairs, both in ``runs``.
        ks: cut-offs.
        repeats: resamples; seed: fixes them; level: two-sided coverage of the interval.
    """
    if not 0 < level < 1:
        raise ValueError(f"level must be in (0, 1), got {level}")
    labels = sorted(set().union(*truths)) if truths else []
    draws, index = group_draws(groups, repeats, seed)
    counts = np.vstack([np.ones((1, draws.shape[1])), draws])  # row 0: every group once
    tables = {
        (name, k): _Tables(truths, r, k, labels, index) for name, r in runs.items() for k in ks
    }
    tail = (1 - level) / 2
    rows = []
    for run, versus in comparisons:
        for k in ks:
            a, b = tables[(run, k)], tables[(versus, k)]
            for metric, diff in (
                (f"recall@{k}", a.micro(counts) - b.micro(counts)),
                (f"label_recall_macro@{k}", a.macro(counts) - b.macro(counts)),
            ):
                rows.append({"run": run, "versus": versus, "metric": metric, **spread(diff, tail)})
    return {
        "method": "paired bootstrap over query groups (source images), percentile interval",
        "unit": "group",
        "groups": len(set(groups)),
        "repeats": repeats,
        "seed": seed,
        "level": level,
        "comparisons": rows,
    }


def evaluation_intervals(
    runs: Sequence[RunResult],
    majority: RunResult,
    truths: Sequence[LabelSet],
    queries: Sequence[Query],
    ks: Sequence[int],
    *,
    repeats: int = DEFAULT_REPEATS,
    seed: int = 0,
) -> dict[str, Any]:
    """The intervals an evaluation reports: every run against ``image`` (when it ran) and against
    the majority baseline, over the runs' own rankings."""

    def sets(run: RunResult) -> list[list[LabelSet]]:
        return [[frozenset(n.labels) for n in o.neighbours] for o in run.outcomes]

    rankings = {"majority": sets(majority), **{r.name: sets(r) for r in runs}}
    names = [r.name for r in runs]
    comparisons = [(n, "image") for n in names if "image" in names and n != "image"]
    comparisons += [(n, "majority") for n in names]
    return paired_intervals(
        truths,
        [q.group or q.id for q in queries],
        rankings,
        comparisons,
        ks,
        repeats=repeats,
        seed=seed,
    )


def interval_title(section: Mapping[str, Any]) -> str:
    return (
        f"Differences with {section['level']:.0%} intervals (paired bootstrap over "
        f"{section['groups']} query groups, {section['repeats']} resamples, seed {section['seed']})"
    )


INTERVAL_HEADER = ("run", "versus", "metric", "difference", "interval", "ahead in")


def interval_cells(section: Mapping[str, Any]) -> list[list[str]]:
    """One row of text cells per comparison (for summary.md, report.html and the console)."""
    return [
        [
            c["run"],
            c["versus"],
            c["metric"],
            f"{c['difference']:+.3f}",
            f"[{c['low']:+.3f}, {c['high']:+.3f}]",
            f"{c['share_ahead']:.0%}",
        ]
        for c in section["comparisons"]
    ]
