"""The manifest protects itself: an edited field that changes results is refused by `index verify`
and by `serve` (its own checksum), and a model directory holding other weights is refused (the
weights fingerprint recorded at build). Tiny random DINOv3, real text model, real FAISS."""

from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path

import pytest
from service_index import build_small_index
from typer.testing import CliRunner

from bench.server import serve_command

pytestmark = pytest.mark.slow
REPO = Path(__file__).resolve().parents[2]

EDITS = [
    (("fusion", "alpha"), 0.7),
    (("index", "fused", "type"), "hnsw"),
    (("image_model", "dim"), 64),
    (("image_model", "id"), "facebook/dinov3-vitb16-pretrain-lvd1689m"),
    (("image_model", "preprocessing", "image_size"), 448),
    (("text_model", "id"), "sentence-transformers/all-mpnet-base-v2"),
    (("taxonomy", "version"), "999"),
    (("vector_count",), 23),
]


@pytest.fixture(scope="module")
def built(tmp_path_factory, tiny_dinov3, text_encoder, taxonomy):
    model = tmp_path_factory.mktemp("model") / "tiny"
    shutil.copytree(tiny_dinov3, model)
    root = build_small_index(tmp_path_factory.mktemp("integrity"), model, text_encoder, taxonomy)
    return root, model


def edited_copy(src: Path, dst: Path, path: tuple[str, ...], value: object) -> Path:
    shutil.copytree(src, dst)
    manifest = json.loads((dst / "manifest.json").read_text())
    node = manifest
    for key in path[:-1]:
        node = node[key]
    assert node[path[-1]] != value
    node[path[-1]] = value
    (dst / "manifest.json").write_text(json.dumps(manifest, indent=2))
    return dst


def serve_until_exit(art: Path) -> tuple[int, str]:
    """Run ``visrag serve`` on ``art`` until it stops: its exit code and everything it printed."""
    env = {
        "HF_HUB_OFFLINE": "1",
        "VISRAG_DEVICE": "cpu",
        "PYTHONPATH": str(REPO),
        "PATH": "/usr/bin:/bin",
    }
    done = subprocess.run(
        serve_command(art, 0), cwd=REPO, env=env, capture_output=True, text=True, timeout=120
    )
    return done.returncode, done.stdout + done.stderr


def test_a_build_records_both_checksums(built):
    from indexer.index.artifacts import read_manifest
    from models.fingerprint import weights_sha256

    root, model = built
    manifest = read_manifest(root / "art")
    assert manifest.format_version == 3 and len(manifest.manifest_sha256 or "") == 64
    assert manifest.image_model.weights_sha256 == weights_sha256(model)


@pytest.mark.parametrize(("path", "value"), EDITS, ids=[".".join(p) for p, _ in EDITS])
def test_an_edited_field_is_refused_by_verify_and_by_the_service(built, tmp_path, path, value):
    from app.serving.resources import load_resources
    from app.settings import Settings
    from indexer.cli.main import cli
    from indexer.errors import ChecksumError

    art = edited_copy(built[0] / "art", tmp_path / "art", path, value)
    result = CliRunner().invoke(cli, ["index", "verify", str(art)])
    assert result.exit_code == 1 and "manifest checksum mismatch" in result.output, result.output
    with pytest.raises(ChecksumError, match="manifest checksum mismatch"):
        load_resources(Settings(artifacts=art, device="cpu"))


def test_visrag_serve_refuses_an_edited_manifest(built, tmp_path):
    art = edited_copy(built[0] / "art", tmp_path / "art", ("fusion", "alpha"), 0.7)
    code, out = serve_until_exit(art)
    assert code == 3, out
    assert "manifest checksum mismatch" in out


def test_visrag_serve_refuses_an_index_type_its_file_does_not_hold(built, tmp_path):
    """The manifest says hnsw over a flat file, resealed: one line naming ``type``, exit 3."""
    from indexer.index.manifest import manifest_checksum

    art = edited_copy(built[0] / "art", tmp_path / "art", ("index", "fused", "type"), "hnsw")
    manifest = json.loads((art / "manifest.json").read_text())
    manifest["manifest_sha256"] = manifest_checksum(manifest)
    (art / "manifest.json").write_text(json.dumps(manifest))
    code, out = serve_until_exit(art)
    assert code == 3 and "Traceback" not in out, out
    assert "fused.faiss: type is 'flat' in the file, 'hnsw' in the manifest" in out


def test_a_model_directory_with_other_weights_is_refused(built, tmp_path):
    from indexer.errors import ManifestMismatchError
    from indexer.retrieval.opening import Overrides, open_index
    from models.testing import make_tiny_dinov3

    root, model = built
    other = make_tiny_dinov3(tmp_path / "other", seed=1)
    weights = model / "model.safetensors"
    original = weights.read_bytes()
    replacement = (other / "model.safetensors").read_bytes()
    assert len(replacement) == len(original) and replacement != original
    try:
        weights.write_bytes(replacement)  # same name, same size, other weights
        with pytest.raises(ManifestMismatchError, match="weights_sha256") as exc:
            open_index(root / "art", Overrides(device="cpu", load_text=False))
        assert exc.value.field == "image_model.weights_sha256"
    finally:
        weights.write_bytes(original)
    open_index(root / "art", Overrides(device="cpu", load_text=False))  # the right weights open
