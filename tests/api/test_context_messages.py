"""POST /context with format=messages: chat content parts carrying the neighbours' images."""

from __future__ import annotations

import base64
import io

from api_fakes import COLOURS, assert_error, jpeg
from PIL import Image

RED = (220, 30, 30)
PREFIX = "data:image/jpeg;base64,"


def post(client, **data):
    files = {"image": ("q.jpg", jpeg(RED), "image/jpeg")}
    return client.post("/context", files=files, data={"format": "messages", **data})


def decode(url: str) -> Image.Image:
    assert url.startswith(PREFIX)
    image = Image.open(io.BytesIO(base64.b64decode(url[len(PREFIX) :])))
    image.load()
    return image


def neighbours(parts):
    """(image part, the text part after it) pairs, in order."""
    return [
        (part["image_url"]["url"], parts[i + 1]["text"])
        for i, part in enumerate(parts)
        if part["type"] == "image_url"
    ]


def test_one_image_per_neighbour_in_order_with_its_labels(client):
    r = post(client, k="4")
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["format"] == "messages"
    parts, cases = body["messages"], body["cases"]
    assert parts[0]["type"] == "text" and "4 indexed cases most similar" in parts[0]["text"]
    pairs = neighbours(parts)
    assert len(pairs) == len(cases) == 4
    for (url, text), case in zip(pairs, cases, strict=True):
        image = decode(url)
        assert image.format == "JPEG" and max(image.size) == 300  # catalogue image, 300 x 200
        # The image is the neighbour's own catalogue image: its solid colour.
        expected = COLOURS[case["id"]][0]
        pixel = image.getpixel((150, 100))
        assert all(abs(a - b) <= 8 for a, b in zip(pixel, expected, strict=True))
        assert text.startswith(f"Case {case['rank']} ({case['id']}): similarity")
        assert f"{case['similarity_pct']}%" in text
        for label in case["labels"]:
            assert label["phrase"] in text  # the taxonomy's counted form: '2 surface scratches'
        assert case["zone_name"] in text
    # after the cases: the votes, the label head's estimates (above the threshold), the label set
    assert parts[-3]["type"] == "text"
    assert parts[-3]["text"].startswith("Label votes across the 4 neighbours:")
    top_vote = body["label_votes"][0]
    assert f"- {top_vote['name']}: {top_vote['support']} of 4 neighbours" in parts[-3]["text"]
    assert parts[-2]["text"].startswith("Label estimates (") and body["label_estimates"]
    assert parts[-1]["text"].startswith("Label set: ") and body["label_set"]
    assert body["context"]  # the text block still comes along


def test_limits_bound_the_images(client):
    body = post(client, k="5", max_images="2", max_image_side="64").json()
    pairs = neighbours(body["messages"])
    assert len(pairs) == 2
    assert [max(decode(url).size) for url, _ in pairs] == [64, 64]
    assert [text.split(" ")[1] for _, text in pairs] == ["1", "2"]
    # The cases past the image limit are still described, marked as without image.
    texts = [p["text"] for p in body["messages"] if p["type"] == "text"]
    assert sum("(image not included)" in t for t in texts) == 3


def test_image_urls_point_at_the_thumbnails(client):
    body = post(client, k="3", image_urls="true", max_image_side="200").json()
    urls = [url for url, _ in neighbours(body["messages"])]
    assert urls == [f"http://testserver/items/{c['id']}/image?size=128" for c in body["cases"]]
    thumb = client.get(urls[0].removeprefix("http://testserver"))
    assert thumb.status_code == 200 and max(Image.open(io.BytesIO(thumb.content)).size) == 128


def test_spanish_parts(client):
    parts = post(client, k="2", language="es").json()["messages"]
    assert "casos indexados más parecidos" in parts[0]["text"]
    assert neighbours(parts)[0][1].startswith("Caso 1 (")
    assert parts[-3]["text"].startswith("Votos de etiquetas entre los 2 vecinos:")
    assert parts[-2]["text"].startswith("Estimaciones de etiquetas (")
    assert "- probable: " in parts[-2]["text"]
    assert parts[-1]["text"].startswith("Conjunto de etiquetas: ")


def test_other_formats_have_no_parts_and_bad_limits_are_refused(client):
    files = {"image": ("q.jpg", jpeg(RED), "image/jpeg")}
    assert client.post("/context", files=files, data={"k": "2"}).json()["messages"] is None
    assert_error(post(client, max_images="99"), 422, "bad_parameter")
    assert_error(post(client, max_image_side="10"), 422, "bad_parameter")
