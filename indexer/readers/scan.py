"""The result of reading a dataset, and the shared bookkeeping every reader writes into."""

from __future__ import annotations

import logging
import os
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

from indexer.readers.images import ImageHeaderError, declared_size, image_size
from indexer.readers.naming import Grouper, zone_from_name
from indexer.readers.records import Defect, Problem, Record, record_id
from models.description import describe
from models.errors import VisragError
from models.taxonomy import Coverage, Taxonomy

logger = logging.getLogger(__name__)


class DatasetError(VisragError):
    """The dataset as a whole cannot be read (path missing, top-level file unparsable)."""


def unusable(count: int, kind: str, image: str) -> str:
    """The problem of an image none of whose ``count`` annotated shapes could be used."""
    return (
        f"annotation problem: none of its {count} {kind}(s) is usable (each reason listed): image "
        f"{image} skipped, not indexed as no damage"
    )


@dataclass
class DatasetScan:
    """Records read from a dataset (sorted by id), the inputs that were skipped, label coverage."""

    records: list[Record]
    problems: list[Problem]
    coverage: Coverage
    root: Path
    format: str
    ungrouped: int = 0  # images the group_by rule did not match (each kept as its own group)


@dataclass
class ScanBuilder:
    """Collects records and problems while a reader runs; ``finish`` sorts them."""

    root: Path
    format: str
    taxonomy: Taxonomy
    grouper: Grouper
    coverage: Coverage = field(default_factory=Coverage)
    records: list[Record] = field(default_factory=list)
    problems: list[Problem] = field(default_factory=list)
    ungrouped: int = 0

    def rel(self, path: Path) -> str:
        """POSIX path relative to the root (absolute only when on another drive)."""
        try:
            return Path(os.path.relpath(path, self.root)).as_posix()
        except ValueError:  # another drive on Windows
            return path.as_posix()

    def problem(self, file: Path | str, reason: str) -> None:
        name = self.rel(file) if isinstance(file, Path) else file
        self.problems.append(Problem(name, reason))

    def checked_size(
        self,
        image: Path,
        declared: tuple[object, object],
        *,
        says: str,
        unreadable_at: Path | str,
        mismatch_at: Path | str,
        skipped: str = "image skipped",
    ) -> tuple[int, int] | None:
        """The image's size from its header, or None once the reason it is skipped is reported.

        Skipped: an unreadable or truncated header, or a size other than the one the annotation
        (``says``: "JSON", "manifest", ...) declares; each reported at the file its reader names.
        """
        try:
            width, height = image_size(image)
        except ImageHeaderError as exc:
            note = "" if unreadable_at == image else f" ({self.rel(image)})"
            self.problem(unreadable_at, f"{exc}{note}: {skipped}")
            return None
        if None not in declared and declared_size(*declared) != (width, height):
            self.problem(
                mismatch_at,
                f"image size mismatch: file is {width}x{height}, {says} says "
                f"{declared[0]}x{declared[1]}: {skipped}",
            )
            return None
        return width, height

    def add(
        self,
        image: Path,
        *,
        width: int | None,
        height: int | None,
        defects: tuple[Defect, ...] = (),
        labels: dict[str, int] | None = None,
        zone: object = None,
        source: str = "",
        id: str | None = None,
        group: str | None = None,
        description: str | None = None,
    ) -> Record:
        rel = self.rel(image)
        rid = id or record_id(rel)
        if zone is None:
            zone = zone_from_name(image.name, source)
        zone_id = self.taxonomy.normalise_zone(zone).id
        if labels is None:
            labels = self.taxonomy.sort_counts(Counter(d.label for d in defects))
        if group is None:
            group, matched = self.grouper(rel, rid)
            self.ungrouped += not matched
        record = Record(
            id=rid,
            image_path=image,
            width=width,
            height=height,
            defects=defects,
            labels=labels,
            zone=zone_id,
            group=group,
            description=description or describe(labels, zone_id, self.taxonomy),
            source=source,
        )
        self.records.append(record)
        return record

    def finish(self) -> DatasetScan:
        records = sorted(self.records, key=lambda r: r.id)
        seen: set[str] = set()
        unique = []
        for r in records:
            if r.id in seen:
                self.problem(r.source or r.image_path, f"duplicate id {r.id!r}: record skipped")
                continue
            seen.add(r.id)
            unique.append(r)
        problems = sorted(self.problems, key=lambda p: (p.file, p.reason))
        if self.ungrouped:
            logger.warning(
                "group_by rule %r did not match %d image(s); each kept as its own group",
                self.grouper.rule,
                self.ungrouped,
            )
        return DatasetScan(
            records=unique,
            problems=problems,
            coverage=self.coverage,
            root=self.root,
            format=self.format,
            ungrouped=self.ungrouped,
        )
