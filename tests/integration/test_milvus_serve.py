"""`visrag serve` on a Milvus-backed index whose collection is gone exits at once (status 3) with a
message naming the collection, instead of lingering unready. Real processes: Milvus Lite is one
process per file, so the import, the damage and the server each run in their own."""

from __future__ import annotations

import json
import subprocess
import sys

import numpy as np
import pytest

pytest.importorskip("milvus_lite")
pytestmark = pytest.mark.slow


def visrag(*args: str, timeout: float = 300) -> subprocess.CompletedProcess[str]:
    code = "import sys; from app.cli import main; sys.argv[0] = 'visrag'; main()"
    return subprocess.run(
        [sys.executable, "-c", code, *args], capture_output=True, text=True, timeout=timeout
    )


def test_serve_exits_naming_the_missing_collection(tmp_path):
    rng = np.random.default_rng(0)
    np.save(tmp_path / "e.npy", rng.normal(size=(6, 8)).astype(np.float32))
    meta = [
        {"crop_id": f"c{i}", "damage_types": ["dent"], "source_image": f"s{i}.jpg"}
        for i in range(6)
    ]
    (tmp_path / "m.json").write_text(json.dumps(meta))
    lite = tmp_path / "lite.db"
    built = visrag(
        "index",
        "import",
        "--embeddings",
        str(tmp_path / "e.npy"),
        "--metadata",
        str(tmp_path / "m.json"),
        "--out",
        str(tmp_path / "art"),
        "--image-model-id",
        "test/vectors",
        "--device",
        "cpu",
        "--store",
        "milvus",
        "--milvus-uri",
        str(lite),
        "--milvus-collection",
        "gone",
    )
    assert built.returncode == 0, built.stderr
    drop = (
        f"from pymilvus import MilvusClient; MilvusClient({str(lite)!r})"
        ".drop_collection('gone_image')"
    )
    subprocess.run([sys.executable, "-c", drop], check=True, capture_output=True, timeout=120)
    served = visrag("serve", "--artifacts", str(tmp_path / "art"), "--port", "0", timeout=120)
    assert served.returncode == 3, served.stderr[-2000:]
    assert "Milvus collection 'gone_image' does not exist" in served.stderr
