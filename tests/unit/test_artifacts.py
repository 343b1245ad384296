"""Artifact directory: round trip, tamper detection, compatibility, atomic writes, add/remove."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import textwrap
import threading
from pathlib import Path

import numpy as np
import pytest
from locks import held_elsewhere

from indexer.errors import ArtifactError, ChecksumError, ManifestMismatchError
from indexer.index import artifacts as art
from indexer.index.artifacts import load_artifacts, write_artifacts
from indexer.index.catalogue import CatalogueItem, dataset_summary
from indexer.index.compatibility import check_compatible
from indexer.index.faiss_store import build_stores
from indexer.index.manifest import ImageModel, ManifestBody, TextModel, manifest_checksum
from indexer.index.updating import rewrite_artifacts
from indexer.index.verification import verify_artifacts
from indexer.query import Filters
from models.fusion import l2_normalise
from models.taxonomy import load_taxonomy

TAX = load_taxonomy()
REPO = Path(__file__).resolve().parents[2]
DI, DT = 24, 8
IMAGE_INFO = {
    "id": "facebook/dinov3-vits16-pretrain-lvd1689m",
    "revision": "c0ffee",
    "dim": DI,
    "pooling": "cls",
    "dtype": "float32",
    "preprocessing": {
        "image_size": 448,
        "mean": [0.485, 0.456, 0.406],
        "std": [0.229, 0.224, 0.225],
    },
}
TEXT_INFO = {"id": "sentence-transformers/all-MiniLM-L6-v2", "dim": DT}
LABELS = [{"surface_scratch": 2}, {"dent": 1}, {"dent": 1, "crack": 1}, {}, {"surface_scratch": 1}]
ZONES = [("hood_center", "frontal"), ("rear_bumper", "posterior")]


def make_items(n: int, offset: int = 0) -> list[CatalogueItem]:
    return [
        CatalogueItem(
            row=i,
            id=f"img{i + offset:03d}",
            image=f"images/img{i + offset:03d}.jpg",
            labels=LABELS[(i + offset) % len(LABELS)],
            zone=ZONES[(i + offset) % 2][0],
            area=ZONES[(i + offset) % 2][1],
            description=f"description {i + offset}",
            group=f"g{(i + offset) // 2}",
            defects={"count": sum(LABELS[(i + offset) % len(LABELS)].values())},
        )
        for i in range(n)
    ]


def vectors(n: int, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    return l2_normalise(rng.normal(size=(n, DI))), l2_normalise(rng.normal(size=(n, DT)))


def write(out: Path, n: int = 30, *, index_type: str = "flat", seed: int = 0) -> object:
    items = make_items(n)
    img, txt = vectors(n, seed)
    image_store, fused_store = build_stores(img, txt, alpha=0.6, index_type=index_type)
    manifest = ManifestBody.model_validate(
        {
            "image_model": IMAGE_INFO,
            "text_model": TEXT_INFO,
            "template_version": "1",
            "fusion": {"alpha": 0.6, "image_dim": DI, "text_dim": DT},
            "taxonomy": {
                "name": TAX.name,
                "version": TAX.version,
                "no_damage_id": TAX.no_damage_id,
            },
            "dataset": dataset_summary(items, source="test", root=str(out.parent)),
        }
    )
    return write_artifacts(
        out,
        manifest=manifest,
        items=items,
        image_vectors=img,
        text_vectors=txt,
        image_store=image_store,
        fused_store=fused_store,
    )


@pytest.mark.parametrize("index_type", ["flat", "hnsw"])
@pytest.mark.parametrize("mmap", [False, True])
def test_round_trip(tmp_path, index_type, mmap):
    out = tmp_path / "arts"
    write(out, index_type=index_type)
    a = load_artifacts(out, mmap=mmap)
    img, txt = vectors(30)
    np.testing.assert_array_equal(a.image_vectors, img)
    np.testing.assert_array_equal(a.text_vectors, txt)
    assert a.items == make_items(30)
    assert a.alpha == 0.6 and a.manifest.vector_count == 30
    assert a.manifest.index["fused"].type == index_type
    assert a.row_of("img007") == 7 and a.row_of("nope") is None
    scores, ids = a.image_store.search(img[7], 1)
    assert ids[0, 0] == 7 and scores[0, 0] == pytest.approx(1.0, abs=1e-5)
    fused = a.fused_store.search(np.concatenate([np.sqrt(0.6) * img[3], np.sqrt(0.4) * txt[3]]), 1)
    assert fused[1][0, 0] == 3 and fused[0][0, 0] == pytest.approx(1.0, abs=1e-5)
    assert a.image_file(a.items[0]) == tmp_path / "images/img000.jpg"
    assert all(ok for _, ok, _ in verify_artifacts(out))
    assert not list(tmp_path.glob(".arts.tmp-*")), "temporary directory left behind"


def test_select_filters(tmp_path):
    write(tmp_path / "a")
    a = load_artifacts(tmp_path / "a")
    assert a.select(Filters()) is None
    dent = a.select(Filters(labels_any=("dent",)))
    assert len(dent) and all("dent" in a.items[r].labels for r in dent)
    both = a.select(Filters(labels_all=("dent", "crack")))
    assert set(both) == {r for r in dent if "crack" in a.items[r].labels}
    rear = a.select(Filters(areas=("posterior",), labels_any=("no_damage",)))
    assert len(rear) and all(
        not a.items[r].labels and a.items[r].zone == "rear_bumper" for r in rear
    )
    assert a.select(Filters(zones=("driver_side_door",))).size == 0


@pytest.mark.parametrize("name", art.DATA_FILES)
def test_one_changed_byte_is_refused_naming_the_file(tmp_path, name):
    out = tmp_path / "a"
    write(out)
    path = out / name
    data = bytearray(path.read_bytes())
    data[len(data) // 2] ^= 0x01
    path.write_bytes(bytes(data))
    with pytest.raises(ChecksumError, match=name.replace(".", r"\.")):
        load_artifacts(out)
    report = verify_artifacts(out)
    assert not report[0][1] and name in report[0][2]


@pytest.mark.parametrize("name", [*art.DATA_FILES, art.MANIFEST])
def test_missing_file_is_refused_naming_it(tmp_path, name):
    out = tmp_path / "a"
    write(out)
    (out / name).unlink()
    with pytest.raises(ArtifactError, match=name.replace(".", r"\.")):
        load_artifacts(out, verify=False)


def test_inconsistent_counts_are_refused(tmp_path):
    out = tmp_path / "a"
    write(out)
    _edit_manifest(out, lambda m: m.update(vector_count=31))  # resealed: the counts disagree
    with pytest.raises(ArtifactError, match="vector_count 31"):
        load_artifacts(out)


@pytest.mark.parametrize(
    ("field", "image", "text"),
    [
        ("image_model.id", {**IMAGE_INFO, "id": "facebook/dinov3-vitl16-pretrain-lvd1689m"}, None),
        ("image_model.dim", {**IMAGE_INFO, "dim": 1024}, None),
        ("image_model.pooling", {**IMAGE_INFO, "pooling": "cls+mean"}, None),
        (
            "image_model.preprocessing.image_size",
            {**IMAGE_INFO, "preprocessing": {**IMAGE_INFO["preprocessing"], "image_size": 224}},
            None,
        ),
        (
            "image_model.preprocessing.mean",
            {**IMAGE_INFO, "preprocessing": {**IMAGE_INFO["preprocessing"], "mean": [0.5] * 3}},
            None,
        ),
        ("image_model.dtype", {**IMAGE_INFO, "dtype": "int8"}, None),
        ("image_model.revision", {**IMAGE_INFO, "revision": "0123abcd"}, None),
        ("text_model.id", None, {**TEXT_INFO, "id": "BAAI/bge-small-en-v1.5"}),
        ("text_model.dim", None, {**TEXT_INFO, "dim": 768}),
    ],
)
def test_manifest_for_another_model_is_refused_naming_the_field(tmp_path, field, image, text):
    write(tmp_path / "a")
    manifest = load_artifacts(tmp_path / "a").manifest
    with pytest.raises(ManifestMismatchError, match=field.replace(".", r"\.")) as err:
        check_compatible(
            manifest,
            image_model=ImageModel.model_validate(image) if image else None,
            text_model=TextModel.model_validate(text) if text else None,
        )
    assert err.value.field == field


def test_compatible_models_pass(tmp_path, taxonomy):
    write(tmp_path / "a")
    manifest = load_artifacts(tmp_path / "a").manifest
    local = {**IMAGE_INFO, "id": "/models/dinov3-vits16-pretrain-lvd1689m", "dtype": "bfloat16"}
    check_compatible(
        manifest,
        image_model=ImageModel.model_validate(local),
        text_model=TextModel.model_validate(TEXT_INFO),
        taxonomy=taxonomy,
    )
    with pytest.raises(ManifestMismatchError, match="template_version"):
        check_compatible(manifest.model_copy(update={"template_version": "0"}))


def test_writer_raising_midway_leaves_the_old_artifacts(tmp_path, monkeypatch):
    out = tmp_path / "a"
    write(out, n=30, seed=0)

    def boom(*args, **kwargs):
        raise RuntimeError("disk full")

    monkeypatch.setattr(art, "_write_catalogue", boom)
    with pytest.raises(RuntimeError, match="disk full"):
        write(out, n=12, seed=1)
    a = load_artifacts(out)
    assert len(a) == 30
    np.testing.assert_array_equal(a.image_vectors, vectors(30, 0)[0])
    assert not list(tmp_path.glob(".a.tmp-*"))


KILLER = """
import os, signal, sys
sys.path.insert(0, {tests!r}); sys.path.insert(0, {repo!r})
from pathlib import Path
import test_artifacts as t
from indexer.index import artifacts as art
stage = {stage!r}
if stage == "catalogue":
    art._write_catalogue = lambda *a, **k: os.kill(os.getpid(), signal.SIGKILL)
else:  # fallback swap (no renameat2), killed between its two renames
    from indexer.index import atomic
    atomic._exchange = lambda a, b: False
    real = os.rename
    def rename(src, dst):
        real(src, dst)
        if ".old-" in str(dst):
            os.kill(os.getpid(), signal.SIGKILL)
    os.rename = rename
t.write(Path({out!r}), n=12, seed=1)
"""


@pytest.mark.parametrize("stage", ["catalogue", "between_renames"])
def test_writer_killed_midway_leaves_loadable_artifacts(tmp_path, stage):
    out = tmp_path / "a"
    write(out, n=30, seed=0)
    script = KILLER.format(
        tests=str(Path(__file__).parent), repo=str(REPO), out=str(out), stage=stage
    )
    proc = subprocess.run([sys.executable, "-c", textwrap.dedent(script)], capture_output=True)
    assert proc.returncode == -signal.SIGKILL, proc.stderr.decode()[-2000:]
    a = load_artifacts(out)
    assert len(a) == 30  # the old artifacts, intact
    np.testing.assert_array_equal(a.image_vectors, vectors(30, 0)[0])
    # the next write cleans up and succeeds
    write(out, n=12, seed=1)
    assert len(load_artifacts(out)) == 12
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".a.") and p.is_dir()]


@pytest.mark.parametrize("index_type", ["flat", "hnsw", "ivfpq"])
def test_remove_then_add_rewrites_with_dense_rows(tmp_path, index_type):
    out = tmp_path / "a"
    if index_type == "ivfpq":
        write(out, n=300, index_type=index_type)
    else:
        write(out, n=30, index_type=index_type)
    a = load_artifacts(out)
    n = len(a)
    target = a.row_of("img005")
    vec_img, vec_txt = np.array(a.image_vectors[target]), np.array(a.text_vectors[target])
    keep = np.ones(n, bool)
    keep[[target, 0]] = False
    rewrite_artifacts(a, keep=keep, history={"op": "remove"})
    b = load_artifacts(out)
    assert len(b) == n - 2 and b.row_of("img005") is None and b.row_of("img000") is None
    assert b.row_of("img006") == 4 and b.items[4].id == "img006"
    assert [it.row for it in b.items] == list(range(n - 2))
    np.testing.assert_array_equal(b.image_vectors[4], a.image_vectors[6])
    # the index ids follow the renumbering: row 4's vector finds row 4 (exact indexes)
    if index_type != "ivfpq":  # 2-bit PQ on 300 random vectors cannot rank itself first
        assert b.image_store.search(np.asarray(b.image_vectors[4]), 1)[1][0, 0] == 4
    assert b.image_store.ntotal == b.fused_store.ntotal == n - 2
    item = CatalogueItem(**{**a.items[target].__dict__, "row": -1})
    rewrite_artifacts(
        b, new_items=[item], new_image_vectors=vec_img[None], new_text_vectors=vec_txt[None]
    )
    c = load_artifacts(out)
    assert len(c) == n - 1 and c.row_of("img005") == n - 2
    if index_type != "ivfpq":
        assert c.image_store.search(vec_img, 1)[1][0, 0] == n - 2
    assert c.fused_store.search(np.zeros(DI + DT), 1, allowed=[n - 2])[1][0, 0] == n - 2
    assert c.manifest.history == ({"op": "remove"},)
    assert all(ok for _, ok, _ in verify_artifacts(out)), verify_artifacts(out)


def test_second_writer_is_refused_while_one_holds_the_lock(tmp_path):
    out = tmp_path / "a"
    write(out)
    with held_elsewhere(out, threading.Event()):
        with pytest.raises(ArtifactError, match=f"process {os.getpid()} is writing"):
            write(out)
    write(out)  # free again


def test_stale_format_version_is_refused(tmp_path):
    out = tmp_path / "a"
    write(out)
    manifest = json.loads((out / art.MANIFEST).read_text())
    manifest["format_version"] = 99
    (out / art.MANIFEST).write_text(json.dumps(manifest))
    with pytest.raises(ArtifactError, match="format_version 99"):
        load_artifacts(out)


def test_catalogue_is_not_pickle(tmp_path):
    write(tmp_path / "a")
    head = (tmp_path / "a" / art.CATALOGUE).read_bytes()[:16]
    assert head == b"SQLite format 3\x00"
    assert os.path.getsize(tmp_path / "a" / art.MANIFEST) > 0


def _edit_manifest(out: Path, edit) -> None:
    """Edit the manifest and record the checksum of the edit (as a writer would)."""
    manifest = json.loads((out / art.MANIFEST).read_text())
    edit(manifest)
    if manifest.get("manifest_sha256"):
        manifest["manifest_sha256"] = manifest_checksum(manifest)
    (out / art.MANIFEST).write_text(json.dumps(manifest))


def test_format_1_manifest_still_loads(tmp_path):
    """A directory the untyped writer made (format 1, ``model_id`` beside ``id``, extra keys)."""
    out = tmp_path / "a"
    write(out)

    def to_v1(m: dict) -> None:
        m["format_version"] = 1
        del m["manifest_sha256"]
        m["image_model"] = {
            **m["image_model"],
            "model_id": m["image_model"]["id"],
            "device": "cpu",
            "autocast": False,
        }
        del m["image_model"]["id"]

    _edit_manifest(out, to_v1)
    a = load_artifacts(out, verify=False)
    assert a.manifest.format_version == 1 and a.manifest.image_model.id == IMAGE_INFO["id"]
    assert len(a) == 30


@pytest.mark.parametrize(
    ("path", "value", "field"),
    [
        (("image_model", "pooling"), "max", "image_model"),
        (("fusion", "alpha"), 1.5, "fusion.alpha"),
        (("index", "image", "type"), "annoy", "index.image"),
        (("text_model", "dim"), 0, "text_model.dim"),
    ],
)
def test_invalid_manifest_field_is_refused_naming_it(tmp_path, path, value, field):
    out = tmp_path / "a"
    write(out)

    def edit(m: dict) -> None:
        node = m
        for key in path[:-1]:
            node = node[key]
        node[path[-1]] = value

    _edit_manifest(out, edit)
    with pytest.raises(ArtifactError, match=field.replace(".", r"\.")):
        load_artifacts(out, verify=False)


def _flat(dim: int, n: int, *, metric: int = 0) -> object:
    import faiss

    index = faiss.IndexIDMap2(faiss.IndexFlat(dim, metric))
    x = l2_normalise(np.random.default_rng(1).normal(size=(n, dim)))
    index.add_with_ids(x, np.arange(n, dtype=np.int64))
    return index


def _replace_index_file(out: Path, name: str, index: object) -> None:
    """Swap an index file and record its checksum, as a hand-made directory would."""
    import faiss

    faiss.write_index(index, str(out / name))
    digest = art._sha256(out / name)
    _edit_manifest(out, lambda m: m["files"].update({name: digest}))


def _swap_flat_for(kind: str):
    def swap(out: Path) -> None:
        if kind == "type":  # the case: the manifest says hnsw over a flat file
            _edit_manifest(out, lambda m: m["index"]["image"].update(type="hnsw"))
        elif kind == "metric":
            _replace_index_file(out, art.IMAGE_INDEX, _flat(DI, 30, metric=1))
        elif kind == "dim":
            _replace_index_file(out, art.IMAGE_INDEX, _flat(DI + 8, 30))
        else:
            _replace_index_file(out, art.IMAGE_INDEX, _flat(DI, 29))

    return swap


@pytest.mark.parametrize(
    ("kind", "line"),
    [
        ("type", "image.faiss: type is 'flat' in the file, 'hnsw' in the manifest"),
        ("metric", "image.faiss: metric is 'l2' in the file, 'inner_product' in the manifest"),
        ("dim", "image.faiss: dim is 32 in the file, 24 in the manifest"),
        ("count", "image.faiss: count is 29 in the file, 30 in the manifest"),
    ],
)
def test_an_index_file_disagreeing_with_its_manifest_is_refused_in_one_line(tmp_path, kind, line):
    from typer.testing import CliRunner

    from indexer.cli.main import cli

    out = tmp_path / "a"
    write(out)
    _swap_flat_for(kind)(out)
    with pytest.raises(ArtifactError) as err:
        load_artifacts(out)
    assert line in str(err.value) and "\n" not in str(err.value)
    [(check, ok, detail)] = verify_artifacts(out)
    assert not ok and line in detail
    result = CliRunner().invoke(cli, ["index", "verify", str(out)])
    assert result.exit_code == 1 and "Traceback" not in result.output, result.output
    [fail] = [row for row in result.output.splitlines() if row.startswith("FAIL")]
    assert line in fail


def test_images_resolving_outside_the_data_root_are_not_served(tmp_path, caplog):
    import dataclasses

    out = tmp_path / "a"
    write(out)
    root, elsewhere = tmp_path / "data", tmp_path / "secret.jpg"
    (root / "images").mkdir(parents=True)
    elsewhere.write_bytes(b"not for the service")
    (root / "images" / "img000.jpg").symlink_to(elsewhere)  # a symlink out of the root
    (root / "images" / "img001.jpg").write_bytes(b"inside")
    a = load_artifacts(out, image_root=root)
    inside, linked = a.items[1], a.items[0]
    assert a.image_file(inside) == (root / "images" / "img001.jpg").resolve()
    outside = [
        linked,
        dataclasses.replace(inside, id="up", image="../secret.jpg"),
        dataclasses.replace(inside, id="abs", image=str(elsewhere)),
    ]
    with caplog.at_level("WARNING", logger="indexer.index.artifacts"):
        for _ in range(3):
            assert [a.image_file(item) for item in outside] == [None, None, None]
    logged = [r.getMessage() for r in caplog.records if "outside data_root" in r.getMessage()]
    assert len(logged) == 3 and all("secret.jpg" in line for line in logged)
