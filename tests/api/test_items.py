"""The catalogue over HTTP with the fake encoders over a real flat index: writes go through the
CLI's writer, are served by the answer's generation, and need a write key."""

from __future__ import annotations

import io
import json
import threading

import pytest
from api_fakes import assert_error, jpeg, png
from PIL import Image

from indexer.index.artifacts import load_artifacts
from indexer.index.locking import writer_lock

WRITER = "gateway:w-secret-1"
W = {"X-API-Key": "w-secret-1"}
R = {"X-API-Key": "r-key-123"}
PURPLE, TEAL = (150, 20, 160), (20, 160, 150)


@pytest.fixture
def client(make_client):
    return make_client(api_keys="r-key-123", write_keys=WRITER, reload_interval_s=0)


def add(client, *images, headers=W, **fields):
    files = [("image", (f"{i}.jpg", data, "image/jpeg")) for i, data in enumerate(images)]
    return client.post("/items", files=files, data=fields, headers=headers)


def top_hit(client, colour):
    r = client.post("/retrieve", files={"image": ("q.jpg", jpeg(colour), "image/jpeg")}, headers=R)
    assert r.status_code == 200, r.text
    return r.json()["hits"][0]["id"]


def test_add_several_items_then_query_look_up_and_list_them(client, fakes):
    r = add(
        client,
        jpeg(PURPLE),
        png(TEAL),
        id=["purple-6", "teal-7"],
        labels=["dent:2, scratch", "grieta"],
        zone=["7", "hood center"],
    )
    assert r.status_code == 201, r.text
    body = r.json()
    assert body["ids"] == ["purple-6", "teal-7"] and body["count"] == 7
    assert body["generation"] == 2  # one generation for the whole request: one refit
    assert top_hit(client, PURPLE) == "purple-6" and top_hit(client, TEAL) == "teal-7"
    item = client.get("/items/purple-6", headers=R).json()
    assert [(lb["id"], lb["count"]) for lb in item["labels"]] == [
        ("dent", 2),
        ("surface_scratch", 1),
    ]
    assert item["zone"] == "driver_side_door"
    thumbnail = client.get(item["image_url"], headers=R)
    assert thumbnail.status_code == 200 and thumbnail.headers["content-type"] == "image/jpeg"
    page = client.get("/items", params={"label": "crack"}, headers=R).json()
    assert [it["id"] for it in page["items"]] == ["blue-3", "teal-7"]
    assert len(load_artifacts(fakes.resources.retriever.artifacts.path)) == 7


def test_listing_pages_in_id_order_with_filters(client):
    first = client.get("/items", params={"limit": 2}, headers=R).json()
    assert [it["id"] for it in first["items"]] == ["blue-3", "green-2"]
    assert first["total"] == 5 and first["next_after"] == "green-2"
    rest = client.get("/items", params={"limit": 10, "after": "green-2"}, headers=R).json()
    assert [it["id"] for it in rest["items"]] == ["grey-4", "orange-5", "red-1"]
    assert rest["next_after"] is None
    zone = client.get("/items", params={"zone": "hood center"}, headers=R).json()
    assert [it["id"] for it in zone["items"]] == ["orange-5", "red-1"]
    assert_error(client.get("/items", params={"label": "rust"}, headers=R), 422, "bad_parameter")
    assert_error(client.get("/items/nope", headers=R), 404, "not_found")


def test_put_is_idempotent_and_delete_removes(client, fakes):
    for _ in range(2):
        r = client.put(
            "/items/teal-7",
            files={"image": ("t.png", png(TEAL), "image/png")},
            data={"labels": "crack"},
            headers=W,
        )
        assert r.status_code == 200, r.text
        assert r.json()["count"] == 6
    r = client.put(
        "/items/teal-7",
        files={"image": ("t.png", png(TEAL), "image/png")},
        data={"labels": "dent"},
        headers=W,
    )
    assert [lb["id"] for lb in client.get("/items/teal-7", headers=R).json()["labels"]] == ["dent"]
    assert top_hit(client, TEAL) == "teal-7"
    r = client.delete("/items/teal-7", headers=W)
    assert r.status_code == 204 and r.content == b""
    assert_error(client.get("/items/teal-7", headers=R), 404, "not_found")
    assert top_hit(client, TEAL) != "teal-7"
    assert_error(client.delete("/items/teal-7", headers=W), 404, "not_found")
    assert len(load_artifacts(fakes.resources.retriever.artifacts.path)) == 5


def test_an_id_already_indexed_is_409_and_nothing_is_written(client, fakes):
    assert_error(add(client, jpeg(PURPLE), id="red-1"), 409, "item_exists")
    assert_error(add(client, jpeg(PURPLE), labels="rust"), 422, "bad_parameter")
    assert_error(add(client, jpeg(PURPLE), png(TEAL), id="only-one"), 422, "bad_parameter")
    assert len(load_artifacts(fakes.resources.retriever.artifacts.path)) == 5


def test_the_same_photo_without_an_id_gets_the_same_id(client):
    first = add(client, jpeg(PURPLE)).json()["ids"]
    assert_error(add(client, jpeg(PURPLE)), 409, "item_exists")
    assert first[0].startswith("item-")


def test_history_names_the_key_never_the_key_itself(client, fakes):
    assert add(client, jpeg(PURPLE), id="p").status_code == 201
    assert client.delete("/items/p", headers=W).status_code == 204
    manifest = load_artifacts(fakes.resources.retriever.artifacts.path).manifest
    writes = [h for h in manifest.history if h.get("via") == "http"]
    assert [(h["op"], h["by"], h["ids"]) for h in writes] == [
        ("add", "gateway", ["p"]),
        ("remove", "gateway", ["p"]),
    ]
    assert "w-secret-1" not in json.dumps(manifest.history)


@pytest.mark.parametrize(
    ("headers", "status", "error_type"),
    [
        ({}, 401, "unauthorised"),
        ({"X-API-Key": "w-secret-2"}, 401, "unauthorised"),  # a valid key's length, one char off
        ({"X-API-Key": "gateway:w-secret-1"}, 401, "unauthorised"),  # the setting, not the key
        ({"Authorization": "Bearer r-key-123"}, 403, "forbidden"),
        (R, 403, "forbidden"),
    ],
)
def test_writes_need_a_write_key(client, fakes, headers, status, error_type):
    assert_error(add(client, jpeg(PURPLE), id="p", headers=headers), status, error_type)
    assert_error(client.delete("/items/red-1", headers=headers), status, error_type)
    assert len(load_artifacts(fakes.resources.retriever.artifacts.path)) == 5


def test_a_write_key_reads_too_and_a_read_key_only_reads(client):
    assert client.get("/items/red-1", headers=W).status_code == 200
    assert client.get("/items/red-1", headers=R).status_code == 200
    assert_error(client.get("/items/red-1"), 401, "unauthorised")


@pytest.mark.parametrize("key", [" spaced key ", "clé-ünïcødé-☃"])
def test_keys_with_whitespace_or_unicode(make_client, key):
    client = make_client(write_keys=f"[{json.dumps(key)}]", reload_interval_s=0)
    exact = {"Authorization": f"Bearer {key}".encode()}
    r = client.post("/items", files={"image": ("p.jpg", jpeg(PURPLE), "image/jpeg")}, headers=exact)
    assert r.status_code == 201, r.text  # edge spaces are not part of a key (HTTP strips them)
    near = {"Authorization": f"Bearer {key[:-1]}x".encode()}
    r = client.post("/items", files={"image": ("q.jpg", jpeg(TEAL), "image/jpeg")}, headers=near)
    assert_error(r, 401, "unauthorised")


def test_without_write_keys_there_is_no_write_api(make_client):
    client = make_client(api_keys="r-key-123")
    r = client.post("/items", files={"image": ("p.jpg", jpeg(PURPLE), "image/jpeg")}, headers=R)
    assert r.status_code == 405
    assert client.delete("/items/red-1", headers=R).status_code == 405
    assert client.get("/items/red-1", headers=R).status_code == 200
    assert (
        "writeBearerAuth" not in client.get("/openapi.json").json()["components"]["securitySchemes"]
    )


def test_openapi_shows_both_schemes(client):
    spec = client.get("/openapi.json").json()
    schemes = spec["components"]["securitySchemes"]
    assert {"bearerAuth", "apiKeyHeader", "writeBearerAuth", "writeKeyHeader"} <= set(schemes)
    post = spec["paths"]["/items"]["post"]
    assert post["security"] == [{"writeBearerAuth": []}, {"writeKeyHeader": []}]
    assert {"201", "401", "403", "409", "503"} <= set(post["responses"])
    get = spec["paths"]["/items/{item_id}"]["get"]
    assert get["security"] == [{"bearerAuth": []}, {"apiKeyHeader": []}]


def test_a_busy_writer_lock_is_503_with_retry_after(make_client, fakes):
    client = make_client(write_keys=WRITER, write_lock_wait_s=0, reload_interval_s=0)
    held, release = threading.Event(), threading.Event()

    def hold() -> None:
        with writer_lock(fakes.resources.retriever.artifacts.path):
            held.set()
            release.wait(30)

    holder = threading.Thread(target=hold)
    holder.start()
    try:
        held.wait(10)
        r = add(client, jpeg(PURPLE), id="p")
        assert_error(r, 503, "writer_busy")
        assert r.headers["retry-after"] == "1"
    finally:
        release.set()
        holder.join()
    assert add(client, jpeg(PURPLE), id="p").status_code == 201


def fractal(extent: tuple[float, float, float, float], *, quality=95, scale=1.0) -> bytes:
    """A picture with structure (solid colours have an uninformative perceptual hash)."""
    image = Image.effect_mandelbrot((320, 240), extent, 60).convert("RGB")
    image = image.resize((round(320 * scale), round(240 * scale)))
    out = io.BytesIO()
    image.save(out, format="JPEG", quality=quality)
    return out.getvalue()


def test_a_near_copy_of_an_indexed_photo_is_409_unless_allowed(client, fakes):
    whole, detail = (-2.0, -1.5, 1.0, 1.5), (-0.8, -0.2, -0.4, 0.2)
    assert add(client, fractal(whole), id="photo-1").status_code == 201
    for copy in (fractal(whole), fractal(whole, quality=70, scale=0.9)):
        body = assert_error(add(client, copy, id="copy"), 409, "duplicate_of")
        assert "copy duplicate_of photo-1" in body["error"]
    r = add(client, fractal(whole, quality=70, scale=0.9), id="copy", allow_duplicate="true")
    assert r.status_code == 201, r.text
    assert add(client, fractal(detail), id="photo-2").status_code == 201
    assert len(load_artifacts(fakes.resources.retriever.artifacts.path)) == 8
