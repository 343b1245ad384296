"""POST /context: the block for the VLM prompt and its structured twin."""

from __future__ import annotations

import json

from api_fakes import assert_error, jpeg

RED = (220, 30, 30)


def post(client, **data):
    files = {"image": ("q.jpg", jpeg(RED), "image/jpeg")}
    return client.post("/context", files=files, data=data)


def test_markdown_block_lists_cases_and_votes(client):
    r = post(client, k="3")
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["format"] == "markdown" and body["language"] == "en"
    ctx = body["context"]
    assert ctx.startswith("### Similar verified cases")
    top = body["cases"][0]
    assert top["id"] == "red-1" and top["similarity_pct"] == round(100 * top["score"])
    assert f"**Similarity {top['similarity_pct']}%**" in ctx
    assert "Labels: 2 surface scratches, 1 dent." in ctx  # the taxonomy's counted forms
    assert "Zone: hood center (frontal area)" in ctx
    assert "### Label votes across the 3 neighbours" in ctx
    votes = {v["label"]: v for v in body["label_votes"]}
    # red-1 (scratch+dent) and orange-5 (scratch) are the 2 nearest to red after itself.
    assert votes["surface_scratch"]["support"] == 2
    assert votes["surface_scratch"]["neighbours"] == 3
    assert (
        f"Surface scratch: 2 of 3 neighbours, weighted {votes['surface_scratch']['weighted']:.2f}"
        in ctx
    )
    assert set(body["timings"]) >= {"decode", "encode", "search", "render"}


def test_spanish_text_format_and_max_examples(client):
    r = post(client, k="4", language="es", format="text", max_examples="2")
    body = r.json()
    assert r.status_code == 200, r.text
    assert len(body["cases"]) == 2
    assert len(body["label_votes"]) >= 1 and body["label_votes"][0]["neighbours"] == 4
    ctx = body["context"]
    assert ctx.startswith("Casos verificados similares:")
    assert "###" not in ctx and "**" not in ctx
    assert "Arañazo superficial" in ctx and "de 4 vecinos, ponderado" in ctx
    assert body["cases"][0]["description"].startswith("2 arañazos superficiales y 1 abolladura")


def test_json_format_is_parseable_and_matches_the_structured_fields(client):
    body = post(client, format="json").json()
    parsed = json.loads(body["context"])
    assert [c["id"] for c in parsed["cases"]] == [c["id"] for c in body["cases"]]
    assert parsed["label_votes"] == body["label_votes"]


def test_bad_context_parameters_are_422(client):
    assert "language" in assert_error(post(client, language="fr"), 422, "bad_parameter")["error"]
    assert "format" in assert_error(post(client, format="html"), 422, "bad_parameter")["error"]
    assert_error(post(client, max_examples="0"), 422, "bad_parameter")


def test_a_filtered_block_says_the_filter_chose_the_cases(client):
    """'the cases most similar to the image' is false when a filter chose them: every format and
    the chat parts say what restricted the candidates."""
    for fmt in ("markdown", "text", "json", "messages"):
        body = post(client, k="2", labels_any="dent", format=fmt).json()
        assert [c["id"] for c in body["cases"]] == ["red-1", "green-2"]
        said = body["messages"][0]["text"] if fmt == "messages" else body["context"]
        assert "considering only cases labelled Dent" in said, fmt
    es = post(client, k="2", labels_any="dent", language="es").json()["context"]
    assert "considerando solo casos con la etiqueta Abolladura" in es
    assert "considering only" not in post(client, k="2").json()["context"]
