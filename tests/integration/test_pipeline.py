"""The whole offline path as a user runs it, then queries through the Retriever with image files:
generate -> split -> build (tiny random DINOv3, real text model, real FAISS) -> verify -> retrieve,
remove, add back, filters."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
from typer.testing import CliRunner

from indexer.query import Filters

pytestmark = pytest.mark.slow


def invoke(*args: str) -> str:
    from indexer.cli.main import cli

    result = CliRunner().invoke(cli, [str(a) for a in args])
    assert result.exit_code == 0, f"{args}\n{result.output}\n{result.exception!r}"
    return result.output


@pytest.fixture(scope="module")
def pipeline(tmp_path_factory, tiny_dinov3):
    root = tmp_path_factory.mktemp("pipeline")
    invoke("generate", root / "data", "--n", "48", "--seed", "3", "--size", "160x120")
    invoke("split", root / "data", "--out", root / "split", "--group-by", "capture")
    invoke(
        "index",
        "build",
        "--manifest",
        root / "split" / "train.jsonl",
        "--out",
        root / "art",
        "--image-model",
        tiny_dinov3,
        "--image-size",
        "96",
        "--device",
        "cpu",
        "--no-progress",
    )
    assert "OK" in invoke("index", "verify", root / "art")
    return root


def open_retriever(art: Path, model: Path, text_encoder, taxonomy):
    from indexer.retrieval.opening import Overrides, open_index
    from indexer.retrieval.retriever import Retriever

    opened = open_index(
        art,
        Overrides(device="cpu", image_model=str(model), taxonomy=taxonomy),
        text_encoder=text_encoder,
    )
    return Retriever(
        opened.artifacts,
        image_encoder=opened.image_encoder,
        text_encoder=opened.text_encoder,
        taxonomy=opened.taxonomy,
    )


def train_lines(root: Path) -> list[dict]:
    lines = (root / "split" / "train.jsonl").read_text().splitlines()
    return [json.loads(line) for line in lines]


def image_of(root: Path, line: dict):
    from models.imaging import decode_image

    return decode_image((root / "split" / line["image"]).resolve())


def test_an_indexed_image_retrieves_itself_first(pipeline, tiny_dinov3, text_encoder, taxonomy):
    retriever = open_retriever(pipeline / "art", tiny_dinov3, text_encoder, taxonomy)
    lines = train_lines(pipeline)
    for line in lines[:6]:
        result = retriever.retrieve(image_of(pipeline, line), k=5)
        top = result.hits[0]
        assert top.id == line["id"] and top.score == pytest.approx(1.0, abs=1e-3)
        assert {lc.id: lc.count for lc in top.labels} == line["labels"]
        assert top.zone == line["zone"]
        assert [h.rank for h in result.hits] == [1, 2, 3, 4, 5]
        assert {"preprocess", "encode", "search"} <= set(result.timings)


def test_every_mode_answers_from_one_build(pipeline, tiny_dinov3, text_encoder, taxonomy):
    retriever = open_retriever(pipeline / "art", tiny_dinov3, text_encoder, taxonomy)
    line = train_lines(pipeline)[0]
    image = image_of(pipeline, line)
    hybrid = retriever.retrieve(image, k=3, mode="hybrid", text="a dent on the rear bumper")
    rerank = retriever.retrieve(image, k=3, mode="rerank")
    assert len(hybrid.hits) == len(rerank.hits) == 3
    assert rerank.pseudo_text  # the neighbours' consensus, never the query's own labels
    assert all(-1.0 <= h.score <= 1.0 for h in (*hybrid.hits, *rerank.hits))


def test_filters_return_only_matching_items_and_still_k(
    pipeline, tiny_dinov3, text_encoder, taxonomy
):
    retriever = open_retriever(pipeline / "art", tiny_dinov3, text_encoder, taxonomy)
    lines = train_lines(pipeline)
    with_dent = [ln for ln in lines if "dent" in ln["labels"]]
    assert len(with_dent) >= 3, "the generated set should have several dented images"
    image = image_of(pipeline, next(ln for ln in lines if "dent" not in ln["labels"]))
    k = min(5, len(with_dent))
    result = retriever.retrieve(image, k=k, filters=Filters(labels_any=("dent",)))
    assert len(result.hits) == k
    assert all("dent" in {lc.id for lc in h.labels} for h in result.hits)
    zone = lines[0]["zone"]
    in_zone = sum(ln["zone"] == zone for ln in lines)
    result = retriever.retrieve(image, k=100, filters=Filters(zones=(zone,)))
    assert len(result.hits) == in_zone and {h.zone for h in result.hits} == {zone}


def test_remove_makes_it_disappear_and_add_brings_it_back(
    pipeline, tiny_dinov3, text_encoder, taxonomy, tmp_path
):
    art = tmp_path / "art"
    shutil.copytree(pipeline / "art", art)
    line = train_lines(pipeline)[2]
    image = image_of(pipeline, line)

    invoke("index", "remove", art, line["id"])
    gone = open_retriever(art, tiny_dinov3, text_encoder, taxonomy).retrieve(image, k=10)
    assert line["id"] not in [h.id for h in gone.hits]

    manifest = tmp_path / "back.jsonl"
    entry = dict(line, image=str((pipeline / "split" / line["image"]).resolve()))
    manifest.write_text(json.dumps(entry) + "\n")
    invoke(
        "index", "add", art, "--manifest", manifest, "--image-model", tiny_dinov3, "--device", "cpu"
    )
    back = open_retriever(art, tiny_dinov3, text_encoder, taxonomy).retrieve(image, k=1)
    assert back.hits[0].id == line["id"] and back.hits[0].score == pytest.approx(1.0, abs=1e-3)
