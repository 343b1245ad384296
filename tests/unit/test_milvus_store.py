"""The Milvus backend on Milvus Lite (a file, no server): the same Retriever answers as FAISS,
filters pushed down return k matching items, add/remove are seen by an open Retriever, and a
missing or disagreeing collection is refused with a clear message."""

from __future__ import annotations

import json

import numpy as np
import pytest
from vector_index import KeywordTextEncoder, item, write_vector_index

from indexer.index.artifacts import MANIFEST, load_artifacts
from indexer.index.manifest import manifest_checksum
from indexer.index.milvus_connection import MilvusUnavailableError
from indexer.index.milvus_store import filter_expression
from indexer.index.stores import StoreTarget
from indexer.index.updating import rewrite_artifacts
from indexer.query import Filters
from indexer.retriever import Retriever

pytest.importorskip("pymilvus")
pytest.importorskip("milvus_lite")

LABELS = [{"surface_scratch": 1}, {"dent": 1}, {"crack": 1}, {}, {"dent": 2, "crack": 1}] * 6


@pytest.fixture
def both(taxonomy, tmp_path):
    """The same 30 items and vectors as a FAISS index and a Milvus Lite index."""
    rng = np.random.default_rng(1)
    vectors = rng.normal(size=(len(LABELS), 16))
    items = [
        item(i, lb, zone="rear_bumper" if i % 3 else "hood_center", group=f"g{i // 2}",
             taxonomy=taxonomy)
        for i, lb in enumerate(LABELS)
    ]  # fmt: skip
    target = StoreTarget("milvus", str(tmp_path / "milvus.db"), "test")
    faiss = write_vector_index(tmp_path / "faiss", items, vectors, taxonomy)
    milvus = write_vector_index(tmp_path / "milvus", items, vectors, taxonomy, store=target)
    return faiss, milvus


def retriever(artifacts, taxonomy):
    return Retriever(artifacts, image_encoder=None, text_encoder=KeywordTextEncoder(),
                     taxonomy=taxonomy, rerank_candidates=6)  # fmt: skip


def hits(result):
    return [(h.id, round(h.score, 5)) for h in result.hits]


def test_manifest_records_the_store_without_faiss_files(both, tmp_path):
    _, milvus = both
    store = milvus.manifest.store
    assert (store.kind, store.collection, store.index_type) == ("milvus", "test", "flat")
    assert store.uri == str(tmp_path / "milvus.db")
    assert not list(milvus.path.glob("*.faiss"))
    assert both[0].manifest.store.kind == "faiss"  # the default


@pytest.mark.parametrize("mode", ["image", "hybrid", "rerank"])
def test_same_hits_as_faiss_flat(both, taxonomy, mode):
    faiss, milvus = (retriever(a, taxonomy) for a in both)
    text = "a dent" if mode == "hybrid" else None
    for row in (0, 7, 13):
        q = faiss.artifacts.image_vectors[row]
        kw = {"k": 5, "mode": mode, "text": text, "exclude_groups": [f"g{row // 2}"]}
        assert hits(milvus.search(q, **kw)) == hits(faiss.search(q, **kw))


def test_filters_pushed_down_return_k_matching(both, taxonomy):
    faiss, milvus = (retriever(a, taxonomy) for a in both)
    q = faiss.artifacts.image_vectors[0]
    for filters in (Filters(labels_any=("crack",)), Filters(labels_all=("dent", "crack")),
                    Filters(labels_any=("no_damage",)), Filters(zones=("hood_center",)),
                    Filters(areas=("posterior",), labels_any=("dent",))):  # fmt: skip
        got = milvus.search(q, k=5, filters=filters)
        assert hits(got) == hits(faiss.search(q, k=5, filters=filters))
        assert len(got.hits) == 5
    crack = milvus.search(q, k=5, filters=Filters(labels_any=("crack",)))
    assert all("crack" in [lc.id for lc in h.labels] for h in crack.hits)


def test_filter_expression():
    f = Filters(labels_any=("dent", "crack"), zones=("hood_center",))
    assert filter_expression(f, ["a"]) == (
        'ARRAY_CONTAINS_ANY(labels, ["dent", "crack"]) and zone in ["hood_center"] '
        'and id not in ["a"]'
    )
    assert filter_expression(None) == ""


def test_add_and_remove_seen_by_an_open_retriever(both, taxonomy):
    _, milvus = both
    live = retriever(milvus, taxonomy)  # opened before the writes, never reopened
    q = milvus.image_vectors[4]
    assert live.search(q, k=1).hits[0].id == "item4"
    writer = load_artifacts(milvus.path)  # another opener (a CLI, another process on a server)
    keep = np.ones(len(writer.items), bool)
    keep[4] = False
    new = item(99, {"crack": 2}, taxonomy=taxonomy)
    vec = np.asarray(q, np.float32)[None, :]
    txt = KeywordTextEncoder().encode([new.description])
    rewrite_artifacts(writer, keep=keep, new_items=[new], new_image_vectors=vec,
                      new_text_vectors=txt)  # fmt: skip
    top = live.search(q, k=3).hits
    assert top[0].id == "item99" and "item4" not in [h.id for h in top]
    assert live.size == len(LABELS)  # one removed, one added
    assert live.item("item99").labels == {"crack": 2}
    reread = load_artifacts(milvus.path)
    assert reread.image_store.ntotal == len(LABELS)
    assert sorted(reread.image_store.ids().tolist()) == list(range(len(LABELS)))


def test_missing_collection_is_refused(both):
    _, milvus = both
    milvus.image_store.client.drop_collection("test_fused")
    assert "missing" in milvus.fused_store.problem()
    with pytest.raises(MilvusUnavailableError, match="'test_fused' does not exist"):
        load_artifacts(milvus.path)


def test_schema_disagreeing_with_manifest_is_refused(both):
    _, milvus = both
    path = milvus.path / MANIFEST
    data = json.loads(path.read_text())
    data["store"]["index_type"] = "hnsw"
    data["manifest_sha256"] = manifest_checksum(data)  # a consistent manifest, another schema
    path.write_text(json.dumps(data))
    with pytest.raises(MilvusUnavailableError, match="disagrees with the manifest: index FLAT"):
        load_artifacts(milvus.path, verify=False)


def test_uri_from_environment_overrides_the_manifest(both, monkeypatch, tmp_path):
    _, milvus = both
    monkeypatch.setenv("VISRAG_MILVUS_URI", str(tmp_path / "elsewhere.db"))
    with pytest.raises(MilvusUnavailableError, match="does not exist"):
        load_artifacts(milvus.path)
