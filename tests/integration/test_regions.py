"""Damage regions end to end on the tiny random DINOv3 (real transformers, real FAISS): the region
table a build writes, region queries and "where is the damage" on a planted region, and the
table through add / remove / tamper / the embedding cache.

The tiny model's CLS token tells photos apart poorly, but its pooled patch tokens carry the
pixels of the patches they pool: a region's pixels pasted elsewhere are found again.
"""

from __future__ import annotations

import shutil

import numpy as np
import pytest
from PIL import Image
from planted_regions import build_synthetic, is_or_holds, largest_single_regions, planted

N_IMAGES = 24
SIZE = (320, 240)
IMAGE_SIZE = 224


@pytest.fixture(scope="module")
def built(tmp_path_factory, tiny_dinov3, text_encoder, taxonomy):
    root = tmp_path_factory.mktemp("regions")
    encoder, report = build_synthetic(
        root,
        tiny_dinov3,
        text_encoder,
        taxonomy,
        n=N_IMAGES,
        seed=0,
        size=SIZE,
        image_size=IMAGE_SIZE,
    )
    return root, encoder, report


@pytest.fixture(scope="module")
def retriever(built, text_encoder, taxonomy):
    from indexer.index.artifacts import load_artifacts
    from indexer.retrieval.retriever import Retriever

    root, encoder, _ = built
    artifacts = load_artifacts(root / "art")
    return Retriever(artifacts, image_encoder=encoder, text_encoder=text_encoder, taxonomy=taxonomy)


def test_a_build_writes_one_region_per_polygon_and_per_cluster(built):
    from indexer.index.artifacts import load_artifacts

    root, encoder, report = built
    artifacts = load_artifacts(root / "art")
    table = artifacts.regions
    assert table is not None and report.manifest.regions is not None
    polygons = sum(len(it.defects.get("shapes", [])) for it in artifacts.items)
    singles = [r for r in table.regions if r.members == 1]
    clusters = [r for r in table.regions if r.members > 1]
    assert len(singles) == polygons and clusters  # the synthetic photos have near defects
    assert table.vectors.shape == (len(table), encoder.hidden_size)
    np.testing.assert_allclose(np.linalg.norm(table.vectors, axis=1), 1.0, atol=1e-5)
    for region in table.regions:
        item = artifacts.items[region.item]
        assert region.id.startswith(item.id + "#")
        assert set(region.labels) <= set(item.labels)
    section = report.manifest.regions
    assert section.kind == "patches" and section.count == len(table)
    assert {"regions.sqlite", "region_vectors.npy", "region.faiss"} <= set(report.manifest.files)
    calibration = section.calibration
    assert calibration["threshold"] is not None and calibration["inside"] > 0


def _planted(artifacts, region):
    return planted(artifacts, region, SIZE, IMAGE_SIZE)


def test_the_heatmap_peaks_on_a_planted_region_and_finds_its_photo(retriever):
    artifacts = retriever.artifacts
    for region in largest_single_regions(artifacts, 5):
        photo, (bx, by, bw, bh), _ = _planted(artifacts, region)
        heat = retriever.retrieve(photo, k=3, heatmap=True).heatmap
        assert heat is not None and len(heat.scores) == heat.rows * heat.cols
        px, py = heat.peak
        assert bx <= px <= bx + bw and by <= py <= by + bh, region.id
        assert heat.areas, region.id
        strongest = heat.areas[0]
        ax, ay, aw, ah = strongest.box
        assert ax < bx + bw and bx < ax + aw and ay < by + bh and by < ay + ah, region.id
        photo_id = artifacts.items[region.item].id
        assert photo_id in [hit.item for hit in strongest.neighbours], region.id
        assert strongest.votes and strongest.position.en.endswith("of the photo")


def test_a_region_query_over_the_planted_place_returns_that_region_first(retriever):
    artifacts = retriever.artifacts
    for region in largest_single_regions(artifacts, 5):
        photo, _, polygon = _planted(artifacts, region)
        answer = retriever.retrieve(photo, k=3, region=polygon).region
        assert answer is not None and len(answer.hits) == 3
        top = answer.hits[0]
        assert is_or_holds(top.id, top.item, top.box, region, artifacts), (region.id, top.id)
        assert answer.hits[0].labels and answer.hits[0].score > answer.hits[-1].score - 1e-6


def test_a_region_outside_the_photo_is_a_clear_error(retriever):
    from indexer.query import QueryError

    photo = Image.new("RGB", SIZE, (128, 128, 128))
    with pytest.raises(QueryError, match="outside"):
        retriever.retrieve(photo, region=((400, 10), (420, 10), (420, 30), (400, 30)))


def test_regions_follow_their_items_through_remove_and_add(built, tmp_path, text_encoder, taxonomy):
    from indexer.build.pipeline import add_records, read_new_records, remove_items
    from indexer.index.artifacts import load_artifacts
    from indexer.readers.dataset import read_dataset
    from indexer.retrieval.opening import OpenedIndex

    root, encoder, _ = built
    art = tmp_path / "art"
    shutil.copytree(root / "art", art)
    before = load_artifacts(art)
    gone = next(it for it in before.items if it.defects.get("shapes"))
    by_id = {r.id: v for r, v in zip(before.regions.regions, before.regions.vectors, strict=True)}
    remove_items(art, [gone.id])
    after = load_artifacts(art)
    assert not [r for r in after.regions.regions if r.id.startswith(gone.id + "#")]
    assert len(after.regions) == len(before.regions) - len(before.regions.of_items([gone.row]))
    for region, vector in zip(after.regions.regions, after.regions.vectors, strict=True):
        assert region.id.startswith(after.items[region.item].id + "#")  # rows renumbered
        np.testing.assert_array_equal(vector, by_id[region.id])
    assert not np.isin(after.regions.background.items, [len(after.items)]).any()

    # the removed photo comes back through `index add`: its regions are pooled again
    record = next(
        r for r in read_dataset(root / "data", taxonomy=taxonomy).records if r.id == gone.id
    )
    opened = OpenedIndex(after, encoder, text_encoder, taxonomy)
    add_records(opened, read_new_records(after, [record], taxonomy), progress=False)
    again = load_artifacts(art)
    back = {r.id: v for r, v in zip(again.regions.regions, again.regions.vectors, strict=True)}
    assert set(back) == set(by_id)
    for region_id, vector in by_id.items():
        np.testing.assert_allclose(back[region_id], vector, atol=1e-5)


def test_a_tampered_region_file_is_refused(built, tmp_path):
    from indexer.errors import ChecksumError
    from indexer.index.artifacts import load_artifacts

    root, _, _ = built
    art = tmp_path / "art"
    shutil.copytree(root / "art", art)
    vectors = np.load(art / "region_vectors.npy")
    vectors[0] = -vectors[0]
    np.save(art / "region_vectors.npy", vectors)
    with pytest.raises(ChecksumError, match="region_vectors.npy"):
        load_artifacts(art)


def test_the_cache_keeps_regions_so_a_rebuild_encodes_nothing(
    built, tmp_path, text_encoder, taxonomy
):
    from indexer.build.pipeline import build_index
    from indexer.index.artifacts import load_artifacts

    root, encoder, _ = built
    kwargs = {
        "image_encoder": encoder,
        "text_encoder": text_encoder,
        "taxonomy": taxonomy,
        "progress": False,
        "cache_dir": tmp_path / "cache",
    }
    first = build_index(root / "data", tmp_path / "a", **kwargs)
    again = build_index(root / "data", tmp_path / "b", **kwargs)
    assert first.embedded == N_IMAGES and again.embedded == 0 and again.cached == N_IMAGES
    a, b = load_artifacts(tmp_path / "a"), load_artifacts(tmp_path / "b")
    assert [r.id for r in a.regions.regions] == [r.id for r in b.regions.regions]
    np.testing.assert_array_equal(a.regions.vectors, b.regions.vectors)
    assert a.manifest.regions.calibration == b.manifest.regions.calibration


def test_an_index_without_regions_says_how_to_get_them(built, tmp_path, text_encoder, taxonomy):
    from indexer.build.pipeline import build_index
    from indexer.index.artifacts import load_artifacts
    from indexer.query import QueryError
    from indexer.retrieval.retriever import Retriever

    root, encoder, _ = built
    report = build_index(
        root / "data",
        tmp_path / "plain",
        image_encoder=encoder,
        text_encoder=text_encoder,
        taxonomy=taxonomy,
        progress=False,
        regions=False,
    )
    assert report.manifest.regions is None
    assert not (tmp_path / "plain" / "regions.sqlite").exists()
    plain = Retriever(
        load_artifacts(tmp_path / "plain"),
        image_encoder=encoder,
        text_encoder=text_encoder,
        taxonomy=taxonomy,
    )
    photo = Image.new("RGB", SIZE, (128, 128, 128))
    assert plain.retrieve(photo, k=2).heatmap is None
    with pytest.raises(QueryError, match="no region table.*rebuild"):
        plain.retrieve(photo, heatmap=True)
