"""Several photos of one claim (one vehicle) in one request: their answers pooled, and which photo
supports which label.

Each photo is answered on its own (its neighbours, signals, regions); :func:`pooled_result` makes
the claim's top-level answer (an item's best score over the photos, the k best, voted again; each
label's highest estimate), :func:`label_evidence` the pooled evidence: a photo supports a label
when its neighbours' vote keeps it, when a damaged-looking area of its heatmap votes for it, or
when the region it names is closest to a region carrying it.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, replace

from indexer.query import Hit, LabelEstimate, LabelVote, Name, RetrievalResult
from indexer.retrieval.votes import hit_votes
from models.taxonomy import Taxonomy
from visrag_client.schemas import LabelEvidenceOut


@dataclass(frozen=True)
class _Support:
    name: Name
    photos: set[int]
    support: int = 0
    neighbours: int = 0


def pooled_result(
    results: Sequence[RetrievalResult], k: int, taxonomy: Taxonomy
) -> RetrievalResult:
    """The claim's answer: every photo's hits, an item once with its best score, the ``k`` best
    re-ranked and voted; each label's highest estimate; the per-photo signals (label set,
    novelty, region, heatmap) stay with their photos."""
    best: dict[str, Hit] = {}
    for result in results:
        for hit in result.hits:
            if hit.id not in best or hit.score > best[hit.id].score:
                best[hit.id] = hit
    ranked = sorted(best.values(), key=lambda h: (-h.score, h.id))[:k]
    hits = tuple(replace(h, rank=rank) for rank, h in enumerate(ranked, start=1))
    estimates: dict[str, LabelEstimate] = {}
    for result in results:
        for e in result.estimates:
            if e.label not in estimates or e.probability > estimates[e.label].probability:
                estimates[e.label] = e
    timings: dict[str, float] = {}
    for result in results:  # the photos run concurrently: a stage took its longest photo's time
        for stage, seconds in result.timings.items():
            timings[stage] = max(timings.get(stage, 0.0), seconds)
    return RetrievalResult(
        hits=hits,
        votes=hit_votes(hits, taxonomy),
        mode=results[0].mode,
        timings=timings,
        estimates=tuple(sorted(estimates.values(), key=lambda e: -e.probability)),
        filters=results[0].filters,
    )


def label_evidence(results: Sequence[RetrievalResult], *, language: str) -> list[LabelEvidenceOut]:
    """Per label, the photos (1-based) that support it and the neighbours carrying it over
    every photo; labels no photo supports are left out. Ordered by photos, then support."""
    found: dict[str, _Support] = {}

    def note(vote: LabelVote, photo: int) -> None:
        entry = found.setdefault(vote.label, _Support(vote.name, set()))
        entry.photos.add(photo)

    for photo, result in enumerate(results, start=1):
        for vote in result.votes:
            if vote.predicted:
                note(vote, photo)
        if result.heatmap is not None:
            for area in result.heatmap.areas:
                for vote in area.votes:
                    if vote.predicted:
                        note(vote, photo)
        if result.region is not None and result.region.hits:
            for lb in result.region.hits[0].labels:
                note(LabelVote(lb.id, lb.name, 1, 1, 1.0, True), photo)
    probability = {
        e.label: max(
            (x.probability for r in results for x in r.estimates if x.label == e.label),
            default=0.0,
        )
        for r in results
        for e in r.estimates
    }
    out = []
    for label, entry in found.items():
        support = sum(v.support for r in results for v in r.votes if v.label == label)
        neighbours = sum(len(r.hits) for r in results)
        out.append(
            LabelEvidenceOut(
                label=label,
                name=entry.name.get(language),
                photos=sorted(entry.photos),
                support=support,
                neighbours=neighbours,
                probability=round(probability[label], 4) if label in probability else None,
            )
        )
    return sorted(out, key=lambda e: (-len(e.photos), -e.support, e.label))
