"""The region table on Milvus (Milvus Lite, a file): a build with ``--store milvus`` keeps the
region vectors in a third collection ``<name>_region`` (no ``*.faiss`` in the directory), region
queries and "where is the damage" answer exactly as on FAISS from the same build, add / remove
keep the collection in step with the table, and a damaged or missing collection is refused or
reported by ``index verify``. Real transformers (tiny random DINOv3), real FAISS, real Milvus Lite.
"""

from __future__ import annotations

import shutil
from dataclasses import replace

import numpy as np
import pytest
from cli_runs import invoke
from PIL import Image

pytest.importorskip("pymilvus")
pytest.importorskip("milvus_lite")

N_IMAGES = 24
SIZE = (320, 240)
IMAGE_SIZE = 224


@pytest.fixture(scope="module")
def env(tmp_path_factory, tiny_dinov3, text_encoder, taxonomy):
    """A dataset, the encoder, and a build function sharing one embedding cache (the first
    build encodes, the others take identical vectors and regions from the cache)."""
    from indexer.build.pipeline import build_index
    from indexer.index.stores import StoreTarget
    from indexer.synthetic.generator import generate_dataset
    from models.image_encoder import load_image_encoder

    root = tmp_path_factory.mktemp("milvus-regions")
    generate_dataset(root / "data", N_IMAGES, seed=0, image_size=SIZE)
    encoder = load_image_encoder(tiny_dinov3, device="cpu", image_size=IMAGE_SIZE)
    lite = str(root / "lite.db")

    def build(out: str, collection: str | None = None):
        store = None if collection is None else StoreTarget("milvus", lite, collection)
        return build_index(
            root / "data",
            root / out,
            image_encoder=encoder,
            text_encoder=text_encoder,
            taxonomy=taxonomy,
            store=store,
            cache_dir=root / "cache",
            progress=False,
        )

    build("faiss")
    build("milvus", "reg")
    return root, encoder, build


def opened(path, encoder, text_encoder, taxonomy):
    from indexer.index.artifacts import load_artifacts
    from indexer.retrieval.retriever import Retriever

    return Retriever(
        load_artifacts(path), image_encoder=encoder, text_encoder=text_encoder, taxonomy=taxonomy
    )


def collection_rows(artifacts) -> dict[str, dict]:
    """Every entity of the index's region collection, by region id."""
    store = artifacts.region_store
    rows = store.client.query(
        store.collection, filter="", output_fields=["id", "item", "labels", "kind", "vector"]
    )
    return {r["id"]: r for r in rows}


def test_the_region_vectors_live_in_a_third_collection(env):
    from indexer.index.artifacts import load_artifacts

    root, _, _ = env
    a = load_artifacts(root / "milvus")
    section = a.manifest.regions
    assert section is not None and section.file == "reg_region" and section.count == len(a.regions)
    assert not list((root / "milvus").glob("*.faiss"))  # image, fused and region: in Milvus
    assert {"regions.sqlite", "region_vectors.npy", "region_background.npy"} <= set(
        a.manifest.files
    )
    held = collection_rows(a)
    assert list(held) and set(held) == {r.id for r in a.regions.regions}
    for region, vector in zip(a.regions.regions, a.regions.vectors, strict=True):
        entity = held[region.id]
        assert entity["item"] == a.items[region.item].id
        assert tuple(entity["labels"]) == region.labels and entity["kind"] == "patches"
        np.testing.assert_allclose(entity["vector"], vector, atol=1e-6)
    faiss = load_artifacts(root / "faiss")
    assert [r.id for r in faiss.regions.regions] == [r.id for r in a.regions.regions]
    out = invoke("index", "verify", str(root / "milvus"))
    assert "OK   region index ids = region rows: milvus reg_region" in out


def _largest(artifacts, n=4):
    singles = [r for r in artifacts.regions.regions if r.members == 1]
    return sorted(singles, key=lambda r: -r.area)[:n]


def _answers(retriever, photo, polygon, exclude: list[str]):
    from indexer.retrieval.retriever import embed_with_patches

    vector, patches, _ = embed_with_patches(photo, retriever.image_encoder)
    asked = replace(patches, region=polygon, heatmap=True)
    return retriever.search(vector, k=3, patches=asked, exclude_ids=exclude)


def _same(milvus, faiss):
    """The same regions in the same order with the same scores, in the answer and the heatmap."""
    assert [h.id for h in milvus.region.hits] == [h.id for h in faiss.region.hits]
    got = [h.score for h in milvus.region.hits]
    np.testing.assert_allclose(got, [h.score for h in faiss.region.hits], atol=1e-4)
    heat_m, heat_f = milvus.heatmap, faiss.heatmap
    np.testing.assert_allclose(heat_m.scores, heat_f.scores, atol=1e-3)
    assert heat_m.peak == heat_f.peak
    assert [[n.id for n in area.neighbours] for area in heat_m.areas] == [
        [n.id for n in area.neighbours] for area in heat_f.areas
    ]


def test_region_queries_and_heatmaps_equal_faiss(env, text_encoder, taxonomy):
    root, encoder, _ = env
    faiss = opened(root / "faiss", encoder, text_encoder, taxonomy)
    milvus = opened(root / "milvus", encoder, text_encoder, taxonomy)
    a = faiss.artifacts
    for region in _largest(a):
        item = a.items[region.item]
        photo = Image.open(a.image_file(item)).convert("RGB")
        on_milvus = _answers(milvus, photo, region.polygon, [])
        on_faiss = _answers(faiss, photo, region.polygon, [])
        _same(on_milvus, on_faiss)
        assert on_milvus.region.hits[0].item == item.id  # its own photo's region comes first
        # the photo excluded (leave-one-out): none of its regions, the same answer as FAISS
        on_milvus = _answers(milvus, photo, region.polygon, [item.id])
        on_faiss = _answers(faiss, photo, region.polygon, [item.id])
        _same(on_milvus, on_faiss)
        listed = [h.item for h in on_milvus.region.hits]
        listed += [n.item for area in on_milvus.heatmap.areas for n in area.neighbours]
        assert len(on_milvus.region.hits) == 3 and item.id not in listed


def test_regions_follow_their_items_through_remove_and_add(env, text_encoder, taxonomy):
    from indexer.build.pipeline import add_records, read_new_records, remove_items
    from indexer.index.artifacts import load_artifacts
    from indexer.index.verification import verify_artifacts
    from indexer.readers.dataset import read_dataset
    from indexer.retrieval.opening import OpenedIndex

    root, encoder, build = env
    build("moved", "moved")
    before = load_artifacts(root / "moved")
    gone = max(before.items, key=lambda it: len(before.regions.of_items([it.row])))
    own = {r.id for r in before.regions.regions if r.item == gone.row}
    assert own
    remove_items(root / "moved", [gone.id])
    after = load_artifacts(root / "moved")
    held = collection_rows(after)
    assert set(held) == {r.id for r in after.regions.regions} and not own & set(held)
    assert after.region_store.ntotal == len(after.regions) == len(before.regions) - len(own)
    assert all(ok for _, ok, _ in verify_artifacts(root / "moved"))

    record = next(
        r for r in read_dataset(root / "data", taxonomy=taxonomy).records if r.id == gone.id
    )
    index = OpenedIndex(after, encoder, text_encoder, taxonomy)
    add_records(index, read_new_records(after, [record], taxonomy), progress=False)
    again = load_artifacts(root / "moved")
    held = collection_rows(again)
    assert set(held) == {r.id for r in before.regions.regions}
    for region, vector in zip(again.regions.regions, again.regions.vectors, strict=True):
        np.testing.assert_allclose(held[region.id]["vector"], vector, atol=1e-6)
        assert held[region.id]["item"] == again.items[region.item].id  # rows moved, ids kept
    assert all(ok for _, ok, _ in verify_artifacts(root / "moved"))
    # the collection answers for the table of this generation: a region query finds the photo
    faiss = opened(root / "faiss", encoder, text_encoder, taxonomy)
    milvus = opened(root / "moved", encoder, text_encoder, taxonomy)
    region = next(r for r in again.regions.regions if r.id in own)
    photo = Image.open(again.image_file(again.items[region.item])).convert("RGB")
    on_milvus = _answers(milvus, photo, region.polygon, [])
    assert on_milvus.region.hits[0].item == gone.id
    _same(on_milvus, _answers(faiss, photo, region.polygon, []))


def test_a_damaged_region_collection_is_reported_and_a_missing_one_refused(env, tmp_path):
    from indexer.errors import ChecksumError
    from indexer.index.artifacts import load_artifacts
    from indexer.index.milvus_connection import MilvusUnavailableError
    from indexer.index.verification import verify_artifacts

    root, _, build = env
    build("damaged", "damaged")
    a = load_artifacts(root / "damaged")
    client, name = a.region_store.client, a.region_store.collection
    victim = a.regions.regions[0].id
    client.delete(name, filter=f'id in ["{victim}"]')
    report = {check: (ok, detail) for check, ok, detail in verify_artifacts(root / "damaged")}
    ok, detail = report["region index ids = region rows"]
    assert not ok and f"holds {len(a.regions) - 1}" in detail
    invoke("index", "verify", str(root / "damaged"), ok=False)

    client.drop_collection(name)
    with pytest.raises(MilvusUnavailableError, match="'damaged_region' does not exist"):
        load_artifacts(root / "damaged")
    [(check, ok, detail)] = verify_artifacts(root / "damaged")
    assert not ok and "'damaged_region' does not exist" in detail

    # the table itself stays a file under the manifest's checksums, as on FAISS
    copy = tmp_path / "copy"
    shutil.copytree(root / "milvus", copy)
    table = bytearray((copy / "regions.sqlite").read_bytes())
    table[-100] ^= 0xFF  # one flipped byte in the region rows
    (copy / "regions.sqlite").write_bytes(bytes(table))
    with pytest.raises(ChecksumError, match="regions.sqlite"):
        load_artifacts(copy)


def test_a_region_collection_of_another_dim_is_refused(env):
    from indexer.index.artifacts import load_artifacts
    from indexer.index.milvus_connection import MilvusUnavailableError
    from indexer.index.milvus_store import MilvusRegionStore

    root, _, build = env
    build("other", "other")
    a = load_artifacts(root / "other")
    MilvusRegionStore.create(a.region_store.client, "other_region", dim=a.regions.dim + 1)
    with pytest.raises(MilvusUnavailableError, match="'other_region' disagrees.*vector dim"):
        load_artifacts(root / "other")
