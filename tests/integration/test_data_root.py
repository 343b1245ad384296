"""An index moves with its dataset: catalogue paths are relative to the dataset root, and
``VISRAG_DATA_ROOT`` says where that root is now (thumbnails are read from there)."""

from __future__ import annotations

import json
import shutil
import time
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def moved(tmp_path_factory, taxonomy, text_encoder, tiny_dinov3):
    """data/ + split/ + art/ built in one folder, then data/ and art/ moved elsewhere."""
    from indexer.build.pipeline import build_index
    from indexer.split.splitter import split_files
    from indexer.synthetic.generator import generate_dataset
    from models.image_encoder import load_image_encoder

    built = tmp_path_factory.mktemp("machine-a")
    generate_dataset(built / "data", 12, seed=0, image_size=(96, 72))
    _, paths, _ = split_files(built / "data", built / "split", taxonomy=taxonomy, seed=0)
    encoder = load_image_encoder(tiny_dinov3, device="cpu", image_size=64)
    build_index(
        paths["train"],
        built / "art",
        image_encoder=encoder,
        text_encoder=text_encoder,
        taxonomy=taxonomy,
        progress=False,
    )
    manifest = json.loads((built / "art" / "manifest.json").read_text())
    there = tmp_path_factory.mktemp("machine-b")
    for name in ("data", "art"):
        shutil.move(built / name, there / name)
    return built, there, manifest


def test_the_catalogue_holds_paths_relative_to_the_dataset_root(moved):
    from indexer.index.artifacts import load_artifacts

    built, there, manifest = moved
    assert manifest["dataset"]["root"] == str((built / "data").resolve())
    artifacts = load_artifacts(there / "art")
    assert artifacts.items and all(not Path(it.image).is_absolute() for it in artifacts.items)
    assert all(not it.image.startswith("..") for it in artifacts.items)


def thumbnail_status(there: Path, data_root: Path | None) -> int:
    from app.main import create_app
    from app.serving.resources import load_resources
    from app.settings import Settings
    from indexer.index.artifacts import load_artifacts

    item = load_artifacts(there / "art").items[0].id
    settings = Settings(artifacts=there / "art", device="cpu", data_root=data_root)
    with TestClient(create_app(settings, resources=load_resources(settings))) as client:
        for _ in range(500):
            if client.get("/ready").status_code == 200:
                break
            time.sleep(0.02)
        return client.get(f"/items/{item}/image", params={"size": 64}).status_code


def test_thumbnails_come_from_the_data_root_after_a_move(moved):
    _, there, _ = moved
    assert thumbnail_status(there, there / "data") == 200
    assert thumbnail_status(there, None) == 404  # the recorded root is gone
