"""Polygon geometry for annotated defects: shoelace area, bounding box, rectangle corners."""

from __future__ import annotations

from collections.abc import Sequence

from indexer.readers.records import Defect
from models.errors import VisragError
from models.taxonomy import Coverage, Taxonomy

Point = tuple[float, float]


class ShapeError(VisragError):
    """A shape that cannot be a defect (too few points, non-numeric coordinates)."""


def to_points(raw: object) -> tuple[Point, ...]:
    """[[x, y], ...] -> ((x, y), ...) as floats; raises ShapeError on anything else."""
    if not isinstance(raw, Sequence) or isinstance(raw, str):
        raise ShapeError("points is not a list")
    points = []
    for p in raw:
        if not isinstance(p, Sequence) or isinstance(p, str) or len(p) != 2:
            raise ShapeError(f"point {p!r} is not [x, y]")
        try:
            points.append((float(p[0]), float(p[1])))
        except (TypeError, ValueError) as exc:
            raise ShapeError(f"point {p!r} is not numeric") from exc
    return tuple(points)


def flat_to_points(flat: Sequence[float]) -> tuple[Point, ...]:
    """COCO's flat [x1, y1, x2, y2, ...] -> ((x1, y1), ...)."""
    if len(flat) % 2:
        raise ShapeError(f"odd number of coordinates ({len(flat)})")
    return to_points([flat[i : i + 2] for i in range(0, len(flat), 2)])


def rectangle(p1: Point, p2: Point) -> tuple[Point, ...]:
    """Two opposite corners -> the four corners, clockwise from the top-left."""
    x0, x1 = sorted((p1[0], p2[0]))
    y0, y1 = sorted((p1[1], p2[1]))
    return ((x0, y0), (x1, y0), (x1, y1), (x0, y1))


def shoelace_area(points: Sequence[Point]) -> float:
    n = len(points)
    twice = sum(
        points[i][0] * points[(i + 1) % n][1] - points[(i + 1) % n][0] * points[i][1]
        for i in range(n)
    )
    return abs(twice) / 2.0


def bbox(points: Sequence[Point]) -> tuple[float, float, float, float]:
    xs = [p[0] for p in points]
    ys = [p[1] for p in points]
    return (min(xs), min(ys), max(xs), max(ys))


def make_defect(
    raw_label: object,
    polygon: tuple[Point, ...],
    taxonomy: Taxonomy,
    coverage: Coverage,
    *,
    area: float | None = None,
) -> Defect:
    """A Defect from a raw label and a polygon of >= 3 points (ShapeError otherwise)."""
    if len(polygon) < 3:
        raise ShapeError(f"polygon with {len(polygon)} point(s), need at least 3")
    label = taxonomy.normalise(str(raw_label), coverage)
    return Defect(
        raw_label=str(raw_label),
        label=label.id,
        polygon=polygon,
        bbox=bbox(polygon),
        area=shoelace_area(polygon) if area is None else float(area),
    )
