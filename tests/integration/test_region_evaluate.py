"""`visrag evaluate --unit region` end to end on a generated dataset with the tiny DINOv3: the
regions as queries beside their photos' whole-image vectors, localisation, and `--regions crops`."""

from __future__ import annotations

import json

import numpy as np
import pytest
from cli_runs import build_args, invoke

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def synthetic(tmp_path_factory):
    from indexer.synthetic.generator import generate_dataset
    from models.testing import make_tiny_dinov3

    root = tmp_path_factory.mktemp("region-eval")
    data, model = root / "data", root / "tiny-dinov3"
    generate_dataset(data, 24, seed=1, image_size=(160, 120))
    make_tiny_dinov3(model)
    invoke("split", str(data), "--out", str(root / "split"), "--seed", "0")
    invoke(*build_args(root / "split" / "train.jsonl", root / "art", model))
    return root, model


def _evaluate(root, model, out, *extra, artifacts="art"):
    return invoke(
        "evaluate",
        "--artifacts",
        str(root / artifacts),
        "--out",
        str(root / out),
        "--unit",
        "region",
        "--k",
        "1,3",
        "--random-repeats",
        "2",
        "--bootstrap",
        "50",
        "--device",
        "cpu",
        "--image-model",
        str(model),
        *extra,
    )


def test_leave_one_out_regions_beside_the_whole_image_baseline(synthetic):
    from indexer.index.artifacts import load_artifacts

    root, model = synthetic
    _evaluate(root, model, "loo", "--leave-one-out")
    data = json.loads((root / "loo" / "metrics.json").read_text())
    table = load_artifacts(root / "art").regions
    assert table is not None
    # every indexed region is a query, answered by regions and by its photo's image vector
    assert data["setting"]["queries"] == len(table) > 0
    assert [r["name"] for r in data["runs"]] == ["image", "region"]
    assert data["warnings"][0].startswith("THE IMAGE MODEL HAS RANDOM WEIGHTS")
    items = {it.id: it for it in load_artifacts(root / "art").items}
    region_item = {r.id: items_row for r, items_row in ((r, r.item) for r in table.regions)}
    groups = {it.row: it.group for it in items.values()}
    for q in data["runs"][1]["queries"]:
        # leave-one-photo-out: no neighbour region from the query's own photo (or group)
        own = groups[region_item[q["id"]]]
        assert all(groups[region_item[n["id"]]] != own for n in q["neighbours"])
        assert len(q["neighbours"]) == 3
    for q in data["runs"][0]["queries"]:
        assert all(n["id"] in items for n in q["neighbours"])
    # the intervals compare the region run with the whole-image run
    assert any(
        c["run"] == "region" and c["versus"] == "image" for c in data["uncertainty"]["comparisons"]
    )
    loc = data["localisation"]
    assert loc["photos"] > 0 and 0.0 <= loc["pointing"]["mean"] <= 1.0
    assert 0.0 < loc["chance"]["mean"] < 0.5
    summary = (root / "loo" / "summary.md").read_text()
    assert "| metric | image | region | majority | random |" in summary
    # the verdict speaks of what a region is queried by, not of retrieval modes
    verdict = next(line for line in summary.splitlines() if "Verdict:" in line)
    assert "mode" not in verdict and "region" in verdict
    assert "pointing game (peak inside a true polygon)" in summary
    assert "pointing game" in (root / "loo" / "report.html").read_text()


def test_held_out_regions_are_pooled_from_the_test_photos(synthetic):
    from indexer.readers.dataset import read_dataset
    from models.taxonomy import load_taxonomy

    root, model = synthetic
    _evaluate(root, model, "held", "--queries", str(root / "split" / "test.jsonl"))
    data = json.loads((root / "held" / "metrics.json").read_text())
    records = read_dataset(
        root / "split" / "test.jsonl", taxonomy=load_taxonomy(None), format="jsonl"
    ).records
    ids = {q["id"] for q in data["runs"][1]["queries"]}
    # one query per test defect (and cluster), named after its photo
    assert sum(len(r.defects) for r in records) <= len(ids)
    assert {i.split("#")[0] for i in ids} == {r.id for r in records if r.defects}
    assert data["setting"]["protocol"] == "held-out photos' regions"
    assert data["localisation"]["photos"] == sum(1 for r in records if r.defects)


def _words(output: str) -> str:
    """The error text without the box rich draws around it."""
    return " ".join(output.replace("│", " ").split())


def test_region_unit_refuses_modes_and_indexes_without_regions(synthetic):
    from typer.testing import CliRunner

    from indexer.cli.main import cli

    root, model = synthetic
    common = ["--out", str(root / "x"), "--unit", "region", "--leave-one-out", "--device", "cpu"]
    bad = CliRunner().invoke(
        cli, ["evaluate", "--artifacts", str(root / "art"), *common, "--mode", "rerank"]
    )
    assert bad.exit_code == 2 and "takes no" in _words(bad.output)
    invoke(*build_args(root / "split" / "train.jsonl", root / "plain", model, "--regions", "none"))
    plain = CliRunner().invoke(cli, ["evaluate", "--artifacts", str(root / "plain"), *common])
    assert plain.exit_code == 2 and "has no region table" in _words(plain.output)


def test_crop_regions_are_reencoded_crops(synthetic):
    from PIL import Image

    from indexer.build.crops import crop_box
    from indexer.index.artifacts import load_artifacts
    from models.image_encoder import load_image_encoder

    root, model = synthetic
    invoke(*build_args(root / "split" / "train.jsonl", root / "crops", model, "--regions", "crops"))
    a = load_artifacts(root / "crops")
    patches = load_artifacts(root / "art")
    assert a.manifest.regions is not None and a.manifest.regions.kind == "crops"
    assert a.manifest.regions.dim == a.manifest.image_model.dim
    # the same regions as the pooled build, other vectors: each one its crop's image vector
    assert [r.id for r in a.regions.regions] == [r.id for r in patches.regions.regions]
    region = a.regions.regions[0]
    item = a.items[region.item]
    with Image.open(a.image_file(item)) as image:
        crop = image.convert("RGB").crop(crop_box(region.box, image.size))
    encoder = load_image_encoder(str(model), device="cpu", image_size=64)
    np.testing.assert_allclose(encoder.encode([crop])[0], a.regions.vectors[0], atol=1e-5)
    _evaluate(root, model, "crops-eval", "--leave-one-out", artifacts="crops")
    data = json.loads((root / "crops-eval" / "metrics.json").read_text())
    assert data["setting"]["region_kind"] == "crops"
    assert data["localisation"] is None  # the heatmap needs patch regions
