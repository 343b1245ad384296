from __future__ import annotations

import json
from pathlib import Path

from PIL import Image
from problems import assert_problems
from readback import assert_same_records

from indexer.readers.dataset import detect_format, read_dataset
from indexer.readers.jsonl import write_jsonl
from indexer.synthetic.generator import generate_dataset


def _image(path: Path, size=(40, 30)) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.new("RGB", size, (10, 10, 60)).save(path)
    return path


def test_jsonl_manifest_fields_and_problems(tmp_path: Path, taxonomy):
    _image(tmp_path / "img" / "a_zona_9.jpg")
    absolute = _image(tmp_path / "other" / "b.jpg")
    _image(tmp_path / "img" / "c.jpg")
    _image(tmp_path / "img" / "d.jpg")
    lines = [
        {"image": "img/a_zona_9.jpg", "labels": ["dent", "Dent", "scratch"]},
        {
            "image": str(absolute),
            "labels": {"Grieta": 2, "99": 1},
            "zone": "hood center",
            "group": "car-1",
            "id": "bee",
            "description": "custom text",
        },
        "this is not json",
        {"labels": ["dent"]},
        {"image": "img/missing.jpg"},
        {"image": "img/c.jpg", "width": 41, "height": 30},
        {"image": "img/d.jpg", "labels": ["no damage"], "width": 40, "height": 30, "claim": "C-7"},
    ]
    manifest = tmp_path / "m.jsonl"
    manifest.write_text(
        "\n".join(x if isinstance(x, str) else json.dumps(x) for x in lines) + "\n\n", "utf-8"
    )
    assert detect_format(manifest) == "jsonl"
    scan = read_dataset(manifest, taxonomy=taxonomy)
    by_name = {r.image_path.name: r for r in scan.records}
    assert set(by_name) == {"a_zona_9.jpg", "b.jpg", "d.jpg"}
    a = by_name["a_zona_9.jpg"]
    assert a.labels == {"dent": 2, "surface_scratch": 1}
    assert a.zone == "passenger_side_door" and a.group == a.id and a.width == 40
    b = by_name["b.jpg"]
    assert b.id == "bee" and b.group == "car-1" and b.zone == "hood_center"
    assert b.labels == {"crack": 2, "unknown": 1} and b.description == "custom text"
    assert b.image_path == absolute.resolve()
    assert by_name["d.jpg"].labels == {}
    assert by_name["d.jpg"].group == "C-7"  # a claim's photos are one group

    assert_problems(
        scan,
        {
            "m.jsonl:2": "'99' not in the taxonomy",
            "m.jsonl:3": "does not parse",
            "m.jsonl:4": "no 'image'",
            "m.jsonl:5": "missing image",
            "m.jsonl:6": "size mismatch",
        },
    )

    # the catalogue keeps a given description (that text is what gets embedded), else the template
    from indexer.index.catalogue import catalogue_items
    from models.description import describe

    items = {it.id: it for it in catalogue_items(scan.records, taxonomy, root=tmp_path)}
    assert items["bee"].description == "custom text"
    assert items[a.id].description == describe(a.labels, a.zone, taxonomy)

    # an explicit group_by overrides the manifest's group
    regrouped = read_dataset(manifest, taxonomy=taxonomy, group_by="folder")
    assert {r.image_path.name: r.group for r in regrouped.records}["b.jpg"] == "other"


def test_written_jsonl_reads_back_to_the_same_records(tmp_path: Path, taxonomy):
    generate_dataset(tmp_path / "ds", 30, seed=1, broken=6, image_size=(64, 48))
    scan = read_dataset(tmp_path / "ds", taxonomy=taxonomy, group_by="capture")
    out = tmp_path / "out" / "all.jsonl"
    out.parent.mkdir()
    write_jsonl(scan.records, out)
    again = read_dataset(out, taxonomy=taxonomy)
    assert again.problems == []
    assert_same_records(again.records, scan.records)
    assert any(r.labels.get("unknown") for r in again.records)
