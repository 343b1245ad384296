"""Admission before work: a full service answers 429 before reading (or decoding) a body, a body
being received holds no inference capacity and is closed with 408 when it trickles, and concurrent
decodes hold no more memory than the decode budget."""

from __future__ import annotations

import threading
import time

import anyio
from api_fakes import assert_error, jpeg, png
from PIL import Image
from test_errors import _drive_retrieve, _head_then, post_file

from app.serving.admission import EVICTABLE_AFTER_S
from models.allocator import MB


def _fill(client, fakes, n):
    """Start ``n`` requests that block inside the encoder (gate closed); return their threads."""
    enc = fakes.image_encoder
    enc.gate.clear()
    enc.entered.clear()
    results: list[int] = []
    threads = [
        threading.Thread(target=lambda: results.append(post_file(client, jpeg()).status_code))
        for _ in range(n)
    ]
    for t in threads:
        t.start()
    admission = client.app.state.service.admission
    deadline = time.monotonic() + 10
    while admission.in_progress < n and time.monotonic() < deadline:
        time.sleep(0.005)
    assert admission.in_progress == n
    return threads, results


def test_full_service_answers_429_before_reading_the_body(make_client, fakes):
    client = make_client(max_batch_size=1, max_queue=1, max_wait_ms=0)
    threads, results = _fill(client, fakes, 2)  # one encoding, one queued: full
    pulled = 0

    async def receive():
        nonlocal pulled
        pulled += 1
        await anyio.sleep(0)
        return {"type": "http.request", "body": b"\0" * 65536, "more_body": True}

    try:
        sent = _drive_retrieve(client, receive)
    finally:
        fakes.image_encoder.gate.set()
        for t in threads:
            t.join(10)
    assert sent[0]["status"] == 429
    assert b'"overloaded"' in sent[1]["body"]
    assert any(name == b"retry-after" for name, _ in sent[0]["headers"])
    assert pulled == 0  # not one byte of the body was read
    assert results == [200, 200]
    # the tokens came back: the service takes requests again
    assert post_file(client, jpeg()).status_code == 200
    assert client.app.state.service.admission.in_progress == 0


def test_a_failed_request_gives_its_token_back(make_client):
    client = make_client(max_batch_size=1, max_queue=1)
    for _ in range(5):
        assert_error(post_file(client, b"not an image at all"), 415, "unsupported_media")
    assert client.app.state.service.admission.in_progress == 0
    assert post_file(client, jpeg()).status_code == 200


def test_concurrent_decodes_stay_within_the_budget(make_client):
    client = make_client(decode_budget_mb=16, max_pixels=50_000_000)
    service = client.app.state.service
    big = png(size=(2000, 1500))  # 13 MB decoded (PNG: no reduced decode): one at a time
    results: list[int] = []

    def send():
        results.append(post_file(client, big, ctype="image/png").status_code)

    threads = [threading.Thread(target=send) for _ in range(6)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    assert results == [200] * 6
    assert 0 < service.decode_budget.peak <= 16 * MB
    assert service.decode_budget.held == 0


def test_a_trickling_body_is_closed_with_408_after_the_grace_period(make_client):
    client = make_client(upload_grace_s=0.3, min_upload_rate_bps=1024, request_timeout_s=60)

    async def one_byte():
        await anyio.sleep(0.05)
        return {"type": "http.request", "body": b"\0", "more_body": True}

    sent = _drive_retrieve(client, _head_then(one_byte))
    assert sent[0]["status"] == 408
    assert (b"connection", b"close") in sent[0]["headers"]
    assert b"too slow" in sent[1]["body"] and b'"upload_timeout"' in sent[1]["body"]
    assert 'visrag_admission_refusals_total{rule="slow_upload"} 1.0' in client.get("/metrics").text
    assert post_file(client, jpeg()).status_code == 200  # a normal upload is not affected


def test_bodies_being_received_hold_no_capacity_and_a_full_reading_pool_is_429(make_client):
    # min rate 0: no body is slow enough to make room for the newcomer (see the next test)
    client = make_client(
        max_uploads=1, max_queue=1, max_batch_size=1, upload_grace_s=60, min_upload_rate_bps=0
    )
    admission = client.app.state.service.admission
    release = threading.Event()

    async def stall():
        while not release.is_set():
            await anyio.sleep(0.01)
        return {"type": "http.disconnect"}

    slow = threading.Thread(target=lambda: _drive_retrieve(client, _head_then(stall)))
    slow.start()
    try:
        deadline = time.monotonic() + 10
        while admission.reading < 1 and time.monotonic() < deadline:
            time.sleep(0.005)
        assert admission.reading == 1 and admission.in_progress == 0
        pulled = 0

        async def receive():
            nonlocal pulled
            pulled += 1
            return {"type": "http.request", "body": b"\0" * 65536, "more_body": True}

        sent = _drive_retrieve(client, receive)
    finally:
        release.set()
        slow.join(10)
    assert sent[0]["status"] == 429 and pulled == 0
    assert b"receiving 1 uploads" in sent[1]["body"]
    assert admission.refusals["uploads_full"] == 1
    assert post_file(client, jpeg()).status_code == 200  # the place came back


def test_thumbnails_and_message_images_are_decoded_inside_the_budget(make_client, fakes):
    client = make_client(decode_budget_mb=16)
    budget = client.app.state.service.decode_budget
    for path in fakes.image_dir.glob("*.jpg"):  # 2000x1500 PNGs: 13 MB each decoded
        Image.new("RGB", (2000, 1500), (200, 10, 10)).save(path, format="PNG")
    results: list[int] = []

    def thumbnail(size: int) -> None:
        results.append(client.get(f"/items/red-1/image?size={size}").status_code)

    threads = [threading.Thread(target=thumbnail, args=(s,)) for s in (64, 128, 256, 512)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    assert results == [200] * 4
    assert 12 * MB < budget.peak <= 16 * MB  # one 13 MB decode at a time, each reserved
    budget.peak = 0
    files = {"image": ("q.jpg", jpeg(), "image/jpeg")}
    data = {"format": "messages", "max_image_side": "300"}
    r = client.post("/context", files=files, data=data)
    assert r.status_code == 200
    assert any(p["type"] == "image_url" for p in r.json()["messages"])
    assert 12 * MB < budget.peak <= 16 * MB and budget.held == 0


def test_a_full_reading_pool_makes_room_by_closing_the_slowest_body(make_client):
    client = make_client(max_uploads=1, upload_grace_s=60, min_upload_rate_bps=1024)
    admission = client.app.state.service.admission
    release = threading.Event()
    answers: list[list[dict]] = []

    async def stall():
        while not release.is_set():
            await anyio.sleep(0.01)
        return {"type": "http.disconnect"}

    slow = threading.Thread(
        target=lambda: answers.append(_drive_retrieve(client, _head_then(stall)))
    )
    slow.start()
    try:
        deadline = time.monotonic() + 10
        while admission.reading < 1 and time.monotonic() < deadline:
            time.sleep(0.005)
        time.sleep(EVICTABLE_AFTER_S + 0.2)  # old enough, and far below 1 KB/s
        r = post_file(client, jpeg())  # the pool is full: the stalled body is closed for it
        slow.join(10)
    finally:
        release.set()
        slow.join(10)
    assert r.status_code == 200
    [sent] = answers
    assert sent[0]["status"] == 408 and b"make room" in sent[1]["body"]
    assert admission.refusals["slow_upload"] == 1 and admission.refusals["uploads_full"] == 0
