"""JSONL manifests, read and written: one object per line with at least ``image``.

Reading (:func:`read_jsonl`): optional keys ``id``, ``labels`` (list or {label: count}), ``zone``,
``description``, ``group``, ``width``, ``height``, ``defects``. ``image`` is absolute or relative
to the manifest's directory. ``labels``, when given, are the image's labels (and the ones checked
against the taxonomy); otherwise labels are counted from ``defects``. Without ``zone``, it comes
from ``zona_<N>`` in the file name. A given ``description`` is the item's indexed text (the text
vector and the catalogue); without one, the template description of its labels and zone.
``group`` is used unless the caller passes an explicit ``group_by`` rule, which then overrides it.
Every image's header is read (size and truncation).

Writing (:func:`write_jsonl`, what `visrag split` writes): keys in a fixed order, so equal records
give byte-identical lines: ``id, image, width, height, zone, group, labels, description,
defects`` where ``image`` is relative to the JSONL file's directory (absolute only when it lies on
another drive) and each defect is ``{raw_label, label, polygon, bbox, area}``.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

from indexer.readers.geometry import ShapeError, make_defect, to_points
from indexer.readers.progress import track
from indexer.readers.records import Defect, Record
from indexer.readers.scan import DatasetError, ScanBuilder
from models.taxonomy import Coverage


def read_jsonl(builder: ScanBuilder, manifest: Path, *, progress: bool = False) -> None:
    try:
        lines = manifest.read_text("utf-8").splitlines()
    except (OSError, UnicodeDecodeError) as exc:
        raise DatasetError(f"cannot read {manifest}: {exc}") from exc
    numbered = [(i + 1, line) for i, line in enumerate(lines) if line.strip()]
    for number, line in track(numbered, "manifest", enabled=progress):
        where = f"{manifest.name}:{number}"
        try:
            entry = json.loads(line)
        except json.JSONDecodeError as exc:
            builder.problem(where, f"line does not parse as JSON ({exc}): skipped")
            continue
        if not isinstance(entry, dict) or not isinstance(entry.get("image"), str):
            builder.problem(where, "no 'image' path: skipped")
            continue
        _read_entry(builder, entry, where)


def _read_entry(builder: ScanBuilder, entry: dict[str, Any], where: str) -> None:
    image = Path(os.path.normpath(builder.root / entry["image"]))
    if not image.is_file():
        builder.problem(where, f"missing image {entry['image']!r}: skipped")
        return
    declared = (entry.get("width"), entry.get("height"))
    size = builder.checked_size(
        image, declared, says="manifest", unreadable_at=where, mismatch_at=where, skipped="skipped"
    )
    if size is None:
        return
    width, height = size
    labels = None
    raw_labels = entry.get("labels")
    if raw_labels is not None:
        labels = _labels(builder, raw_labels, where)
        if labels is None:
            return
    # Labels given: they were checked and counted; the defects' raw labels are geometry only.
    defects = _defects(builder, entry.get("defects") or [], where, counted=labels is None)
    # a claim id (several photos of one vehicle) is the photos' group: they split together and
    # leave-one-out leaves them out together
    group = entry.get("group") or entry.get("claim")
    builder.add(
        image,
        width=width,
        height=height,
        defects=defects,
        labels=labels,
        zone=entry.get("zone"),
        source=where,
        id=str(entry["id"]) if entry.get("id") else None,
        group=str(group) if group not in (None, "") and builder.grouper.rule == "image" else None,
        description=entry.get("description") or None,
    )


def _labels(builder: ScanBuilder, raw: object, where: str) -> dict[str, int] | None:
    if not isinstance(raw, (list, Mapping)):
        builder.problem(where, "labels must be a list or {label: count}: skipped")
        return None
    items = raw.keys() if isinstance(raw, Mapping) else raw
    for label in sorted({str(x) for x in items}):
        if not builder.taxonomy.is_known(label):
            builder.problem(where, f"label {label!r} not in the taxonomy: kept as unknown")
    try:
        counts = builder.taxonomy.normalise_counts(raw, builder.coverage)
    except (TypeError, ValueError):
        builder.problem(where, "label counts must be integers: skipped")
        return None
    return {k: n for k, n in counts.items() if n > 0 and k != builder.taxonomy.no_damage_id}


def _defects(builder: ScanBuilder, raw: object, where: str, *, counted: bool) -> tuple[Defect, ...]:
    if not isinstance(raw, list):
        builder.problem(where, "defects is not a list: defects ignored")
        return ()
    defects = []
    coverage = builder.coverage if counted else Coverage()
    unknown: set[str] = set()
    for i, item in enumerate(raw):
        if not isinstance(item, Mapping):
            builder.problem(where, f"defect {i} is not an object: defect skipped")
            continue
        label, polygon, area = defect_from_json(item)
        try:
            points = to_points(polygon)
            defect = make_defect(label, points, builder.taxonomy, coverage, area=area)
        except ShapeError as exc:
            builder.problem(where, f"defect {i} (label {label!r}): {exc}: defect skipped")
            continue
        if counted and defect.label == builder.taxonomy.unknown_id and label != defect.label:
            unknown.add(label)
        defects.append(defect)
    for label in sorted(unknown):
        builder.problem(where, f"label {label!r} not in the taxonomy: kept as unknown")
    return tuple(defects)


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
