"""The region table: damage regions of the indexed images, beside the image vectors.

One row per region: a labelled polygon of an item, or a cluster of its overlapping or near
defects, or an imported crop vector of its photo. ``regions.sqlite`` holds table ``regions``
(row, id, item, kind, labels, polygon, box, area, members; JSON text in columns, never pickle);
``region_vectors.npy`` the ``(r, d)`` unit vectors, row-aligned; ``region.faiss`` the index over
them (FAISS id = region row). ``item`` is the catalogue row of the region's image: rows renumber
with the catalogue's on remove.

Kinds are vector spaces: ``patches`` (final patch tokens pooled over the polygon, from the
image's own forward pass), ``crops`` (the region's crop re-encoded by the image model),
``imported`` (precomputed vectors). One table holds one kind; a query only meets regions of the
kind it was encoded as.
"""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, Literal

import numpy as np
import numpy.typing as npt

from indexer.errors import ArtifactError
from indexer.index.catalogue import read_rows

RegionKind = Literal["patches", "crops", "imported"]
REGION_KINDS: tuple[RegionKind, ...] = ("patches", "crops", "imported")
Vectors = npt.NDArray[np.float32]


@dataclass(frozen=True)
class Region:
    """One region: where it is in its image (pixels of the original, after EXIF orientation)."""

    id: str
    item: int  # catalogue row of its image
    labels: tuple[str, ...]  # canonical labels, taxonomy order, one per member defect kind
    polygon: tuple[tuple[float, float], ...]
    box: tuple[float, float, float, float]  # x, y, w, h
    area: float  # polygon area, square pixels
    members: int = 1  # defects it covers (> 1: a cluster region)


#: Background patches the bank keeps at most (a seeded sample beyond that).
BACKGROUND_CAP = 4096


@dataclass(frozen=True)
class Background:
    """Patch tokens from outside every defect, sampled from the indexed images (a few each): what
    an undamaged surface looks like, so a query patch's damage score is how much more it
    resembles a damage region than any such patch (:func:`indexer.retrieval.regions.heatmap`)."""

    vectors: Vectors  # (b, d) unit
    items: npt.NDArray[np.int64]  # (b,) catalogue row of each patch's image

    def __post_init__(self) -> None:
        if len(self.vectors) != len(self.items):
            raise ValueError(f"{len(self.vectors)} background patches but {len(self.items)} rows")

    def __len__(self) -> int:
        return len(self.items)

    @classmethod
    def empty(cls, dim: int) -> Background:
        return cls(np.zeros((0, dim), np.float32), np.zeros(0, np.int64))

    def keep_items(self, keep: npt.NDArray[np.bool_]) -> Background:
        new_row = np.cumsum(keep) - 1
        mask = keep[self.items] if len(self.items) else np.zeros(0, bool)
        return Background(self.vectors[mask].astype(np.float32), new_row[self.items[mask]])

    def extended(self, other: Background) -> Background:
        vectors = np.concatenate([self.vectors, other.vectors]).astype(np.float32)
        items = np.concatenate([self.items, other.items]).astype(np.int64)
        if len(items) > BACKGROUND_CAP:
            shuffled = np.random.default_rng(len(items)).permutation(len(items))
            picked = np.sort(shuffled[:BACKGROUND_CAP])
            vectors, items = vectors[picked], items[picked]
        return Background(vectors, items)


@dataclass
class RegionTable:
    """Regions row-aligned with their unit vectors; ``kind`` names the vector space."""

    kind: RegionKind
    regions: list[Region] = field(default_factory=list)
    vectors: Vectors = field(default_factory=lambda: np.zeros((0, 0), np.float32))
    #: the "where is the damage" threshold and how it was fitted (``calibrate_where``), kept
    #: from the build through add/remove (the manifest's ``regions.calibration``)
    calibration: dict[str, Any] = field(default_factory=dict)
    background: Background | None = None  # None: none sampled (imported regions)
    _rows: dict[str, int] | None = field(default=None, repr=False, compare=False)
    _items: npt.NDArray[np.int64] | None = field(default=None, repr=False, compare=False)

    def __post_init__(self) -> None:
        if self.kind not in REGION_KINDS:
            raise ValueError(f"region kind must be one of {REGION_KINDS}, got {self.kind!r}")
        if len(self.regions) != len(self.vectors):
            raise ValueError(f"{len(self.regions)} regions but {len(self.vectors)} vectors")

    def __len__(self) -> int:
        return len(self.regions)

    @property
    def dim(self) -> int:
        return int(self.vectors.shape[1]) if self.vectors.ndim == 2 else 0

    def item_rows(self) -> npt.NDArray[np.int64]:
        """The catalogue row of each region (computed once: a table is not changed in place)."""
        if self._items is None:
            self._items = np.fromiter((r.item for r in self.regions), np.int64, len(self.regions))
        return self._items

    def row_of(self, region_id: str) -> int | None:
        """The row of a region by its id (``None``: no such region)."""
        if self._rows is None:
            self._rows = {r.id: row for row, r in enumerate(self.regions)}
        return self._rows.get(region_id)

    def of_items(self, rows: npt.ArrayLike) -> npt.NDArray[np.int64]:
        """Region rows whose image is one of the catalogue ``rows``."""
        return np.flatnonzero(np.isin(self.item_rows(), np.asarray(rows, np.int64)))

    def keep_items(self, keep: npt.NDArray[np.bool_]) -> RegionTable:
        """The regions of kept catalogue rows, their ``item`` renumbered as the catalogue's are
        (kept rows become ``0..k-1`` in order)."""
        new_row = np.cumsum(keep) - 1
        rows = [i for i, r in enumerate(self.regions) if keep[r.item]]
        regions = [replace(self.regions[i], item=int(new_row[self.regions[i].item])) for i in rows]
        vectors = self.vectors[rows].astype(np.float32)
        background = self.background.keep_items(keep) if self.background is not None else None
        return RegionTable(self.kind, regions, vectors, dict(self.calibration), background)

    def extended(self, other: RegionTable) -> RegionTable:
        """This table plus ``other``'s regions (same kind and dim)."""
        background = self.background
        if other.background is not None:
            background = (
                other.background if background is None else background.extended(other.background)
            )
        if not len(self):
            return RegionTable(
                other.kind, list(other.regions), other.vectors, self.calibration, background
            )
        if len(other) and (other.kind != self.kind or other.dim != self.dim):
            raise ValueError(
                f"cannot add {other.kind} regions of dim {other.dim} to an index of {self.kind} "
                f"regions of dim {self.dim}"
            )
        vectors = np.concatenate([self.vectors, other.vectors]).astype(np.float32)
        regions = [*self.regions, *other.regions]
        return RegionTable(self.kind, regions, vectors, self.calibration, background)


_SCHEMA = """CREATE TABLE regions (
    row INTEGER PRIMARY KEY, id TEXT UNIQUE NOT NULL, item INTEGER NOT NULL, kind TEXT NOT NULL,
    labels TEXT NOT NULL, polygon TEXT NOT NULL, box TEXT NOT NULL, area REAL NOT NULL,
    members INTEGER NOT NULL)"""


def write_regions(path: Path, table: RegionTable) -> None:
    """Write the region rows as a new SQLite file (the caller writes into a fresh directory)."""
    con = sqlite3.connect(path)
    try:
        con.execute("PRAGMA journal_mode=OFF")
        con.execute(_SCHEMA)
        con.executemany(
            "INSERT INTO regions VALUES (?,?,?,?,?,?,?,?,?)",
            (
                (
                    row,
                    r.id,
                    r.item,
                    table.kind,
                    json.dumps(list(r.labels)),
                    json.dumps([[round(x, 1), round(y, 1)] for x, y in r.polygon]),
                    json.dumps([round(v, 1) for v in r.box]),
                    float(r.area),
                    r.members,
                )
                for row, r in enumerate(table.regions)
            ),
        )
        con.commit()
    finally:
        con.close()


def read_regions(
    path: Path,
    kind: RegionKind,
    vectors: Vectors,
    calibration: dict[str, Any],
    background: Background | None = None,
) -> RegionTable:
    """The region table (rows in order) with its vectors; ``ArtifactError`` when unreadable."""
    rows = read_rows(
        path,
        "SELECT row, id, item, kind, labels, polygon, box, area, members FROM regions ORDER BY row",
        what="region table",
    )
    if [r[0] for r in rows] != list(range(len(rows))):
        raise ArtifactError(f"{path.name}: region rows are not 0..r-1")
    if any(r[3] != kind for r in rows):
        raise ArtifactError(f"{path.name}: regions of another kind than the manifest's {kind!r}")
    regions = [
        Region(
            id=i,
            item=int(item),
            labels=tuple(json.loads(lb)),
            polygon=tuple((float(x), float(y)) for x, y in json.loads(poly)),
            box=_box(json.loads(box)),
            area=float(area),
            members=int(members),
        )
        for _, i, item, _, lb, poly, box, area, members in rows
    ]
    return RegionTable(kind, regions, vectors, dict(calibration), background)


def _box(values: Sequence[float]) -> tuple[float, float, float, float]:
    x, y, w, h = (float(v) for v in values)
    return x, y, w, h
