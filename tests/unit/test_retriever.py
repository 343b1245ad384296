"""Retriever logic on small hand-made catalogues (real FAISS: see the integration tests)."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pytest

from indexer.hits import Filters, QueryError
from indexer.retriever import Retriever, label_consensus
from models.fusion import fuse, l2_normalise


@dataclass(frozen=True)
class Item:
    row: int
    id: str
    labels: dict
    zone: str = "hood_center"
    group: str = ""
    image: str = ""
    area: str = "frontal"
    description: str = ""
    defects: dict = field(default_factory=dict)


class NumpyStore:
    def __init__(self, vectors):
        self.vectors = vectors
        self.ntotal = len(vectors)

    def search(self, queries, k, *, allowed=None):
        scores = queries @ self.vectors.T
        rows = np.arange(self.ntotal) if allowed is None else np.asarray(allowed)
        out_s = np.full((len(queries), k), -np.inf, np.float32)
        out_i = np.full((len(queries), k), -1, np.int64)
        for q in range(len(queries)):
            sub = scores[q, rows]
            order = np.argsort(-sub, kind="stable")[:k]
            out_s[q, : len(order)] = sub[order]
            out_i[q, : len(order)] = rows[order]
        return out_s, out_i


class FakeArtifacts:
    def __init__(self, image_vectors, text_vectors, items, alpha=0.6):
        self.image_vectors = image_vectors
        self.text_vectors = text_vectors
        self.items = items
        self.alpha = alpha
        self.manifest = {}
        self.image_store = NumpyStore(image_vectors)
        self.fused_store = NumpyStore(fuse(image_vectors, text_vectors, alpha=alpha))

    def row_of(self, item_id):
        return next((it.row for it in self.items if it.id == item_id), None)

    def select(self, filters):
        rows = [
            it.row
            for it in self.items
            if (not filters.labels_any or set(filters.labels_any) & set(it.labels))
            and set(filters.labels_all) <= set(it.labels)
            and (not filters.zones or it.zone in filters.zones)
        ]
        return np.array(rows, dtype=np.int64)

    def image_file(self, item):
        return Path(item.image) if item.image else None


class KeywordTextEncoder:
    """Deterministic text vectors: one dimension per keyword present in the text."""

    words = ("scratch", "dent", "crack", "no visible damage")

    def encode(self, texts):
        v = np.array([[float(w in t) for w in self.words] for t in texts], np.float32) + 1e-3
        return l2_normalise(v)


@pytest.fixture
def retriever(taxonomy):
    rng = np.random.default_rng(0)
    labels = [{"surface_scratch": 2}, {"dent": 1}, {"crack": 1}, {}, {"dent": 2, "crack": 1}]
    img = l2_normalise(rng.normal(size=(len(labels), 16)))
    enc = KeywordTextEncoder()
    items = []
    for i, lb in enumerate(labels):
        zone = "rear_bumper" if i % 2 else "hood_center"
        items.append(Item(row=i, id=f"item{i}", labels=lb, zone=zone, group=f"g{i // 2}"))
    from models.description import describe

    txt = enc.encode([describe(it.labels, it.zone, taxonomy) for it in items])
    arts = FakeArtifacts(img, txt, items)
    return Retriever(
        arts, image_encoder=None, text_encoder=enc, taxonomy=taxonomy, rerank_candidates=4
    )


def test_image_mode_ranks_by_image_cosine_and_finds_itself(retriever):
    vecs = retriever.artifacts.image_vectors
    result = retriever.search(vecs[2], k=3)
    assert [h.id for h in result.hits][0] == "item2"
    assert result.hits[0].score == pytest.approx(1.0, abs=1e-5)
    expected = np.argsort(-(vecs @ vecs[2]), kind="stable")[:3]
    assert [h.id for h in result.hits] == [f"item{i}" for i in expected]
    assert [h.rank for h in result.hits] == [1, 2, 3]


def test_hits_carry_normalised_labels_and_zone(retriever):
    hit = retriever.search(retriever.artifacts.image_vectors[4], k=1).hits[0]
    assert [(lc.id, lc.count) for lc in hit.labels] == [("dent", 2), ("crack", 1)]
    assert hit.labels[0].en == "Dent" and hit.labels[0].es == "Abolladura"
    assert (hit.zone, hit.area) == ("hood_center", "frontal")


def test_exclusions_drop_items_but_keep_k(retriever):
    vecs = retriever.artifacts.image_vectors
    result = retriever.search(vecs[0], k=3, exclude_groups=("g0",))
    ids = [h.id for h in result.hits]
    assert len(ids) == 3 and "item0" not in ids and "item1" not in ids
    result = retriever.search(vecs[0], k=10, exclude_ids=("item0",))
    assert len(result.hits) == 4 and "item0" not in [h.id for h in result.hits]


def test_filters_return_only_matching_items(retriever):
    vecs = retriever.artifacts.image_vectors
    result = retriever.search(vecs[0], k=5, filters=Filters(labels_any=("dent",)))
    assert sorted(h.id for h in result.hits) == ["item1", "item4"]
    with pytest.raises(QueryError, match="unknown label"):
        retriever.search(vecs[0], k=5, filters=Filters(labels_any=("rust",)))


def test_hybrid_needs_text_and_scores_are_the_weighted_sum(retriever):
    arts = retriever.artifacts
    with pytest.raises(QueryError, match="needs a text"):
        retriever.search(arts.image_vectors[0], mode="hybrid")
    result = retriever.search(arts.image_vectors[0], k=5, mode="hybrid", text="a dent")
    t = KeywordTextEncoder().encode(["a dent"])[0]
    for hit in result.hits:
        row = arts.row_of(hit.id)
        expected = (
            0.6 * arts.image_vectors[row] @ arts.image_vectors[0] + 0.4 * arts.text_vectors[row] @ t
        )
        assert hit.score == pytest.approx(expected, abs=1e-5)
    # Another alpha than the index's is scored exactly too.
    swept = retriever.search(arts.image_vectors[0], k=5, mode="hybrid", text="a dent", alpha=1.0)
    assert [h.id for h in swept.hits] == [
        h.id for h in retriever.search(arts.image_vectors[0], k=5).hits
    ]


def test_rerank_uses_neighbour_consensus_not_ground_truth(retriever):
    result = retriever.search(retriever.artifacts.image_vectors[1], k=3, mode="rerank")
    assert result.pseudo_text is not None and result.mode == "rerank"
    assert "text_encode" in result.timings and len(result.hits) == 3


def test_bad_queries_are_query_errors(retriever):
    with pytest.raises(QueryError, match="mode"):
        retriever.search(np.ones(16), mode="oracle")
    with pytest.raises(QueryError, match="dimensions"):
        retriever.search(np.ones(8))
    with pytest.raises(QueryError, match="k must be"):
        retriever.search(np.ones(16), k=0)


def test_label_consensus_weighted_majority(taxonomy):
    items = [
        Item(0, "a", {"dent": 2}, zone="hood_center"),
        Item(1, "b", {"dent": 1, "crack": 1}, zone="hood_center"),
        Item(2, "c", {"crack": 3}, zone="rear_bumper"),
    ]
    c = label_consensus(items, [1.0, 0.5, 0.3], taxonomy)
    # dent: (1.0 + 0.5) / 1.8 = 0.83 kept with the median count 1.5 -> 2; crack: 0.8 / 1.8 dropped
    assert c.labels == {"dent": 2}
    assert c.zone == "hood_center"
    assert c.support["dent"] == pytest.approx(1.5 / 1.8)
    assert c.support["crack"] == pytest.approx(0.8 / 1.8)
    c = label_consensus(items, [0.9, 0.8, 0.1], taxonomy)
    assert c.labels == {"dent": 2, "crack": 2}  # crack reaches exactly half the weight
