"""The catalogue: one :class:`CatalogueItem` per indexed image, its SQLite table (writer and
reader), the dataset summary the manifest records, and item filters turned into rows.

``catalogue.sqlite`` holds table ``items``: row, id, image, labels, zone, area, description, grp,
defects (JSON text in columns; never pickle). ``items[r].row == r`` is the FAISS id and the
vector row.
"""

from __future__ import annotations

import json
import os
import sqlite3
from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt

from indexer.errors import ArtifactError
from indexer.query import Filters
from indexer.readers.records import Record
from models.description import describe
from models.taxonomy import Taxonomy


@dataclass(frozen=True)
class CatalogueItem:
    row: int
    id: str
    image: str
    labels: dict[str, int]
    zone: str
    area: str
    description: str
    group: str
    defects: dict[str, Any] = field(default_factory=dict)


_SCHEMA = """CREATE TABLE items (
    row INTEGER PRIMARY KEY, id TEXT UNIQUE NOT NULL, image TEXT NOT NULL, labels TEXT NOT NULL,
    zone TEXT NOT NULL, area TEXT NOT NULL, description TEXT NOT NULL, grp TEXT NOT NULL,
    defects TEXT NOT NULL)"""


def write_catalogue(path: Path, items: Sequence[CatalogueItem]) -> None:
    """Write the items as a new SQLite file (no journal: the caller writes into a fresh dir)."""
    con = sqlite3.connect(path)
    try:
        con.execute("PRAGMA journal_mode=OFF")
        con.execute(_SCHEMA)
        con.executemany(
            "INSERT INTO items VALUES (?,?,?,?,?,?,?,?,?)",
            (
                (
                    it.row,
                    it.id,
                    it.image,
                    json.dumps(it.labels),
                    it.zone,
                    it.area,
                    it.description,
                    it.group,
                    json.dumps(it.defects, sort_keys=True),
                )
                for it in items
            ),
        )
        con.commit()
    finally:
        con.close()


def read_catalogue(path: Path) -> list[CatalogueItem]:
    """The items in row order; ``ArtifactError`` when the file is not a readable catalogue."""
    rows = read_rows(
        path,
        "SELECT row, id, image, labels, zone, area, description, grp, defects "
        "FROM items ORDER BY row",
        what="catalogue",
    )
    return [
        CatalogueItem(r, i, img, json.loads(lb), z, a, d, g, json.loads(df))
        for r, i, img, lb, z, a, d, g, df in rows
    ]


def read_rows(path: Path, query: str, *, what: str) -> list[Any]:
    """The rows of one query on an artifact's SQLite file, read-only; ``ArtifactError`` naming
    ``what`` the file should be when it is not readable."""
    # immutable=1: reading must not touch the file (no journal), or its checksum would change
    con = sqlite3.connect(f"{path.absolute().as_uri()}?mode=ro&immutable=1", uri=True)
    try:
        return con.execute(query).fetchall()
    except sqlite3.DatabaseError as exc:
        raise ArtifactError(f"{path.name} is not a readable {what}: {exc}") from exc
    finally:
        con.close()


def dataset_summary(items: Sequence[CatalogueItem], **extra: Any) -> dict[str, Any]:
    """Counts the manifest records: items per canonical label, label instances, items per zone."""
    labels: Counter[str] = Counter()
    instances: Counter[str] = Counter()
    for it in items:
        labels.update(it.labels.keys())
        instances.update(it.labels)
    zones = Counter(it.zone for it in items)
    return {
        **extra,
        "count": len(items),
        "labels": dict(labels.most_common()),
        "label_instances": dict(instances.most_common()),
        "zones": dict(zones.most_common()),
    }


class CatalogueMasks:
    """Rows per label, zone and area of a catalogue, built once, for item filters."""

    def __init__(self, items: Sequence[CatalogueItem], *, no_damage_id: str) -> None:
        self._n = len(items)
        self._labels: dict[str, list[int]] = {}
        for it in items:  # an item without labels is no-damage
            for label in it.labels or {no_damage_id: 1}:
                self._labels.setdefault(label, []).append(it.row)
        self._zones = np.array([it.zone for it in items], dtype=object)
        self._areas = np.array([it.area for it in items], dtype=object)

    def _has(self, label: str) -> npt.NDArray[np.bool_]:
        mask = np.zeros(self._n, bool)
        mask[self._labels.get(label, [])] = True
        return mask

    def select(self, filters: Filters) -> npt.NDArray[np.int64]:
        """Rows the filter allows: any of ``labels_any``, all of ``labels_all``, zones, areas."""
        mask = np.ones(self._n, bool)
        if filters.labels_any:
            mask &= np.logical_or.reduce([self._has(lb) for lb in filters.labels_any])
        for label in filters.labels_all:
            mask &= self._has(label)
        if filters.zones:
            mask &= np.isin(self._zones, list(filters.zones))
        if filters.areas:
            mask &= np.isin(self._areas, list(filters.areas))
        return np.flatnonzero(mask).astype(np.int64)


# -- records -> catalogue items (the mapper of a build) ----------------------------------------
def images_root(paths: Iterable[str | Path], root: Path | None) -> Path | None:
    """The folder a catalogue's image paths are stored relative to (the manifest's dataset root).

    ``root`` (the scan root) when every image lies under it; else the images' common folder (a
    split JSONL beside the dataset folder); ``None`` when that is only the filesystem root. Paths
    relative to it let an index move with its dataset (``VISRAG_DATA_ROOT`` at serve time).
    """
    files = [Path(p).absolute() for p in paths]
    if not files or (root is not None and all(f.is_relative_to(root.absolute()) for f in files)):
        return root
    common = Path(os.path.commonpath([f.parent for f in files]))
    return None if common == Path(common.anchor) else common


def _image_ref(path: Path, root: Path | None) -> str:
    path = Path(path)
    if root is not None:
        try:
            return path.absolute().relative_to(Path(root).absolute()).as_posix()
        except ValueError:
            pass
    return path.absolute().as_posix()


def catalogue_items(
    records: Sequence[Record], taxonomy: Taxonomy, *, root: Path | None, first_row: int = 0
) -> list[CatalogueItem]:
    """Catalogue rows (from ``first_row``) for records: zone normalised, description from the
    template, image path relative to ``root`` when under it, a defects summary."""
    items = []
    for row, record in enumerate(records, start=first_row):
        zone = taxonomy.normalise_zone(record.zone)
        by_label: dict[str, int] = {}
        for d in record.defects:
            by_label[d.label] = by_label.get(d.label, 0) + 1
        defects: dict[str, Any] = {
            "count": len(record.defects),
            "total_area": float(sum(d.area for d in record.defects)),
        }
        if by_label:
            defects["by_label"] = taxonomy.sort_counts(by_label)
            # the outlines, so a page can draw them over the thumbnail (pixels of the original)
            defects["size"] = [record.width, record.height]
            defects["shapes"] = [
                {"label": d.label, "polygon": [[round(x, 1), round(y, 1)] for x, y in d.polygon]}
                for d in record.defects
            ]
        items.append(
            CatalogueItem(
                row=row,
                id=record.id,
                image=_image_ref(record.image_path, root),
                labels=dict(record.labels),
                zone=zone.id,
                area=zone.area,
                description=record.description or describe(record.labels, zone.id, taxonomy),
                group=record.group or record.id,
                defects=defects,
            )
        )
    return items
