"""Every error status through the one table: body shape, no internals, the right code."""

from __future__ import annotations

import io
import threading
import time

import anyio
from api_fakes import assert_error, jpeg, wait_ready
from PIL import Image


def post_file(client, data, *, ctype="image/jpeg", name="image", **form):
    return client.post("/retrieve", files={name: ("q.jpg", data, ctype)}, data=form)


def test_zero_byte_upload_is_422(client):
    body = assert_error(post_file(client, b""), 422, "invalid_image")
    assert "empty" in body["error"]


def test_garbage_bytes_are_415(client):
    assert_error(post_file(client, b"definitely not an image" * 10), 415, "unsupported_media")


def test_declared_non_image_type_is_415(client):
    body = assert_error(post_file(client, b"hello", ctype="text/plain"), 415, "unsupported_media")
    assert "text/plain" in body["error"]


def test_not_multipart_is_415(client):
    r = client.post("/retrieve", content=jpeg(), headers={"content-type": "image/jpeg"})
    assert_error(r, 415, "unsupported_media")


def test_missing_image_field_is_422(client):
    r = client.post("/retrieve", files={"k": (None, "3")})
    assert "image" in assert_error(r, 422, "bad_parameter")["error"]


def test_truncated_jpeg_is_422(client):
    data = jpeg(size=(64, 64))
    assert_error(post_file(client, data[: len(data) // 2]), 422, "invalid_image")


def test_decompression_bomb_is_413(make_client):
    client = make_client(max_pixels=10_000)
    out = io.BytesIO()
    Image.new("RGB", (200, 200), (1, 2, 3)).save(out, format="PNG")
    assert_error(post_file(client, out.getvalue(), ctype="image/png"), 413, "image_too_large")


def test_declared_oversized_upload_is_413_before_reading(make_client):
    client = make_client(max_upload_bytes=1000)
    consumed = []

    def body():
        for i in range(10_000):  # would be 640 MB if read to the end
            consumed.append(i)
            yield b"x" * 65536

    r = client.post(
        "/retrieve",
        content=body(),
        headers={
            "content-type": "multipart/form-data; boundary=xyz",
            "content-length": str(10_000 * 65536),
        },
    )
    assert_error(r, 413, "too_large")
    assert len(consumed) <= 2


def test_streamed_oversized_upload_stops_reading_at_the_limit(make_client):
    # httpx (and so TestClient) reads a request body completely before sending it, so this
    # drives the ASGI app directly with a receive() that counts what the app pulled.
    client = make_client(max_upload_bytes=100_000)
    head = (
        b'--xyz\r\nContent-Disposition: form-data; name="image"; filename="a.jpg"\r\n'
        b"Content-Type: image/jpeg\r\n\r\n\xff\xd8\xff"
    )
    pulled = 0

    async def receive():  # chunked, no Content-Length: ~2 GB if read to the end
        nonlocal pulled
        pulled += 1
        body = head if pulled == 1 else b"\0" * 65536
        return {"type": "http.request", "body": body, "more_body": pulled < 30_000}

    sent = _drive_retrieve(client, receive)
    assert sent[0]["status"] == 413
    assert b'"too_large"' in sent[1]["body"]
    assert pulled <= 3  # 100 kB + form overhead = at most a few 64 kB chunks, never 2 GB


def test_queue_full_is_429_with_retry_after(make_client, fakes):
    client = make_client(max_batch_size=1, max_queue=1, max_wait_ms=0)
    enc = fakes.image_encoder
    enc.gate.clear()
    enc.entered.clear()
    results = []

    def send():
        results.append(post_file(client, jpeg()).status_code)

    first = threading.Thread(target=send)
    first.start()
    assert enc.entered.wait(5)  # first request is inside the encoder
    second = threading.Thread(target=send)
    second.start()
    worker = client.app.state.service.worker
    deadline = time.monotonic() + 5
    while worker.depth < 1 and time.monotonic() < deadline:
        time.sleep(0.005)
    r = post_file(client, jpeg())
    enc.gate.set()
    first.join(10)
    second.join(10)
    assert_error(r, 429, "overloaded")
    assert int(r.headers["retry-after"]) >= 1
    assert results == [200, 200]
    metrics = client.get("/metrics").text
    assert 'visrag_requests_total{outcome="overloaded",route="/retrieve"} 1.0' in metrics


def test_not_ready_is_503_until_warmed_up(make_client, fakes):
    fakes.image_encoder.gate.clear()  # warm-up blocks inside the encoder
    client = make_client(ready=False)
    r = client.get("/ready")
    assert r.status_code == 503
    assert r.json()["ready"] is False and r.json()["status"] in ("loading", "warming_up")
    assert client.get("/health").status_code == 200
    r = post_file(client, jpeg())
    assert_error(r, 503, "not_ready")
    assert "retry-after" in r.headers
    fakes.image_encoder.gate.set()
    wait_ready(client)
    assert client.get("/ready").json() == {"ready": True, "status": "ready", "reason": None}


def test_startup_failure_is_reported_by_ready(fakes):
    from fastapi.testclient import TestClient

    from app.main import create_app
    from app.settings import Settings

    app = create_app(Settings(_env_file=None, artifacts="/nonexistent/visrag-artifacts"))
    with TestClient(app) as client:
        deadline = time.monotonic() + 10
        while client.get("/ready").json()["status"] == "loading" and time.monotonic() < deadline:
            time.sleep(0.01)
        r = client.get("/ready")
        assert r.status_code == 503
        assert r.json()["status"] == "failed"
        assert "/nonexistent/visrag-artifacts" in r.json()["reason"]
        assert client.get("/health").status_code == 200


def test_timeout_is_504(make_client, fakes):
    client = make_client(request_timeout_s=0.2)
    fakes.image_encoder.gate.clear()
    try:
        assert_error(post_file(client, jpeg()), 504, "timeout")
    finally:
        fakes.image_encoder.gate.set()


def test_internal_error_is_500_without_internals(make_client):
    client = make_client(raise_errors=False)
    r = post_file(client, jpeg(), mode="hybrid", text="explode")
    body = assert_error(r, 500, "internal_error")
    assert body["error"] == "internal server error"
    assert "secret" not in r.text and "/srv" not in r.text


def test_unknown_route_and_method_use_the_same_shape(client):
    assert_error(client.get("/nope"), 404, "not_found")
    assert_error(client.get("/retrieve"), 405, "method_not_allowed")


_IMAGE_PART_HEAD = (
    b'--xyz\r\nContent-Disposition: form-data; name="image"; filename="a.jpg"\r\n'
    b"Content-Type: image/jpeg\r\n\r\n\xff\xd8\xff"
)


def _drive_retrieve(client, receive) -> list[dict]:
    """POST /retrieve straight through the ASGI app with a hand-written receive()."""
    sent: list[dict] = []

    async def send(message):
        sent.append(message)

    scope = {
        "type": "http",
        "asgi": {"version": "3.0"},
        "http_version": "1.1",
        "method": "POST",
        "scheme": "http",
        "path": "/retrieve",
        "raw_path": b"/retrieve",
        "root_path": "",
        "query_string": b"",
        "headers": [(b"content-type", b"multipart/form-data; boundary=xyz")],
        "client": ("127.0.0.1", 1),
        "server": ("127.0.0.1", 80),
        "state": {},
    }

    async def run():
        with anyio.fail_after(10):  # a hang fails the test instead of the suite
            await client.app(scope, receive, send)

    client.portal.call(run)
    return sent


def _head_then(after):
    """An ASGI ``receive`` that sends the first part of an upload, then whatever ``after`` does."""
    calls = 0

    async def receive():
        nonlocal calls
        calls += 1
        if calls == 1:
            return {"type": "http.request", "body": _IMAGE_PART_HEAD, "more_body": True}
        return await after()

    return receive


def test_stalled_upload_is_408_after_the_request_timeout(make_client):
    # A client that declares a body and then stops sending must not hold the request forever.
    client = make_client(request_timeout_s=0.3)

    async def stall():
        await anyio.sleep_forever()

    sent = _drive_retrieve(client, _head_then(stall))
    assert sent[0]["status"] == 408
    assert (b"connection", b"close") in sent[0]["headers"]
    assert b'"error_type":"upload_timeout"' in sent[1]["body"]


def test_client_hanging_up_mid_upload_is_not_a_server_error(make_client, caplog):
    client = make_client()

    async def hang_up():
        return {"type": "http.disconnect"}

    _drive_retrieve(client, _head_then(hang_up))
    metrics = client.get("/metrics").text
    assert 'outcome="client_disconnected",route="/retrieve"' in metrics
    assert "internal_error" not in metrics
    assert "unhandled error" not in caplog.text


def test_expected_start_up_errors_log_one_line_and_bugs_a_traceback(caplog):
    from app.metrics import Metrics
    from app.serving.service import FAILED, Service
    from app.settings import Settings
    from indexer.errors import ManifestMismatchError
    from models.taxonomy import TaxonomyError

    def start_with(exc):
        def loader(settings):
            raise exc

        service = Service(Settings(_env_file=None), Metrics(), loader=loader)
        caplog.clear()
        anyio.run(service.start)
        assert service.status == FAILED and str(exc) in service.reason
        (record,) = [r for r in caplog.records if r.name == "app.serving.service"]
        return record

    mismatch = ManifestMismatchError("image_model.id", "image_model.id differs")
    assert start_with(mismatch).exc_info in (None, False)
    assert start_with(TaxonomyError("taxonomy.yaml: no labels")).exc_info in (None, False)
    assert start_with(KeyError("a bug")).exc_info not in (None, False)
