"""Records as JSON lines: what `visrag split` writes and the JSONL reader reads back.

One object per line, keys in a fixed order, so equal records give byte-identical lines:
``id, image, width, height, zone, group, labels, description, defects`` where ``image`` is
relative to the JSONL file's directory (absolute only when it lies on another drive) and each
defect is ``{raw_label, label, polygon, bbox, area}``.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

from indexer.records import Defect, Record


def relative_image_path(image: Path, base_dir: Path) -> str:
    """POSIX path of ``image`` relative to ``base_dir``; absolute if no relative path exists."""
    try:
        return Path(os.path.relpath(Path(image).absolute(), Path(base_dir).absolute())).as_posix()
    except ValueError:  # another drive on Windows
        return Path(image).absolute().as_posix()


def defect_to_json(defect: Defect) -> dict[str, Any]:
    return {
        "raw_label": defect.raw_label,
        "label": defect.label,
        "polygon": [[x, y] for x, y in defect.polygon],
        "bbox": list(defect.bbox),
        "area": defect.area,
    }


def defect_from_json(data: Mapping[str, Any]) -> tuple[str, object, float | None]:
    """(raw label, raw polygon, area or None) of a serialised defect, for the reader to check."""
    raw = data.get("raw_label", data.get("label"))
    area = data.get("area")
    return str(raw), data.get("polygon"), None if area is None else float(area)


def record_to_json(record: Record, *, base_dir: Path) -> dict[str, Any]:
    return {
        "id": record.id,
        "image": relative_image_path(record.image_path, base_dir),
        "width": record.width,
        "height": record.height,
        "zone": record.zone,
        "group": record.group,
        "labels": dict(record.labels),
        "description": record.description,
        "defects": [defect_to_json(d) for d in record.defects],
    }


def write_jsonl(records: Iterable[Record], path: Path) -> int:
    """Write records to ``path`` (image paths relative to its directory); returns the count."""
    path = Path(path)
    lines = [
        json.dumps(record_to_json(r, base_dir=path.parent), ensure_ascii=False) + "\n"
        for r in records
    ]
    with open(path, "w", encoding="utf-8", newline="\n") as fh:
        fh.writelines(lines)
    return len(lines)
