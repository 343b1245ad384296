"""What enters the service: a plain, frozen query (no pydantic), and its one validation.

Routes turn the multipart form into a :class:`Query`; :func:`resolve_filters` is the only place
that checks filter values against the taxonomy (an unknown value is a 422 naming it) and
normalises them to canonical ids.
"""

from __future__ import annotations

from dataclasses import dataclass

from app.http.errors import BadParameterError
from indexer.query import Filters
from models.taxonomy import Taxonomy, fold


@dataclass(frozen=True)
class Query:
    """One retrieval request, as the caller wrote it (filters are raw names, not yet ids)."""

    k: int = 5
    mode: str = "image"
    text: str | None = None
    alpha: float | None = None
    probe_weight: float | None = None  # mode 'probe': None = the manifest's weight
    labels_any: tuple[str, ...] = ()
    labels_all: tuple[str, ...] = ()
    zones: tuple[str, ...] = ()
    areas: tuple[str, ...] = ()
    item: str | None = None  # query by this stored item instead of an image ("more like this")
    exclude_group: bool = False  # with item: leave out the item's whole group too


def resolve_filters(query: Query, taxonomy: Taxonomy) -> Filters:
    """Normalise filter values through the taxonomy (any language, synonyms, zone numbers)."""

    def labels(field: str, values: tuple[str, ...]) -> tuple[str, ...]:
        out = []
        for raw in values:
            if not taxonomy.is_known(raw):
                known = ", ".join(taxonomy.label_ids)
                raise BadParameterError(f"unknown label {raw!r} in {field}; known: {known}")
            out.append(taxonomy.normalise(raw).id)
        return tuple(dict.fromkeys(out))

    zones = []
    for raw in query.zones:
        zone = taxonomy.normalise_zone(raw)
        if zone.id == taxonomy.unknown_id and fold(raw) != fold(taxonomy.unknown_id):
            raise BadParameterError(f"unknown zone {raw!r} in zones")
        zones.append(zone.id)
    area_keys = {fold(a): a for a in taxonomy.areas}
    for key, names in taxonomy.areas.items():
        area_keys.update({fold(n): key for n in names.values()})
    areas = []
    for raw in query.areas:
        if fold(raw) not in area_keys:
            known = ", ".join(taxonomy.areas)
            raise BadParameterError(f"unknown area {raw!r} in areas; known: {known}")
        areas.append(area_keys[fold(raw)])
    return Filters(
        labels_any=labels("labels_any", query.labels_any),
        labels_all=labels("labels_all", query.labels_all),
        zones=tuple(dict.fromkeys(zones)),
        areas=tuple(dict.fromkeys(areas)),
    )
