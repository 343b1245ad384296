"""The one description template, applied identically at index and query time.

"12 surface scratches and 1 dent on the hood center (frontal area)"; "no visible damage on the
rear bumper (rear area)"; in Spanish (shown, never embedded) "2 zonas con pintura levantada y
1 pieza faltante en el centro del capó (zona frontal)". Counts and places are the taxonomy file's
counted forms and zone phrases. Deterministic: labels are ordered by count, then canonical order,
so the same multiset of labels always gives the same text whatever order it came in.
"""

from __future__ import annotations

from collections.abc import Mapping

from models.taxonomy import Taxonomy

TEMPLATE_VERSION = "1"

_WORDS = {
    "en": {"and": "and", "none": "no visible damage"},
    "es": {"and": "y", "none": "sin daños visibles"},
}


def _join(parts: list[str], conj: str) -> str:
    if len(parts) <= 1:
        return "".join(parts)
    return f"{', '.join(parts[:-1])} {conj} {parts[-1]}"


def describe(
    labels: Mapping[str, int],
    zone: str | None,
    taxonomy: Taxonomy,
    *,
    language: str = "en",
) -> str:
    """Describe canonical label counts on a zone in one sentence (``language`` 'en' or 'es')."""
    words = _WORDS.get(language, _WORDS["en"])
    counts = {k: int(v) for k, v in labels.items() if int(v) > 0 and k != taxonomy.no_damage_id}
    parts = []
    for label_id, n in taxonomy.sort_counts(counts).items():
        parts.append(taxonomy.counted(label_id, n, language))  # the taxonomy file's counted forms
    text = _join(parts, words["and"]) if parts else words["none"]
    zone_entry = taxonomy.normalise_zone(zone)
    if zone_entry.id != taxonomy.unknown_id:
        area = taxonomy.area_name(zone_entry.area, language)
        text = f"{text} {zone_entry.at(language)} ({area})"
    return text
