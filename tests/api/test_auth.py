"""Optional API keys: Bearer or X-API-Key; /health and /ready stay open."""

from __future__ import annotations

import pytest
from api_fakes import assert_error, jpeg


@pytest.fixture
def client(make_client):
    return make_client(api_keys="k-one,k-two")


def post(client, headers=None):
    files = {"image": ("q.jpg", jpeg(), "image/jpeg")}
    return client.post("/retrieve", files=files, headers=headers or {})


def test_missing_and_wrong_keys_are_401(client):
    r = assert_error(post(client), 401, "unauthorised")
    assert "API key" in r["error"]
    assert_error(post(client, {"Authorization": "Bearer nope"}), 401, "unauthorised")
    assert_error(post(client, {"X-API-Key": "k-on"}), 401, "unauthorised")
    assert post(client).headers["www-authenticate"] == "Bearer"


def test_either_header_with_any_configured_key_passes(client):
    assert post(client, {"Authorization": "Bearer k-one"}).status_code == 200
    assert post(client, {"X-API-Key": "k-two"}).status_code == 200


def test_open_and_protected_routes(client):
    assert client.get("/health").status_code == 200
    assert client.get("/ready").status_code == 200
    assert client.get("/").status_code == 200
    for path in ("/metrics", "/info", "/items/red-1/image"):
        assert_error(client.get(path), 401, "unauthorised")
        assert client.get(path, headers={"X-API-Key": "k-one"}).status_code == 200, path
    r = client.post("/context", files={"image": ("q.jpg", jpeg(), "image/jpeg")})
    assert_error(r, 401, "unauthorised")


def test_no_keys_configured_means_open(make_client):
    client = make_client()
    assert post(client).status_code == 200
    assert client.get("/metrics").status_code == 200


def test_ready_reason_only_with_a_key(make_client, fakes):
    fakes.image_encoder.gate.clear()
    client = make_client(ready=False, api_keys="k-one")
    try:
        assert client.get("/ready").json()["reason"] is None
        r = client.get("/ready", headers={"X-API-Key": "k-one"})
        assert r.status_code == 503 and r.json()["reason"]
    finally:
        fakes.image_encoder.gate.set()
