"""Label estimates for /retrieve, /context and the demo page, phrased as estimates.

Per label the label head's calibrated probability (:attr:`RetrievalResult.estimates`) beside the
neighbours' votes for it (support out of the neighbours, :attr:`RetrievalResult.votes`). Only
estimates at or above the threshold setting (``VISRAG_LABEL_ESTIMATE_THRESHOLD``) are shown; the
block words them "likely: dent, 0.72" and says they come from a model trained on the indexed
cases — never a statement about the image. The leading estimate (the label whose
prior-corrected evidence stands out most, first in :attr:`RetrievalResult.estimates`) is always
shown: the threshold never hides it, even when the frequent label is more probable.
"""

from __future__ import annotations

from collections.abc import Sequence

from indexer.query import RetrievalResult
from visrag_client.schemas import LabelEstimateOut

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


def label_estimates(
    result: RetrievalResult, *, language: str, threshold: float
) -> list[LabelEstimateOut]:
    """The leading estimate, then the others at or above ``threshold`` by probability, with
    the votes."""
    support = {v.label: v.support for v in result.votes}
    return [
        LabelEstimateOut(
            label=e.label,
            name=e.name.get(language),
            probability=e.probability,
            support=support.get(e.label, 0),
            neighbours=len(result.hits),
        )
        for i, e in enumerate(result.estimates)
        if i == 0 or e.probability >= threshold
    ]


def estimate_lines(estimates: Sequence[LabelEstimateOut], language: str) -> tuple[str, list[str]]:
    """The heading and one line per shown estimate, in the language's number style."""
    words = WORDS.get(language, WORDS["en"])
    lines = []
    for e in estimates:
        p = f"{e.probability:.2f}"
        p = p.replace(".", ",") if language == "es" else p
        lines.append(words["line"].format(name=e.name, p=p, support=e.support, n=e.neighbours))
    return words["title"], lines
