"""Hardening of the real server (`visrag serve` in a subprocess, tiny DINOv3, API key set):
a header-read timeout, slow uploads that cannot lock normal calls out, bounded decode memory under
a burst of near-limit PNGs, the OpenAPI
document's security and error statuses, and a bounded schemathesis run with and without a key."""

from __future__ import annotations

import asyncio
import contextlib
import io
import os
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from PIL import Image
from service_index import REPO, build_small_index, free_port, start_server, stop_server

from bench.attacks import trickle_while_calling

pytestmark = pytest.mark.slow

KEY = "hardening-key"
AUTH = {"Authorization": f"Bearer {KEY}"}
HEADER_TIMEOUT_S = 2
SIDE = 3999  # near the pixel limit below
MAX_PIXELS = 4000 * 4000
BUDGET_MB = 160  # two 3999x3999 RGB PNGs (~70 MB each) at a time, not sixteen (~1.1 GB)
BURST = 16


@contextlib.contextmanager
def _serving(root: Path, **env: str) -> Iterator[tuple[str, int, int]]:
    """`visrag serve` on ``root / "art"`` with ``env``, ready: (base URL, port, pid)."""
    port = free_port()
    log = root / "server.log"
    proc = start_server(root / "art", port, log, VISRAG_API_KEYS=KEY, **env)
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:
            assert proc.poll() is None, log.read_text()
            try:
                if httpx.get(f"{base}/ready", timeout=2).status_code == 200:
                    break
            except httpx.TransportError:
                pass
            time.sleep(0.2)
        else:
            pytest.fail(f"server not ready in 120 s:\n{log.read_text()}")
        yield base, port, proc.pid
    finally:
        stop_server(proc)


@pytest.fixture(scope="module")
def index_root(tmp_path_factory, tiny_dinov3, text_encoder, taxonomy):
    return build_small_index(
        tmp_path_factory.mktemp("hardened"), tiny_dinov3, text_encoder, taxonomy, n=8
    )


@pytest.fixture(scope="module")
def served(index_root):
    with _serving(
        index_root,
        VISRAG_HEADER_TIMEOUT_S=str(HEADER_TIMEOUT_S),
        VISRAG_MAX_PIXELS=str(MAX_PIXELS),
        VISRAG_DECODE_BUDGET_MB=str(BUDGET_MB),
        VISRAG_REQUEST_TIMEOUT_S="240",
    ) as server:
        yield server


def test_slow_uploads_do_not_lock_normal_calls_out(index_root):
    """Issue 27 A: 30 bodies trickling a byte every 2 s against a queue of 4 (default upload
    settings): 5 normal calls in a row are all served, and every slow upload ends with a 408."""
    with _serving(index_root, VISRAG_MAX_QUEUE="4") as (base, _, _):
        result = asyncio.run(
            trickle_while_calling(base, clients=30, interval_s=2.0, calls=5, headers=AUTH)
        )
    assert result["normal_statuses"] == [200] * 5, result
    assert result["slow_answers"] == {"HTTP/1.1 408 Request Timeout": 30}, result


def test_a_connection_that_never_finishes_its_headers_is_closed(served):
    _, port, _ = served
    with socket.create_connection(("127.0.0.1", port)) as sock:
        sock.sendall(b"POST /retrieve HTTP/1.1\r\nHost: x\r\nContent-Type: multipart/")
        sock.settimeout(HEADER_TIMEOUT_S + 30)  # generous: open by then means never closed
        received = b""
        try:
            while chunk := sock.recv(4096):
                received += chunk
        except TimeoutError:
            pytest.fail("the server kept a connection with unfinished headers open")
    assert received.startswith(b"HTTP/1.1 408")


def _status(pid: int) -> dict[str, int]:
    """VmRSS and VmHWM (peak RSS) of a process, in bytes."""
    out = {}
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        name, _, value = line.partition(":")
        if name in ("VmRSS", "VmHWM"):
            out[name] = int(value.split()[0]) * 1024
    return out


def _near_limit_png() -> bytes:
    image = Image.linear_gradient("L").resize((SIDE, SIDE)).convert("RGB")
    out = io.BytesIO()
    image.save(out, format="PNG", optimize=False)
    return out.getvalue()


def test_concurrent_near_limit_pngs_stay_within_the_decode_budget(served):
    base, _, pid = served
    data = _near_limit_png()
    assert len(data) < 2_000_000  # within the upload limit: only decoding makes it big
    httpx.post(
        f"{base}/retrieve", files={"image": ("a.png", data, "image/png")}, headers=AUTH, timeout=240
    ).raise_for_status()  # warm the decode path once
    try:  # reset the peak-RSS mark (Linux), so VmHWM is the burst's peak
        Path(f"/proc/{pid}/clear_refs").write_text("5")
    except OSError:
        pytest.skip("cannot reset the peak RSS of the server process here")
    before = _status(pid)["VmRSS"]
    statuses: list[int] = []

    def send() -> None:
        r = httpx.post(
            f"{base}/retrieve",
            files={"image": ("a.png", data, "image/png")},
            headers=AUTH,
            timeout=240,
        )
        statuses.append(r.status_code)

    threads = [threading.Thread(target=send) for _ in range(BURST)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(300)
    after = _status(pid)
    assert statuses == [200] * BURST
    one_image = SIDE * SIDE * 4  # PIL holds RGB as 4 bytes a pixel
    growth = after["VmHWM"] - before
    # Generous: the budget plus slack for buffers and the encoder, far below BURST images at once.
    assert growth < BUDGET_MB * 2**20 + 4 * one_image, growth / 2**20
    assert growth < BURST * one_image / 2
    # ... and the memory came back after the burst.
    assert after["VmRSS"] - before < BUDGET_MB * 2**20, (after["VmRSS"] - before) / 2**20


def test_openapi_declares_the_key_and_every_error_status(served):
    base, _, _ = served
    spec = httpx.get(f"{base}/openapi.json").json()
    schemes = spec["components"]["securitySchemes"]
    assert schemes["bearerAuth"] == {
        "type": "http",
        "scheme": "bearer",
        "description": "An API key as a bearer.",
    }
    assert schemes["apiKeyHeader"] == {"type": "apiKey", "in": "header", "name": "X-API-Key"}
    error = {"$ref": "#/components/schemas/ErrorResponse"}
    for path in ("/retrieve", "/context"):
        op = spec["paths"][path]["post"]
        assert op["security"] == [{"bearerAuth": []}, {"apiKeyHeader": []}]
        for status in ("401", "408", "413", "415", "422", "429", "499", "503", "504"):
            assert op["responses"][status]["content"]["application/json"]["schema"] == error
    for path in ("/info", "/metrics", "/items/{item_id}/image"):
        op = spec["paths"][path]["get"]
        assert op["security"] and "401" in op["responses"]
    assert "security" not in spec["paths"]["/health"]["get"]
    assert "security" not in spec["paths"]["/ready"]["get"]
    assert "HTTPValidationError" not in str(spec)  # every 422 is the service's ErrorResponse


@pytest.mark.parametrize("with_key", [True, False], ids=["with-key", "without-key"])
def test_schemathesis_finds_nothing(served, with_key, tmp_path):
    base, _, _ = served
    cmd = [
        sys.executable,
        "-c",
        "from schemathesis.cli import schemathesis; schemathesis()",
        "run",
        f"{base}/openapi.json",
        "--checks",
        "all",
        "--max-examples",
        "25",
        "--phases",
        "examples,coverage,fuzzing",
        "--request-timeout",
        "60",
        "--max-failures",
        "5",
        "--no-color",
        "--seed",
        "20261202",
    ]
    if with_key:
        cmd += ["-H", f"Authorization: Bearer {KEY}"]
    here = Path(__file__).resolve().parent  # schemathesis_hooks: real images for the image part
    env = {
        **os.environ,
        "SCHEMATHESIS_HOOKS": "schemathesis_hooks",
        "PYTHONPATH": os.pathsep.join([str(here), str(REPO)]),
    }
    run = subprocess.run(cmd, cwd=tmp_path, env=env, capture_output=True, text=True, timeout=240)
    assert run.returncode == 0, run.stdout[-6000:] + run.stderr[-2000:]
