from __future__ import annotations

import json
from pathlib import Path

import pytest
from PIL import Image

import indexer.readers.labelme as labelme_module
from indexer.readers.dataset import read_dataset
from indexer.readers.naming import GroupByError
from indexer.readers.records import record_id
from indexer.readers.scan import DatasetError
from indexer.synthetic.generator import generate_dataset

REF = "zona1_ok_2_3_1555327199894_zona_5"


def _image(path: Path, size: tuple[int, int] = (40, 30)) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.new("RGB", size, (120, 20, 20)).save(path)
    return path


def _labelme(path: Path, image_name: str, shapes: list[dict], size=(40, 30)) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    data = {
        "shapes": shapes,
        "imagePath": image_name,
        "imageWidth": size[0],
        "imageHeight": size[1],
    }
    path.write_text(json.dumps(data), "utf-8")
    return path


def _poly(label: str, points, kind: str = "polygon") -> dict:
    return {"label": label, "points": points, "shape_type": kind}


TRIANGLE = [[0, 0], [10, 0], [0, 10]]


@pytest.fixture
def small_dataset(tmp_path: Path) -> Path:
    root = tmp_path / "ds"
    # reference scheme, two scratches and a dent (rectangle 4x5 -> area 20)
    _image(root / f"{REF}_imageDANO_original.jpg")
    _labelme(
        root / f"{REF}_labelDANO_modificado.json",
        f"{REF}_imageDANO_original.jpg",
        [
            _poly("1", TRIANGLE),
            _poly("1", TRIANGLE),
            _poly("2", [[2, 3], [6, 8]], kind="rectangle"),
        ],
    )
    # plain scheme in a sub-folder, zone 7, Spanish label
    _image(root / "sub" / "car_zona_7.jpg")
    _labelme(root / "sub" / "car_zona_7.json", "car_zona_7.jpg", [_poly("Grieta", TRIANGLE)])
    # no annotation file at all, and an annotation with no shapes: both "no damage"
    _image(root / "sub" / "clean_zona_2.png")
    _image(root / "empty.jpg")
    _labelme(root / "empty.json", "empty.jpg", [])
    return root


def test_reads_both_naming_schemes_recursively(small_dataset: Path, taxonomy):
    scan = read_dataset(small_dataset, taxonomy=taxonomy)
    assert scan.format == "labelme"
    assert scan.problems == []
    by_name = {r.image_path.name: r for r in scan.records}
    assert set(by_name) == {
        f"{REF}_imageDANO_original.jpg",
        "car_zona_7.jpg",
        "clean_zona_2.png",
        "empty.jpg",
    }
    ref = by_name[f"{REF}_imageDANO_original.jpg"]
    assert ref.labels == {"surface_scratch": 2, "dent": 1}
    assert ref.zone == "rear_bumper"  # from zona_5, not from the "zona1" prefix
    assert ref.id == record_id(f"{REF}_imageDANO_original.jpg")
    assert ref.group == ref.id
    assert (ref.width, ref.height) == (40, 30)
    assert ref.description == "2 surface scratches and 1 dent on the rear bumper (rear area)"
    dent = next(d for d in ref.defects if d.label == "dent")
    assert dent.raw_label == "2"
    assert dent.area == 20.0 and dent.bbox == (2.0, 3.0, 6.0, 8.0) and len(dent.polygon) == 4
    scratch = next(d for d in ref.defects if d.label == "surface_scratch")
    assert scratch.area == 50.0

    plain = by_name["car_zona_7.jpg"]
    assert plain.id == record_id("sub/car_zona_7.jpg")
    assert plain.labels == {"crack": 1} and plain.zone == "driver_side_door"
    assert by_name["clean_zona_2.png"].labels == {}
    assert by_name["clean_zona_2.png"].zone == "hood_center"
    assert by_name["empty.jpg"].labels == {} and by_name["empty.jpg"].zone == "unknown"
    assert by_name["empty.jpg"].description.startswith("no visible damage")
    assert [r.id for r in scan.records] == sorted(r.id for r in scan.records)
    assert scan.coverage.as_dict()["unmapped"] == 0


def test_broken_inputs_are_reported_and_the_run_continues(small_dataset: Path, taxonomy):
    root = small_dataset
    _image(root / "bad_json.jpg")
    (root / "bad_json.json").write_text('{"shapes": [', "utf-8")
    _labelme(root / "orphan.json", "orphan.jpg", [_poly("1", TRIANGLE)])
    _image(root / "short.jpg")
    _labelme(root / "short.json", "short.jpg", [_poly("1", [[0, 0], [5, 5]]), _poly("4", TRIANGLE)])
    _image(root / "odd.jpg")
    _labelme(root / "odd.json", "odd.jpg", [_poly("99", TRIANGLE)])
    _image(root / "big.jpg", size=(50, 30))
    _labelme(root / "big.json", "big.jpg", [_poly("1", TRIANGLE)], size=(40, 30))
    cut = root / "cut.jpg"
    Image.effect_noise((64, 48), 60).convert("RGB").save(cut)  # pixel data well past the header
    cut.write_bytes(cut.read_bytes()[:-200])

    scan = read_dataset(root, taxonomy=taxonomy)
    reasons = {p.file: p.reason for p in scan.problems}
    assert "JSON does not parse" in reasons["bad_json.json"]
    assert "missing image" in reasons["orphan.json"]
    assert "2 point(s)" in reasons["short.json"]
    assert "'99' not in the taxonomy" in reasons["odd.json"]
    assert "size mismatch" in reasons["big.json"] and "50x30" in reasons["big.json"]
    assert "truncated JPEG" in reasons["cut.jpg"]
    assert len(scan.problems) == 6

    names = {r.image_path.name: r for r in scan.records}
    # the run continued: the good records are all there
    assert {f"{REF}_imageDANO_original.jpg", "car_zona_7.jpg", "empty.jpg"} <= set(names)
    # an unparsable annotation does not turn its image into a "no damage" record
    assert "bad_json.jpg" not in names and "big.jpg" not in names and "cut.jpg" not in names
    assert names["short.jpg"].labels == {"deep_scratch": 1}  # only the bad shape was dropped
    assert names["odd.jpg"].labels == {"unknown": 1}
    assert scan.coverage.as_dict()["unmapped_labels"] == {"99": 1}


def test_an_image_whose_only_polygon_is_invalid_is_skipped_not_undamaged(
    small_dataset: Path, taxonomy
):
    root = small_dataset
    _image(root / "broken_zona_3.jpg")
    _labelme(root / "broken_zona_3.json", "broken_zona_3.jpg", [_poly("2", [[0, 0], [5, 5]])])
    _image(root / "weird.jpg")
    _labelme(root / "weird.json", "weird.jpg", [_poly("1", [[1, 1]], kind="point"), "x"])

    scan = read_dataset(root, taxonomy=taxonomy)
    names = {r.image_path.name for r in scan.records}
    assert "broken_zona_3.jpg" not in names and "weird.jpg" not in names
    assert "empty.jpg" in names  # an annotation with no shapes at all is still "no damage"
    reasons = [p.reason for p in scan.problems if p.file == "broken_zona_3.json"]
    assert any("2 point(s)" in r for r in reasons)  # why the shape is unusable
    assert any(
        "annotation problem" in r and "broken_zona_3.jpg skipped" in r and "no damage" in r
        for r in reasons
    )
    assert any(
        "none of its 2 shape(s)" in p.reason for p in scan.problems if p.file == "weird.json"
    )


def test_generated_broken_inputs_are_all_reported(tmp_path: Path, taxonomy):
    summary = generate_dataset(tmp_path / "gen", 12, seed=3, broken=6, image_size=(64, 48))
    scan = read_dataset(tmp_path / "gen", taxonomy=taxonomy)
    reported = {p.file for p in scan.problems}
    assert {b["file"] for b in summary["broken"]} == reported
    assert len(scan.records) == summary["records_expected"] == 14


def test_output_does_not_depend_on_listing_order(small_dataset: Path, taxonomy, monkeypatch):
    first = read_dataset(small_dataset, taxonomy=taxonomy)
    real_walk = labelme_module.os.walk

    def reversed_walk(top):
        for folder, dirs, files in list(real_walk(top))[::-1]:
            dirs.reverse()
            yield folder, dirs, files[::-1]

    monkeypatch.setattr(labelme_module.os, "walk", reversed_walk)
    second = read_dataset(small_dataset, taxonomy=taxonomy)
    assert first.records == second.records


def test_group_by_capture_regex_and_folder(tmp_path: Path, taxonomy):
    root = tmp_path / "ds"
    for zone in (1, 2):
        _image(root / "a" / f"zona1_ok_2_3_1555327199894_zona_{zone}_imageDANO_original.jpg")
    _image(root / "a" / "zona1_ok_2_3_1555999999999_zona_3_imageDANO_original.jpg")
    _image(root / "b" / "no_capture_here.jpg")

    scan = read_dataset(root, taxonomy=taxonomy, group_by="capture")
    groups = {r.image_path.name: r.group for r in scan.records}
    assert groups["zona1_ok_2_3_1555327199894_zona_1_imageDANO_original.jpg"] == (
        "capture-1555327199894"
    )
    assert len(set(groups.values())) == 3
    assert scan.ungrouped == 1  # the image without a capture id is a group of its own

    by_folder = read_dataset(root, taxonomy=taxonomy, group_by="folder")
    assert sorted({r.group for r in by_folder.records}) == ["a", "b"]
    by_regex = read_dataset(root, taxonomy=taxonomy, group_by=r"zona_(\d+)")
    assert {r.group for r in by_regex.records} >= {"1", "2", "3"}
    with pytest.raises(GroupByError):
        read_dataset(root, taxonomy=taxonomy, group_by=r"(a)(b)")


def test_missing_dataset_raises(tmp_path: Path, taxonomy):
    with pytest.raises(DatasetError, match="does not exist"):
        read_dataset(tmp_path / "nope", taxonomy=taxonomy)
