"""The reader stage of a build: a dataset path (or records) -> records and unreadable inputs."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from indexer.readers.records import Problem, Record
from models.taxonomy import Taxonomy


@dataclass(frozen=True)
class SourceRecords:
    """What the reader hands the mapper: records, unreadable inputs, the scan root, provenance."""

    records: list[Record]
    problems: list[Problem] = field(default_factory=list)
    root: Path | None = None  # the dataset's scan root (None for records handed over)
    info: dict[str, Any] = field(default_factory=lambda: {"source": "records"})


def read_records(source: str | Path | Iterable[Record], taxonomy: Taxonomy) -> SourceRecords:
    """Read a dataset (manifest, LabelMe dir, COCO json) or take records as they are."""
    if not isinstance(source, (str, Path)):
        return SourceRecords(list(source))
    from indexer.readers.dataset import read_dataset

    scan = read_dataset(source, taxonomy=taxonomy)
    info = {
        "source": str(Path(source).resolve()),
        "format": scan.format,
        "coverage": scan.coverage.as_dict(),
    }
    return SourceRecords(list(scan.records), list(scan.problems), Path(scan.root).resolve(), info)
