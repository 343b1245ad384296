"""The real server: `visrag serve` in a subprocess on a loopback port, tiny DINOv3, real FAISS.

Every endpoint over HTTP, /metrics through the Prometheus parser, concurrent requests batched
together, upload limits enforced on a real socket, and start-up refused on bad artifacts.
"""

from __future__ import annotations

import asyncio
import io
import shutil
import socket
import subprocess
import time
from pathlib import Path

import httpx
import pytest
from metric_samples import metric_samples
from PIL import Image
from service_index import build_small_index, free_port, start_server, stop_server

pytestmark = pytest.mark.slow

N_IMAGES = 24


@pytest.fixture(scope="module")
def built(tmp_path_factory, tiny_dinov3, text_encoder, taxonomy):
    root = tmp_path_factory.mktemp("served")
    return build_small_index(root, tiny_dinov3, text_encoder, taxonomy, n=N_IMAGES)


@pytest.fixture(scope="module")
def server(built):
    port = free_port()
    log = built / "server.log"
    proc = start_server(built / "art", port, log)
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 90
        saw_not_ready = False
        while time.monotonic() < deadline:
            assert proc.poll() is None, log.read_text()
            try:
                r = httpx.get(f"{base}/ready", timeout=2)
            except httpx.TransportError:
                time.sleep(0.2)
                continue
            if r.status_code == 200:
                break
            assert r.status_code == 503 and r.json()["ready"] is False
            saw_not_ready = True
            time.sleep(0.2)
        else:
            pytest.fail(f"server not ready in 90 s:\n{log.read_text()}")
        yield base, saw_not_ready
    finally:
        stop_server(proc)


def dataset_image(built: Path, i: int = 0) -> tuple[bytes, str]:
    from indexer.readers.records import record_id

    path = sorted((built / "data").glob("*.jpg"))[i]
    return path.read_bytes(), record_id(path.relative_to(built / "data"))


def test_health_ready_and_info(server):
    base, saw_not_ready = server
    assert saw_not_ready, "/ready never answered 503 while the models were loading"
    assert httpx.get(f"{base}/health").json() == {"status": "ok"}
    assert httpx.get(f"{base}/ready").json()["status"] == "ready"
    info = httpx.get(f"{base}/info").json()
    assert info["runtime"]["index_size"] == N_IMAGES
    assert info["runtime"]["device"] == "cpu" and info["runtime"]["max_batch_size"] == 8
    assert info["manifest"]["image_model"]["preprocessing"]["image_size"] == 64
    assert info["manifest"]["image_model"]["dim"] == 32


def test_retrieve_finds_the_indexed_image_itself(server, built):
    base, _ = server
    data, own_id = dataset_image(built, 3)
    r = httpx.post(
        f"{base}/retrieve",
        files={"image": ("q.jpg", data, "image/jpeg")},
        data={"k": "5"},
        timeout=30,
    )
    assert r.status_code == 200, r.text
    body = r.json()
    assert len(body["hits"]) == 5 and body["mode"] == "image"
    assert body["hits"][0]["id"] == own_id and body["hits"][0]["score"] > 0.999
    for stage in ("decode", "preprocess", "queue", "encode", "search", "render"):
        assert stage in body["timings"]
    thumb = httpx.get(base + body["hits"][0]["image_url"] + "?size=64")
    assert thumb.status_code == 200 and thumb.headers["content-type"] == "image/jpeg"
    assert max(Image.open(io.BytesIO(thumb.content)).size) == 64
    assert httpx.get(f"{base}/items/..%2F..%2Fetc%2Fpasswd/image").status_code == 404


def test_rerank_hybrid_filters_and_context(server, built):
    base, _ = server
    data, own_id = dataset_image(built, 5)
    files = {"image": ("q.jpg", data, "image/jpeg")}

    def hits(**form: str) -> list[dict]:
        r = httpx.post(f"{base}/retrieve", files=files, data=form, timeout=30)
        assert r.status_code == 200, r.text
        return list(r.json()["hits"])

    image_ids = [h["id"] for h in hits(k="3")]
    assert image_ids[0] == own_id
    # Every mode ranks: with all the weight on the image, hybrid and rerank rank like image.
    hybrid = {"mode": "hybrid", "text": "a dent on the door", "k": "3"}
    assert [h["id"] for h in hits(**hybrid, alpha="1")] == image_ids
    assert [h["id"] for h in hits(mode="rerank", k="3", alpha="1")] == image_ids
    r = httpx.post(f"{base}/retrieve", files=files, data={"mode": "rerank", "k": "3"}, timeout=30)
    assert r.status_code == 200, r.text
    assert r.json()["pseudo_text"] and "text_encode" in r.json()["timings"]
    assert len(hits(**hybrid)) == 3
    dents = hits(labels_any="Abolladura", k="4")
    assert dents and all("dent" in {lb["id"] for lb in h["labels"]} for h in dents)
    zone = hits(k="1")[0]["zone"]
    in_zone = hits(zones=zone, k="24")
    assert in_zone and all(h["zone"] == zone for h in in_zone)
    assert len(in_zone) < len(hits(k="24"))  # the zone filter really dropped items
    r = httpx.post(f"{base}/retrieve", files=files, data={"labels_any": "rust"}, timeout=30)
    assert r.status_code == 422 and "rust" in r.json()["error"]
    r = httpx.post(f"{base}/context", files=files, data={"k": "4", "language": "es"}, timeout=30)
    assert r.status_code == 200, r.text
    ctx = r.json()
    assert ctx["context"].startswith("### Casos verificados similares")
    assert len(ctx["cases"]) == 4 and ctx["label_votes"][0]["neighbours"] == 4
    assert ctx["cases"][0]["id"] == own_id


def test_bad_uploads_over_http(server):
    base, _ = server
    post = lambda data, ctype="image/jpeg": httpx.post(  # noqa: E731
        f"{base}/retrieve", files={"image": ("q.jpg", data, ctype)}, timeout=30
    )
    assert post(b"").json()["error_type"] == "invalid_image"
    assert post(b"GIF89a-not-really").status_code == 422
    assert post(b"hello world, not an image").status_code == 415
    assert post(b"hello", "text/plain").status_code == 415


def _read_status(sock: socket.socket) -> int:
    sock.settimeout(10)
    head = b""
    while b"\r\n" not in head:
        chunk = sock.recv(4096)
        if not chunk:
            break
        head += chunk
    return int(head.split(b" ", 2)[1])


def test_oversized_uploads_are_refused_without_reading_them(server):
    base, _ = server
    port = int(base.rsplit(":", 1)[1])
    # Declared 2 GB: refused from the headers alone, nothing of the body sent.
    with socket.create_connection(("127.0.0.1", port)) as sock:
        sock.sendall(
            b"POST /retrieve HTTP/1.1\r\nHost: x\r\n"
            b"Content-Type: multipart/form-data; boundary=b\r\n"
            b"Content-Length: 2000000000\r\n\r\n"
        )
        assert _read_status(sock) == 413
    # Chunked, no length: refused once 2 MB (+ form overhead) have streamed in.
    with socket.create_connection(("127.0.0.1", port)) as sock:
        sock.sendall(
            b"POST /retrieve HTTP/1.1\r\nHost: x\r\n"
            b"Content-Type: multipart/form-data; boundary=b\r\n"
            b"Transfer-Encoding: chunked\r\n\r\n"
        )
        part = (
            b'--b\r\nContent-Disposition: form-data; name="image"; filename="a.jpg"\r\n'
            b"Content-Type: image/jpeg\r\n\r\n\xff\xd8\xff"
        )
        sock.sendall(b"%x\r\n%s\r\n" % (len(part), part))
        block = b"\0" * 65536
        sent = 0
        try:
            for _ in range(100):  # at most 6.5 MB; the server must answer well before the end
                sock.sendall(b"%x\r\n%s\r\n" % (len(block), block))
                sent += len(block)
        except (BrokenPipeError, ConnectionResetError):
            pass
        assert _read_status(sock) == 413


def test_concurrent_requests_are_batched_and_metrics_parse(server, built):
    base, _ = server
    images = [dataset_image(built, i)[0] for i in range(8)]

    async def burst() -> list[int]:
        async with httpx.AsyncClient(base_url=base, timeout=60) as client:
            responses = await asyncio.gather(
                *(
                    client.post("/retrieve", files={"image": ("q.jpg", d, "image/jpeg")})
                    for d in images
                )
            )
        return [r.status_code for r in responses]

    assert asyncio.run(burst()) == [200] * 8
    s = metric_samples(httpx.get(f"{base}/metrics").text)
    batches = s[("visrag_batch_size_count", ())]
    single = s[("visrag_batch_size_bucket", (("le", "1.0"),))]
    assert batches > single, "no encoder call ever saw more than one image"
    assert s[("visrag_batch_size_sum", ())] > batches  # some batch was > 1
    assert s[("visrag_requests_total", (("outcome", "ok"), ("route", "/retrieve")))] >= 8
    for stage in ("decode", "preprocess", "encode", "search", "render"):
        assert s[("visrag_stage_seconds_count", (("stage", stage),))] >= 8, stage
    assert s[("visrag_index_vectors", ())] == N_IMAGES
    assert s[("visrag_queue_depth", ())] == 0
    assert ("visrag_request_seconds_count", (("route", "/retrieve"),)) in s


def _wait_exit(proc: subprocess.Popen[bytes], seconds: float) -> int:
    try:
        return proc.wait(seconds)
    finally:
        if proc.poll() is None:
            proc.kill()


def test_refuses_to_start_on_checksum_failure(built, tmp_path):
    art = tmp_path / "art"
    shutil.copytree(built / "art", art)
    with (art / "text_vectors.npy").open("r+b") as f:
        f.seek(-4, 2)
        f.write(b"\x01\x02\x03\x04")
    log = tmp_path / "log"
    code = _wait_exit(start_server(art, free_port(), log), 60)
    assert code == 3, log.read_text()
    assert "text_vectors.npy" in log.read_text()


def test_load_refuses_another_image_model_naming_the_field(built, tmp_path):
    # The exit path of a refused start is proven above on a subprocess; loading in-process here
    # saves a second model-loading server start.
    from app.serving.resources import load_resources
    from app.settings import Settings
    from indexer.errors import ManifestMismatchError
    from models.testing import make_tiny_dinov3

    other = make_tiny_dinov3(tmp_path / "other-dinov3", hidden_size=48, num_attention_heads=2)
    settings = Settings(
        _env_file=None, artifacts=built / "art", image_model=str(other), device="cpu"
    )
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("HF_HUB_OFFLINE", "1")
        with pytest.raises(ManifestMismatchError) as info:
            load_resources(settings)
    assert "image_model.id" in str(info.value)
