"""Near-duplicate clusters in `split --group-by duplicates` and `analyze --duplicates`: an exact
and a re-encoded copy of one photo stay on one side and are listed; other photos are not merged."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from PIL import Image
from typer.testing import CliRunner

from indexer.cli.main import cli

COPIES = {"photo_00.jpg", "same_bytes.jpg", "reencoded.jpg"}


@pytest.fixture
def planted(tmp_path: Path) -> Path:
    """Twelve distinct photos (no annotation: no damage), an exact copy of the first and a JPEG
    quality 70 copy of it resized to 90 %."""
    root = tmp_path / "ds"
    root.mkdir()
    rng = np.random.default_rng(3)
    for i in range(12):
        blocks = rng.integers(0, 256, size=(12, 16, 3), dtype=np.uint8)
        photo = Image.fromarray(blocks).resize((320, 240), Image.Resampling.BILINEAR)
        photo.save(root / f"photo_{i:02d}.jpg", quality=95)
    (root / "same_bytes.jpg").write_bytes((root / "photo_00.jpg").read_bytes())
    with Image.open(root / "photo_00.jpg") as photo:
        photo.resize((288, 216)).save(root / "reencoded.jpg", quality=70)
    return root


def _sides(out: Path) -> dict[str, str]:
    side = {}
    for name in ("train", "test"):
        for line in (out / f"{name}.jsonl").read_text("utf-8").splitlines():
            side[Path(json.loads(line)["image"]).name] = name
    return side


def _split(root: Path, out: Path, seed: int, *group_by: str) -> dict[str, str]:
    args = ["split", str(root), "--out", str(out), "--seed", str(seed), "--test-size", "0.3"]
    result = CliRunner().invoke(cli, [*args, *group_by])
    assert result.exit_code == 0, result.output
    return _sides(out)


def test_split_keeps_a_planted_duplicate_cluster_on_one_side(planted: Path, tmp_path: Path):
    by_image = [_split(planted, tmp_path / f"img{s}", s) for s in range(10)]
    assert any(len({sides[f] for f in COPIES}) == 2 for sides in by_image)  # the risk is real
    for seed in range(10):
        out = tmp_path / f"dup{seed}"
        sides = _split(planted, out, seed, "--group-by", "duplicates")
        assert len({sides[f] for f in COPIES}) == 1
        report = json.loads((out / "split_report.json").read_text("utf-8"))
        assert report["dataset"]["group_by"] == "duplicates"
        assert report["dataset"]["duplicate_clusters"] == 1
        assert report["groups"]["train"] + report["groups"]["test"] == 12  # 14 photos, 1 cluster


def test_analyze_lists_the_cluster_and_nothing_else(planted: Path, tmp_path: Path):
    out = tmp_path / "report"
    result = CliRunner().invoke(cli, ["analyze", str(planted), "--out", str(out), "--duplicates"])
    assert result.exit_code == 0, result.output
    found = json.loads((out / "analysis.json").read_text("utf-8"))["duplicates"]
    assert found["clusters"] == 1
    (cluster,) = found["items"]
    assert {Path(f).name for f in cluster["files"]} == COPIES
    reasons = sorted(link["reason"].split()[0] for link in cluster["links"])
    assert reasons == ["identical", "perceptual"]
    markdown = (out / "analysis.md").read_text("utf-8")
    assert "## Near-duplicate photos" in markdown and "reencoded.jpg" in markdown
