"""The novelty signal for /retrieve, /context and the demo page: "no close verified case".

:attr:`RetrievalResult.novelty` gives the query's closeness to its nearest indexed cases and its
p-value against the catalogue's own photos (:mod:`indexer.retrieval.novelty`). Below the
threshold setting (``VISRAG_NOVELTY_THRESHOLD``) the photo is flagged and the /context block
opens with a warning, so a VLM weighs the cases as weak evidence.
"""

from __future__ import annotations

from indexer.query import RetrievalResult
from visrag_client.schemas import NoveltyOut

NOTES = {
    "en": "Note: no indexed case is close to this photo: treat the cases below as weak evidence.",
    "es": "Nota: ningún caso indexado se parece a esta foto: trate los casos siguientes como "
    "evidencia débil.",
}


def novelty_out(result: RetrievalResult, *, language: str, threshold: float) -> NoveltyOut | None:
    """The score, p-value and flag; the note in ``language`` when flagged."""
    found = result.novelty
    if found is None:
        return None
    flag = found.p_value < threshold
    return NoveltyOut(
        score=found.score,
        p_value=found.p_value,
        flag=flag,
        threshold=threshold,
        note=NOTES.get(language, NOTES["en"]) if flag else None,
    )
