"""POST /retrieve through the app with fake resources: ranks, labels, schema, parameters."""

from __future__ import annotations

from api_fakes import assert_error, jpeg, png

RED = (220, 30, 30)


def post(client, image=None, **data):
    image = jpeg(RED) if image is None else image
    return client.post("/retrieve", files={"image": ("q.jpg", image, "image/jpeg")}, data=data)


def test_red_upload_ranks_the_red_item_first_with_its_labels(client):
    r = post(client, k="3")
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["mode"] == "image"
    assert [h["rank"] for h in body["hits"]] == [1, 2, 3]
    top = body["hits"][0]
    assert top["id"] == "red-1"
    assert 0.99 < top["score"] <= 1.0
    assert [(lb["id"], lb["count"]) for lb in top["labels"]] == [
        ("surface_scratch", 2),
        ("dent", 1),
    ]
    assert top["labels"][0] == {
        "id": "surface_scratch",
        "count": 2,
        "name": "Surface scratch",
        "name_es": "Arañazo superficial",
        "coarse": "Scratch",
    }
    assert top["zone"] == "hood_center" and top["area"] == "frontal"
    assert top["image_url"] == "/items/red-1/image"
    scores = [h["score"] for h in body["hits"]]
    assert scores == sorted(scores, reverse=True)
    for stage in ("decode", "preprocess", "queue", "encode", "search", "render"):
        assert body["timings"][stage] >= 0, stage


def test_default_k_comes_from_settings(make_client):
    client = make_client(default_k=2)
    assert len(post(client).json()["hits"]) == 2


def test_png_upload_is_accepted(client):
    r = client.post("/retrieve", files={"image": ("q.png", png((30, 40, 210)), "image/png")})
    assert r.status_code == 200
    assert r.json()["hits"][0]["id"] == "blue-3"


def ids(response):
    assert response.status_code == 200, response.text
    return [h["id"] for h in response.json()["hits"]]


def test_filters_are_normalised_through_the_taxonomy_and_really_filter(client):
    # Spanish names, plurals and a zone number mean the same as the canonical ids.
    loose = {"labels_any": ["Arañazo superficial, Dents", "crack"], "zones": "7"}
    canonical = {"labels_any": "surface_scratch,dent,crack", "zones": "driver_side_door"}
    assert ids(post(client, k="5", **loose)) == ids(post(client, k="5", **canonical))
    # Only the cracked door is on the driver's door, however red the query is.
    assert ids(post(client, k="5", **loose)) == ["blue-3"]


def test_each_filter_keeps_exactly_the_matching_items_in_image_order(client):
    assert ids(post(client)) == ["red-1", "orange-5", "grey-4", "green-2", "blue-3"]
    assert ids(post(client, labels_any="dent")) == ["red-1", "green-2"]
    assert ids(post(client, labels_all="surface_scratch,dent")) == ["red-1"]
    assert ids(post(client, zones="hood_center")) == ["red-1", "orange-5"]
    assert ids(post(client, areas="posterior")) == ["green-2"]
    assert ids(post(client, labels_any="dent", zones="rear_bumper")) == ["green-2"]


def test_unknown_label_is_a_422_naming_it(client):
    body = assert_error(post(client, labels_all="wheel wobble"), 422, "bad_parameter")
    assert "wheel wobble" in body["error"]


def test_unknown_zone_and_area_are_422(client):
    assert "roof" in assert_error(post(client, zones="roof"), 422, "bad_parameter")["error"]
    assert "up" in assert_error(post(client, areas="up"), 422, "bad_parameter")["error"]


def test_k_out_of_range_is_a_422_naming_k(client):
    for k in ("0", "101", "many"):
        body = assert_error(post(client, k=k), 422, "bad_parameter")
        assert body["error"].startswith("k:"), body


def test_bad_mode_and_unknown_field_are_422(client):
    assert "mode" in assert_error(post(client, mode="magic"), 422, "bad_parameter")["error"]
    assert "labels" in assert_error(post(client, labels="dent"), 422, "bad_parameter")["error"]


def test_hybrid_without_text_is_a_422(client):
    body = assert_error(post(client, mode="hybrid"), 422, "bad_parameter")
    assert "text" in body["error"]


def test_every_mode_ranks_by_what_it_searches(client):
    # image: the red item first (the upload's own colour).
    assert ids(post(client, k="3")) == ["red-1", "orange-5", "grey-4"]
    # hybrid: the caption outweighs the colour: the cracked door first for a red image.
    hybrid = post(client, mode="hybrid", text="a crack on the door", k="3")
    assert ids(hybrid)[0] == "blue-3"
    assert hybrid.json()["pseudo_text"] is None
    # rerank: the red neighbours agree on scratches on the hood; that text matches orange-5
    # (one scratch on the hood) better than red-1 (scratches and a dent), so orange-5 moves up.
    rerank = post(client, mode="rerank", k="3")
    assert rerank.json()["pseudo_text"] == "2 surface scratches on the hood center (frontal area)"
    assert ids(rerank)[:2] == ["orange-5", "red-1"]


def test_alpha_moves_the_hybrid_ranking(client):
    text = {"mode": "hybrid", "text": "a crack on the door", "k": "2"}
    assert ids(post(client, alpha="0", **text))[0] == "blue-3"
    assert ids(post(client, alpha="1", **text)) == ["red-1", "orange-5"]


def test_models_run_on_the_inference_thread(client, fakes):
    assert post(client, mode="hybrid", text="a scratched hood").status_code == 200
    r = post(client, mode="rerank")
    assert r.status_code == 200
    assert "text_encode" in r.json()["timings"]
    assert fakes.text_encoder.threads == {"visrag-inference"}
    assert fakes.image_encoder.threads == {"visrag-inference"}


def test_openapi_documents_the_multipart_body(client):
    spec = client.get("/openapi.json").json()
    body = spec["paths"]["/retrieve"]["post"]["requestBody"]["content"]["multipart/form-data"]
    assert {"image", "k", "mode", "labels_any"} <= set(body["schema"]["properties"])
