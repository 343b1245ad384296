"""The real Retriever over a small real flat artifact directory; only the encoders are stand-ins."""

from __future__ import annotations

import numpy as np
import pytest
from PIL import Image
from vector_index import KeywordTextEncoder, item, write_vector_index

from indexer.query import Filters, QueryError
from indexer.retrieval.retriever import Retriever
from models.description import describe
from models.fusion import l2_normalise

# rows 0-7: spread out; rows 8-11: a tight cluster where the query item (8, crack) sits among
# three dents, so the neighbours vote 'dent' while the query's own catalogue labels say 'crack'.
LABELS = [
    {"surface_scratch": 2},
    {"dent": 1},
    {"crack": 1},
    {},
    {"dent": 2, "crack": 1},
    {"surface_scratch": 1},
    {},
    {"dent": 1},
    {"crack": 1},
    {"dent": 1},
    {"dent": 3},
    {"dent": 1},
]
QUERY = 8


@pytest.fixture
def retriever(taxonomy, tmp_path):
    rng = np.random.default_rng(0)
    vectors = rng.normal(size=(len(LABELS), 16))
    centre = rng.normal(size=16) * 3
    vectors[8:] = centre + 0.1 * rng.normal(size=(4, 16))
    items = [
        item(
            i,
            lb,
            zone="rear_bumper" if i % 2 else "hood_center",
            group=f"g{i // 2}",
            taxonomy=taxonomy,
        )
        for i, lb in enumerate(LABELS)
    ]
    arts = write_vector_index(tmp_path / "art", items, vectors, taxonomy)
    return Retriever(
        arts,
        image_encoder=None,
        text_encoder=KeywordTextEncoder(),
        taxonomy=taxonomy,
        rerank_candidates=4,
    )


def ranked(scores, k, rows=None):
    rows = np.arange(len(scores)) if rows is None else np.asarray(rows)
    order = np.lexsort((rows, -scores[rows]))[:k]
    return [f"item{r}" for r in rows[order]]


def ids(result):
    return [h.id for h in result.hits]


def test_image_mode_ranks_by_image_cosine_and_finds_itself(retriever):
    vecs = retriever.artifacts.image_vectors
    result = retriever.search(vecs[2], k=5)
    assert ids(result) == ranked(vecs @ vecs[2], 5)
    assert result.hits[0].id == "item2" and result.hits[0].score == pytest.approx(1.0, abs=1e-5)
    assert [h.rank for h in result.hits] == [1, 2, 3, 4, 5]


def test_hits_carry_normalised_labels_and_zone(retriever):
    hit = retriever.search(retriever.artifacts.image_vectors[4], k=1).hits[0]
    assert [(lc.id, lc.count) for lc in hit.labels] == [("dent", 2), ("crack", 1)]
    assert hit.labels[0].name.en == "Dent" and hit.labels[0].name.es == "Abolladura"
    assert (hit.zone, hit.area) == ("hood_center", "frontal")
    assert (hit.zone_name.es, hit.area_name.es) == ("centro del capó", "zona frontal")
    assert hit.summary.en == "2 dents and 1 crack on the hood center (frontal area)"
    assert hit.summary.es == "2 abolladuras y 1 grieta en el centro del capó (zona frontal)"
    assert [(lc.phrase.en, lc.phrase.es) for lc in hit.labels if lc.phrase] == [
        ("2 dents", "2 abolladuras"),
        ("1 crack", "1 grieta"),
    ]


def test_votes_are_tallied_over_every_returned_hit(retriever):
    result = retriever.search(retriever.artifacts.image_vectors[QUERY], k=4)
    votes = {v.label: v for v in result.votes}
    assert {h.id for h in result.hits} == {"item8", "item9", "item10", "item11"}  # the cluster
    assert (votes["dent"].support, votes["dent"].neighbours) == (3, 4)
    assert (votes["crack"].support, votes["crack"].predicted) == (1, False)
    assert votes["dent"].predicted and votes["dent"].name.es == "Abolladura"


def test_exclusions_drop_items_but_keep_k(retriever):
    vecs = retriever.artifacts.image_vectors
    result = retriever.search(vecs[0], k=3, exclude_groups=("g0",))
    assert ids(result) == ranked(vecs @ vecs[0], 3, rows=range(2, len(LABELS)))
    result = retriever.search(vecs[0], k=20, exclude_ids=("item0",))
    assert ids(result) == ranked(vecs @ vecs[0], 20, rows=range(1, len(LABELS)))


def test_filters_return_the_best_matching_items(retriever):
    vecs = retriever.artifacts.image_vectors
    scores = vecs @ vecs[0]
    dents = [i for i, lb in enumerate(LABELS) if "dent" in lb]
    result = retriever.search(vecs[0], k=3, filters=Filters(labels_any=("dent",)))
    assert ids(result) == ranked(scores, 3, rows=dents)
    both = retriever.search(vecs[0], k=5, filters=Filters(labels_all=("dent", "crack")))
    assert ids(both) == ["item4"]
    rear = [i for i in range(len(LABELS)) if i % 2]
    zoned = retriever.search(vecs[0], k=4, filters=Filters(zones=("rear_bumper",)))
    assert ids(zoned) == ranked(scores, 4, rows=rear)
    undamaged = retriever.search(vecs[0], k=5, filters=Filters(labels_any=("no_damage",)))
    assert sorted(ids(undamaged)) == ["item3", "item6"]
    with pytest.raises(QueryError, match="unknown label"):
        retriever.search(vecs[0], k=5, filters=Filters(labels_any=("rust",)))


def test_hybrid_needs_text_and_ranks_by_the_weighted_sum(retriever):
    arts = retriever.artifacts
    with pytest.raises(QueryError, match="needs a text"):
        retriever.search(arts.image_vectors[0], mode="hybrid")
    t = KeywordTextEncoder().encode(["a dent"])[0]
    for alpha in (0.6, 0.3):  # the index's weight (fused store) and another (exact scoring)
        expected = alpha * arts.image_vectors @ arts.image_vectors[0] + (1 - alpha) * (
            arts.text_vectors @ t
        )
        result = retriever.search(
            arts.image_vectors[0], k=6, mode="hybrid", text="a dent", alpha=alpha
        )
        assert ids(result) == ranked(expected, 6)
        assert [h.score for h in result.hits] == pytest.approx(
            [expected[int(i[4:])] for i in ids(result)], abs=1e-5
        )


def test_rerank_describes_the_neighbours_votes_not_the_query_items_labels(retriever, taxonomy):
    arts = retriever.artifacts
    query = arts.image_vectors[QUERY]  # the query item itself (crack) is among the candidates
    result = retriever.search(query, k=3, mode="rerank")
    # candidates 8-11 vote dent 3 of 4 (median count 1), crack 1 of 4; hood_center weighs more
    cand_zones = {arts.items[r].zone for r in range(8, 12)}
    assert cand_zones == {"hood_center", "rear_bumper"}
    expected_text = describe({"dent": 1}, "hood_center", taxonomy)
    assert result.pseudo_text == expected_text
    assert "crack" not in result.pseudo_text.lower()
    # and the candidates are re-ranked by that text
    t = KeywordTextEncoder().encode([expected_text])[0]
    fused = 0.6 * arts.image_vectors @ query + 0.4 * arts.text_vectors @ t
    assert ids(result) == ranked(fused, 3, rows=range(8, 12))
    assert ids(result)[0] != "item8"  # the crack item itself loses to the dents


def test_every_mode_answers_with_its_own_ranking(retriever):
    arts = retriever.artifacts
    query = arts.image_vectors[QUERY]
    image = retriever.search(query, k=4)
    hybrid = retriever.search(query, k=4, mode="hybrid", text="a crack")
    rerank = retriever.search(query, k=4, mode="rerank")
    assert ids(image) == ranked(arts.image_vectors @ query, 4)
    t = KeywordTextEncoder().encode(["a crack"])[0]
    assert ids(hybrid) == ranked(0.6 * arts.image_vectors @ query + 0.4 * arts.text_vectors @ t, 4)
    assert ids(image)[0] == ids(hybrid)[0] == "item8" != ids(rerank)[0]
    assert set(ids(rerank)) == set(ids(image))  # rerank reorders the image candidates


class PixelEncoder:
    """Stand-in image encoder: a 4x4 thumbnail's first 16 values, L2-normalised."""

    model_id, revision, dim, image_size, patch_size = "test/pixels", None, 16, 4, 4
    pooling, device, dtype = "cls", "cpu", "float32"

    def info(self):
        return {"id": self.model_id, "dim": self.dim}

    def preprocess(self, image):
        return np.asarray(image.resize((4, 4)), np.float32).ravel()[:16] + 1.0

    def encode_preprocessed(self, arrays, **_):
        return l2_normalise(np.stack(arrays))


def test_an_image_query_goes_through_the_shared_embedding_path(retriever):
    retriever.image_encoder = PixelEncoder()
    image = Image.new("RGB", (8, 8), (200, 40, 10))
    result = retriever.retrieve(image, k=4)
    vector = PixelEncoder().encode_preprocessed([PixelEncoder().preprocess(image)])[0]
    assert ids(result) == ids(retriever.search(vector, k=4))
    assert {"preprocess", "encode", "search"} <= set(result.timings)


def test_bad_queries_are_query_errors(retriever):
    with pytest.raises(QueryError, match="mode"):
        retriever.search(np.ones(16), mode="oracle")
    with pytest.raises(QueryError, match="dimensions"):
        retriever.search(np.ones(8))
    with pytest.raises(QueryError, match="k must be"):
        retriever.search(np.ones(16), k=0)
    with pytest.raises(QueryError, match="no image encoder"):
        retriever.retrieve(Image.new("RGB", (8, 8)))
