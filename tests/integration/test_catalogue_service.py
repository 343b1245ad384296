"""The catalogue over HTTP on a real `visrag serve` (tiny random DINOv3, real text model, real
FAISS): a write is served by the answer's generation, survives kill -9 right after its 201, and
concurrent HTTP and CLI writers never lose or duplicate an item."""

from __future__ import annotations

import contextlib
import io
import shutil
import signal
import subprocess
import sys
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx
import pytest
from PIL import Image
from service_index import REPO, build_small_index, free_port, server_env, start_server

from bench.server import wait_ready
from indexer.index.artifacts import load_artifacts

pytestmark = pytest.mark.slow
W = {"Authorization": "Bearer w-key-1"}
R = {"Authorization": "Bearer r-key-1"}
KEYS = {"VISRAG_API_KEYS": "r-key-1", "VISRAG_WRITE_KEYS": "ci:w-key-1"}


@pytest.fixture(scope="module")
def built(tmp_path_factory, tiny_dinov3, text_encoder, taxonomy) -> Path:
    root = build_small_index(
        tmp_path_factory.mktemp("catalogue"), tiny_dinov3, text_encoder, taxonomy, n=6
    )
    return root / "art"


@pytest.fixture
def art(built, tmp_path) -> Path:
    shutil.copytree(built, tmp_path / "art")
    return tmp_path / "art"


@contextlib.contextmanager
def serving(art: Path, **env: str) -> Iterator[tuple[str, subprocess.Popen[bytes]]]:
    port = free_port()
    log = art.parent / f"server-{port}.log"
    proc = start_server(art, port, log, VISRAG_RELOAD_INTERVAL_S="0", **KEYS, **env)
    base = f"http://127.0.0.1:{port}"
    try:
        assert wait_ready(base, 120, proc=proc), log.read_text()
        yield base, proc
    finally:
        proc.kill()
        proc.wait(20)


def photo(seed: int) -> bytes:
    """A noise photo of its own (the same call twice gives two photos)."""
    out = io.BytesIO()
    Image.effect_noise((96, 64), 40 + seed).convert("RGB").save(out, format="PNG")
    return out.getvalue()


def add(base: str, item_id: str, data: bytes, **fields: str) -> httpx.Response:
    files = {"image": (f"{item_id}.png", data, "image/png")}
    return httpx.post(
        f"{base}/items", files=files, data={"id": item_id, **fields}, headers=W, timeout=120
    )


def hits(base: str, data: bytes) -> list[str]:
    files = {"image": ("q.png", data, "image/png")}
    r = httpx.post(f"{base}/retrieve", files=files, data={"k": "3"}, headers=R, timeout=60)
    assert r.status_code == 200, r.text
    return [hit["id"] for hit in r.json()["hits"]]


def test_add_is_served_at_once_and_delete_removes_it(art):
    data = photo(1)
    with serving(art) as (base, _):
        assert add(base, "new-1", data, labels="dent", zone="7").status_code == 201
        assert hits(base, data)[0] == "new-1"  # the same photo: the identical vector
        assert httpx.get(f"{base}/items/new-1", headers=R).json()["zone"] == "driver_side_door"
        r = httpx.post(f"{base}/items", files={"image": ("x.png", data)}, headers=R)
        assert r.status_code == 403 and r.json()["error_type"] == "forbidden"
        assert httpx.delete(f"{base}/items/new-1", headers=W, timeout=60).status_code == 204
        assert "new-1" not in hits(base, data)
        assert httpx.get(f"{base}/items/new-1", headers=R).status_code == 404


def test_kill_9_right_after_the_201_loses_nothing(art):
    data = photo(2)
    with serving(art) as (base, proc):
        assert add(base, "kept-2", data, labels="crack").status_code == 201
        proc.send_signal(signal.SIGKILL)
    verify(art)
    with serving(art) as (base, _):
        assert httpx.get(f"{base}/items/kept-2", headers=R).status_code == 200
        assert hits(base, data)[0] == "kept-2"


def test_twenty_concurrent_http_adds_and_a_cli_add_each_land_exactly_once(art, tmp_path):
    from indexer.synthetic.generator import generate_dataset

    generate_dataset(tmp_path / "more", 3, seed=7, image_size=(160, 120))
    before = [it.id for it in load_artifacts(art).items]
    cli = [sys.executable, "-m", "app.cli", "index", "add", str(art)]
    cli += ["--manifest", str(tmp_path / "more"), "--device", "cpu", "--wait", "300"]
    with serving(art, VISRAG_WRITE_LOCK_WAIT_S="300") as (base, _):
        with ThreadPoolExecutor(21) as pool:
            command = pool.submit(
                subprocess.run, cli, cwd=REPO, env=server_env(), capture_output=True, text=True
            )
            answers = list(pool.map(lambda i: add(base, f"http-{i}", photo(100 + i)), range(20)))
            done = command.result(timeout=300)
    assert done.returncode == 0, done.stdout + done.stderr
    assert [r.status_code for r in answers] == [201] * 20, [r.text for r in answers]
    ids = [it.id for it in load_artifacts(art).items]
    assert len(ids) == len(set(ids)) == len(before) + 20 + 3
    assert {f"http-{i}" for i in range(20)} <= set(ids) and set(before) <= set(ids)


CRASHING_WRITER = """
import os, signal, sys
import numpy as np
from indexer.build.pipeline import write_items
from indexer.index import atomic
from indexer.index.artifacts import load_artifacts
from indexer.index.catalogue import CatalogueItem

art, when = sys.argv[1], sys.argv[2]
swap = atomic._swap_in

def crash(tmp, out):
    if when == "after-swap":
        swap(tmp, out)
    os.kill(os.getpid(), signal.SIGKILL)

atomic._swap_in = crash
a = load_artifacts(art)
item = CatalogueItem(**{**a.items[0].__dict__, "id": "crashed"})
vectors = [np.asarray(v[:1], np.float32) for v in (a.image_vectors, a.text_vectors)]
write_items(art, [item], *vectors)
"""


def verify(art: Path) -> None:
    done = subprocess.run(
        [sys.executable, "-m", "app.cli", "index", "verify", str(art)],
        cwd=REPO,
        env=server_env(),
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode == 0, done.stdout + done.stderr


@pytest.mark.parametrize("when", ["before-swap", "after-swap"])
def test_a_writer_killed_mid_write_leaves_one_complete_generation(art, when):
    before = {it.id for it in load_artifacts(art).items}
    with serving(art) as (base, _):
        crashed = subprocess.run(
            [sys.executable, "-c", CRASHING_WRITER, str(art), when],
            cwd=REPO,
            env=server_env(),
            capture_output=True,
            text=True,
            timeout=300,
        )
        assert crashed.returncode == -signal.SIGKILL, crashed.stderr
        verify(art)  # old or new generation, complete and checksummed
        after = {it.id for it in load_artifacts(art).items}
        assert after == (before | {"crashed"} if when == "after-swap" else before)
        # the dead writer's lock went with it: the service writes, and serves what is on disk
        assert add(base, "next", photo(3)).status_code == 201
        found = httpx.get(f"{base}/items/crashed", headers=R).status_code
        assert found == (200 if when == "after-swap" else 404)
    verify(art)
    assert not [p for p in art.parent.iterdir() if p.name.startswith(f".{art.name}.tmp")]
