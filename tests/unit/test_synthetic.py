from __future__ import annotations

import re
from collections import Counter
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from indexer.readers.dataset import read_dataset
from indexer.synthetic.generator import generate_dataset

NAME = re.compile(
    r"^zona1_ok_2_3_(\d{13})_zona_(\d+)_(imageDANO_original\.jpg|labelDANO_modificado\.json)$"
)


@pytest.fixture(scope="module")
def generated(tmp_path_factory):
    root = tmp_path_factory.mktemp("synthetic")
    summary = generate_dataset(root, 150, seed=4, image_size=(160, 120))
    return root, summary


def _digest(root: Path) -> list[tuple[str, bytes]]:
    return [(p.name, p.read_bytes()) for p in sorted(root.iterdir())]


def test_deterministic_given_the_seed(tmp_path: Path):
    a = generate_dataset(tmp_path / "a", 25, seed=9, broken=6, image_size=(64, 48))
    b = generate_dataset(tmp_path / "b", 25, seed=9, broken=6, image_size=(64, 48))
    generate_dataset(tmp_path / "c", 25, seed=10, image_size=(64, 48))
    assert _digest(tmp_path / "a") == _digest(tmp_path / "b")
    assert {k: v for k, v in a.items() if k != "out"} == {k: v for k, v in b.items() if k != "out"}
    assert _digest(tmp_path / "a")[:5] != _digest(tmp_path / "c")[:5]


def test_reference_naming_captures_and_label_mix(generated, taxonomy):
    root, summary = generated
    names = [p.name for p in root.iterdir()]
    assert all(NAME.match(n) for n in names)
    images = [n for n in names if n.endswith(".jpg")]
    assert len(images) == summary["images"] == 150
    per_capture = Counter(NAME.match(n).group(1) for n in images)
    assert summary["captures"] == len(per_capture) and max(per_capture.values()) >= 3

    scan = read_dataset(root, taxonomy=taxonomy, group_by="capture")
    assert scan.problems == [] and len(scan.records) == 150
    assert len({r.group for r in scan.records}) == summary["captures"]
    label_images = Counter(k for r in scan.records for k in r.labels)
    assert dict(label_images) == summary["label_images"]
    assert set(label_images) == set(taxonomy.damage_ids)  # all eight damage types occur
    no_damage = sum(not r.labels for r in scan.records)
    assert no_damage == summary["no_damage"] and 0.08 <= no_damage / 150 <= 0.3
    assert sum(len(r.labels) > 1 for r in scan.records) >= 20  # multi-label images
    annotated = {
        n.replace("labelDANO_modificado.json", "imageDANO_original.jpg")
        for n in names
        if n.endswith(".json")
    }
    without_json = [n for n in images if n not in annotated]
    assert 0.05 <= len(without_json) / 150 <= 0.3


def _crop(record, defect) -> np.ndarray:
    with Image.open(record.image_path) as img:
        x0, y0, x1, y1 = (int(round(v)) for v in defect.bbox)
        return np.asarray(img.convert("RGB").crop((x0, y0, x1 + 1, y1 + 1)), dtype=float)


def test_damage_type_determines_appearance(generated, taxonomy):
    root, _ = generated
    scan = read_dataset(root, taxonomy=taxonomy)
    dark_share: dict[str, list[float]] = {}
    grey_share: dict[str, list[float]] = {}
    for record in scan.records:
        if len(record.labels) != 1:  # single-type images: no other damage drawn over the crop
            continue
        for defect in record.defects:
            crop = _crop(record, defect)
            dark_share.setdefault(defect.label, []).append(float((crop.max(axis=2) < 45).mean()))
            primer = np.abs(crop - np.array([196, 194, 186])).max(axis=2) < 25
            grey_share.setdefault(defect.label, []).append(float(primer.mean()))
    median = {k: float(np.median(v)) for k, v in dark_share.items()}
    # missing parts are dark holes: most of their box is near-black, unlike dents or scratches
    assert median["missing_part"] > 0.4
    assert median["missing_part"] > 3 * max(median["dent"], median["surface_scratch"])
    primer = {k: float(np.median(v)) for k, v in grey_share.items()}
    # peeled paint shows primer grey; nothing else on a (non-grey) panel does as much
    assert primer["paint_peeling"] > 0.15
    assert primer["paint_peeling"] > 2 * max(v for k, v in primer.items() if k != "paint_peeling")
