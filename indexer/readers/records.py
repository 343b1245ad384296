"""The normalised dataset record every reader yields, and the problem report for skipped inputs."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from pathlib import Path


@dataclass(frozen=True)
class Defect:
    """One annotated defect: its raw and canonical label, geometry in pixel coordinates."""

    raw_label: str
    label: str
    polygon: tuple[tuple[float, float], ...]
    bbox: tuple[float, float, float, float]  # x_min, y_min, x_max, y_max
    area: float  # polygon area in pixels (shoelace), or bbox area for rectangles


@dataclass(frozen=True)
class Record:
    """One image of a dataset, with labels already normalised through the taxonomy.

    ``labels`` maps canonical label -> instance count, in the taxonomy's stable order; an image
    without defects has ``{}`` here and is a "no damage" image.
    """

    id: str
    image_path: Path
    width: int | None
    height: int | None
    defects: tuple[Defect, ...] = ()
    labels: dict[str, int] = field(default_factory=dict)
    zone: str = "unknown"
    group: str = ""
    description: str | None = None
    source: str = ""  # annotation file (or manifest line) the record came from


@dataclass(frozen=True)
class Problem:
    """An input that could not be used: which file, and why. Reported, never silently dropped."""

    file: str
    reason: str

    def as_dict(self) -> dict[str, str]:
        return {"file": self.file, "reason": self.reason}


def record_id(relative_path: str | Path) -> str:
    """Stable id derived from the image path relative to the dataset root (POSIX separators)."""
    rel = Path(relative_path).as_posix()
    digest = hashlib.sha1(rel.encode("utf-8")).hexdigest()[:12]
    stem = Path(rel).stem[:48]
    return f"{stem}-{digest}"
