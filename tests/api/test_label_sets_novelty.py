"""The conformal label set and the novelty signal in /retrieve, /context (every format, en/es)
and /metrics, over the fakes' five-photo index."""

from __future__ import annotations

import json

import pytest
from api_fakes import jpeg

RED = (220, 30, 30)  # lands on red-1: as close to the others as the indexed photos are
BLUE = (0, 0, 255)  # farther from the catalogue than any indexed photo is from the others
GUARANTEE = {
    "en": (
        "It covers all true labels of photos like the indexed cases with probability >= ",
        "not a certainty about this photo",
    ),
    "es": (
        "Cubre todas las etiquetas verdaderas de fotos como los casos indexados con "
        "probabilidad >= ",
        "no una certeza sobre esta foto",
    ),
}
NOTE = {
    "en": "Note: no indexed case is close to this photo: treat the cases below as weak evidence.",
    "es": "Nota: ningún caso indexado se parece a esta foto: trate los casos siguientes como "
    "evidencia débil.",
}


def post(client, route, colour=RED, **data):
    return client.post(route, files={"image": ("q.jpg", jpeg(colour), "image/jpeg")}, data=data)


def test_retrieve_label_set_follows_the_alpha_setting(make_client):
    half = post(make_client(label_set_alpha=0.5), "/retrieve").json()["label_set"]
    assert half["coverage"] == 0.5 and not half["every_label"]
    assert [m["label"] for m in half["labels"]] == ["surface_scratch"]  # red-1's leading label
    assert half["statement"].startswith("Surface scratch. " + GUARANTEE["en"][0] + "50 %")
    # five photos cannot back a 90 % promise: the set is every label, and says why
    strict = post(make_client(), "/retrieve").json()["label_set"]
    assert strict["coverage"] == 0.9 and strict["every_label"]
    assert len(strict["labels"]) == 4 and "too few indexed cases" in strict["statement"]


def test_retrieve_without_a_head_has_no_label_set(make_client, fakes):
    fakes.resources.retriever.artifacts.label_head = None
    body = post(make_client(), "/retrieve").json()
    assert body["label_set"] is None and body["hits"]


@pytest.mark.parametrize("language", ["en", "es"])
@pytest.mark.parametrize("fmt", ["markdown", "text", "json", "messages"])
def test_context_words_the_set_as_a_guarantee_over_photos(make_client, fmt, language):
    client = make_client(label_set_alpha=0.5)
    body = post(client, "/context", format=fmt, language=language).json()
    statement = body["label_set"]["statement"]
    assert all(words in statement for words in GUARANTEE[language])
    assert "50 %" in statement
    if fmt == "json":
        assert json.loads(body["context"])["label_set"]["statement"] == statement
    elif fmt == "messages":
        assert body["messages"][-1]["text"].endswith(statement)
    else:
        assert statement in body["context"]


@pytest.mark.parametrize("language", ["en", "es"])
@pytest.mark.parametrize("fmt", ["markdown", "text", "json", "messages"])
def test_a_far_photo_is_flagged_and_the_block_opens_with_the_warning(make_client, fmt, language):
    client = make_client(novelty_threshold=0.2)
    far = post(client, "/context", BLUE, format=fmt, language=language).json()
    assert far["novelty"]["flag"] and far["novelty"]["p_value"] < 0.2
    assert far["novelty"]["note"] == NOTE[language]
    if fmt == "json":
        assert json.loads(far["context"])["novelty"]["note"] == NOTE[language]
    elif fmt == "messages":
        assert far["messages"][0]["text"] == NOTE[language]
        assert far["context"].splitlines()[0] == NOTE[language]
    else:
        assert far["context"].splitlines()[0] == NOTE[language]
    near = post(client, "/context", RED, format=fmt, language=language).json()
    assert not near["novelty"]["flag"] and near["novelty"]["note"] is None
    assert NOTE[language] not in near["context"]
    assert near["novelty"]["p_value"] > far["novelty"]["p_value"]


def test_retrieve_novelty_and_its_histogram(make_client):
    client = make_client(novelty_threshold=0.2)
    far = post(client, "/retrieve", BLUE).json()["novelty"]
    assert far["flag"] and far["threshold"] == 0.2 and 0 < far["score"] < 1
    assert not post(client, "/retrieve", RED).json()["novelty"]["flag"]
    metrics = client.get("/metrics").text
    assert "visrag_novelty_p_value_count 2.0" in metrics
    assert 'visrag_novelty_p_value_bucket{le="0.2"} 1.0' in metrics
