"""Context rendering on hand-made hits: percentages, dedup'd labels, votes with support."""

from __future__ import annotations

import json
from dataclasses import replace

from app.render.context import label_votes, render_context, similarity_pct
from indexer.query import Hit, LabelCount, Name, RetrievalResult
from indexer.retrieval.votes import hit_votes
from models.description import describe


def hit(rank, score, labels, zone="hood_center", taxonomy=None):
    """A hit as the Retriever makes it: names and template description in en and es."""
    lcs = tuple(
        LabelCount(
            i,
            n,
            Name(taxonomy.label(i).en, taxonomy.label(i).es),
            taxonomy.label(i).coarse,
            Name(taxonomy.counted(i, n, "en"), taxonomy.counted(i, n, "es")),
        )
        for i, n in labels.items()
    )
    z = taxonomy.zone(zone)
    area = Name(taxonomy.area_name(z.area, "en"), taxonomy.area_name(z.area, "es"))
    summary = Name(*(describe(labels, zone, taxonomy, language=lang) for lang in ("en", "es")))
    return Hit(
        f"item-{rank}", rank, score, lcs, zone, Name(z.en, z.es), z.area, area, summary, "", ""
    )


def result(hits, taxonomy, mode="image"):
    return RetrievalResult(hits, hit_votes(hits, taxonomy), mode, {})


def hits(taxonomy):
    return (
        hit(1, 0.9, {"surface_scratch": 2, "dent": 1}, taxonomy=taxonomy),
        hit(2, 0.8, {"surface_scratch": 1}, taxonomy=taxonomy),
        hit(3, 0.7, {"surface_scratch": 3}, "rear_bumper", taxonomy=taxonomy),
        hit(4, 0.4, {}, taxonomy=taxonomy),
        hit(5, 0.2, {"surface_scratch": 1, "crack": 1}, taxonomy=taxonomy),
    )


def test_similarity_is_a_whole_percentage_of_the_cosine():
    assert (
        similarity_pct(0.874) == 87 and similarity_pct(1.0) == 100 and similarity_pct(-0.2) == -20
    )


def test_votes_count_support_and_similarity_weight(taxonomy):
    votes = {v.label: v for v in label_votes(hit_votes(hits(taxonomy), taxonomy), language="en")}
    total = 0.9 + 0.8 + 0.7 + 0.4 + 0.2
    scratch = votes["surface_scratch"]
    assert (scratch.support, scratch.neighbours) == (4, 5)
    assert abs(scratch.weighted - round((0.9 + 0.8 + 0.7 + 0.2) / total, 4)) < 1e-9
    assert votes["no_damage"].support == 1  # an unlabelled neighbour votes 'no damage'
    assert abs(votes["dent"].weighted - round(0.9 / total, 4)) < 1e-9
    assert list(votes)[0] == "surface_scratch"
    # the vote rule (indexer.retrieval.votes): predicted at half of the neighbours or more
    assert [v.label for v in votes.values() if v.predicted] == ["surface_scratch"]


def test_negative_scores_do_not_vote_against(taxonomy):
    h = (
        hit(1, -0.5, {"dent": 1}, taxonomy=taxonomy),
        hit(2, -0.1, {"crack": 1}, taxonomy=taxonomy),
    )
    votes = label_votes(hit_votes(h, taxonomy), language="en")
    assert [v.weighted for v in votes] == [0.5, 0.5]


def test_markdown_block(taxonomy):
    out = render_context(result(hits(taxonomy), taxonomy), max_examples=3)
    lines = out.context.splitlines()
    assert lines[0] == "### Similar verified cases"
    assert lines[3].startswith("1. **Similarity 90%**. Labels: 2 surface scratches, 1 dent.")
    assert "Zone: hood center (frontal area)" in lines[3]
    assert "2 surface scratches and 1 dent on the hood center (frontal area)" in lines[3]
    assert lines[5].startswith("3. **Similarity 70%**")
    assert "Surface scratch: 4 of 5 neighbours, weighted 0.87" in out.context
    assert len(out.cases) == 3 and out.label_votes[0].neighbours == 5


def test_spanish_uses_spanish_names_and_decimal_comma(taxonomy):
    out = render_context(result(hits(taxonomy), taxonomy), language="es", fmt="text")
    assert out.context.startswith("Casos verificados similares:")
    assert "Arañazo superficial: 4 de 5 vecinos, ponderado 0,87" in out.context
    assert out.cases[0].zone_name == "centro del capó"


def test_spanish_block_counts_in_spanish(taxonomy):
    """'1 pieza faltante', never '1 x Falta pieza' nor '1 falta pieza'; places with an article."""
    h = (
        hit(1, 0.9, {"paint_peeling": 2, "missing_part": 1}, taxonomy=taxonomy),
        hit(2, 0.8, {"paint_peeling": 1}, "driver_side_door", taxonomy=taxonomy),
    )
    for fmt in ("text", "markdown"):
        block = render_context(result(h, taxonomy), language="es", fmt=fmt).context
        assert "Etiquetas: 2 zonas con pintura levantada, 1 pieza faltante." in block
        assert (
            "Descripción: 2 zonas con pintura levantada y 1 pieza faltante en el centro del capó "
            "(zona frontal)." in block
        )
        assert "Descripción: 1 zona con pintura levantada en la puerta del conductor" in block
        assert " x " not in block.replace(" x 100", "") and "falta pieza" not in block.lower()
    en = render_context(result(h, taxonomy), fmt="text").context
    assert "Labels: 2 paint peeling areas, 1 missing part." in en


def test_json_and_empty(taxonomy):
    out = render_context(result(hits(taxonomy), taxonomy, "rerank"), fmt="json")
    data = json.loads(out.context)
    assert data["neighbours"] == 5 and data["cases"][0]["similarity_pct"] == 90
    empty = render_context(result((), taxonomy))
    assert "No similar indexed case was found." in empty.context and empty.label_votes == ()


def filtered(taxonomy, mode: str) -> RetrievalResult:
    """A result as the Retriever returns it for a query filtered to dents or cracks on the hood."""
    from indexer.query import Filters
    from indexer.retrieval.retriever import filter_terms

    terms = filter_terms(Filters(labels_any=("dent", "crack"), zones=("hood_center",)), taxonomy)
    return replace(result(hits(taxonomy), taxonomy, mode), filters=terms)


def test_the_block_says_what_chose_the_cases_in_every_format_and_language(taxonomy):
    plain = render_context(result(hits(taxonomy), taxonomy), fmt="text").context
    assert "The 5 indexed cases most similar to the image (similarity = cosine" in plain
    assert "considering only" not in plain

    for fmt in ("markdown", "text", "json"):
        en = render_context(filtered(taxonomy, "probe"), fmt=fmt).context
        es = render_context(filtered(taxonomy, "probe"), fmt=fmt, language="es").context
        assert "The 5 indexed cases most similar" not in en  # the label head chose them
        assert "label-head ranking" in en and "labels estimated for this image" in en
        assert "considering only cases labelled Dent or Crack, in the zone hood center" in en
        assert "similarity = cosine similarity of the image embeddings" in en  # probe: image cosine
        assert "clasificador de etiquetas" in es
        assert "solo casos con la etiqueta Abolladura o Grieta, en la zona centro del capó" in es
    data = json.loads(render_context(filtered(taxonomy, "rerank"), fmt="json").context)
    assert data["filters"] == {"labels_any": ["dent", "crack"], "zones": ["hood_center"]}
    assert "re-ranked by agreement with the description its nearest" in data["selection"]
    hybrid = render_context(result(hits(taxonomy), taxonomy, "hybrid"), fmt="text").context
    assert "closest to the image and the supplied text together" in hybrid
    assert "weighted image and text cosine similarity" in hybrid
