"""Localisation: does "where is the damage" point at the damage of a photo with true polygons?

Per photo, from its heatmap (:func:`indexer.retrieval.regions.heatmap`, the photo's own group
excluded from the regions it meets):

- **pointing game**: the heatmap's peak (the centre of the best-scoring patch) lies inside a true
  polygon. Its chance level is the share of the photo the true polygons cover (a peak placed
  uniformly at random), reported beside it;
- **overlap** of the candidate areas (boxes) with the true polygons, both rasterised on one fine
  grid with fractional coverage (:func:`models.regions.coverage`): ``iou`` (intersection over
  union of the two masks) and ``inside_share`` (share of the candidate area inside a true
  polygon, i.e. the precision of the boxes; ``None`` when the photo has no candidate area).

The metrics are pure functions of points, boxes and polygons; :func:`localise` runs them over
photos through the :class:`~indexer.retrieval.retriever.Retriever`.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import numpy.typing as npt

from models import regions as geometry

if TYPE_CHECKING:
    from indexer.retrieval.retriever import Retriever

Point = tuple[float, float]
Polygon = Sequence[Point]
Box = tuple[float, float, float, float]
#: Cells along the photo's longer side of the grid the overlap is measured on.
OVERLAP_CELLS = 128


def point_in_polygon(point: Point, polygon: Polygon) -> bool:
    """Whether ``point`` lies inside ``polygon`` (even-odd rule; fewer than 3 points: never)."""
    if len(polygon) < 3:
        return False
    x, y = point
    inside = False
    pts = list(polygon)
    for (x0, y0), (x1, y1) in zip(pts, pts[1:] + pts[:1], strict=True):
        if (y0 > y) != (y1 > y) and x < x0 + (y - y0) * (x1 - x0) / (y1 - y0):
            inside = not inside
    return inside


def pointing_hit(peak: Point, polygons: Sequence[Polygon]) -> bool:
    """The pointing game for one photo: the peak lies inside one of the true polygons."""
    return any(point_in_polygon(peak, p) for p in polygons)


def _grid(size: tuple[float, float], cells: int) -> geometry.Grid:
    width, height = float(size[0]), float(size[1])
    if width <= 0 or height <= 0:
        raise ValueError(f"a photo size must be positive, got {size}")
    scale = cells / max(width, height)
    return geometry.Grid(max(1, round(height * scale)), max(1, round(width * scale)), width, height)


def _mask(polygons: Sequence[Polygon], grid: geometry.Grid) -> npt.NDArray[np.float32]:
    mask = np.zeros((grid.rows, grid.cols), np.float32)
    for polygon in polygons:
        try:
            mask = np.maximum(mask, geometry.coverage(polygon, grid))
        except geometry.RegionError:
            continue  # outside the photo: covers nothing of it
    return mask


def truth_share(
    polygons: Sequence[Polygon], size: tuple[float, float], *, cells: int = OVERLAP_CELLS
) -> float:
    """Share of the photo inside the true polygons: the pointing game's chance level."""
    return float(_mask(polygons, _grid(size, cells)).mean())


def overlap(
    boxes: Sequence[Box],
    polygons: Sequence[Polygon],
    size: tuple[float, float],
    *,
    cells: int = OVERLAP_CELLS,
) -> dict[str, float | None]:
    """``iou`` of the candidate boxes' union with the true polygons' union, and ``inside_share``
    (the share of the boxes' area inside the polygons; ``None`` without a box)."""
    grid = _grid(size, cells)
    truth = _mask(polygons, grid)
    found = _mask([geometry.box_polygon(*b) for b in boxes if b[2] > 0 and b[3] > 0], grid)
    union = float(np.maximum(truth, found).sum())
    both = float(np.minimum(truth, found).sum())
    area = float(found.sum())
    return {
        "iou": both / union if union > 0 else 0.0,
        "inside_share": both / area if area > 0 else None,
    }


@dataclass(frozen=True)
class Photo:
    """A photo to localise: its image, its true polygons (its pixels, after EXIF orientation),
    and what its heatmap must not meet (its own item and group, when it is indexed)."""

    id: str
    image: Path
    polygons: tuple[tuple[Point, ...], ...]
    group: str = ""
    exclude_ids: tuple[str, ...] = ()
    exclude_groups: tuple[str, ...] = ()


def score_photo(heat: Any, polygons: Sequence[Polygon]) -> dict[str, Any]:
    """One photo's row from its :class:`~indexer.query.Heatmap`."""
    size = (heat.width, heat.height)
    boxes = [a.box for a in heat.areas]
    return {
        "pointing": float(pointing_hit(heat.peak, polygons)),
        "chance": truth_share(polygons, size),
        "areas": len(boxes),
        **overlap(boxes, polygons, size),
    }


def localise(
    retriever: Retriever,
    photos: Sequence[Photo],
    *,
    repeats: int = 1000,
    seed: int = 0,
) -> dict[str, Any]:
    """Pointing game and overlap over ``photos`` (each embedded once, its heatmap drawn against
    the regions of other groups), with group-bootstrap percentile intervals of the means."""
    from indexer.retrieval.retriever import embed_with_patches
    from models.imaging import decode_image

    encoder = retriever.image_encoder
    if encoder is None:
        raise ValueError("localisation needs the index's image encoder")
    rows: list[dict[str, Any]] = []
    for photo in photos:
        if not photo.polygons:
            continue
        image = decode_image(photo.image, max_side=encoder.image_size)
        vector, patches, _ = embed_with_patches(image, encoder)
        result = retriever.search(
            vector,
            k=1,
            mode="image",
            exclude_ids=photo.exclude_ids,
            exclude_groups=photo.exclude_groups,
            patches=replace(patches, heatmap=True),
        )
        assert result.heatmap is not None
        rows.append(
            {
                "id": photo.id,
                "group": photo.group or photo.id,
                **score_photo(result.heatmap, photo.polygons),
            }
        )
    return summarise(rows, repeats=repeats, seed=seed)


def summarise(rows: Sequence[dict[str, Any]], *, repeats: int, seed: int) -> dict[str, Any]:
    """Means over photos (``inside_share`` over photos with a candidate area) and 95 % percentile
    intervals from resampling the photos' groups."""
    out: dict[str, Any] = {"photos": len(rows), "with_areas": sum(1 for r in rows if r["areas"])}
    if not rows:
        return out
    groups = sorted({r["group"] for r in rows})
    index = {g: i for i, g in enumerate(groups)}
    rng = np.random.default_rng(seed)
    draws = rng.integers(0, len(groups), size=(max(repeats, 0), len(groups)))
    weights = np.zeros((len(draws), len(groups)))
    for d, picked in enumerate(draws):
        np.add.at(weights[d], picked, 1.0)
    for key in ("pointing", "chance", "iou", "inside_share"):
        kept = [r for r in rows if r[key] is not None]
        if not kept:
            out[key] = None
            continue
        values = np.array([r[key] for r in kept], float)
        member = np.array([index[r["group"]] for r in kept])
        entry: dict[str, Any] = {"mean": round(float(values.mean()), 4), "n": len(kept)}
        if len(weights):
            w = weights[:, member]
            total = w.sum(axis=1)
            means = (w @ values)[total > 0] / total[total > 0]
            low, high = np.percentile(means, [2.5, 97.5])
            entry["interval"] = [round(float(low), 4), round(float(high), 4)]
        out[key] = entry
    out["rows"] = list(rows)
    return out


LOCALISATION_HEADER = ("measure", "mean", "95 % interval (photo groups)", "photos")
_MEASURES = {
    "pointing": "pointing game (peak inside a true polygon)",
    "chance": "chance (share of the photo inside true polygons)",
    "iou": "IoU of candidate areas with true polygons",
    "inside_share": "share of candidate area inside true polygons",
}


def localisation_title(section: dict[str, Any]) -> str:
    return (
        f"Where is the damage: {section['photos']} photos with true polygons "
        f"({section['with_areas']} with a candidate area)"
    )


def localisation_cells(section: dict[str, Any]) -> list[list[str]]:
    """One row of text cells per measure (summary.md and report.html)."""
    rows = []
    for key, name in _MEASURES.items():
        entry = section.get(key)
        if not entry:
            rows.append([name, "—", "—", "0"])
            continue
        interval = entry.get("interval")
        span = f"[{interval[0]:.3f}, {interval[1]:.3f}]" if interval else "—"
        rows.append([name, f"{entry['mean']:.3f}", span, str(entry["n"])])
    return rows
