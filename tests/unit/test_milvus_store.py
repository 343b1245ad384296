"""The Milvus backend on Milvus Lite (a file, no server): the same Retriever answers as FAISS,
filters pushed down return k matching items, another opener's add/remove is seen once the
index is opened again (an open Retriever skips ids its catalogue does not know, still returning
k hits, and reads nothing per query), and a missing or disagreeing collection is refused with a
clear message."""

from __future__ import annotations

import builtins
import io
import json
import os
import sqlite3
from pathlib import Path

import numpy as np
import pytest
from vector_index import KeywordTextEncoder, item, keyword_retriever, write_vector_index

from indexer.index.artifacts import MANIFEST, load_artifacts
from indexer.index.manifest import manifest_checksum
from indexer.index.milvus_connection import MilvusUnavailableError
from indexer.index.milvus_store import filter_expression
from indexer.index.stores import StoreTarget
from indexer.index.updating import rewrite_artifacts
from indexer.query import Filters

pytest.importorskip("pymilvus")
pytest.importorskip("milvus_lite")

LABELS = [{"surface_scratch": 1}, {"dent": 1}, {"crack": 1}, {}, {"dent": 2, "crack": 1}] * 6


@pytest.fixture
def both(taxonomy, tmp_path):
    """The same 30 items and vectors as a FAISS index and a Milvus Lite index."""
    rng = np.random.default_rng(1)
    vectors = rng.normal(size=(len(LABELS), 16))
    items = [
        item(
            i,
            lb,
            zone="rear_bumper" if i % 3 else "hood_center",
            group=f"g{i // 2}",
            taxonomy=taxonomy,
        )
        for i, lb in enumerate(LABELS)
    ]
    target = StoreTarget("milvus", str(tmp_path / "milvus.db"), "test")
    faiss = write_vector_index(tmp_path / "faiss", items, vectors, taxonomy)
    milvus = write_vector_index(tmp_path / "milvus", items, vectors, taxonomy, store=target)
    return faiss, milvus


def retriever(artifacts, taxonomy):
    return keyword_retriever(artifacts, taxonomy, rerank_candidates=6)


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
    for filters in (
        Filters(labels_any=("crack",)),
        Filters(labels_all=("dent", "crack")),
        Filters(labels_any=("no_damage",)),
        Filters(zones=("hood_center",)),
        Filters(areas=("posterior",), labels_any=("dent",)),
    ):
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


def write_elsewhere(path, taxonomy, *, remove: int, add: dict[int, np.ndarray]):
    """What `visrag index add/remove` in another process does: Milvus first, then the directory."""
    writer = load_artifacts(path)
    keep = np.array([it.row != remove for it in writer.items])
    new = [item(row, {"crack": 2}, taxonomy=taxonomy) for row in add]
    vecs = np.stack([np.asarray(v, np.float32) for v in add.values()])
    txt = KeywordTextEncoder().encode([it.description for it in new])
    rewrite_artifacts(
        writer, keep=keep, new_items=new, new_image_vectors=vecs, new_text_vectors=txt
    )


def test_an_open_retriever_skips_ids_its_catalogue_does_not_know(both, taxonomy):
    _, milvus = both
    live = retriever(milvus, taxonomy)  # opened before the write, never reopened
    q = milvus.image_vectors[4]
    assert live.search(q, k=1).hits[0].id == "item4"
    # three new vectors closest to q land in the shared collection; item4 leaves it
    write_elsewhere(milvus.path, taxonomy, remove=4, add={97: q, 98: q, 99: q})
    known = {it.id for it in milvus.items} - {"item4"}
    for kw in (
        {},
        {"filters": Filters(labels_any=("crack",))},
        {"mode": "rerank"},
        {"mode": "hybrid", "text": "a crack"},
        {"exclude_ids": ["item9"]},
    ):
        got = [h.id for h in live.search(q, k=5, **kw).hits]
        assert len(got) == 5 and set(got) <= known  # k hits, all from its own catalogue
    assert live.size == len(LABELS) and live.item("item99") is None


def test_the_write_is_seen_by_the_index_opened_again(both, taxonomy):
    _, milvus = both
    q = milvus.image_vectors[4]
    write_elsewhere(milvus.path, taxonomy, remove=4, add={99: q})
    reopened = retriever(load_artifacts(milvus.path), taxonomy)  # what the service's reload does
    top = reopened.search(q, k=3).hits
    assert top[0].id == "item99" and "item4" not in [h.id for h in top]
    assert reopened.size == len(LABELS)  # one removed, one added
    assert reopened.item("item99").labels == {"crack": 2}
    store = reopened.artifacts.image_store
    assert store.ntotal == len(LABELS)
    assert sorted(store.ids().tolist()) == list(range(len(LABELS)))


@pytest.mark.parametrize("backend", ["faiss", "milvus"])
def test_queries_read_nothing_in_the_index_directory(both, taxonomy, monkeypatch, backend):
    artifacts = both[backend == "milvus"]
    live = retriever(artifacts, taxonomy)
    reads = forbid_reads(monkeypatch, artifacts.path)
    q = artifacts.image_vectors[7]
    for kw in (
        {},
        {"mode": "rerank"},
        {"mode": "hybrid", "text": "a dent"},
        {"mode": "hybrid", "text": "a dent", "alpha": 0.3},
        {"filters": Filters(zones=("hood_center",)), "exclude_groups": ["g3"]},
    ):
        assert len(live.search(q, k=4, **kw).hits) == 4
    assert live.item("item3") is not None
    assert reads == []


def forbid_reads(monkeypatch: pytest.MonkeyPatch, directory: Path) -> list[str]:
    """Fail any stat, open or listing of a path under ``directory`` from now on (recorded too)."""
    reads: list[str] = []
    inside = directory.resolve()

    def guarded(real):
        def call(path, *args, **kwargs):
            if isinstance(path, str | bytes | os.PathLike):
                target = Path(os.fsdecode(path)).absolute()
                if target == inside or target.is_relative_to(inside):
                    reads.append(str(target))
                    raise AssertionError(f"the query path touched {target}")
            return real(path, *args, **kwargs)

        return call

    for module, name in (
        (os, "stat"),
        (os, "lstat"),
        (os, "open"),
        (os, "scandir"),
        (os, "listdir"),
        (io, "open"),
        (builtins, "open"),
        (sqlite3, "connect"),
    ):
        monkeypatch.setattr(module, name, guarded(getattr(module, name)))
    return reads


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
