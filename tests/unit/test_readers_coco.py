from __future__ import annotations

import json
from pathlib import Path

from PIL import Image
from problems import assert_problems

from indexer.readers.dataset import detect_format, read_dataset
from indexer.readers.records import record_id


def _image(path: Path, size=(40, 30)) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.new("RGB", size, (10, 60, 10)).save(path)


def _coco(tmp_path: Path) -> Path:
    _image(tmp_path / "imgs" / "a_zona_2.jpg")
    _image(tmp_path / "imgs" / "b.jpg")
    _image(tmp_path / "imgs" / "c.jpg", size=(41, 30))
    _image(tmp_path / "imgs" / "d.jpg")
    data = {
        "images": [
            {"id": 1, "file_name": "imgs/a_zona_2.jpg", "width": 40, "height": 30},
            {"id": 2, "file_name": "imgs/b.jpg", "width": 40, "height": 30},
            {"id": 3, "file_name": "imgs/missing.jpg", "width": 40, "height": 30},
            {"id": 4, "file_name": "imgs/c.jpg", "width": 40, "height": 30},
            {"id": 5, "file_name": "imgs/d.jpg", "width": 40, "height": 30},
        ],
        "categories": [
            {"id": 1, "name": "scratch"},
            {"id": 2, "name": "dent"},
            {"id": 3, "name": "glass shatter"},
            {"id": 4, "name": "tyre flat"},
        ],
        "annotations": [
            # two polygon parts, one instance: area summed, bbox over both
            {
                "id": 10,
                "image_id": 1,
                "category_id": 2,
                "segmentation": [[0, 0, 10, 0, 0, 10], [20, 20, 24, 20, 24, 24, 20, 24]],
            },
            {"id": 11, "image_id": 1, "category_id": 1, "bbox": [1, 2, 3, 4]},
            {"id": 12, "image_id": 1, "category_id": 4, "bbox": [0, 0, 2, 2]},
            {"id": 13, "image_id": 1, "category_id": 1, "segmentation": [[0, 0, 5, 5]]},
            {"id": 14, "image_id": 99, "category_id": 1, "bbox": [0, 0, 1, 1]},
            # d.jpg's only annotation is broken: an annotation problem, not an undamaged photo
            {"id": 16, "image_id": 5, "category_id": 2, "segmentation": [[1, 1, 4, 4]]},
            {
                "id": 15,
                "image_id": 1,
                "category_id": 3,
                "segmentation": {"counts": "xyz", "size": [30, 40]},
                "bbox": [5, 5, 4, 4],
                "area": 9,
            },
        ],
    }
    path = tmp_path / "coco.json"
    path.write_text(json.dumps(data), "utf-8")
    return path


def test_coco_records_and_problems(tmp_path: Path, taxonomy):
    path = _coco(tmp_path)
    assert detect_format(path) == "coco"
    scan = read_dataset(path, taxonomy=taxonomy)
    assert scan.format == "coco" and scan.root == tmp_path.resolve()
    by_name = {r.image_path.name: r for r in scan.records}
    assert set(by_name) == {"a_zona_2.jpg", "b.jpg"}
    a = by_name["a_zona_2.jpg"]
    assert a.id == record_id("imgs/a_zona_2.jpg")
    assert a.zone == "hood_center"
    assert a.labels == {"surface_scratch": 1, "dent": 1, "crack": 1, "unknown": 1}
    dent = next(d for d in a.defects if d.label == "dent")
    assert dent.area == 50.0 + 16.0 and dent.bbox == (0.0, 0.0, 24.0, 24.0)
    crack = next(d for d in a.defects if d.label == "crack")
    assert crack.area == 9.0 and crack.bbox == (5.0, 5.0, 9.0, 9.0)  # RLE -> bbox + given area
    assert by_name["b.jpg"].labels == {}

    assert_problems(
        scan,
        {
            "coco.json": "'tyre flat' not in the taxonomy",
            "coco.json#annotation 13": "2 point(s)",
            "coco.json#annotation 14": "unknown image_id 99",
            "coco.json#annotation 16": "2 point(s)",
            "imgs/d.jpg": "annotation problem: none of its 1 annotation(s) is usable",
            "imgs/missing.jpg": "missing image",
            "imgs/c.jpg": "size mismatch",
        },
    )
    assert scan.coverage.as_dict()["unmapped_labels"] == {"tyre flat": 1}


def test_coco_images_dir(tmp_path: Path, taxonomy):
    path = _coco(tmp_path / "ann")
    (tmp_path / "ann" / "imgs").rename(tmp_path / "elsewhere")
    scan = read_dataset(path, taxonomy=taxonomy, images_dir=tmp_path / "elsewhere" / "..")
    assert len(scan.records) == 0  # file_names start with imgs/, which is not there
    (tmp_path / "elsewhere").rename(tmp_path / "imgs")
    scan = read_dataset(path, taxonomy=taxonomy, images_dir=tmp_path)
    assert sorted(r.image_path.name for r in scan.records) == ["a_zona_2.jpg", "b.jpg"]
