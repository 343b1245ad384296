"""Region queries and "where is the damage", against an index's region table.

Both start from the query image's final patch tokens (the same forward pass as its image vector)
and meet the indexed regions in their own vector space (``patches``: coverage-weighted means of
patch tokens, :mod:`models.regions`):

- **a region query**: the caller names a box or polygon in the query image's pixels; its patches
  are pooled exactly as a labelled polygon was at build time, and the region index answers with
  the nearest regions (:func:`region_answer`).
- **where**: every query patch against every region in one batched exact search; a patch's damage
  score is its best cosine to a region minus its best cosine to the bank of background patches
  sampled from the indexed images (what undamaged surface looks like; the idea of AnomalyDINO's
  patch nearest neighbours, turned towards labelled damage). The connected areas of patches
  above the threshold calibrated on the catalogue itself
  (:func:`indexer.build.regions.calibrate_where`) become candidate areas, each pooled and
  answered like a region query (:func:`heatmap`).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING

import numpy as np
import numpy.typing as npt

from indexer.query import (
    DamageArea,
    Heatmap,
    LabelVote,
    Name,
    QueryError,
    RegionAnswer,
    RegionHit,
)
from models import regions as geometry

if TYPE_CHECKING:
    from indexer.index.artifacts import Artifacts
    from indexer.index.regions import Background

Vectors = npt.NDArray[np.float32]
#: Candidate areas a heatmap returns at most (the strongest first).
MAX_AREAS = 5
#: Neighbour regions listed per candidate area.
AREA_NEIGHBOURS = 3
#: Where a box's centre lies, by thirds of the photo (row, column), in each language.
_POSITIONS = {
    (0, 0): Name("upper left of the photo", "arriba a la izquierda de la foto"),
    (0, 1): Name("upper centre of the photo", "arriba, en el centro de la foto"),
    (0, 2): Name("upper right of the photo", "arriba a la derecha de la foto"),
    (1, 0): Name("left side of the photo", "a la izquierda de la foto"),
    (1, 1): Name("centre of the photo", "en el centro de la foto"),
    (1, 2): Name("right side of the photo", "a la derecha de la foto"),
    (2, 0): Name("lower left of the photo", "abajo a la izquierda de la foto"),
    (2, 1): Name("lower centre of the photo", "abajo, en el centro de la foto"),
    (2, 2): Name("lower right of the photo", "abajo a la derecha de la foto"),
}


class RegionQueryError(QueryError):
    """A region query the index cannot answer: no region table, or regions of another kind."""


def position(box: Sequence[float], width: float, height: float) -> Name:
    """Where a box's centre lies in a photo, in words (thirds of each side)."""
    x, y, w, h = box
    col = min(2, max(0, int(3 * (x + w / 2) / width))) if width > 0 else 1
    row = min(2, max(0, int(3 * (y + h / 2) / height))) if height > 0 else 1
    return _POSITIONS[(row, col)]


def require_regions(artifacts: Artifacts) -> None:
    """Raise unless the index holds a region table and its store."""
    if artifacts.regions is None or artifacts.region_store is None:
        raise RegionQueryError(
            "this index has no region table (built with --regions none, or before regions "
            "existed): rebuild it to query by region or ask where the damage is"
        )


def require_patch_regions(artifacts: Artifacts) -> None:
    """Raise unless the index holds regions a query's patch tokens can meet."""
    require_regions(artifacts)
    table = artifacts.regions
    assert table is not None
    if table.kind != "patches":
        raise RegionQueryError(
            f"this index's regions are {table.kind} vectors, another vector space than a "
            "query's pooled patch tokens: region queries need an index built with "
            "--regions patches"
        )


def search_regions(
    artifacts: Artifacts,
    vector: Vectors,
    k: int,
    *,
    excluded_items: set[int],
    hit: Callable[[int, float, int], RegionHit],
) -> tuple[RegionHit, ...]:
    """The ``k`` regions nearest ``vector``, none of the ``excluded_items`` (catalogue rows)."""
    table, store = artifacts.regions, artifacts.region_store
    assert table is not None and store is not None
    allowed = None
    if excluded_items:
        allowed = np.flatnonzero(~np.isin(table.item_rows(), list(excluded_items)))
        if not len(allowed):
            return ()
    fetch = min(k, len(table))  # the regions this generation knows (a shared store may hold more)
    if fetch <= 0:
        return ()
    scores, ids = store.search(vector.reshape(1, -1), fetch, allowed=allowed)
    rows = [(int(i), float(s)) for i, s in zip(ids[0], scores[0], strict=True) if i >= 0]
    return tuple(hit(i, s, rank) for rank, (i, s) in enumerate(rows, start=1))


def region_answer(
    artifacts: Artifacts,
    tokens: Vectors,
    size: tuple[float, float],
    polygon: Sequence[tuple[float, float]],
    k: int,
    *,
    excluded_items: set[int],
    hit: Callable[[int, float, int], RegionHit],
) -> RegionAnswer:
    """The query region (a polygon or box in the query image's pixels) pooled from its patch
    tokens ``(rows, cols, d)``, and its ``k`` nearest indexed regions."""
    require_patch_regions(artifacts)
    grid = geometry.Grid(tokens.shape[0], tokens.shape[1], float(size[0]), float(size[1]))
    try:
        weights = geometry.coverage(polygon, grid)
    except geometry.RegionError as exc:
        raise RegionQueryError(f"region: {exc}") from None
    vector = geometry.pool(tokens, weights)
    box = geometry.bounding_box(polygon)
    hits = search_regions(artifacts, vector, k, excluded_items=excluded_items, hit=hit)
    return RegionAnswer(box=box, position=position(box, *size), hits=hits)


def heatmap(
    artifacts: Artifacts,
    tokens: Vectors,
    size: tuple[float, float],
    *,
    excluded_items: set[int],
    hit: Callable[[int, float, int], RegionHit],
    votes: Callable[[Sequence[RegionHit]], tuple[LabelVote, ...]],
    threshold: float | None = None,
) -> Heatmap:
    """Every query patch against the region table (one batched search): the per-patch damage
    score (best region cosine minus best background cosine) and its region's label, the peak, and
    the connected areas above ``threshold`` (default: the catalogue's calibrated one), each with
    its nearest regions and their label votes."""
    require_patch_regions(artifacts)
    table, store = artifacts.regions, artifacts.region_store
    assert table is not None and store is not None
    rows, cols = int(tokens.shape[0]), int(tokens.shape[1])
    grid = geometry.Grid(rows, cols, float(size[0]), float(size[1]))
    queries = geometry.unit_tokens(tokens)
    allowed = None
    if excluded_items:
        allowed = ~np.isin(table.item_rows(), list(excluded_items))
    if not len(table) or (allowed is not None and not allowed.any()):
        best = np.full(rows * cols, -1.0, np.float32)
        which = np.full(rows * cols, -1, np.int64)
    else:
        # exact top-1 of every patch over the table's own vectors (the same vectors as the region
        # store, FAISS or Milvus): a blocked matrix product, several times faster than a top-1
        # search of 784 queries through the index (docs/performance.md)
        best, which = geometry.best_match(queries, table.vectors, allowed=allowed)
        best = best - _background_floor(queries, table.background, excluded_items)
    labels = tuple(table.regions[i].labels[0] if i >= 0 else "" for i in which)
    peak_cell = int(np.argmax(best))
    px, py, pw, ph = grid.cell_box(peak_cell // cols, peak_cell % cols)
    calibration = dict(table.calibration)
    cut = threshold if threshold is not None else calibration.get("threshold")
    areas: list[DamageArea] = []
    if cut is not None:
        grid_scores = best.reshape(rows, cols)
        for cells in _components(grid_scores >= float(cut))[:MAX_AREAS]:
            # pooled like a region, each patch weighted by how far its score clears the cut
            weights = np.zeros((rows, cols), np.float32)
            where = tuple(np.array(cells).T)
            weights[where] = grid_scores[where] - float(cut) + 1e-6
            boxes = [grid.cell_box(r, c) for r, c in cells]
            box = geometry.hull_box(boxes)
            neighbours = search_regions(
                artifacts,
                geometry.pool(tokens, weights),
                AREA_NEIGHBOURS,
                excluded_items=excluded_items,
                hit=hit,
            )
            areas.append(
                DamageArea(
                    box=box,
                    position=position(box, *size),
                    patches=len(cells),
                    peak=round(float(max(best[r * cols + c] for r, c in cells)), 4),
                    votes=votes(neighbours),
                    neighbours=neighbours,
                )
            )
        areas.sort(key=lambda a: -a.peak)
    return Heatmap(
        rows=rows,
        cols=cols,
        width=float(size[0]),
        height=float(size[1]),
        scores=tuple(round(float(v), 4) for v in best),
        labels=labels,
        peak=(px + pw / 2, py + ph / 2),
        peak_hit=hit(int(which[peak_cell]), float(best[peak_cell]), 1)
        if which[peak_cell] >= 0
        else None,
        threshold=None if cut is None else float(cut),
        calibration=calibration,
        areas=tuple(areas),
    )


def _background_floor(
    queries: Vectors, bank: Background | None, excluded_items: set[int]
) -> Vectors:
    """Per query patch, the best cosine to a background patch of the bank (0 without one)."""
    if bank is None or not len(bank):
        return np.zeros(len(queries), np.float32)
    vectors = np.asarray(bank.vectors, np.float32)
    if excluded_items:
        vectors = vectors[~np.isin(bank.items, list(excluded_items))]
    if not len(vectors):
        return np.zeros(len(queries), np.float32)
    floor: Vectors = (queries @ vectors.T).max(axis=1).astype(np.float32)
    return floor


def _components(mask: npt.NDArray[np.bool_]) -> list[list[tuple[int, int]]]:
    """The 8-connected areas of ``mask``'s true cells, largest first."""
    from scipy import ndimage

    labelled, count = ndimage.label(mask, structure=np.ones((3, 3), int))
    areas = [
        [(int(r), int(c)) for r, c in zip(*np.nonzero(labelled == i), strict=True)]
        for i in range(1, count + 1)
    ]
    return sorted(areas, key=len, reverse=True)
