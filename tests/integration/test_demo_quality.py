"""The weightless demo's neighbours make sense: its held-out evaluation, run as the README says,
beats the majority-label baseline by a margin a user can see (DESIGN §7)."""

from __future__ import annotations

import json

import pytest
from typer.testing import CliRunner

pytestmark = pytest.mark.slow


def test_tiny_demo_beats_the_majority_baseline_on_its_held_out_split(tmp_path, monkeypatch):
    from app.demo import prepare_demo
    from indexer.cli.main import cli

    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    work = tmp_path / "visrag-demo"
    build = prepare_demo(work, tiny=True, device="cpu", echo=lambda *_: None)
    manifest = json.loads((build.artifacts / "manifest.json").read_text())
    assert manifest["image_model"]["pooling"] == "contrast"  # the service opens the same

    args = ["evaluate", "--artifacts", str(build.artifacts), "--queries"]
    args += [str(work / "split" / "test.jsonl"), "--out", str(tmp_path / "eval")]
    result = CliRunner().invoke(cli, [*args, "--mode", "image", "--k", "1,5", "--device", "cpu"])
    assert result.exit_code == 0, result.output

    report = json.loads((tmp_path / "eval" / "metrics.json").read_text())
    image = next(r["metrics"] for r in report["runs"] if r["mode"] == "image")
    majority = report["baselines"]["majority"]["metrics"]
    for metric in ("recall@1", "label_recall_macro@1"):
        assert image[metric] >= majority[metric] + 0.15, (metric, image[metric], majority)
    assert report["setting"]["random_weights"] is True  # and the report still says so
