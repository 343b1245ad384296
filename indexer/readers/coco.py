"""COCO instance-segmentation JSON: ``images``, ``annotations``, ``categories``.

Image ``file_name``s are relative to the images directory (by default the JSON's directory).
Each annotation is one defect: its polygon is the largest part of ``segmentation`` (area summed
over all parts, bbox over all parts); an RLE mask or a missing segmentation falls back to the
``bbox`` rectangle, with the annotation's ``area`` when given. Category names go through the
taxonomy; unknown ones are reported once per category and kept as ``unknown``.
"""

from __future__ import annotations

import dataclasses
import json
import os
from collections import defaultdict
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from indexer.readers.geometry import (
    ShapeError,
    bbox,
    flat_to_points,
    make_defect,
    rectangle,
    shoelace_area,
)
from indexer.readers.progress import track
from indexer.readers.records import Defect
from indexer.readers.scan import DatasetError, ScanBuilder, unusable


def is_coco(path: Path) -> bool:
    """A .json whose top level has ``images`` and ``annotations``."""
    try:
        data = json.loads(path.read_text("utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError):
        return False
    return isinstance(data, dict) and "images" in data and "annotations" in data


def read_coco(builder: ScanBuilder, path: Path, *, progress: bool = False) -> None:
    try:
        data = json.loads(path.read_text("utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise DatasetError(f"COCO file {path} does not parse: {exc}") from exc
    if not isinstance(data, dict) or not isinstance(data.get("images"), list):
        raise DatasetError(f"{path} is not a COCO file (no 'images' list)")
    where = path.name
    categories = _categories(builder, data.get("categories") or [], where)
    images: dict[Any, Mapping[str, Any]] = {}
    for entry in data["images"]:
        if not isinstance(entry, Mapping) or not isinstance(entry.get("file_name"), str):
            builder.problem(where, f"image entry {entry!r:.80} has no file_name: skipped")
            continue
        images[entry.get("id")] = entry
    annotations: dict[Any, list[Mapping[str, Any]]] = defaultdict(list)
    for ann in data.get("annotations") or []:
        if not isinstance(ann, Mapping):
            continue
        if ann.get("image_id") not in images:
            builder.problem(
                f"{where}#annotation {ann.get('id')}",
                f"unknown image_id {ann.get('image_id')!r}: annotation skipped",
            )
            continue
        annotations[ann["image_id"]].append(ann)
    entries = sorted(images.items(), key=lambda kv: str(kv[1]["file_name"]))
    for image_id, entry in track(entries, "images", enabled=progress):
        _read_image(builder, entry, annotations[image_id], categories, where)


def _categories(builder: ScanBuilder, raw: list[Any], where: str) -> dict[Any, str]:
    categories = {}
    for cat in raw:
        if isinstance(cat, Mapping) and "id" in cat:
            name = str(cat.get("name"))
            categories[cat["id"]] = name
            if not builder.taxonomy.is_known(name):
                builder.problem(where, f"category {name!r} not in the taxonomy: kept as unknown")
    return categories


def _read_image(
    builder: ScanBuilder,
    entry: Mapping[str, Any],
    annotations: list[Mapping[str, Any]],
    categories: dict[Any, str],
    where: str,
) -> None:
    image = Path(os.path.normpath(builder.root / entry["file_name"]))
    if not image.is_file():
        builder.problem(image, "missing image: skipped")
        return
    declared = (entry.get("width"), entry.get("height"))
    size = builder.checked_size(image, declared, says=where, unreadable_at=image, mismatch_at=image)
    if size is None:
        return
    width, height = size
    defects = []
    for ann in sorted(annotations, key=lambda a: str(a.get("id"))):
        label = ann.get("category_id")
        if label not in categories:
            builder.problem(
                f"{where}#annotation {ann.get('id')}",
                f"unknown category_id {label!r}: annotation skipped",
            )
            continue
        try:
            defects.append(_defect(builder, ann, categories[label]))
        except ShapeError as exc:
            builder.problem(f"{where}#annotation {ann.get('id')}", f"{exc}: annotation skipped")
    if annotations and not defects:  # a damaged photo with a broken annotation is not undamaged
        builder.problem(image, unusable(len(annotations), "annotation", builder.rel(image)))
        return
    builder.add(
        image,
        width=width,
        height=height,
        defects=tuple(defects),
        source=f"{where}#image {entry.get('id')}",
    )


def _defect(builder: ScanBuilder, ann: Mapping[str, Any], name: str) -> Defect:
    seg = ann.get("segmentation")
    if isinstance(seg, list) and seg:
        parts = [flat_to_points(p) for p in seg if isinstance(p, list)]
        if not parts:
            raise ShapeError("segmentation has no polygon")
        short = [len(p) for p in parts if len(p) < 3]
        if short:
            raise ShapeError(f"polygon with {short[0]} point(s), need at least 3")
        largest = max(parts, key=shoelace_area)
        defect = make_defect(
            name,
            largest,
            builder.taxonomy,
            builder.coverage,
            area=sum(shoelace_area(p) for p in parts),
        )
        return dataclasses.replace(defect, bbox=bbox([pt for p in parts for pt in p]))
    box = ann.get("bbox")
    if not isinstance(box, list) or len(box) != 4:
        raise ShapeError("neither a polygon segmentation nor a bbox")
    x, y, w, h = (float(v) for v in box)
    area = ann.get("area") if isinstance(seg, Mapping) else None
    return make_defect(
        name,
        rectangle((x, y), (x + w, y + h)),
        builder.taxonomy,
        builder.coverage,
        area=None if area is None else float(area),
    )
