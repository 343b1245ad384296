"""The one label-vote rule: neighbours' labels -> votes -> the labels the neighbours agree on.

Used by mode ``rerank`` (the consensus behind its pseudo-text), by the Retriever for the votes of
the hits it returns (what ``/context`` reports) and by the evaluation (its kNN prediction), so the
evaluation scores what the service serves (DESIGN §5).

- Every neighbour votes once for each label it carries; a neighbour without labels votes for
  ``no_damage``.
- ``support`` counts the neighbours voting for a label; ``weighted`` is their share of the
  neighbours' similarity, negative cosines clipped to 0 (all weights equal when none is positive).
- Votes are listed by support, then weight, then the taxonomy's order, then id.
- A label is *predicted* when at least half of the neighbours vote for it (``2 * support >= n``,
  unweighted); when none does, the most supported label alone (ties by the taxonomy's order), so
  every non-empty vote predicts something.

This is the evaluation's documented kNN vote (docs/evaluation.md), kept so its numbers reproduce.
Before, rerank kept a label at half of the similarity *weight* and nothing when no label reached
it; on the seed crops both give the same pseudo-text for every leave-one-out query.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np

from indexer.query import Hit, LabelVote, Name, RegionHit
from models.taxonomy import Taxonomy

if TYPE_CHECKING:
    from indexer.index.catalogue import CatalogueItem


@dataclass(frozen=True)
class Vote:
    """One label's vote among ``neighbours`` neighbours."""

    label: str
    support: int  # neighbours carrying the label
    neighbours: int  # neighbours voting
    weighted: float  # their share of the similarity weight, 0..1
    count: int = 1  # median count of the label among the neighbours carrying it
    predicted: bool = False  # the rule keeps it (see the module docstring)


def tally(
    labels: Sequence[Mapping[str, int] | Iterable[str]],
    scores: Sequence[float],
    *,
    no_damage: str,
    order: Callable[[str], object],
) -> list[Vote]:
    """The votes of neighbours with these labels ({label: count} or label ids) and similarities."""
    if len(labels) != len(scores):
        raise ValueError("labels and scores differ in length")
    if not labels:
        return []
    weights = np.maximum(np.asarray(scores, dtype=np.float64), 0.0)
    if float(weights.sum()) <= 0:
        weights = np.ones(len(labels), dtype=np.float64)
    shares = weights / float(weights.sum())
    support: Counter[str] = Counter()
    weight: dict[str, float] = {}
    counts: dict[str, list[int]] = {}
    for carried, share in zip(labels, shares, strict=True):
        counted = dict(carried) if isinstance(carried, Mapping) else dict.fromkeys(carried, 1)
        for label, n in (counted or {no_damage: 1}).items():
            support[label] += 1
            weight[label] = weight.get(label, 0.0) + float(share)
            counts.setdefault(label, []).append(int(n))
    ordered = sorted(support, key=lambda lb: (-support[lb], -weight[lb], order(lb), lb))
    n = len(labels)
    keep = {lb for lb in ordered if 2 * support[lb] >= n} or {
        min(ordered, key=lambda lb: (-support[lb], order(lb), lb))
    }
    return [
        Vote(
            label=lb,
            support=support[lb],
            neighbours=n,
            weighted=weight[lb],
            count=max(1, round(float(np.median(counts[lb])))),
            predicted=lb in keep,
        )
        for lb in ordered
    ]


def predicted_labels(votes: Iterable[Vote]) -> frozenset[str]:
    """The labels the rule keeps."""
    return frozenset(v.label for v in votes if v.predicted)


def hit_votes(hits: Sequence[Hit | RegionHit], taxonomy: Taxonomy) -> tuple[LabelVote, ...]:
    """The votes of the hits a retrieval returns (what ``/context`` reports), with the labels'
    display names."""
    votes = tally(
        [{lb.id: lb.count for lb in h.labels} for h in hits],
        [h.score for h in hits],
        no_damage=taxonomy.no_damage_id,
        order=taxonomy.order,
    )
    named = []
    for v in votes:
        label = taxonomy.normalise(v.label)
        named.append(
            LabelVote(
                label=v.label,
                name=Name(label.en, label.es),
                support=v.support,
                neighbours=v.neighbours,
                weighted=v.weighted,
                predicted=v.predicted,
            )
        )
    return tuple(named)


@dataclass(frozen=True)
class Consensus:
    """What rerank describes: the predicted labels with their counts (no ``no_damage``), the
    similarity-weighted majority zone, and every vote."""

    labels: dict[str, int]
    zone: str
    votes: tuple[Vote, ...]


def consensus(
    items: Sequence[CatalogueItem],
    scores: Sequence[float],
    taxonomy: Taxonomy,
) -> Consensus:
    """The consensus of catalogue neighbours (rerank's pseudo-text is its template description)."""
    votes = tally(
        [it.labels for it in items],
        scores,
        no_damage=taxonomy.no_damage_id,
        order=taxonomy.order,
    )
    kept = {v.label: v.count for v in votes if v.predicted and v.label != taxonomy.no_damage_id}
    w = np.maximum(np.asarray(scores, dtype=np.float64), 1e-3)
    zones: dict[str, float] = {}
    for item, weight in zip(items, w, strict=True):
        zones[item.zone] = zones.get(item.zone, 0.0) + float(weight)
    zone = min(zones.items(), key=lambda kv: (-kv[1], kv[0]))[0] if zones else taxonomy.unknown_id
    return Consensus(labels=taxonomy.sort_counts(kept), zone=zone, votes=tuple(votes))
