"""The gateway side end to end: visrag_client and the reference gateway against a real server.

A real `visrag serve` subprocess (tiny DINOv3, real FAISS, API keys on) answers the client in
every format and with typed errors; the reference gateway (examples/gateway) forwards an image
and a question through it to a stub OpenAI-compatible chat-completions server started here, which
must receive the neighbours' images and labels.
"""

from __future__ import annotations

import asyncio
import base64
import importlib.util
import io
import json
import sys
import threading
import time
from collections.abc import Iterator
from http.server import ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient
from PIL import Image
from service_index import build_small_index
from test_server import dataset_image, free_port, start_server
from typer.testing import CliRunner

from visrag_client import AsyncVisragClient, VisragAPIError, VisragClient

pytestmark = pytest.mark.slow

KEY = "gateway-test-key"
REPO = Path(__file__).resolve().parents[2]
DATA_URL = "data:image/jpeg;base64,"


@pytest.fixture(scope="module")
def built(tmp_path_factory, tiny_dinov3, text_encoder, taxonomy) -> Path:
    return build_small_index(tmp_path_factory.mktemp("gw"), tiny_dinov3, text_encoder, taxonomy)


@pytest.fixture(scope="module")
def base_url(built: Path) -> Iterator[str]:
    port = free_port()
    log = built / "server.log"
    proc = start_server(built / "art", port, log, VISRAG_API_KEYS=KEY)
    base = f"http://127.0.0.1:{port}"
    try:
        with VisragClient(base, api_key=KEY, timeout=5) as client:
            deadline = time.monotonic() + 90
            while time.monotonic() < deadline:
                assert proc.poll() is None, log.read_text()
                try:
                    if client.ready().ready:
                        break
                except Exception:  # not listening yet
                    pass
                time.sleep(0.2)
            else:
                pytest.fail(f"server not ready in 90 s:\n{log.read_text()}")
        yield base
    finally:
        proc.terminate()
        try:
            proc.wait(20)
        except Exception:
            proc.kill()


def decode(url: str) -> Image.Image:
    assert url.startswith(DATA_URL), url[:40]
    image = Image.open(io.BytesIO(base64.b64decode(url[len(DATA_URL) :])))
    image.load()
    return image


def test_client_retrieve_info_and_typed_errors(base_url, built):
    data, own_id = dataset_image(built, 2)
    with VisragClient(base_url, api_key=KEY) as client:
        assert client.health().status == "ok"
        assert client.info().runtime["index_size"] == 24
        result = client.retrieve(data, k=3)
        assert [h.rank for h in result.hits] == [1, 2, 3] and result.hits[0].id == own_id
        rerank = client.retrieve(data, k=2, mode="rerank")
        assert rerank.pseudo_text and rerank.mode == "rerank"
        with pytest.raises(VisragAPIError) as info:
            client.retrieve(b"GIF89a-not-really")
        assert (info.value.status_code, info.value.error_type) == (422, "invalid_image")
        with pytest.raises(VisragAPIError) as info:
            client.retrieve(data, labels_any=["rust"])
        assert info.value.status_code == 422 and "rust" in info.value.message
    with VisragClient(base_url, api_key="wrong") as client:
        with pytest.raises(VisragAPIError) as info:
            client.retrieve(data)
        assert (info.value.status_code, info.value.error_type) == (401, "unauthorised")


def test_client_context_in_every_format(base_url, built):
    data, own_id = dataset_image(built, 4)
    with VisragClient(base_url, api_key=KEY) as client:
        md = client.context(data, k=3)
        assert md.context.startswith("### Similar verified cases") and md.messages is None
        text = client.context(data, k=3, format="text", language="es")
        assert text.context.startswith("Casos verificados similares:")
        as_json = client.context(data, k=3, format="json")
        assert [c["id"] for c in json.loads(as_json.context)["cases"]] == [
            c.id for c in as_json.cases
        ]
        msgs = client.context(data, k=4, format="messages", max_images=3, max_image_side=64)
    assert msgs.format == "messages" and msgs.cases[0].id == own_id
    parts = msgs.content_parts()
    images = [(i, p["image_url"]["url"]) for i, p in enumerate(parts) if p["type"] == "image_url"]
    assert len(images) == 3  # 4 neighbours, at most 3 images
    for (index, url), case in zip(images, msgs.cases, strict=False):
        assert max(decode(url).size) == 64
        assert parts[index + 1]["text"].startswith(f"Case {case.rank} ({case.id})")
        for label in case.labels:
            assert label.phrase and label.phrase in parts[index + 1]["text"]


def test_async_client(base_url, built):
    data, own_id = dataset_image(built, 6)

    async def run() -> Any:
        async with AsyncVisragClient(base_url, api_key=KEY) as client:
            return await asyncio.gather(client.retrieve(data, k=1), client.context(data, k=2))

    hits, ctx = asyncio.run(run())
    assert hits.hits[0].id == own_id and len(ctx.cases) == 2


def test_cli_query(base_url, built, tmp_path):
    from app.cli import cli

    data, own_id = dataset_image(built, 1)
    image = tmp_path / "q.jpg"
    image.write_bytes(data)
    runner = CliRunner()
    out = runner.invoke(cli, ["query", str(image), "--url", base_url, "--api-key", KEY, "--k", "2"])
    assert out.exit_code == 0, out.output
    assert json.loads(out.output)["hits"][0]["id"] == own_id
    out = runner.invoke(
        cli,
        ["query", str(image), "--url", base_url, "--api-key", KEY, "--context", "--format", "text"],
    )
    assert out.exit_code == 0, out.output
    assert out.output.startswith("Similar verified cases:")
    out = runner.invoke(cli, ["query", str(image), "--url", base_url])  # no key
    assert out.exit_code == 1 and "unauthorised" in out.output


@pytest.fixture
def stub_chat() -> Iterator[str]:
    StubChat = load_example("stub_chat").StubChat  # noqa: N806 (the example's own class)
    StubChat.received = []
    StubChat.answer = "A dent, like case 1."
    server = ThreadingHTTPServer(("127.0.0.1", 0), StubChat)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}/v1"
    finally:
        server.shutdown()
        server.server_close()


def load_example(name: str) -> Any:
    """A module of examples/gateway/, loaded once (the stub's class keeps what it received)."""
    if f"visrag_example_{name}" in sys.modules:
        return sys.modules[f"visrag_example_{name}"]
    path = REPO / "examples" / "gateway" / f"{name}.py"
    spec = importlib.util.spec_from_file_location(f"visrag_example_{name}", path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # its dataclasses look their module up
    spec.loader.exec_module(module)
    return module


def test_reference_gateway_sends_the_neighbours_to_the_chat_endpoint(base_url, built, stub_chat):
    gateway = load_example("gateway")
    settings = gateway.GatewaySettings(
        visrag_url=base_url,
        visrag_api_key=KEY,
        llm_base_url=stub_chat,
        llm_model="any-vlm",
        llm_api_key="llm-key",
        k=3,
        max_images=3,
    )
    data, own_id = dataset_image(built, 7)
    with TestClient(gateway.create_app(settings)) as client:
        r = client.post(
            "/ask",
            files={"image": ("q.jpg", data, "image/jpeg")},
            data={"question": "What damage is on this part?"},
        )
    assert r.status_code == 200, r.text
    answer = r.json()
    assert answer["answer"] == "A dent, like case 1." and answer["model"] == "any-vlm"
    assert [c["rank"] for c in answer["cases"]] == [1, 2, 3] and answer["cases"][0]["id"] == own_id

    (call,) = load_example("stub_chat").StubChat.received
    assert call["path"] == "/v1/chat/completions" and call["auth"] == "Bearer llm-key"
    assert call["body"]["model"] == "any-vlm"
    system, user = call["body"]["messages"]
    assert system["role"] == "system" and user["role"] == "user"
    parts = user["content"]
    image_parts = [i for i, p in enumerate(parts) if p["type"] == "image_url"]
    assert len(image_parts) == 3 + 1  # the 3 neighbours, then the query image
    for index, case in zip(image_parts[:3], answer["cases"], strict=True):
        decode(parts[index]["image_url"]["url"])
        text = parts[index + 1]["text"]
        assert text.startswith(f"Case {case['rank']} ({case['id']})")
        for label in case["labels"]:
            assert label["phrase"] and label["phrase"] in text
    assert any(p["type"] == "text" and p["text"].startswith("Label votes") for p in parts)
    query = parts[image_parts[-1]]["image_url"]["url"]
    assert base64.b64decode(query.split(",", 1)[1]) == data  # the caller's image, untouched
    assert parts[-1] == {"type": "text", "text": "Question: What damage is on this part?"}
