"""Label estimates for /retrieve, /context and the demo page, phrased as estimates.

Per label the label head's calibrated probability (:attr:`RetrievalResult.estimates`) beside the
neighbours' votes for it (support out of the neighbours, :mod:`indexer.retrieval.votes`). Only
estimates at
or above the threshold setting (``VISRAG_LABEL_ESTIMATE_THRESHOLD``) are shown; the block words
them "likely: dent, 0.72" and says they come from a model trained on the indexed cases — never
a statement about the image.
"""

from __future__ import annotations

from dataclasses import dataclass

from indexer.query import RetrievalResult
from indexer.retrieval.votes import tally
from models.taxonomy import Taxonomy

WORDS = {
    "en": {
        "title": "Label estimates (a model trained on the indexed cases; estimates, not facts)",
        "line": "likely: {name}, {p} (neighbours: {support} of {n})",
    },
    "es": {
        "title": "Estimaciones de etiquetas (un modelo entrenado con los casos indexados; "
        "estimaciones, no hechos)",
        "line": "probable: {name}, {p} (vecinos: {support} de {n})",
    },
}


@dataclass(frozen=True)
class LabelEstimateView:
    label: str
    name: str
    probability: float  # calibrated, from the label head
    support: int  # neighbours carrying the label
    neighbours: int


def label_estimates(
    result: RetrievalResult, taxonomy: Taxonomy, *, language: str, threshold: float
) -> list[LabelEstimateView]:
    """The head's estimates at or above ``threshold``, most probable first, with the votes."""
    votes = tally(
        [{lb.id: lb.count for lb in h.labels} for h in result.hits],
        [h.score for h in result.hits],
        no_damage=taxonomy.no_damage_id,
        order=taxonomy.order,
    )
    support = {v.label: v.support for v in votes}
    return [
        LabelEstimateView(
            label=e.label,
            name=taxonomy.normalise(e.label).name(language),
            probability=round(e.probability, 4),
            support=support.get(e.label, 0),
            neighbours=len(result.hits),
        )
        for e in result.estimates
        if e.probability >= threshold
    ]


def estimate_lines(estimates: list[LabelEstimateView], language: str) -> tuple[str, list[str]]:
    """The heading and one line per shown estimate, in the language's number style."""
    words = WORDS.get(language, WORDS["en"])
    lines = []
    for e in estimates:
        p = f"{e.probability:.2f}"
        p = p.replace(".", ",") if language == "es" else p
        lines.append(words["line"].format(name=e.name, p=p, support=e.support, n=e.neighbours))
    return words["title"], lines
