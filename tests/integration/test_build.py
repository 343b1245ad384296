"""`visrag index build | verify | add | remove` on generated images with the tiny random DINOv3
and the real (offline) text model; failures listed and skipped; resume from the cache."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from cli_runs import build_args, invoke
from typer.testing import CliRunner

from models import device
from models.device import cpu_supports_bf16

pytestmark = pytest.mark.slow
N_IMAGES = 10
AUTO_DTYPE = "bf16" if cpu_supports_bf16() else "fp32"  # dtype=auto on this machine


@pytest.fixture(scope="module")
def env(tmp_path_factory, taxonomy):
    """Generated LabelMe images, a JSONL manifest with one broken image, a tiny checkpoint."""
    from indexer.readers.dataset import read_dataset
    from indexer.readers.jsonl import record_to_json
    from indexer.synthetic.generator import generate_dataset
    from models.testing import make_tiny_dinov3

    root = tmp_path_factory.mktemp("build")
    generate_dataset(root / "data", N_IMAGES, seed=0, image_size=(160, 120))
    records = read_dataset(root / "data", taxonomy=taxonomy).records
    assert len(records) == N_IMAGES
    # not an image at all, and a JPEG cut in half: the JSONL reader refuses both
    (root / "broken.jpg").write_bytes(b"\xff\xd8\xff\xe0 this is not a jpeg")
    whole = Path(records[0].image_path).read_bytes()
    (root / "truncated.jpg").write_bytes(whole[: len(whole) // 2])
    lines = [json.dumps(record_to_json(r, base_dir=root)) for r in records]
    lines.append(json.dumps({"id": "broken", "image": "broken.jpg", "labels": ["dent"]}))
    lines.append(json.dumps({"id": "truncated", "image": "truncated.jpg", "labels": ["dent"]}))
    (root / "train.jsonl").write_text("\n".join(lines) + "\n")
    model = make_tiny_dinov3(root / "tiny-dinov3")
    return root, model, records


@pytest.fixture(scope="module")
def built(env):
    root, model, records = env
    out = root / "art"
    output = invoke(*build_args(root / "train.jsonl", out, model, "--index-type", "hnsw"))
    return out, output


def test_build_lists_the_broken_image_and_verifies(env, built, taxonomy):
    from indexer.index.artifacts import load_artifacts

    root, model, records = env
    out, output = built
    assert "2 input(s) failed and were skipped" in output
    assert "image encoder busy" in output  # how well decoding kept the model fed
    assert "broken.jpg" in output and "truncated.jpg" in output
    assert f"{N_IMAGES} items" in output
    a = load_artifacts(out)
    failed = [f.model_dump_json() for f in a.manifest.failed]
    assert len(failed) == 2
    assert "broken.jpg" in failed[0] and "truncated.jpg" in failed[1]
    assert a.row_of("broken") is None and a.row_of("truncated") is None and len(a) == N_IMAGES
    assert {it.id for it in a.items} == {r.id for r in records}
    img = a.manifest.image_model
    assert img.id == str(model) and img.dim == 32 and a.manifest.format_version == 3
    assert img.preprocessing is not None and img.preprocessing.image_size == 64
    assert img.pooling == "cls" and img.dtype == AUTO_DTYPE  # what the build ran
    assert a.manifest.text_model.dim == 384 and a.manifest.index["image"].type == "hnsw"
    assert np.allclose(np.linalg.norm(a.image_vectors, axis=1), 1.0, atol=1e-4)  # no zero rows
    for item in a.items:
        assert item.image and a.image_file(item).is_file()
        assert item.description.startswith(("no visible damage", *"0123456789"))
    verify = invoke("index", "verify", str(out))
    assert "FAIL" not in verify and verify.strip().endswith("OK")


def test_image_that_fails_to_decode_is_listed_and_skipped(env, tmp_path, taxonomy):
    from dataclasses import replace

    from indexer.build.pipeline import build_index
    from indexer.index.artifacts import load_artifacts
    from models.image_encoder import load_image_encoder
    from models.text_encoder import load_text_encoder

    root, model, records = env
    # records handed over directly skip the reader's checks: only decoding finds this one out
    bad = replace(records[0], id="truncated", image_path=root / "truncated.jpg")
    report = build_index(
        [*records[:3], bad],
        tmp_path / "art",
        taxonomy=taxonomy,
        progress=False,
        image_encoder=load_image_encoder(model, device="cpu", image_size=64),
        text_encoder=load_text_encoder(device="cpu"),
    )
    assert report.count == 3 and [p.file for p in report.failed] == [str(root / "truncated.jpg")]
    assert "Decode" in report.failed[0].reason or "decode" in report.failed[0].reason
    a = load_artifacts(tmp_path / "art")
    assert a.row_of("truncated") is None and len(a) == 3
    assert [f.model_dump() for f in a.manifest.failed] == [report.failed[0].as_dict()]


def test_indexed_image_retrieves_itself(built):
    from indexer.index.artifacts import load_artifacts
    from models.fusion import fuse

    a = load_artifacts(built[0])
    for row in range(len(a)):
        scores, rows = a.image_store.search(a.image_vectors[row], 1)
        assert rows[0, 0] == row and scores[0, 0] == pytest.approx(1.0, abs=1e-4)
    q = fuse(a.image_vectors[3], a.text_vectors[3], alpha=a.alpha)
    assert a.fused_store.search(q, 1)[1][0, 0] == 3


def test_verify_fails_on_a_tampered_file(env, built, tmp_path):
    import shutil

    copy = tmp_path / "copy"
    shutil.copytree(built[0], copy)
    with (copy / "text_vectors.npy").open("r+b") as f:
        f.seek(-3, 2)
        f.write(b"\x00\x01\x02")
    output = invoke("index", "verify", str(copy), ok=False)
    assert "FAIL" in output and "text_vectors.npy" in output


def test_remove_then_add_back(env, built, tmp_path, taxonomy):
    import shutil

    from indexer.index.artifacts import load_artifacts
    from indexer.readers.jsonl import record_to_json

    root, model, records = env
    out = tmp_path / "art"
    shutil.copytree(built[0], out)
    target = records[4]
    before = load_artifacts(out)
    vec = np.array(before.image_vectors[before.row_of(target.id)])
    invoke("index", "remove", str(out), target.id)
    a = load_artifacts(out)
    assert len(a) == N_IMAGES - 1 and a.row_of(target.id) is None
    assert target.id not in {a.items[r].id for r in a.image_store.search(vec, 3)[1][0]}
    assert "OK" in invoke("index", "verify", str(out))
    invoke("index", "remove", str(out), "no-such-id", ok=False)

    new = tmp_path / "new.jsonl"
    new.write_text(json.dumps(record_to_json(target, base_dir=tmp_path)) + "\n")
    add = ("index", "add", str(out), "--manifest", str(new))
    output = invoke(*add, "--device", "cpu", "--image-model", str(model))
    assert "1 embedded" in output
    b = load_artifacts(out)
    row = b.row_of(target.id)
    assert len(b) == N_IMAGES and row == N_IMAGES - 1
    scores, rows = b.image_store.search(vec, 1)
    assert rows[0, 0] == row and scores[0, 0] == pytest.approx(1.0, abs=1e-4)
    assert [h["op"] for h in b.manifest.history] == ["build", "remove", "add"]
    assert b.manifest.history[-1]["dtype"] == AUTO_DTYPE  # the dtype the add ran
    # adding it again is refused; so is an encoder configured differently from the manifest
    invoke(*add, "--device", "cpu", "--image-model", str(model), ok=False)


def test_a_remove_while_add_embeds_is_not_blocked_and_both_land(env, built, tmp_path, monkeypatch):
    """`index add` embeds without the writer lock: another writer's remove during the embedding
    goes through at once, and the add merges into that newer generation under the lock."""
    import shutil
    import threading

    from indexer.build import pipeline
    from indexer.index.artifacts import load_artifacts
    from indexer.index.locking import WriterBusyError
    from indexer.readers.jsonl import record_to_json

    root, model, records = env
    out = tmp_path / "art"
    shutil.copytree(built[0], out)
    target, other = records[4], records[5]
    invoke("index", "remove", str(out), target.id)
    new = tmp_path / "new.jsonl"
    new.write_text(json.dumps(record_to_json(target, base_dir=tmp_path)) + "\n")
    meanwhile: list[str] = []
    real_embed = pipeline.embed_images

    def remove_other() -> None:  # another writer: another thread, its own lock attempt
        try:
            pipeline.remove_items(out, [other.id])
            meanwhile.append("removed")
        except WriterBusyError:
            meanwhile.append("busy")

    def embed(*args, **kwargs):
        writer = threading.Thread(target=remove_other)
        writer.start()
        writer.join()
        return real_embed(*args, **kwargs)

    monkeypatch.setattr(pipeline, "embed_images", embed)
    invoke(
        "index",
        "add",
        str(out),
        "--manifest",
        str(new),
        "--device",
        "cpu",
        "--image-model",
        str(model),
    )
    assert meanwhile == ["removed"]
    a = load_artifacts(out)
    assert a.row_of(target.id) is not None and a.row_of(other.id) is None
    assert [h["op"] for h in a.manifest.history][-3:] == ["remove", "remove", "add"]
    assert "OK" in invoke("index", "verify", str(out))


def test_add_with_another_preprocessing_is_refused(env, built, taxonomy):
    from indexer.errors import ManifestMismatchError
    from indexer.retrieval.opening import Overrides, open_index
    from models.image_encoder import load_image_encoder
    from models.text_encoder import load_text_encoder

    root, model, records = env
    other = load_image_encoder(model, device="cpu", image_size=96)
    with pytest.raises(ManifestMismatchError) as err:
        open_index(
            built[0],
            Overrides(taxonomy=taxonomy),
            image_encoder=other,
            text_encoder=load_text_encoder(device="cpu"),
        )
    assert err.value.field == "image_model.preprocessing.image_size"


def test_open_index_loads_the_recorded_encoders(env, built, taxonomy):
    """One rule: model, image size and pooling come from the manifest, not defaults."""
    from indexer.retrieval.opening import Overrides, open_index

    root, model, records = env
    opened = open_index(built[0], Overrides(device="cpu", image_model=str(model)))
    assert opened.image_encoder is not None and opened.text_encoder is not None
    assert opened.image_encoder.image_size == 64  # the build's, not the loader's default 448
    assert opened.image_encoder.pooling == "cls" and opened.image_encoder.dtype == AUTO_DTYPE
    assert opened.image_encoder.dim == opened.manifest.image_model.dim == 32
    only_text = open_index(built[0], Overrides(device="cpu", load_image=False))
    assert only_text.image_encoder is None and only_text.text_encoder is not None


@pytest.mark.parametrize("native", [True, False])
def test_the_query_side_runs_auto_for_its_own_hardware(env, built, monkeypatch, native):
    """An index built in one dtype opens on a machine that picks the other (bf16 weights where
    native, fp32 elsewhere); the encoder says what runs, and its vectors still find the indexed
    images (cosine >= 0.999 to the stored vectors)."""
    from indexer.retrieval.opening import Overrides, open_index
    from models.embedding import embed_image

    root, model, records = env
    monkeypatch.setattr(device, "cpu_supports_bf16", lambda: native)
    opened = open_index(built[0], Overrides(device="cpu", image_model=str(model)))
    encoder = opened.image_encoder
    assert encoder is not None
    want = "bf16" if native else "fp32"
    assert (encoder.dtype, encoder.info()["weights_dtype"]) == (want, want)
    assert opened.manifest.image_model.dtype == AUTO_DTYPE  # the manifest keeps what the build ran
    artifacts = opened.artifacts
    for record in records[:4]:
        vector, _ = embed_image(Path(record.image_path), encoder)
        stored = artifacts.image_vectors[artifacts.row_of(record.id)]
        assert float(np.dot(vector, stored)) >= 0.999
    explicit = open_index(built[0], Overrides(device="cpu", dtype="fp32", image_model=str(model)))
    assert explicit.image_encoder is not None and explicit.image_encoder.dtype == "fp32"


class CountingEncoder:
    """Delegates to a real encoder, counts images encoded, can fail after some calls."""

    def __init__(self, inner, fail_after_calls: int | None = None):
        self.inner, self.images, self.calls, self.fail_after = inner, 0, 0, fail_after_calls

    def __getattr__(self, name):
        return getattr(self.inner, name)

    def encode_preprocessed(self, arrays, *, batch_size=8):
        self._count(arrays)
        return self.inner.encode_preprocessed(arrays, batch_size=batch_size)

    def encode_with_patches(self, arrays, *, batch_size=8):
        self._count(arrays)
        return self.inner.encode_with_patches(arrays, batch_size=batch_size)

    def _count(self, arrays):
        if self.fail_after is not None and self.calls >= self.fail_after:
            raise KeyboardInterrupt("simulated interruption")
        self.calls += 1
        self.images += len(arrays)


def test_interrupted_build_resumes_from_the_cache(env, built, tmp_path, taxonomy):
    from indexer.build.pipeline import build_index
    from indexer.index.artifacts import load_artifacts
    from models.image_encoder import load_image_encoder
    from models.text_encoder import load_text_encoder

    root, model, records = env
    encoder = load_image_encoder(model, device="cpu", image_size=64)
    text = load_text_encoder(device="cpu")
    out, cache = tmp_path / "art", tmp_path / "cache"
    kwargs = {
        "text_encoder": text,
        "taxonomy": taxonomy,
        "batch_size": 1,
        "workers": 2,
        "cache_dir": cache,
        "progress": False,
    }
    # window = 4 images per encoder call: the first call succeeds, the second is interrupted
    with pytest.raises(KeyboardInterrupt):
        build_index(root / "train.jsonl", out, image_encoder=CountingEncoder(encoder, 1), **kwargs)
    assert not out.exists()
    resumed = CountingEncoder(encoder)
    report = build_index(root / "train.jsonl", out, image_encoder=resumed, **kwargs)
    assert report.cached == 4 and report.embedded == N_IMAGES - 4 == resumed.images
    assert len(report.failed) == 2
    assert 0.0 < report.encoder_busy <= 1.0 and report.encode_seconds <= report.embed_seconds
    # each stage's duration is reported, and the embedding happens inside the mapper's
    assert list(report.stages) == ["reader", "mapper", "writer"]
    assert report.embed_seconds <= report.stages["mapper"] <= report.seconds
    # cached vectors are the same as freshly encoded ones
    fresh = load_artifacts(built[0])
    got = load_artifacts(out)
    for item in got.items:
        np.testing.assert_allclose(
            got.image_vectors[item.row], fresh.image_vectors[fresh.row_of(item.id)], atol=1e-5
        )
    again = CountingEncoder(encoder)
    report = build_index(root / "train.jsonl", out, image_encoder=again, **kwargs)
    assert again.images == 0 and report.cached == N_IMAGES


def test_expected_errors_are_one_line_and_bugs_keep_their_traceback(
    env, built, tmp_path, monkeypatch
):
    """A VisragError (a missing index, an unknown pooling) is one red line and exit 1; anything
    else is a bug and is not swallowed."""
    from indexer.build import pipeline as build

    root, model, records = env
    output = invoke(
        "index", "add", str(tmp_path / "nowhere"), "--manifest", str(root / "x.jsonl"), ok=False
    )
    assert "error:" in output and "nowhere" in output and "does not exist" in output
    output = invoke(
        *build_args(root / "train.jsonl", tmp_path / "p", model, "--pooling", "max"),
        ok=False,
    )
    assert "error:" in output and "pooling must be one of" in output

    def bug(*args, **kwargs):
        raise ZeroDivisionError("a bug")

    monkeypatch.setattr(build, "read_records", bug)
    from indexer.cli.main import cli

    result = CliRunner().invoke(cli, build_args(root / "train.jsonl", tmp_path / "q", model))
    assert isinstance(result.exception, ZeroDivisionError)


def test_a_cpu_build_leaves_one_core_to_decoding_and_restores_the_threads(env, monkeypatch):
    """The encoder's intra-op threads while decode threads run: the cores but one (threads
    spinning at barriers on shared cores made the build collapse under load, issue 25)."""
    import torch

    from indexer.build import embed
    from models.image_encoder import load_image_encoder

    root, model, records = env
    seen: list[int] = []

    class Watching(CountingEncoder):
        def encode_preprocessed(self, arrays, *, batch_size=8):
            seen.append(torch.get_num_threads())
            return super().encode_preprocessed(arrays, batch_size=batch_size)

    encoder = Watching(load_image_encoder(model, device="cpu", image_size=64))
    before = torch.get_num_threads()
    monkeypatch.setattr(embed, "_cores", lambda: 4)
    torch.set_num_threads(4)
    try:
        embed.embed_images(records[:4], image_encoder=encoder, batch_size=2, progress=False)
        assert seen and set(seen) == {3} and torch.get_num_threads() == 4
    finally:
        torch.set_num_threads(before)
