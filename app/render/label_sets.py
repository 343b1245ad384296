"""The conformal label set for /retrieve, /context and the demo page, worded as its guarantee.

The set (:attr:`RetrievalResult.label_set`, :mod:`indexer.labels.conformal`) is promised over
photos like the indexed cases: a set built this way contains all of such a photo's true labels
with probability >= the coverage. The words say exactly that, never that this photo has them.
"""

from __future__ import annotations

from indexer.query import RetrievalResult
from visrag_client.schemas import LabelSetMemberOut, LabelSetOut

WORDS = {
    "en": {
        "title": "Label set",
        "statement": "{names}. It covers all true labels of photos like the indexed cases with "
        "probability >= {pct} % (a guarantee over such photos, not a certainty about this photo)",
        "none": "no damage label",
        "every": " Every label is in it: too few indexed cases for this coverage.",
    },
    "es": {
        "title": "Conjunto de etiquetas",
        "statement": "{names}. Cubre todas las etiquetas verdaderas de fotos como los casos "
        "indexados con probabilidad >= {pct} % (una garantía sobre esas fotos, no una certeza "
        "sobre esta foto)",
        "none": "ninguna etiqueta de daño",
        "every": " Contiene todas las etiquetas: hay muy pocos casos indexados para esta "
        "cobertura.",
    },
}


def label_set_out(result: RetrievalResult, *, language: str) -> LabelSetOut | None:
    """The set in ``language`` with its statement; None when the index has no label head."""
    found = result.label_set
    if found is None:
        return None
    words = WORDS.get(language, WORDS["en"])
    members = [
        LabelSetMemberOut(label=e.label, name=e.name.get(language), probability=e.probability)
        for e in found.labels
    ]
    pct = f"{100 * found.coverage:g}"
    pct = pct.replace(".", ",") if language == "es" else pct
    names = ", ".join(m.name for m in members) or words["none"]
    statement = words["statement"].format(names=names, pct=pct) + "."
    if found.every_label:
        statement += words["every"]
    return LabelSetOut(
        labels=members,
        coverage=found.coverage,
        every_label=found.every_label,
        statement=statement,
    )


def label_set_line(label_set: LabelSetOut, language: str) -> str:
    """``Label set: <statement>`` for a prose block."""
    return f"{WORDS.get(language, WORDS['en'])['title']}: {label_set.statement}"
