"""Region geometry on the patch grid: which patches a polygon covers, and the pooled region vector.

A ViT turns an image of ``H × W`` pixels (after the resize, whole patches) into a grid of
``H/p × W/p`` patch tokens. A region (a labelled polygon, a box, a cluster of defects), given in
the original image's pixels, is rasterised on that grid with fractional coverage: each patch's
weight is the share of its area inside the polygon (supersampled), so a defect smaller than a
patch still gets the patch it lies in. The region vector is the coverage-weighted mean of the
final patch tokens, L2-normalised: the same rule at build time (labelled polygons) and at query
time (a box or polygon the caller names), so the two meet in one vector space.

Pure NumPy and Pillow: no model here (:meth:`models.image_encoder.ImageEncoder.encode_with_patches`
gives the tokens).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

Point = tuple[float, float]
Polygon = tuple[Point, ...]
Vectors = npt.NDArray[np.float32]
#: Sub-samples per patch side when rasterising (16 samples per patch: coverage in 1/16 steps).
SAMPLES = 4
#: Two defects closer than this share of the image's longer side form one cluster region.
CLUSTER_GAP = 0.03


class RegionError(ValueError):
    """A region that cannot be placed on the image: empty, degenerate, or outside it."""


@dataclass(frozen=True)
class Grid:
    """The patch grid of one encoded image and the original image size it stands for."""

    rows: int
    cols: int
    width: float  # the original image's width in pixels (after EXIF orientation)
    height: float

    def cell_of(self, x: float, y: float) -> tuple[int, int]:
        """The (row, col) of the patch holding the image point (x, y)."""
        col = int(np.clip(x / self.width * self.cols, 0, self.cols - 1))
        row = int(np.clip(y / self.height * self.rows, 0, self.rows - 1))
        return row, col

    def cell_box(self, row: int, col: int) -> tuple[float, float, float, float]:
        """The image-pixel box ``(x, y, w, h)`` of one patch."""
        w, h = self.width / self.cols, self.height / self.rows
        return col * w, row * h, w, h


def box_polygon(x: float, y: float, w: float, h: float) -> Polygon:
    """A box ``x, y, w, h`` as a polygon (clockwise from the top-left corner)."""
    return ((x, y), (x + w, y), (x + w, y + h), (x, y + h))


def bounding_box(polygon: Sequence[Point]) -> tuple[float, float, float, float]:
    """``(x, y, w, h)`` of a polygon."""
    xs = [p[0] for p in polygon]
    ys = [p[1] for p in polygon]
    return min(xs), min(ys), max(xs) - min(xs), max(ys) - min(ys)


def polygon_area(polygon: Sequence[Point]) -> float:
    """Shoelace area in square pixels (0 for fewer than 3 points)."""
    if len(polygon) < 3:
        return 0.0
    xs = np.array([p[0] for p in polygon], float)
    ys = np.array([p[1] for p in polygon], float)
    return float(abs(np.dot(xs, np.roll(ys, -1)) - np.dot(ys, np.roll(xs, -1))) / 2.0)


def coverage(polygon: Sequence[Point], grid: Grid) -> npt.NDArray[np.float32]:
    """``(rows, cols)`` weights in [0, 1]: the share of each patch inside the polygon.

    A polygon too small to cover any sub-sample still weighs its centroid's patch fully (a tiny
    defect keeps the patch it lies in). Two points make a thin box around the segment.

    Raises:
        RegionError: fewer than two points, or the polygon lies wholly outside the image.
    """
    if len(polygon) < 2:
        raise RegionError(f"a region needs at least 2 points, got {len(polygon)}")
    points = [(float(x), float(y)) for x, y in polygon]
    x0, y0, w, h = bounding_box(points)
    if x0 >= grid.width or y0 >= grid.height or x0 + w <= 0 or y0 + h <= 0:
        raise RegionError(
            f"region {x0:.0f},{y0:.0f},{w:.0f},{h:.0f} lies outside the "
            f"{grid.width:.0f}×{grid.height:.0f} image"
        )
    if len(points) == 2:
        points = list(box_polygon(x0, y0, w, h))
    # sample centres, SAMPLES × SAMPLES per patch, tested against the polygon (even-odd rule)
    xs = (np.arange(grid.cols * SAMPLES) + 0.5) * grid.width / (grid.cols * SAMPLES)
    ys = (np.arange(grid.rows * SAMPLES) + 0.5) * grid.height / (grid.rows * SAMPLES)
    mask = _inside(points, xs, ys)
    weights = mask.reshape(grid.rows, SAMPLES, grid.cols, SAMPLES).mean(axis=(1, 3))
    if not weights.any():
        cx, cy = float(np.mean([p[0] for p in points])), float(np.mean([p[1] for p in points]))
        weights[grid.cell_of(cx, cy)] = 1.0
    return weights.astype(np.float32)


def _inside(
    polygon: Sequence[Point], xs: npt.NDArray[np.float64], ys: npt.NDArray[np.float64]
) -> npt.NDArray[np.float32]:
    """``(len(ys), len(xs))``: 1 where the point (x, y) lies inside the polygon (even-odd)."""
    px, py = np.meshgrid(xs, ys)
    inside = np.zeros(px.shape, bool)
    pts = list(polygon)
    for (x0, y0), (x1, y1) in zip(pts, pts[1:] + pts[:1], strict=True):
        if y0 == y1:
            continue
        crosses = (y0 > py) != (y1 > py)
        x_at = x0 + (py - y0) * (x1 - x0) / (y1 - y0)
        inside ^= crosses & (px < x_at)
    return inside.astype(np.float32)


def pool(tokens: npt.NDArray[np.floating], weights: npt.NDArray[np.floating]) -> Vectors:
    """Coverage-weighted mean of ``tokens`` ``(rows, cols, d)`` under ``weights`` ``(rows, cols)``,
    L2-normalised: one ``(d,)`` region vector."""
    flat = np.asarray(weights, np.float64).reshape(-1)
    total = flat.sum()
    if total <= 0:
        raise RegionError("a region with no patch weight")
    mean = flat @ np.asarray(tokens, np.float64).reshape(len(flat), -1) / total
    norm = np.linalg.norm(mean)
    return (mean / norm if norm > 0 else mean).astype(np.float32)


def unit_tokens(tokens: npt.NDArray[np.floating]) -> Vectors:
    """``(rows, cols, d)`` patch tokens -> ``(rows * cols, d)`` unit rows (the dense matching's
    queries: one per patch, row-major)."""
    flat = np.asarray(tokens, np.float32).reshape(-1, tokens.shape[-1])
    norms = np.linalg.norm(flat, axis=1, keepdims=True)
    return (flat / np.maximum(norms, 1e-12)).astype(np.float32)


def clusters(boxes: Sequence[tuple[float, float, float, float]], *, gap: float) -> list[list[int]]:
    """Groups of boxes (``x, y, w, h``) that overlap or lie within ``gap`` pixels of each other
    (transitively): the indexes of each group of two or more, in first-member order."""
    n = len(boxes)
    parent = list(range(n))

    def root(i: int) -> int:
        while parent[i] != i:
            parent[i] = parent[parent[i]]
            i = parent[i]
        return i

    for i in range(n):
        xi, yi, wi, hi = boxes[i]
        for j in range(i + 1, n):
            xj, yj, wj, hj = boxes[j]
            apart_x = max(xj - (xi + wi), xi - (xj + wj))
            apart_y = max(yj - (yi + hi), yi - (yj + hj))
            if apart_x <= gap and apart_y <= gap:
                parent[root(j)] = root(i)
    groups: dict[int, list[int]] = {}
    for i in range(n):
        groups.setdefault(root(i), []).append(i)
    return [g for g in groups.values() if len(g) > 1]


def hull_box(
    boxes: Sequence[tuple[float, float, float, float]],
) -> tuple[float, float, float, float]:
    """The ``(x, y, w, h)`` box holding every box given."""
    x0 = min(b[0] for b in boxes)
    y0 = min(b[1] for b in boxes)
    x1 = max(b[0] + b[2] for b in boxes)
    y1 = max(b[1] + b[3] for b in boxes)
    return x0, y0, x1 - x0, y1 - y0


def damage_scores(
    patches: Vectors,
    regions: Vectors,
    bank: Vectors,
    *,
    region_mask: npt.NDArray[np.bool_] | None = None,
    bank_mask: npt.NDArray[np.bool_] | None = None,
) -> Vectors:
    """Per patch (unit rows): best cosine to a damage region minus best cosine to a background
    patch (0 when the bank is empty); masked pairs (True) are left out."""
    sims = patches @ regions.T
    if region_mask is not None:
        sims[region_mask] = -np.inf
    score = sims.max(axis=1) if sims.shape[1] else np.full(len(patches), -np.inf, np.float32)
    if len(bank):
        normal = patches @ bank.T
        if bank_mask is not None:
            normal[bank_mask] = -np.inf
        floor = normal.max(axis=1)
        score = score - np.where(np.isfinite(floor), floor, 0.0)
    return score.astype(np.float32)


def best_match(
    queries: Vectors,
    vectors: npt.NDArray[np.floating],
    *,
    allowed: npt.NDArray[np.bool_] | None = None,
    block: int = 8192,
) -> tuple[Vectors, npt.NDArray[np.int64]]:
    """Each unit query's best inner product over ``vectors`` (unit rows) and that row: an exact
    top-1 search as blocked matrix products (``allowed``: rows that may answer). A query with
    no allowed row gets score -1 and row -1."""
    best = np.full(len(queries), -np.inf, np.float32)
    rows = np.full(len(queries), -1, np.int64)
    at = np.arange(len(queries))
    for start in range(0, len(vectors), block):
        chunk = np.asarray(vectors[start : start + block], np.float32)
        sims = queries @ chunk.T
        if allowed is not None:
            sims[:, ~allowed[start : start + block]] = -np.inf
        top = sims.argmax(axis=1)
        score = sims[at, top]
        better = score > best
        best[better], rows[better] = score[better], top[better] + start
    found = rows >= 0
    return np.where(found, best, -1.0).astype(np.float32), rows
