"""/health, /ready, /metrics, /info and the catalogue thumbnails."""

from __future__ import annotations

import io

from api_fakes import assert_error, jpeg
from metric_samples import metric_samples
from PIL import Image


def test_health_and_ready(client):
    assert client.get("/health").json() == {"status": "ok"}
    assert client.get("/ready").json()["ready"] is True


def test_info_has_manifest_and_runtime(client):
    body = client.get("/info").json()
    assert body["manifest"]["image_model"]["id"] == "fake/colour"
    rt = body["runtime"]
    assert rt["device"] == "cpu" and rt["dtype"] == "fp32"
    assert rt["index_size"] == 5 and rt["max_batch_size"] == 16 and rt["status"] == "ready"


def test_metrics_count_requests_stages_and_batches(client):
    client.post("/retrieve", files={"image": ("q.jpg", jpeg(), "image/jpeg")})
    client.post("/retrieve", files={"image": ("q.jpg", b"", "image/jpeg")})
    client.get("/nope/123")
    text = client.get("/metrics").text
    s = metric_samples(text)
    assert s[("visrag_requests_total", (("outcome", "ok"), ("route", "/retrieve")))] == 1
    assert s[("visrag_requests_total", (("outcome", "invalid_image"), ("route", "/retrieve")))] == 1
    assert s[("visrag_requests_total", (("outcome", "not_found"), ("route", "unmatched")))] == 1
    for stage in ("decode", "preprocess", "encode", "search", "render"):
        assert s[("visrag_stage_seconds_count", (("stage", stage),))] >= 1, stage
    assert s[("visrag_batch_size_count", ())] >= 2  # warm-up + the request
    assert s[("visrag_index_vectors", ())] == 5
    assert s[("visrag_queue_depth", ())] == 0
    assert s[("visrag_ready", ())] == 1


def test_thumbnail_of_a_catalogue_item(client):
    r = client.get("/items/red-1/image?size=128")
    assert r.status_code == 200 and r.headers["content-type"] == "image/jpeg"
    img = Image.open(io.BytesIO(r.content))
    assert max(img.size) == 128 and img.size == (128, 85)


def test_thumbnails_never_follow_paths(client):
    for path in (
        "/items/nope/image",
        "/items/..%2F..%2Fetc%2Fpasswd/image",
        "/items/../../etc/passwd/image",
    ):
        r = client.get(path)
        assert r.status_code == 404, path
        assert "root:" not in r.text
    assert_error(client.get("/items/nope/image"), 404, "not_found")


def test_thumbnail_of_an_image_gone_or_broken_since_indexing_is_404(client, fakes):
    (fakes.image_dir / "red-1.jpg").write_bytes(b"no longer a jpeg")
    assert_error(client.get("/items/red-1/image"), 404, "not_found")
    (fakes.image_dir / "red-1.jpg").unlink()
    assert_error(client.get("/items/red-1/image"), 404, "not_found")


def test_demo_page_and_assets(client):
    r = client.get("/")
    assert r.status_code == 200 and "visrag" in r.text
    assert client.get("/static/app.js").status_code == 200
    assert client.get("/static/style.css").status_code == 200


def test_demo_page_can_be_turned_off(make_client):
    client = make_client(demo_page=False)
    assert client.get("/").status_code == 404


def test_openapi_multipart_fields_have_no_null_a_form_cannot_send(client):
    # A multipart field is a string or absent; a schema offering null invites clients (and
    # schemathesis) to send the text "null", which the service rightly refuses with 422.
    spec = client.get("/openapi.json").json()
    for path in ("/retrieve", "/context"):
        body = spec["paths"][path]["post"]["requestBody"]["content"]["multipart/form-data"]
        props = body["schema"]["properties"]
        assert not [name for name, prop in props.items() if "anyOf" in prop], path
        assert props["alpha"]["type"] == "number" and props["alpha"]["maximum"] == 1.0
        assert props["text"]["type"] == "string" and props["text"]["maxLength"] == 2000
