"""Acceptance: on the same data (the shared DINOv3 seed crops), an index whose vectors live in
Milvus (Milvus Lite, FLAT, inner product) gives exactly the same `visrag evaluate` metrics as the
FAISS flat index, and `index verify` passes on it."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest
from typer.testing import CliRunner

# beside the checkout as in test_import_seed; SEED_CROPS_DIR points elsewhere (a worktree)
SEED_CROPS = Path(
    os.environ.get("SEED_CROPS_DIR")
    or Path(__file__).resolve().parents[3] / "shared" / "data" / "seed-crops-dinov3-vitl-medium"
)

pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(
        not (SEED_CROPS / "embeddings.npy").is_file(), reason="shared seed crops not present"
    ),
]
pytest.importorskip("milvus_lite")


def run(*args: str) -> str:
    from app.cli import cli

    result = CliRunner().invoke(cli, list(args))
    assert result.exit_code == 0, result.output
    return result.output


def test_milvus_flat_evaluates_exactly_like_faiss_flat(tmp_path):
    source = [
        "--embeddings",
        str(SEED_CROPS / "embeddings.npy"),
        "--metadata",
        str(SEED_CROPS / "metadata.json"),
        "--device",
        "cpu",
    ]
    run("index", "import", *source, "--out", str(tmp_path / "faiss"))
    run(
        "index",
        "import",
        *source,
        "--out",
        str(tmp_path / "milvus"),
        "--store",
        "milvus",
        "--milvus-uri",
        str(tmp_path / "lite.db"),
        "--milvus-collection",
        "seed",
    )
    manifest = json.loads((tmp_path / "milvus" / "manifest.json").read_text())
    assert manifest["store"]["kind"] == "milvus" and manifest["store"]["index_type"] == "flat"
    verified = run("index", "verify", str(tmp_path / "milvus"))
    assert "FAIL" not in verified and "OK   image index ids = catalogue rows" in verified
    metrics = {}
    for name in ("faiss", "milvus"):
        out = tmp_path / f"eval-{name}"
        run(
            "evaluate",
            "--artifacts",
            str(tmp_path / name),
            "--leave-one-out",
            "--mode",
            "image",
            "--mode",
            "rerank",
            "--out",
            str(out),
            "--device",
            "cpu",
        )
        report = json.loads((out / "metrics.json").read_text())
        metrics[name] = {
            run["name"]: (run["metrics"], [q["id"] for q in run["queries"]])
            for run in report["runs"]
        }
        metrics[name]["baselines"] = report["baselines"]
    assert metrics["milvus"] == metrics["faiss"]
    assert set(metrics["faiss"]) == {"image", "rerank", "baselines"}
