"""Region vectors of one record, from the patch tokens of its image's forward pass.

One region per labelled defect polygon, plus one per cluster of overlapping or near defects (the
clustered crops of the reference project, kept beside the single defects). Each is the
coverage-weighted mean of the final patch tokens (:mod:`models.regions`).
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from dataclasses import dataclass, field, replace

import numpy as np
import numpy.typing as npt
from PIL import Image

from indexer.index.regions import Background, Region, RegionTable
from indexer.readers.records import Record
from models import regions as geometry

Vectors = npt.NDArray[np.float32]
#: Patches sampled per image for the "where" threshold: inside a defect, and background.
SAMPLED_PATCHES = 4
#: Patches of each kind the threshold is fitted on, at most (a sample of a large catalogue's).
CALIBRATION_CAP = 2000
#: EXIF orientations that swap width and height (transpose, rotations by 90°/270°).
_SWAPPING = {5, 6, 7, 8}


@dataclass(frozen=True)
class RegionDraft:
    """A region before its image has a catalogue row: the region and its vector."""

    region: Region
    vector: Vectors


def original_size(record: Record) -> tuple[int, int]:
    """The record's image size in pixels after EXIF orientation (the annotation's frame): from
    the annotation when it records one, else from the image header."""
    if record.width and record.height:
        return int(record.width), int(record.height)
    with Image.open(record.image_path) as image:
        width, height = image.size
        orientation = image.getexif().get(0x0112, 1)
    return (height, width) if orientation in _SWAPPING else (width, height)


def defect_coverages(record: Record, grid: geometry.Grid) -> list[npt.NDArray[np.float32] | None]:
    """Each defect's coverage of the patch grid; ``None`` for one outside the image (no region:
    the catalogue still lists it)."""
    covers: list[npt.NDArray[np.float32] | None] = []
    for defect in record.defects:
        try:
            covers.append(geometry.coverage(defect.polygon, grid))
        except geometry.RegionError:
            covers.append(None)
    return covers


def record_regions(
    record: Record,
    tokens: npt.NDArray[np.float32],
    size: tuple[int, int],
    covers: Sequence[npt.NDArray[np.float32] | None] | None = None,
) -> list[RegionDraft]:
    """The regions of one record: one per defect, one per cluster of two or more near defects.

    ``tokens``: its image's ``(rows, cols, hidden)`` patch tokens; ``size``: the image's
    ``(width, height)`` in the pixels the polygons are given in; ``covers``: the defects'
    coverages when the caller has them (:func:`defect_coverages`).
    """
    if not record.defects:
        return []
    grid = geometry.Grid(tokens.shape[0], tokens.shape[1], float(size[0]), float(size[1]))
    if covers is None:
        covers = defect_coverages(record, grid)
    order = {label: i for i, label in enumerate(record.labels)}
    drafts = []
    for j, (defect, weights) in enumerate(zip(record.defects, covers, strict=True)):
        if weights is None:
            continue
        drafts.append(
            _draft(
                f"{record.id}#d{j}",
                (defect.label,),
                defect.polygon,
                geometry.pool(tokens, weights),
                members=1,
            )
        )
    boxes = [geometry.bounding_box(d.polygon) for d in record.defects]
    gap = geometry.CLUSTER_GAP * max(size)
    for k, members in enumerate(geometry.clusters(boxes, gap=gap)):
        placed = [i for i in members if covers[i] is not None]
        if len(placed) < 2:
            continue
        weights = np.max(np.stack([covers[i] for i in placed]), axis=0)  # type: ignore[misc]
        labels = sorted({record.defects[i].label for i in placed}, key=lambda x: order.get(x, 99))
        box = geometry.hull_box([boxes[i] for i in placed])
        drafts.append(
            _draft(
                f"{record.id}#c{k}",
                tuple(labels),
                geometry.box_polygon(*box),
                geometry.pool(tokens, weights),
                members=len(placed),
                area=float(sum(record.defects[i].area for i in placed)),
            )
        )
    return drafts


def _draft(
    region_id: str,
    labels: tuple[str, ...],
    polygon: Sequence[tuple[float, float]],
    vector: Vectors,
    *,
    members: int,
    area: float | None = None,
) -> RegionDraft:
    points = tuple((float(x), float(y)) for x, y in polygon)
    region = Region(
        id=region_id,
        item=-1,
        labels=labels,
        polygon=points,
        box=geometry.bounding_box(points),
        area=geometry.polygon_area(points) if area is None else area,
        members=members,
    )
    return RegionDraft(region, vector)


def region_table(
    items: Sequence[tuple[str, int]], drafts: dict[str, list[RegionDraft]], *, dim: int
) -> RegionTable:
    """The table of the items' regions (``(item id, catalogue row)``, in row order)."""
    regions: list[Region] = []
    vectors: list[Vectors] = []
    for item_id, row in items:
        for draft in drafts.get(item_id, ()):
            regions.append(replace(draft.region, item=row))
            vectors.append(draft.vector)
    stacked = np.stack(vectors).astype(np.float32) if vectors else np.zeros((0, dim), np.float32)
    return RegionTable("patches", regions, stacked)


@dataclass(frozen=True)
class PatchSample:
    """One patch token kept for calibrating the "where is the damage" threshold."""

    item: str  # record id
    group: str
    inside: bool  # mostly inside a defect polygon (else: touches none)
    vector: Vectors  # unit


@dataclass
class RegionSink:
    """What a build's forward passes leave for the region table: each record's regions and a
    few patch tokens per image, inside defects and in the background, for the threshold."""

    drafts: dict[str, list[RegionDraft]] = field(default_factory=dict)
    samples: dict[str, list[PatchSample]] = field(default_factory=dict)

    def all_samples(self) -> list[PatchSample]:
        return [s for samples in self.samples.values() for s in samples]

    def add(self, record: Record, tokens: Vectors) -> None:
        """Pool ``record``'s regions from its ``(rows, cols, hidden)`` patch tokens."""
        size = original_size(record) if record.defects else (tokens.shape[1], tokens.shape[0])
        grid = geometry.Grid(tokens.shape[0], tokens.shape[1], float(size[0]), float(size[1]))
        covers = defect_coverages(record, grid)
        self.drafts[record.id] = record_regions(record, tokens, size, covers)
        inside = np.zeros(tokens.shape[:2], np.float32)
        for weights in covers:
            if weights is not None:
                inside = np.maximum(inside, weights)
        seed = int.from_bytes(hashlib.sha1(record.id.encode()).digest()[:4], "little")
        rng = np.random.default_rng(seed)
        unit = geometry.unit_tokens(tokens)
        kept = self.samples[record.id] = []
        for is_inside, cells in (
            (True, inside.reshape(-1) >= 0.5),
            (False, inside.reshape(-1) == 0),
        ):
            rows = np.flatnonzero(cells)
            if not len(rows):
                continue
            picked = rng.choice(rows, size=min(SAMPLED_PATCHES, len(rows)), replace=False)
            group = record.group or record.id
            kept.extend(PatchSample(record.id, group, is_inside, unit[i]) for i in picked)


def calibrate_where(
    table: RegionTable, samples: Sequence[PatchSample], groups: dict[int, str]
) -> dict[str, float | int | None]:
    """The damage score above which "where is the damage" calls a patch damaged.

    A patch's damage score is its best cosine to a damage region minus its best cosine to a
    background patch (:func:`models.regions.damage_scores`). Each sampled patch meets the
    regions and background patches of other groups only (leave-one-group-out); the threshold
    maximises Youden's J (true- minus false-positive rate) between patches inside defects and
    background patches. Returns
    ``threshold`` (``None`` without both kinds of sample), ``auroc``, ``inside``, ``background``.
    """
    inside = [s for s in samples if s.inside]
    background = [s for s in samples if not s.inside]
    out: dict[str, float | int | None] = {
        "threshold": None,
        "auroc": None,
        "inside": len(inside),
        "background": len(background),
    }
    if not inside or not background or not len(table) or table.background is None:
        return out
    rng = np.random.default_rng(0)
    inside, background = (
        [group[i] for i in sorted(rng.permutation(len(group))[:CALIBRATION_CAP])]
        for group in (inside, background)
    )
    region_groups = np.array([groups.get(r.item, "") for r in table.regions])
    bank_groups = np.array([groups.get(int(i), "") for i in table.background.items])
    ordered = [*inside, *background]
    best = np.empty(len(ordered), np.float32)
    for start in range(0, len(ordered), 256):
        block = ordered[start : start + 256]
        own = np.array([s.group for s in block])[:, None]
        best[start : start + len(block)] = geometry.damage_scores(
            np.stack([s.vector for s in block]),
            table.vectors,
            table.background.vectors,
            region_mask=own == region_groups[None, :],
            bank_mask=own == bank_groups[None, :],
        )
    truth = np.r_[np.ones(len(inside), bool), np.zeros(len(background), bool)]
    finite = np.isfinite(best)
    if not finite[truth].any() or not finite[~truth].any():
        return out
    scores, truth = best[finite], truth[finite]
    candidates = np.unique(scores)
    tpr = (scores[truth][None, :] >= candidates[:, None]).mean(axis=1)
    fpr = (scores[~truth][None, :] >= candidates[:, None]).mean(axis=1)
    out["threshold"] = round(float(candidates[int(np.argmax(tpr - fpr))]), 6)
    pos, neg = scores[truth], scores[~truth]
    wins = (pos[:, None] > neg[None, :]).mean() + 0.5 * (pos[:, None] == neg[None, :]).mean()
    out["auroc"] = round(float(wins), 4)
    return out


def background_bank(sink: RegionSink, rows: dict[str, int], *, dim: int) -> Background:
    """The background patches sampled from the kept records (``rows``: record id -> catalogue
    row), as the region table's bank (capped: :data:`~indexer.index.regions.BACKGROUND_CAP`)."""
    kept = [s for s in sink.all_samples() if not s.inside and s.item in rows]
    if not kept:
        return Background.empty(dim)
    vectors = np.stack([s.vector for s in kept]).astype(np.float32)
    items = np.array([rows[s.item] for s in kept], np.int64)
    return Background.empty(dim).extended(Background(vectors, items))
