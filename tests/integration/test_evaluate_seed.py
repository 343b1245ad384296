"""Leave-one-out on the shared real DINOv3 seed crops, through `visrag evaluate`."""

from __future__ import annotations

import hashlib
import json
import re
from collections import Counter
from pathlib import Path

import numpy as np
import pytest
from typer.testing import CliRunner

# the shared data sits beside the checkout (/work/shared beside /work/main, or above a worktree)
SEED_CROPS = next(
    (
        parent / "shared" / "data" / "seed-crops-dinov3-vitl-medium"
        for parent in Path(__file__).resolve().parents[3:]
        if (parent / "shared" / "data" / "seed-crops-dinov3-vitl-medium").is_dir()
    ),
    Path(__file__).resolve().parents[3] / "shared" / "data" / "seed-crops-dinov3-vitl-medium",
)
DOCS = Path(__file__).resolve().parents[2] / "docs" / "evaluation.md"

pytestmark = pytest.mark.skipif(
    not (SEED_CROPS / "embeddings.npy").is_file(), reason="shared seed crops not present"
)


class HashTextEncoder:
    """Deterministic stand-in for the sentence encoder (image mode never reads the text half)."""

    model_id = "test/hash-text"
    dim = 16

    def info(self):
        return {"id": self.model_id, "dim": self.dim}

    def encode(self, texts, **_):
        rows = [
            np.random.default_rng(int(hashlib.sha1(t.encode()).hexdigest()[:8], 16)).normal(
                size=self.dim
            )
            for t in texts
        ]
        v = np.array(rows, np.float32)
        return v / np.linalg.norm(v, axis=1, keepdims=True)


@pytest.fixture(scope="module")
def seed_artifacts(tmp_path_factory):
    importing = pytest.importorskip(
        "indexer.build.importing", reason="indexer.build.importing not landed"
    )
    from models.taxonomy import load_taxonomy

    out = tmp_path_factory.mktemp("seed") / "art"
    importing.import_embeddings(
        SEED_CROPS / "embeddings.npy",
        SEED_CROPS / "metadata.json",
        out,
        taxonomy=load_taxonomy(),
        text_encoder=HashTextEncoder(),
    )
    return out


@pytest.fixture(scope="module")
def seed_eval(seed_artifacts, tmp_path_factory):
    from indexer.cli.main import cli

    out = tmp_path_factory.mktemp("seed-eval") / "eval"
    result = CliRunner().invoke(
        cli,
        [
            "evaluate",
            "--artifacts",
            str(seed_artifacts),
            "--leave-one-out",
            "--out",
            str(out),
            "--mode",
            "image",
            "--random-repeats",
            "5",
        ],
    )
    assert result.exit_code == 0, result.output
    return out, result.output


def test_leave_one_out_on_seed_crops(seed_eval):
    out, output = seed_eval
    assert "majority" in output and "random" in output
    data = json.loads((out / "metrics.json").read_text())
    assert (out / "summary.md").is_file() and (out / "report.html").is_file()
    assert data["setting"]["queries"] == 239
    assert data["setting"]["protocol"].startswith("leave-one-out")

    meta = json.loads((SEED_CROPS / "metadata.json").read_text())
    source = {m["crop_id"]: m["source_image"] for m in meta}
    image = data["runs"][0]
    assert image["name"] == "image"
    for q in image["queries"]:
        assert len(q["neighbours"]) == 10
        # never a crop of the same photo (nor the query itself)
        assert all(source[n["id"]] != source[q["id"]] for n in q["neighbours"]), q["id"]

    # 202 of 239 crops carry surface_scratch: the majority baseline retrieves scratch-only crops,
    # so its precision at every k is exactly the share of queries carrying a scratch
    with_scratch = sum("surface_scratch" in set(m["damage_types"]) for m in meta)
    assert with_scratch == 202
    majority = data["baselines"]["majority"]["metrics"]
    for k in (1, 3, 5, 10):
        assert majority[f"precision@{k}"] == pytest.approx(202 / 239)
    # every metric has both baselines beside it
    for key in image["metrics"]:
        assert key in data["baselines"]["majority"]["metrics"]
        assert key in data["baselines"]["random"]["metrics"]
    # per-label support matches the metadata (labels counted once per crop)
    support = Counter(lb for m in meta for lb in set(m["damage_types"]))
    plr = image["per_label_recall"]["5"]
    assert {lb: v["support"] for lb, v in plr.items()} == dict(support)


def test_the_documented_leave_one_out_numbers_reproduce(seed_eval):
    """docs/evaluation.md, "All metrics": the image run and the majority baseline, every metric
    (rerank used the real text model and random 20 draws: not re-run here)."""
    out, _ = seed_eval
    data = json.loads((out / "metrics.json").read_text())
    section = DOCS.read_text("utf-8").split("### All metrics", 1)[1].split("###", 1)[0]
    rows = re.findall(
        r"^\| (\S+) \| ([0-9.]+) \| [0-9.]+ \| ([0-9.]+) \| [0-9.]+ \|$", section, re.M
    )
    assert len(rows) == 33
    image = data["runs"][0]["metrics"]
    majority = data["baselines"]["majority"]["metrics"]
    assert [(m, f"{image[m]:.3f}", f"{majority[m]:.3f}") for m, _, _ in rows] == rows


@pytest.mark.browser
def test_seed_report_renders_its_plots_in_chromium(seed_eval, render_in_chromium):
    out, _ = seed_eval
    images, errors, text = render_in_chromium(out / "report.html")
    assert errors == []
    assert len(images) >= 3  # curves, per-label bars, confusion (crops have no images)
    assert all(complete and width > 0 for _, complete, width in images), images
    assert "Metrics beside baselines" in text and "majority" in text
