"""What enters the service: a plain, frozen query (no pydantic), and its one validation.

Routes turn the multipart form into a :class:`Query`; :func:`resolve_filters` is the only place
that checks filter values against the taxonomy (an unknown value is a 422 naming it) and
normalises them to canonical ids; :func:`parse_region` the only place that reads a region.
"""

from __future__ import annotations

import math
import re
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
    # a polygon (a box as its 4 corners) in the uploaded image's pixels, after EXIF orientation
    region: tuple[tuple[float, float], ...] | None = None
    heatmap: bool = False  # explain=heatmap: where the photo looks like indexed damage
    region_k: int | None = None  # regions per region answer; None: k

    @property
    def wants_patches(self) -> bool:
        """The query needs the image's patch tokens (a region or a heatmap)."""
        return self.region is not None or self.heatmap


def parse_region(text: str) -> tuple[tuple[float, float], ...]:
    """``"x,y,w,h"`` (a box) or ``"x1,y1 x2,y2 x3,y3 ..."`` (a polygon) -> the polygon's points.

    Raises:
        BadParameterError: neither form, a number that is not finite, an empty box, or a
            polygon of fewer than 3 points.
    """
    text = re.sub(r"\s*,\s*", ",", text.strip())  # "1, 2" is "1,2"
    pairs = text.split()
    if len(pairs) > 1:  # a polygon: whitespace between points, a comma inside each
        points = []
        for pair in pairs:
            parts = pair.split(",")
            if len(parts) != 2:
                raise BadParameterError(
                    f"region: {pair!r} is not a point 'x,y'; give a box 'x,y,w,h' or a polygon "
                    "'x1,y1 x2,y2 x3,y3 ...'"
                )
            points.append((_number(parts[0]), _number(parts[1])))
        if len(points) < 3:
            raise BadParameterError(f"region: a polygon needs at least 3 points, got {len(points)}")
        return tuple(points)
    parts = text.split(",")
    if len(parts) != 4:
        raise BadParameterError(
            f"region: {text!r} is neither a box 'x,y,w,h' nor a polygon 'x1,y1 x2,y2 x3,y3 ...'"
        )
    x, y, w, h = (_number(p) for p in parts)
    if w <= 0 or h <= 0:
        raise BadParameterError(f"region: the box {text!r} has no area (w and h must be > 0)")
    return ((x, y), (x + w, y), (x + w, y + h), (x, y + h))


def check_region_inside(
    region: tuple[tuple[float, float], ...], width: float, height: float
) -> None:
    """Refuse a region that reaches outside the image (half a pixel of rounding allowed)."""
    slack = 0.5
    for x, y in region:
        if not (-slack <= x <= width + slack and -slack <= y <= height + slack):
            raise BadParameterError(
                f"region: the point {x:g},{y:g} lies outside the {width:g}×{height:g} image "
                "(pixels of the uploaded image after EXIF orientation)"
            )


def _number(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise BadParameterError(f"region: {text!r} is not a number") from None
    if not math.isfinite(value):
        raise BadParameterError(f"region: {text!r} is not a finite number")
    return value


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
