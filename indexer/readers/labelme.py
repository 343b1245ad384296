"""LabelMe directories (the reference dataset's format), read recursively.

Two naming schemes pair an annotation with its image: ``<stem>_labelDANO_modificado.json`` next
to ``<stem>_imageDANO_original.jpg``, and plainly ``<stem>.json`` next to ``<stem>.jpg``. The
JSON's ``imagePath`` wins when it names an existing file; the naming scheme is the fallback (and
tells which image a JSON that does not parse was about, so that image is skipped rather than
mistaken for an undamaged one). Images without an annotation, or with no shapes, are "no damage";
an image whose shapes are all unusable is skipped as an annotation problem, not "no damage".
"""

from __future__ import annotations

import json
import os
from collections import Counter
from pathlib import Path, PureWindowsPath
from typing import Any

from indexer.readers.geometry import ShapeError, make_defect, rectangle, to_points
from indexer.readers.images import ImageHeaderError, image_size, is_image
from indexer.readers.progress import track
from indexer.readers.records import Defect
from indexer.readers.scan import ScanBuilder, unusable

ANNOTATION_MARK = "_labelDANO_modificado"
IMAGE_MARK = "_imageDANO_original"


def list_files(root: Path) -> tuple[list[Path], list[Path]]:
    """Image and JSON files under root, sorted, hidden files and folders left out."""
    images: list[Path] = []
    jsons: list[Path] = []
    for folder, dirs, files in os.walk(root):
        dirs[:] = sorted(d for d in dirs if not d.startswith("."))
        for name in sorted(files):
            if name.startswith("."):
                continue
            path = Path(folder) / name
            if name.lower().endswith(".json"):
                jsons.append(path)
            elif is_image(path):
                images.append(path)
    return sorted(images), sorted(jsons)


def read_labelme(builder: ScanBuilder, *, progress: bool = False) -> None:
    images, jsons = list_files(builder.root)
    by_stem: dict[tuple[Path, str], Path] = {}
    for img in images:
        by_stem.setdefault((img.parent, img.stem), img)
    claimed: dict[Path, Path] = {}
    for js in track(jsons, "annotations", enabled=progress):
        _read_annotation(builder, js, by_stem, claimed)
    unannotated = [img for img in images if img not in claimed]
    for img in track(unannotated, "images without annotation", enabled=progress):
        try:
            width, height = image_size(img)
        except ImageHeaderError as exc:
            builder.problem(img, f"{exc}: image skipped")
            continue
        builder.add(img, width=width, height=height)


def _guess_image(js: Path, by_stem: dict[tuple[Path, str], Path]) -> Path | None:
    stem = js.stem
    if stem.endswith(ANNOTATION_MARK):
        stem = stem[: -len(ANNOTATION_MARK)] + IMAGE_MARK
    return by_stem.get((js.parent, stem))


def _named_image(js: Path, image_path: object) -> Path | None:
    if not isinstance(image_path, str) or not image_path.strip():
        return None
    for candidate in (js.parent / image_path, js.parent / PureWindowsPath(image_path).name):
        candidate = Path(os.path.normpath(candidate))
        if candidate.is_file():
            return candidate
    return None


def _read_annotation(
    builder: ScanBuilder,
    js: Path,
    by_stem: dict[tuple[Path, str], Path],
    claimed: dict[Path, Path],
) -> None:
    guess = _guess_image(js, by_stem)
    try:
        data = json.loads(js.read_text("utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        skipped = f": image {builder.rel(guess)} skipped" if guess else ""
        builder.problem(js, f"JSON does not parse ({exc}){skipped}")
        if guess is not None:
            claimed.setdefault(guess, js)
        return
    if not isinstance(data, dict) or not isinstance(data.get("shapes"), list):
        builder.problem(js, "not a LabelMe annotation (no 'shapes' list): file ignored")
        return
    image = _named_image(js, data.get("imagePath")) or guess
    if image is None:
        builder.problem(js, f"missing image {data.get('imagePath')!r}: annotation skipped")
        return
    if image in claimed:
        other = builder.rel(claimed[image])
        builder.problem(js, f"image {builder.rel(image)} already annotated by {other}: skipped")
        return
    claimed[image] = js
    declared = (data.get("imageWidth"), data.get("imageHeight"))
    size = builder.checked_size(image, declared, says="JSON", unreadable_at=image, mismatch_at=js)
    if size is None:
        return
    width, height = size
    defects = _defects(builder, js, data["shapes"])
    if data["shapes"] and not defects:  # a damaged photo with a broken annotation is not undamaged
        builder.problem(js, unusable(len(data["shapes"]), "shape", builder.rel(image)))
        return
    builder.add(image, width=width, height=height, defects=defects, source=builder.rel(js))


def _defects(builder: ScanBuilder, js: Path, shapes: list[Any]) -> tuple[Defect, ...]:
    defects = []
    unknown: Counter[str] = Counter()
    for i, shape in enumerate(shapes):
        if not isinstance(shape, dict):
            builder.problem(js, f"shape {i} is not an object: shape skipped")
            continue
        label = str(shape.get("label"))
        kind = shape.get("shape_type") or "polygon"
        try:
            points = to_points(shape.get("points"))
            if kind == "rectangle" and len(points) == 2:
                points = rectangle(points[0], points[1])
            elif kind not in ("polygon", "rectangle"):
                raise ShapeError(f"unsupported shape_type {kind!r}")
            defect = make_defect(label, points, builder.taxonomy, builder.coverage)
        except ShapeError as exc:
            builder.problem(js, f"shape {i} (label {label!r}): {exc}: shape skipped")
            continue
        if defect.label == builder.taxonomy.unknown_id and label != defect.label:
            unknown[label] += 1
        defects.append(defect)
    for label, n in sorted(unknown.items()):
        builder.problem(js, f"label {label!r} not in the taxonomy ({n} shape(s)): kept as unknown")
    return tuple(defects)
