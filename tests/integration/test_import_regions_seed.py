"""The shared real DINOv3 seed crops imported as regions of their 20 source photos, and
`visrag evaluate --unit region` on them (leave-one-photo-out, region-to-region)."""

from __future__ import annotations

import json
from collections import defaultdict

import numpy as np
import pytest
from test_evaluate_seed import SEED_CROPS, HashTextEncoder
from typer.testing import CliRunner

pytestmark = pytest.mark.skipif(
    not (SEED_CROPS / "embeddings.npy").is_file(), reason="shared seed crops not present"
)


@pytest.fixture(scope="module")
def seed_regions(tmp_path_factory):
    from indexer.build.importing import import_regions
    from models.taxonomy import load_taxonomy

    out = tmp_path_factory.mktemp("seed-regions") / "art"
    import_regions(
        SEED_CROPS / "embeddings.npy",
        SEED_CROPS / "metadata.json",
        out,
        taxonomy=load_taxonomy(None),
        text_encoder=HashTextEncoder(),
    )
    return out


def test_photos_become_items_and_crops_their_regions(seed_regions):
    from indexer.index.artifacts import load_artifacts
    from indexer.index.verification import verify_artifacts

    assert all(ok for _, ok, _ in verify_artifacts(seed_regions))
    a = load_artifacts(seed_regions)
    meta = json.loads((SEED_CROPS / "metadata.json").read_text())
    vectors = np.load(SEED_CROPS / "embeddings.npy")
    vectors /= np.linalg.norm(vectors, axis=1, keepdims=True)  # the regions' unit vectors
    by_photo = defaultdict(list)
    for row, entry in enumerate(meta):
        by_photo[entry["source_image"]].append(row)
    assert len(a.items) == len(by_photo) == 20
    assert a.regions is not None and len(a.regions) == len(meta) == 239
    assert a.manifest.regions.kind == "imported" and a.manifest.regions.dim == 1024
    assert "mean of the photo's imported crop vectors" in a.manifest.dataset["item_vectors"]
    crops = {r.id: r for r in a.regions.regions}
    for item in a.items:
        rows = by_photo[item.image]
        # the item vector is the normalised mean of its crops' unit vectors, recorded as such
        mean = vectors[rows].mean(axis=0)
        np.testing.assert_allclose(
            a.image_vectors[item.row], mean / np.linalg.norm(mean), atol=1e-5
        )
        # labels: the union of its crops' labels; every crop a region of this photo
        union = {t for i in rows for t in meta[i]["damage_types"]} - {"no_damage"}
        assert set(item.labels) == union
        for i in rows:
            region = crops[meta[i]["crop_id"]]
            assert region.item == item.row
            x0, y0, x1, y1 = meta[i]["cluster_bbox"]
            assert region.box == (x0, y0, x1 - x0, y1 - y0)
        assert item.defects["size"] == meta[rows[0]]["source_image_size"]


def test_leave_one_photo_out_region_to_region(seed_regions, tmp_path):
    from indexer.cli.main import cli

    out = tmp_path / "eval"
    args = ["evaluate", "--artifacts", str(seed_regions), "--out", str(out), "--unit", "region"]
    result = CliRunner().invoke(cli, [*args, "--leave-one-out", "--bootstrap", "100"])
    assert result.exit_code == 0, result.output
    data = json.loads((out / "metrics.json").read_text())
    assert [r["name"] for r in data["runs"]] == ["region"]  # no whole-image vectors to compare
    assert data["localisation"] is None
    assert data["setting"]["queries"] == 239
    metrics = data["runs"][0]["metrics"]
    # the figures the data's README gives for leave-one-out by source_image (DINOv3 crops)
    assert metrics["recall@1"] == pytest.approx(0.766, abs=0.0015)
    assert metrics["label_recall_macro@1"] == pytest.approx(0.140, abs=0.0015)
    assert data["baselines"]["majority"]["metrics"]["recall@1"] == pytest.approx(0.841, abs=0.0015)
    held = CliRunner().invoke(cli, [*args, "--queries", str(SEED_CROPS / "metadata.json")])
    assert held.exit_code == 2 and "--leave-one-out" in held.output
