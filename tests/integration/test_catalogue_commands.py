"""`visrag model tiny | index add | remove | ls` as a user meets them: an index built with the
tiny model the CLI writes, an add that adds nothing fails and writes nothing, clashing ids are all
named before any model loads, failures already fixed leave the manifest, items are found by label
or path and removed by image path."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
from cli_runs import build_args, invoke

pytestmark = pytest.mark.slow
NOWHERE = "/nonexistent/model"  # an add that loaded the image model would fail on this instead


@pytest.fixture(scope="module")
def env(tmp_path_factory, taxonomy):
    """Six generated images indexed from a JSONL whose one line names a half-written JPEG."""
    from indexer.readers.dataset import read_dataset
    from indexer.readers.jsonl import record_to_json
    from indexer.synthetic.generator import generate_dataset

    root = tmp_path_factory.mktemp("catalogue")
    generate_dataset(root / "data", 6, seed=1, image_size=(160, 120))
    records = read_dataset(root / "data", taxonomy=taxonomy).records
    whole = Path(records[0].image_path).read_bytes()
    (root / "truncated.jpg").write_bytes(whole[: len(whole) // 2])
    lines = [json.dumps(record_to_json(r, base_dir=root)) for r in records[:4]]
    lines.append(json.dumps({"id": "truncated", "image": "truncated.jpg", "labels": ["dent"]}))
    (root / "train.jsonl").write_text("\n".join(lines) + "\n")
    model = root / "tiny-dinov3"  # what a user without weights runs (README: --image-model)
    assert f"--image-model {model}" in invoke("model", "tiny", model)
    assert "not an empty folder" in invoke("model", "tiny", model, ok=False)
    invoke(*build_args(root / "train.jsonl", root / "art", model))
    return root, model, records


@pytest.fixture
def art(env, tmp_path):
    shutil.copytree(env[0] / "art", tmp_path / "art")
    return tmp_path / "art"


def jsonl(path: Path, *lines: dict) -> Path:
    path.write_text("".join(json.dumps(line) + "\n" for line in lines))
    return path


def line_of(record, base: Path) -> dict:
    from indexer.readers.jsonl import record_to_json

    return record_to_json(record, base_dir=base)


def failures(artifacts) -> list[str]:
    """The images the manifest lists as failed (a JSONL line's failure names it in the reason)."""
    return [
        name
        for f in artifacts.manifest.failed
        for name in ("truncated.jpg", "broken.jpg")
        if name in f.file + f.reason
    ]


def test_an_add_where_every_input_fails_exits_1_and_writes_nothing(env, art, tmp_path):
    root, model, records = env
    (tmp_path / "broken.jpg").write_bytes(b"not a jpeg")
    new = jsonl(tmp_path / "new.jsonl", {"id": "b", "image": "broken.jpg", "labels": ["dent"]})
    before = (art / "manifest.json").read_bytes()
    output = invoke("index", "add", art, "--manifest", new, "--image-model", NOWHERE, ok=False)
    assert "nothing added" in output and "broken.jpg" in output
    assert (art / "manifest.json").read_bytes() == before


def test_an_add_whose_images_all_fail_to_decode_writes_nothing(env, art, taxonomy):
    """Records handed over skip the reader's checks: the failure shows only when decoding."""
    from dataclasses import replace

    from indexer.build.pipeline import add_records, read_new_records
    from indexer.errors import IndexInputError
    from indexer.retrieval.opening import Overrides, open_index

    root, model, records = env
    bad = replace(records[5], id="cut", image_path=root / "truncated.jpg")
    opened = open_index(art, Overrides(device="cpu", image_model=str(model)))
    before = (art / "manifest.json").read_bytes()
    new = read_new_records(opened.artifacts, [bad], taxonomy)
    with pytest.raises(IndexInputError, match="nothing added"):
        add_records(opened, new, progress=False)
    assert (art / "manifest.json").read_bytes() == before


def test_a_fixed_failure_leaves_the_manifest_once_added(env, art, tmp_path):
    from indexer.index.artifacts import load_artifacts

    root, model, records = env
    assert failures(load_artifacts(art)) == ["truncated.jpg"]
    shutil.copy(records[0].image_path, tmp_path / "truncated.jpg")  # the user fixed the file
    new = jsonl(tmp_path / "new.jsonl", {"id": "truncated", "image": "truncated.jpg"})
    output = invoke(
        "index", "add", art, "--manifest", new, "--image-model", model, "--device", "cpu"
    )
    a = load_artifacts(art)
    assert a.row_of("truncated") is not None and a.manifest.failed == ()
    # the fix copied an indexed photo: the add names the near-duplicate (and still adds it)
    assert f"truncated duplicate_of {records[0].id} (identical bytes)" in output


def test_an_unrelated_add_keeps_the_failures_of_other_inputs(env, art, tmp_path):
    from indexer.index.artifacts import load_artifacts

    root, model, records = env
    new = jsonl(tmp_path / "new.jsonl", line_of(records[4], tmp_path))
    invoke("index", "add", art, "--manifest", new, "--image-model", model, "--device", "cpu")
    a = load_artifacts(art)
    assert a.row_of(records[4].id) is not None
    assert failures(a) == ["truncated.jpg"]


def test_a_partly_overlapping_add_names_every_clash_before_loading_models(env, art, tmp_path):
    from indexer.index.artifacts import load_artifacts

    root, model, records = env
    new = jsonl(tmp_path / "new.jsonl", *(line_of(r, tmp_path) for r in records[2:6]))
    before = (art / "manifest.json").read_bytes()
    output = invoke("index", "add", art, "--manifest", new, "--image-model", NOWHERE, ok=False)
    assert "2 of 4 record(s) already indexed" in output and "--skip-existing" in output
    assert records[2].id in output and records[3].id in output and records[4].id not in output
    assert (art / "manifest.json").read_bytes() == before
    add = ("index", "add", art, "--manifest", new, "--device", "cpu", "--skip-existing")
    output = invoke(*add, "--image-model", model)
    assert "skipped 2 record(s) already indexed" in output and "2 embedded" in output
    assert len(load_artifacts(art)) == 6
    # run again: nothing new, nothing written, no model loaded, not an error
    before = (art / "manifest.json").read_bytes()
    assert "nothing new to add" in invoke(*add, "--image-model", NOWHERE)
    assert (art / "manifest.json").read_bytes() == before


def test_ls_filters_by_label_and_path_and_remove_takes_an_image_path(env, art):
    from typer.testing import CliRunner

    from indexer.cli.main import cli
    from indexer.index.artifacts import load_artifacts

    root, model, records = env
    indexed = records[:4]
    rows = [line.split("\t") for line in invoke("index", "ls", art).splitlines()[:-1]]
    assert [r[0] for r in rows] == [r.id for r in indexed]
    first = rows[0]
    assert first[1].endswith(Path(indexed[0].image_path).name) and first[3] == indexed[0].zone
    label = next(iter(indexed[0].labels), "no_damage")
    listed = invoke("index", "ls", art, "--label", label).splitlines()[:-1]
    expected = [r.id for r in indexed if label in (r.labels or {"no_damage": 1})]
    assert [line.split("\t")[0] for line in listed] == expected
    assert invoke("index", "ls", art, "--path", first[1]).splitlines()[0].startswith(first[0])
    typo = CliRunner().invoke(cli, ["index", "ls", str(art), "--label", "dnet"])
    assert typo.exit_code == 2 and "not a label" in typo.output

    # by the path ls printed, and by the image file's own path
    invoke("index", "remove", art, first[1], str(indexed[1].image_path))
    a = load_artifacts(art)
    assert len(a) == 2 and a.row_of(indexed[0].id) is None and a.row_of(indexed[1].id) is None
    output = invoke("index", "remove", art, "no/such.jpg", ok=False)
    assert "no/such.jpg" in output and "index ls" in output
