"""visrag_client against scripted HTTP answers: retries, errors, image inputs, form fields.

The real-server round trip (every format, typed errors) is in tests/integration/test_gateway.py.
"""

from __future__ import annotations

import asyncio
import io
from typing import Any

import httpx
import pytest
from PIL import Image

from visrag_client import (
    AsyncVisragClient,
    VisragAPIError,
    VisragClient,
    VisragConnectionError,
)

HIT = {
    "id": "a.jpg",
    "rank": 1,
    "score": 0.9,
    "zone": "hood_center",
    "zone_name": "hood center",
    "area": "frontal",
    "description": "d",
    "image_url": "/items/a.jpg/image",
    "labels": [
        {"id": "dent", "count": 1, "name": "Dent", "name_es": "Abolladura", "coarse": "dent"}
    ],
}
RETRIEVE = {"hits": [HIT], "mode": "image", "timings": {"search": 0.1}}
JPEG = b"\xff\xd8\xff\xe0fake-jpeg"


class Script:
    """Answers the queued responses in order and records every request."""

    def __init__(self, *responses: httpx.Response | Exception) -> None:
        self.responses = list(responses)
        self.requests: list[httpx.Request] = []

    def __call__(self, request: httpx.Request) -> httpx.Response:
        self.requests.append(request)
        answer = self.responses.pop(0)
        if isinstance(answer, Exception):
            raise answer
        return answer


def error(status: int, error_type: str, retry_after: str | None = None) -> httpx.Response:
    headers = {"Retry-After": retry_after} if retry_after is not None else {}
    body = {"error": f"{error_type} happened", "error_type": error_type}
    return httpx.Response(status, json=body, headers=headers)


@pytest.fixture
def sleeps(monkeypatch: pytest.MonkeyPatch) -> list[float]:
    slept: list[float] = []

    async def async_sleep(seconds: float) -> None:
        slept.append(seconds)

    monkeypatch.setattr("visrag_client.client.time.sleep", slept.append)
    monkeypatch.setattr("visrag_client.client.asyncio.sleep", async_sleep)
    return slept


def client(script: Script, **kwargs: Any) -> VisragClient:
    return VisragClient("http://visrag", transport=httpx.MockTransport(script), **kwargs)


def test_retries_on_503_and_429_honouring_retry_after(sleeps):
    script = Script(
        error(503, "not_ready", "2"),
        error(429, "overloaded", "1"),
        httpx.Response(200, json=RETRIEVE),
    )
    result = client(script).retrieve(JPEG, k=1)
    assert result.hits[0].labels[0].name_es == "Abolladura" and result.hits[0].score == 0.9
    assert len(script.requests) == 3 and sleeps == [2.0, 1.0]


def test_gives_up_when_the_wait_would_pass_the_budget(sleeps):
    script = Script(error(503, "not_ready", "5"), error(503, "not_ready", "5"))
    with pytest.raises(VisragAPIError) as info:
        client(script, retry_budget_s=8).retrieve(JPEG)
    assert info.value.status_code == 503 and info.value.error_type == "not_ready"
    assert info.value.retry_after == 5.0
    assert sleeps == [5.0] and len(script.requests) == 2


def test_gives_up_after_max_retries(sleeps):
    script = Script(*(error(429, "overloaded", "0") for _ in range(3)))
    with pytest.raises(VisragAPIError) as info:
        client(script, max_retries=2).retrieve(JPEG)
    assert info.value.error_type == "overloaded" and len(script.requests) == 3


def test_client_errors_are_raised_at_once_with_their_type(sleeps):
    script = Script(error(422, "invalid_image"))
    with pytest.raises(VisragAPIError) as info:
        client(script).retrieve(b"not an image")
    assert (info.value.status_code, info.value.error_type) == (422, "invalid_image")
    assert "invalid_image happened" in str(info.value) and sleeps == []
    script = Script(httpx.Response(502, text="<html>bad gateway</html>"))
    with pytest.raises(VisragAPIError) as info:
        client(script).health()
    assert info.value.error_type == "http_error" and "bad gateway" in info.value.message


def test_unreachable_service_raises_a_connection_error(sleeps):
    refused = httpx.ConnectError("connection refused")
    script = Script(refused, refused)
    with pytest.raises(VisragConnectionError):
        client(script, max_retries=1).health()
    assert len(script.requests) == 2 and sleeps == [0.5]


def test_api_key_and_form_fields():
    script = Script(httpx.Response(200, json=RETRIEVE))
    client(script, api_key="s3cret").retrieve(
        JPEG, k=3, mode="hybrid", text="a dent", labels_any=["dent", "crack"], zones=[]
    )
    request = script.requests[0]
    assert request.headers["authorization"] == "Bearer s3cret"
    body = request.content
    for name, value in (("k", b"3"), ("mode", b"hybrid"), ("labels_any", b"dent,crack")):
        assert f'name="{name}"\r\n\r\n'.encode() + value in body
    assert b'name="zones"' not in body and b'name="alpha"' not in body
    assert b'filename="query.jpg"' in body and JPEG in body


@pytest.mark.parametrize("kind", ["path", "str", "bytes", "file", "pil"])
def test_image_inputs(tmp_path, kind):
    png = io.BytesIO()
    Image.new("RGB", (8, 6), (10, 20, 30)).save(png, format="PNG")
    path = tmp_path / "q.png"
    path.write_bytes(png.getvalue())
    image = {
        "path": path,
        "str": str(path),
        "bytes": png.getvalue(),
        "file": path.open("rb"),
        "pil": Image.open(path),
    }[kind]
    script = Script(httpx.Response(200, json=RETRIEVE))
    client(script).retrieve(image)
    body = script.requests[0].content
    start = body.index(b"\x89PNG")
    sent = Image.open(io.BytesIO(body[start:]))
    assert sent.size == (8, 6) and sent.getpixel((0, 0)) == (10, 20, 30)
    assert b"Content-Type: image/png" in body


def test_refuses_what_is_not_an_image():
    with pytest.raises(TypeError, match="path, bytes"):
        client(Script()).retrieve(12345)  # type: ignore[arg-type]


def test_ready_reports_not_ready_without_raising():
    body = {"ready": False, "status": "loading", "reason": None}
    script = Script(httpx.Response(503, json=body, headers={"Retry-After": "5"}))
    ready = client(script).ready()
    assert ready.ready is False and ready.status == "loading"


def test_async_client_retries_and_parses(sleeps):
    script = Script(error(503, "not_ready", "3"), httpx.Response(200, json=RETRIEVE))

    async def run() -> Any:
        transport = httpx.MockTransport(script)
        async with AsyncVisragClient("http://visrag", transport=transport, api_key="k") as c:
            return await c.retrieve(JPEG, k=1)

    result = asyncio.run(run())
    assert result.hits[0].id == "a.jpg" and sleeps == [3.0]
    assert script.requests[-1].headers["authorization"] == "Bearer k"


def test_messages_parse_into_typed_parts_and_back():
    from visrag_client.schemas import ImagePart, TextPart

    parts = [
        {"type": "text", "text": "intro"},
        {"type": "image_url", "image_url": {"url": "data:image/jpeg;base64,AAAA"}},
        {"type": "text", "text": "Case 1 (a.jpg): similarity 90%."},
    ]
    body = {
        "context": "intro",
        "format": "messages",
        "language": "en",
        "cases": [],
        "label_votes": [],
        "mode": "image",
        "timings": {},
        "messages": parts,
    }
    script = Script(httpx.Response(200, json=body))
    ctx = client(script).context(JPEG, format="messages", max_images=1, image_urls=False)
    assert [type(p) for p in ctx.messages or ()] == [TextPart, ImagePart, TextPart]
    assert ctx.content_parts() == parts
    sent = script.requests[0].content
    assert b'name="format"\r\n\r\nmessages' in sent and b'name="image_urls"\r\n\r\nfalse' in sent


def test_probe_mode_weight_and_label_estimates():
    estimate = {"label": "dent", "name": "Dent", "probability": 0.72, "support": 3, "neighbours": 5}
    script = Script(
        httpx.Response(200, json={**RETRIEVE, "mode": "probe", "label_estimates": [estimate]})
    )
    answer = client(script).retrieve(JPEG, mode="probe", probe_weight=2.5)
    body = script.requests[0].content
    assert b'name="mode"\r\n\r\nprobe' in body and b'name="probe_weight"\r\n\r\n2.5' in body
    assert answer.label_estimates[0].label == "dent"
    assert answer.label_estimates[0].probability == 0.72
    old = Script(httpx.Response(200, json=RETRIEVE))  # a service from before label estimates
    assert client(old).retrieve(JPEG).label_estimates == []


def test_label_set_and_novelty_parse_and_an_older_service_still_parses():
    label_set = {
        "labels": [{"label": "dent", "name": "Dent", "probability": 0.8}],
        "coverage": 0.9,
        "every_label": False,
        "statement": "Dent. It covers all true labels of photos like the indexed cases ...",
    }
    novelty = {"score": 0.41, "p_value": 0.01, "flag": True, "threshold": 0.05, "note": "Note"}
    body = {**RETRIEVE, "label_set": label_set, "novelty": novelty}
    answer = client(Script(httpx.Response(200, json=body))).retrieve(JPEG)
    assert answer.label_set is not None and [m.label for m in answer.label_set.labels] == ["dent"]
    assert answer.label_set.coverage == 0.9
    assert answer.novelty is not None and answer.novelty.flag and answer.novelty.p_value == 0.01
    assert answer.model_dump(exclude_unset=True) == body  # the round trip keeps every field
    old = client(Script(httpx.Response(200, json=RETRIEVE))).retrieve(JPEG)
    assert old.label_set is None and old.novelty is None


WRITTEN = {"ids": ["a"], "generation": 2, "count": 6}


def test_an_add_is_not_replayed_after_a_lost_connection_but_a_put_is():
    script = Script(httpx.ConnectError("reset"))
    client = VisragClient("http://x", transport=httpx.MockTransport(script), retry_budget_s=1)
    with pytest.raises(VisragConnectionError):
        client.add_items([{"image": JPEG, "id": "a"}])
    assert len(script.requests) == 1  # it may have been written: never sent twice
    script = Script(httpx.ConnectError("reset"), httpx.Response(200, json=WRITTEN))
    client = VisragClient("http://x", transport=httpx.MockTransport(script), retry_budget_s=1)
    assert client.put_item("a", image=JPEG, labels={"dent": 2}).ids == ["a"]
    assert [r.method for r in script.requests] == ["PUT", "PUT"]
    assert b'name="labels"\r\n\r\ndent:2' in script.requests[1].content


def test_an_add_is_retried_when_the_service_says_nothing_was_written():
    script = Script(error(503, "writer_busy", "0"), httpx.Response(201, json=WRITTEN))
    client = VisragClient("http://x", transport=httpx.MockTransport(script))
    assert client.add_items([{"image": JPEG, "id": "a"}]).generation == 2
    assert len(script.requests) == 2
