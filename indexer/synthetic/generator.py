"""A synthetic LabelMe dataset of car-body panels with drawn damage, for tests and the demo.

Each damage type has its own look, so labels correlate with pixels and retrieval has something
to find: surface scratches are clusters of thin light lines, deep scratches thick dark lines,
dents shaded ellipses, cracks branching dark polylines, paint peeling irregular primer-coloured
patches, missing parts dark holes, missing accessories bare rectangles with mounting holes, and
misaligned parts an offset panel gap with a shadow band. Files follow the reference naming
scheme (``<prefix>_<capture>_zona_<Z>_imageDANO_original.jpg`` with
``..._labelDANO_modificado.json``, raw labels ``"1"``..``"8"``); several photos (zones) share a
capture id and a body colour, so a split that ignores groups leaks. Deterministic given the seed.
"""

from __future__ import annotations

import json
from collections import Counter
from pathlib import Path
from typing import Any

import numpy as np
from PIL import ImageDraw

from indexer.synthetic.drawing import DRAWERS, Point, Rng, draw_dent, panel, scale

PREFIX = "zona1_ok_2_3"
RAW_LABELS = {
    "1": "surface_scratch",
    "2": "dent",
    "3": "paint_peeling",
    "4": "deep_scratch",
    "5": "crack",
    "6": "missing_part",
    "7": "missing_accessory",
    "8": "misaligned_part",
}
# How often each type appears on a damaged image (scratches dominate, as in the reference set).
_WEIGHTS = np.array([0.26, 0.14, 0.12, 0.12, 0.10, 0.09, 0.09, 0.08])
_INSTANCES = {"1": (1, 5), "2": (1, 2), "3": (1, 2), "4": (1, 2)}  # others: exactly 1
_BODY_COLOURS = [
    (180, 20, 25),
    (20, 50, 140),
    (215, 215, 220),
    (30, 30, 34),
    (120, 125, 130),
    (20, 110, 60),
    (230, 180, 20),
    (90, 50, 30),
]
NO_DAMAGE_SHARE = 0.15  # images without an annotation file
EMPTY_JSON_SHARE = 0.03  # images with an annotation file but no shapes (also "no damage")
BIG_SHARE = 0.12  # defects drawn three times larger than usual
BROKEN_KINDS = (
    "unparsable_json",
    "missing_image",
    "short_polygon",
    "unknown_label",
    "size_mismatch",
    "truncated_jpeg",
)


def generate_dataset(
    out: str | Path,
    n: int,
    *,
    seed: int = 0,
    broken: int = 0,
    image_size: tuple[int, int] = (640, 480),
) -> dict[str, Any]:
    """Write ``n`` valid images (plus ``broken`` deliberately broken inputs) under ``out``.

    Returns a summary: counts of images, records a reader should yield, no-damage images,
    captures, canonical label counts (images and instances), and the list of broken inputs
    (``kind``, ``file`` relative to ``out``, ``effect``: ``skipped`` or ``kept``).
    """
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    label_images: Counter[str] = Counter()
    label_instances: Counter[str] = Counter()
    no_damage = 0
    captures = 0
    timestamp = 1554000000000
    made = 0
    while made < n:
        captures += 1
        timestamp += int(rng.integers(50_000, 5_000_000))
        zones = rng.choice(
            np.arange(1, 11), size=min(int(rng.integers(1, 5)), n - made), replace=False
        )
        colour = _BODY_COLOURS[int(rng.integers(len(_BODY_COLOURS)))]
        for zone in sorted(int(z) for z in zones):
            stem = f"{PREFIX}_{timestamp}_zona_{zone}"
            shapes = _draw_and_save(
                out, stem, colour, image_size, np.random.default_rng([seed, made])
            )
            made += 1
            if not shapes:
                no_damage += 1
            for raw in {s["label"] for s in shapes}:
                label_images[RAW_LABELS[raw]] += 1
            for s in shapes:
                label_instances[RAW_LABELS[s["label"]]] += 1
    broken_items = [
        _make_broken(out, BROKEN_KINDS[i % len(BROKEN_KINDS)], i, image_size, seed)
        for i in range(broken)
    ]
    kept = sum(b["effect"] == "kept" for b in broken_items)
    return {
        "out": str(out),
        "seed": seed,
        "image_size": list(image_size),
        "images": n,
        "records_expected": n + kept,
        "no_damage": no_damage,
        "captures": captures,
        "label_images": dict(sorted(label_images.items())),
        "label_instances": dict(sorted(label_instances.items())),
        "broken": broken_items,
    }


# -- one image ------------------------------------------------------------------------------------
def _draw_and_save(
    out: Path, stem: str, colour: tuple[int, int, int], size: tuple[int, int], rng: Rng
) -> list[dict[str, Any]]:
    image = panel(colour, size, rng)
    draw = ImageDraw.Draw(image)
    roll = rng.random()
    shapes: list[dict[str, Any]] = []
    if roll >= NO_DAMAGE_SHARE + EMPTY_JSON_SHARE:
        n_types = int(rng.choice([1, 2, 3], p=[0.55, 0.3, 0.15]))
        types = rng.choice(list(RAW_LABELS), size=n_types, replace=False, p=_WEIGHTS)
        for raw in sorted(str(t) for t in types):
            low, high = _INSTANCES.get(raw, (1, 1))
            for _ in range(int(rng.integers(low, high + 1))):
                # now and then a large one, so every relative-area bucket occurs
                grow = 3.0 if rng.random() < BIG_SHARE else 1.0
                polygon = DRAWERS[raw](draw, colour, size, rng, scale(size) * grow)
                shapes.append(_shape(raw, polygon, size))
    image.save(out / f"{stem}_imageDANO_original.jpg", quality=85)
    if roll >= NO_DAMAGE_SHARE:
        _write_json(out / f"{stem}_labelDANO_modificado.json", stem, size, shapes)
    return shapes


def _shape(raw: str, polygon: list[Point], size: tuple[int, int]) -> dict[str, Any]:
    w, h = size
    points = [
        [round(min(max(x, 0.0), w - 1.0), 1), round(min(max(y, 0.0), h - 1.0), 1)]
        for x, y in polygon
    ]
    return {"label": raw, "points": points, "group_id": None, "shape_type": "polygon", "flags": {}}


def _write_json(
    path: Path, stem: str, size: tuple[int, int], shapes: list[dict[str, Any]], **override: Any
) -> None:
    data = {
        "version": "5.0.1",
        "flags": {},
        "shapes": shapes,
        "imagePath": f"{stem}_imageDANO_original.jpg",
        "imageData": None,
        "imageHeight": size[1],
        "imageWidth": size[0],
        **override,
    }
    path.write_text(json.dumps(data), encoding="utf-8")  # one line: the C encoder, 3x faster


# -- deliberately broken inputs -------------------------------------------------------------------
def _make_broken(out: Path, kind: str, i: int, size: tuple[int, int], seed: int) -> dict[str, Any]:
    rng = np.random.default_rng([seed, 10_000_000 + i])
    stem = f"broken_{kind}_{1900000000000 + i}_zona_{1 + i % 10}"
    image_path = out / f"{stem}_imageDANO_original.jpg"
    json_path = out / f"{stem}_labelDANO_modificado.json"
    colour = _BODY_COLOURS[i % len(_BODY_COLOURS)]
    image = panel(colour, size, rng)
    polygon = draw_dent(ImageDraw.Draw(image), colour, size, rng, scale(size))
    good = _shape("2", polygon, size)
    effect = "skipped"
    file = json_path
    if kind != "missing_image":
        image.save(image_path, quality=85)
    if kind == "unparsable_json":
        json_path.write_text(
            '{"version": "5.0.1", "shapes": [{"label": "2", "points": [[1', "utf-8"
        )
    elif kind == "missing_image":
        _write_json(json_path, stem, size, [good])
    elif kind == "short_polygon":
        short = {**good, "label": "1", "points": good["points"][:2]}
        _write_json(json_path, stem, size, [good, short])
        effect = "kept"
    elif kind == "unknown_label":
        _write_json(json_path, stem, size, [good, {**good, "label": "99"}])
        effect = "kept"
    elif kind == "size_mismatch":
        _write_json(json_path, stem, size, [good], imageWidth=size[0] + 10)
    elif kind == "truncated_jpeg":
        data = image_path.read_bytes()
        image_path.write_bytes(data[: len(data) // 2])
        _write_json(json_path, stem, size, [good])
        file = image_path
    return {"kind": kind, "file": file.relative_to(out).as_posix(), "effect": effect}
