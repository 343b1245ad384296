from __future__ import annotations

import json
from pathlib import Path

import pytest
from PIL import Image, ImageFile

from indexer.analysis.summary import analyse, write_analysis
from indexer.readers.dataset import read_dataset


def _item(root: Path, stem: str, shapes: list[tuple[str, list]], size=(100, 100)) -> None:
    Image.new("RGB", size, (90, 90, 90)).save(root / f"{stem}.jpg")
    if shapes:
        data = {
            "imagePath": f"{stem}.jpg",
            "imageWidth": size[0],
            "imageHeight": size[1],
            "shapes": [{"label": lb, "points": pts, "shape_type": "polygon"} for lb, pts in shapes],
        }
        (root / f"{stem}.json").write_text(json.dumps(data), "utf-8")


def _square(x: float, y: float, side: float) -> list:
    return [[x, y], [x + side, y], [x + side, y + side], [x, y + side]]


@pytest.fixture
def hand_made(tmp_path: Path) -> Path:
    root = tmp_path / "ds"
    root.mkdir()
    scratch = [[0, 0], [10, 0], [0, 10]]  # area 50 = 0.5% of 100x100: the "small" boundary
    _item(root, "a_zona_5", [("1", scratch), ("1", scratch), ("2", _square(0, 0, 20))])
    _item(root, "b_zona_5", [("5", _square(0, 0, 60))])  # 36%: large
    _item(root, "c_zona_2", [], size=(200, 100))  # no annotation: no damage
    _item(root, "d", [("1", [[0, 0], [2, 0], [0, 2]]), ("99", _square(0, 0, 70.71))])
    (root / "e.json").write_text("{not json", "utf-8")
    Image.new("RGB", (100, 100)).save(root / "e.jpg")
    return root


def test_analysis_numbers_on_a_hand_made_dataset(hand_made: Path, taxonomy):
    scan = read_dataset(hand_made, taxonomy=taxonomy)
    report = analyse(scan, taxonomy=taxonomy)

    ds = report["dataset"]
    assert (ds["images"], ds["images_with_damage"], ds["images_without_damage"]) == (4, 3, 1)
    assert ds["defects"] == 6 and ds["problems"] == 2  # the broken JSON, the label "99"

    dpi = report["defects_per_image"]  # [3, 1, 0, 2]
    assert dpi["mean"] == 1.5 and dpi["median"] == 1.5 and dpi["min"] == 0 and dpi["max"] == 3
    assert dpi["std"] == pytest.approx(1.118034, abs=1e-6)
    assert dpi["histogram"] == {"0": 1, "1": 1, "2": 1, "3": 1}

    labels = report["labels"]
    assert (labels["surface_scratch"]["images"], labels["surface_scratch"]["instances"]) == (2, 3)
    assert labels["surface_scratch"]["instance_share"] == 0.5
    assert (labels["dent"]["images"], labels["crack"]["images"]) == (1, 1)
    assert labels["unknown"]["instances"] == 1 and labels["no_damage"]["images"] == 1
    assert labels["paint_peeling"]["images"] == 0  # absent labels are listed, with zero

    zones = report["zones"]
    assert zones["rear_bumper"]["images"] == 2 and zones["rear_bumper"]["instances"] == 4
    assert zones["rear_bumper"]["top_labels"][0] == {"label": "surface_scratch", "instances": 2}
    assert zones["hood_center"]["images"] == 1 and zones["unknown"]["images"] == 1

    co = report["cooccurrence"]
    idx = {k: i for i, k in enumerate(co["labels"])}
    assert co["matrix"][idx["surface_scratch"]][idx["surface_scratch"]] == 2
    assert co["matrix"][idx["surface_scratch"]][idx["dent"]] == 1
    assert co["matrix"][idx["surface_scratch"]][idx["unknown"]] == 1
    assert co["matrix"][idx["dent"]][idx["crack"]] == 0

    density = report["density"]  # damaged images have 3, 1, 2 defects
    assert density["thresholds"] == pytest.approx([5 / 3, 7 / 3], abs=1e-6)
    assert density["buckets"] == {"low": 1, "medium": 1, "high": 1}

    area = report["relative_area"]["buckets"]
    assert area == {"very_small": 1, "small": 2, "medium": 1, "large": 2}

    sizes = report["image_sizes"]
    assert sizes["distinct"] == 2
    assert sizes["most_common"][0] == {"width": 100, "height": 100, "images": 3}

    imbalance = report["imbalance"]
    assert imbalance["ratio_instances"] == 3.0 and imbalance["ratio_images"] == 2.0
    assert imbalance["most_frequent"] == "surface_scratch"
    assert "paint_peeling" in imbalance["absent"] and "unknown" not in imbalance["absent"]

    assert report["coverage"]["unmapped_labels"] == {"99": 1}
    assert report["problems"]["by_kind"] == {"unknown_label": 1, "unparsable": 1}
    assert [p["file"] for p in report["problems"]["items"]] == ["d.json", "e.json"]


def test_write_analysis_files(hand_made: Path, taxonomy, tmp_path: Path):
    report = analyse(read_dataset(hand_made, taxonomy=taxonomy), taxonomy=taxonomy)
    paths = write_analysis(report, tmp_path / "out")
    assert json.loads(paths["json"].read_text("utf-8")) == report
    md = paths["markdown"].read_text("utf-8")
    assert "**4 images**" in md and "| surface_scratch | Surface scratch | 2 |" in md
    assert "`99` (1)" in md and "e.json" in md
    pngs = sorted(p.name for p in (tmp_path / "out").glob("*.png"))
    assert pngs == [
        "cooccurrence.png",
        "defects_per_image.png",
        "labels.png",
        "relative_area.png",
        "zones.png",
    ]
    for name in pngs:
        assert f"]({name})" in md
        with Image.open(tmp_path / "out" / name) as img:
            assert img.size[0] > 100


def test_reading_and_analysis_never_decode_pixels(hand_made: Path, taxonomy, monkeypatch):
    def refuse(self):
        raise AssertionError("pixels decoded")

    monkeypatch.setattr(ImageFile.ImageFile, "load", refuse)
    report = analyse(read_dataset(hand_made, taxonomy=taxonomy), taxonomy=taxonomy)
    assert report["dataset"]["images"] == 4


def test_an_image_with_only_an_invalid_polygon_is_an_annotation_problem(
    hand_made: Path, taxonomy, tmp_path: Path
):
    """Analysis and split skip it with the reason; neither counts it as an undamaged image."""
    from indexer.split.splitter import split_files

    _item(hand_made, "f_zona_1", [("2", [[0, 0], [9, 9]])])  # a dent drawn with two points
    report = analyse(read_dataset(hand_made, taxonomy=taxonomy), taxonomy=taxonomy)
    ds = report["dataset"]
    assert (ds["images"], ds["images_without_damage"]) == (4, 1)
    assert report["problems"]["by_kind"]["unusable_annotation"] == 1
    listed = [p for p in report["problems"]["items"] if "annotation problem" in p["reason"]]
    assert [p["file"] for p in listed] == ["f_zona_1.json"] and "f_zona_1.jpg" in listed[0][
        "reason"
    ]

    _, paths, scan = split_files(hand_made, tmp_path / "split", taxonomy=taxonomy)
    written = paths["train"].read_text("utf-8") + paths["test"].read_text("utf-8")
    assert "a_zona_5.jpg" in written and "f_zona_1.jpg" not in written
    assert any("f_zona_1.jpg skipped" in p.reason for p in scan.problems)
