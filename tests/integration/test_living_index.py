"""The index as it lives: `visrag index build | add | remove` as real processes against a running
`visrag serve` (tiny random DINOv3, real text model, real FAISS).

- `add` then `remove` on the served directory are seen through `/retrieve`, `/info` and the
  thumbnails without a restart (SIGHUP; the poll is tested in tests/api/test_reload.py);
- two concurrent `index add` never both succeed with an item lost (repeated), and with
  `--wait` both land;
- a directory built under umask 077 is readable by another uid (`nobody`).
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx
import pytest
from service_index import free_port, server_env, start_server, stop_server

pytestmark = pytest.mark.slow
REPO = Path(__file__).resolve().parents[2]
N_IMAGES = 10
NOBODY = 65534


def visrag(*args: str | Path, umask: int | None = None) -> subprocess.CompletedProcess[str]:
    def preexec() -> None:
        if umask is not None:
            os.umask(umask)

    cmd = [sys.executable, "-m", "app.cli", *map(str, args)]
    env = server_env(VISRAG_LOG_LEVEL="warning")
    return subprocess.run(
        cmd, cwd=REPO, env=env, capture_output=True, text=True, timeout=300, preexec_fn=preexec
    )


def dataset(root: Path, n: int, seed: int) -> list[tuple[str, bytes]]:
    """Generate ``n`` images under ``root``; (record id, image bytes) of each."""
    from indexer.readers.dataset import read_dataset
    from indexer.synthetic.generator import generate_dataset
    from models.taxonomy import load_taxonomy

    generate_dataset(root, n, seed=seed, image_size=(160, 120))
    records = read_dataset(root, taxonomy=load_taxonomy()).records
    return [(r.id, Path(r.image_path).read_bytes()) for r in records]


def item_ids(art: Path) -> set[str]:
    from indexer.index.artifacts import load_artifacts

    return {it.id for it in load_artifacts(art).items}


@pytest.fixture(scope="module")
def world(tiny_dinov3):
    """A world-readable base (under /tmp, 0755) with a dataset and an index built by the CLI
    under umask 077."""
    base = Path(tempfile.mkdtemp(prefix="visrag-living-"))
    base.chmod(0o755)
    (base / "indexes").mkdir(mode=0o755)
    dataset(base / "data", N_IMAGES, seed=0)
    done = visrag(
        "index",
        "build",
        "--manifest",
        base / "data",
        "--out",
        base / "indexes" / "art",
        "--image-model",
        tiny_dinov3,
        "--image-size",
        "64",
        "--device",
        "cpu",
        "--no-progress",
        umask=0o077,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    yield base
    shutil.rmtree(base, ignore_errors=True)


@pytest.mark.skipif(os.geteuid() != 0, reason="needs root to run a process as another uid")
def test_a_built_index_is_readable_by_another_uid(world):
    art = world / "indexes" / "art"
    files = sorted(art.iterdir())
    manifest = json.loads((art / "manifest.json").read_text())
    assert {f.name for f in files} == {"manifest.json", *manifest["files"]}  # every file, no more

    def as_nobody() -> None:
        os.setgid(NOBODY)
        os.setuid(NOBODY)

    done = subprocess.run(
        ["cat", *map(str, files)], preexec_fn=as_nobody, capture_output=True, timeout=60
    )
    assert done.returncode == 0, done.stderr.decode()
    assert len(done.stdout) == sum(f.stat().st_size for f in files)


def test_add_then_remove_on_a_served_directory_without_restart(world, tmp_path):
    art = tmp_path / "art"
    shutil.copytree(world / "indexes" / "art", art)
    added = dataset(tmp_path / "more", 3, seed=11)
    new_id, new_image = added[0]
    port = free_port()
    log = tmp_path / "server.log"
    proc = start_server(art, port, log, VISRAG_RELOAD_INTERVAL_S="0")  # SIGHUP only
    base = f"http://127.0.0.1:{port}"

    def runtime() -> dict:
        return httpx.get(f"{base}/info", timeout=10).json()["runtime"]

    def wait_for(generation: int) -> dict:
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:
            assert proc.poll() is None, log.read_text()
            try:
                now = runtime()
                if now.get("generation", 0) >= generation:
                    return now
            except httpx.TransportError:
                pass
            time.sleep(0.2)
        pytest.fail(f"generation {generation} not served:\n{log.read_text()}")

    def hits() -> list[str]:
        files = {"image": ("q.jpg", new_image, "image/jpeg")}
        r = httpx.post(f"{base}/retrieve", files=files, data={"k": "3"}, timeout=30)
        assert r.status_code == 200, r.text
        return [h["id"] for h in r.json()["hits"]]

    def thumbnail(item_id: str) -> int:
        return httpx.get(f"{base}/items/{item_id}/image", timeout=30).status_code

    try:
        assert wait_for(1)["index_size"] == N_IMAGES
        assert new_id not in hits() and thumbnail(new_id) == 404

        done = visrag("index", "add", art, "--manifest", tmp_path / "more", "--device", "cpu")
        assert done.returncode == 0, done.stdout + done.stderr
        proc.send_signal(signal.SIGHUP)
        assert wait_for(2)["index_size"] == N_IMAGES + 3
        assert hits()[0] == new_id and thumbnail(new_id) == 200

        done = visrag("index", "remove", art, new_id)
        assert done.returncode == 0, done.stdout + done.stderr
        proc.send_signal(signal.SIGHUP)
        now = wait_for(3)
        assert now["index_size"] == N_IMAGES + 2 and now["reload"]["last_outcome"] == "ok"
        assert new_id not in hits() and thumbnail(new_id) == 404
        assert httpx.get(f"{base}/ready", timeout=10).status_code == 200
    finally:
        stop_server(proc)


@pytest.mark.parametrize("attempt", range(3))
def test_two_concurrent_adds_never_both_succeed_with_a_lost_item(world, tmp_path, attempt):
    art = tmp_path / "art"
    shutil.copytree(world / "indexes" / "art", art)
    before = item_ids(art)
    batches = [dataset(tmp_path / f"batch{i}", 4, seed=100 + 10 * attempt + i) for i in (0, 1)]
    wait = ["--wait", "300"] if attempt == 2 else []  # the last round waits instead of failing

    def add(i: int) -> subprocess.CompletedProcess[str]:
        return visrag(
            "index", "add", art, "--manifest", tmp_path / f"batch{i}", "--device", "cpu", *wait
        )

    with ThreadPoolExecutor(2) as pool:
        results = list(pool.map(add, (0, 1)))
    expected = set(before)
    for result, batch in zip(results, batches, strict=True):
        if result.returncode == 0:
            expected |= {item_id for item_id, _ in batch}
        else:  # refused with a message naming the writer, never a traceback
            assert "is writing" in result.stderr and "Traceback" not in result.stderr, result
    assert item_ids(art) == expected, [r.stdout + r.stderr for r in results]
    assert any(r.returncode == 0 for r in results)
    if wait:
        assert all(r.returncode == 0 for r in results), [r.stderr for r in results]
