"""``visrag demo``: a synthetic dataset, split, indexed and served with the demo page, in one go.

Uses the configured DINOv3 when its weights are available; otherwise a tiny, randomly initialised
one, with a loud warning. A random ViT's CLS token is nearly the same for every photo, so the tiny
model is read with the ``contrast`` pooling (:mod:`models.backbones`: what stands out from the
bare panel), recorded in the manifest like any pooling: its neighbours then follow the drawn
damage well above the majority baseline on the demo's own held-out split (the README's demo
section gives the command and the numbers), which says nothing about real photos.
"""

from __future__ import annotations

import json
import logging
import shutil
import socket
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from models.base import ImageEncoderProtocol, TextEncoderProtocol
    from models.taxonomy import Taxonomy

logger = logging.getLogger(__name__)

SAMPLES_DIR = "samples"
SAMPLE_COUNT = 8
TINY_DIR = "tiny-random-dinov3"
TINY_POOLING = "contrast"
TINY_WARNING = """
################################################################################
#  WARNING: no DINOv3 weights available ({reason})
#  The demo runs on a TINY, RANDOMLY INITIALISED DINOv3 ({path}),
#  NOT A REAL MODEL. Every stage is real (decode, preprocess, encode, FAISS,
#  labels, context); its 'contrast' pooling finds the drawn damage of this
#  synthetic set, and means NOTHING on real photos. For real retrieval, download
#  a checkpoint and pass --image-model <hub id or local dir>.
################################################################################
"""


@dataclass
class DemoBuild:
    artifacts: Path
    samples: Path
    image_encoder: ImageEncoderProtocol
    text_encoder: TextEncoderProtocol
    taxonomy: Taxonomy
    tiny: bool
    reused: bool


def _load_encoder(
    image_model: str | None, *, tiny: bool, workdir: Path, image_size: int, device: str
) -> tuple[Any, bool, str]:
    """The configured DINOv3, or the tiny random one; returns (encoder, is_tiny, reason)."""
    from models.errors import ModelNotAvailableError
    from models.hub import DEFAULT_IMAGE_MODEL
    from models.image_encoder import load_image_encoder
    from models.testing import make_tiny_dinov3

    if not tiny:
        try:
            encoder = load_image_encoder(
                image_model or DEFAULT_IMAGE_MODEL, device=device, image_size=image_size
            )
            return encoder, False, ""
        except ModelNotAvailableError as exc:
            reason = str(exc).splitlines()[0]
    else:
        reason = "--tiny was given"
    path = workdir / TINY_DIR
    if not (path / "config.json").is_file():
        make_tiny_dinov3(path)
    encoder = load_image_encoder(path, device=device, image_size=image_size, pooling=TINY_POOLING)
    return encoder, True, reason


def port_in_use(host: str, port: int) -> bool:
    """Whether the server could not listen on ``host:port`` (checked before minutes of work)."""
    with socket.socket() as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # as uvicorn binds
        try:
            probe.bind((host, port))
        except OSError:
            return True
    return False


def _one_torch_thread() -> None:
    """The tiny model's matrices (32 wide) are too small to split across threads: intra-op
    threads only add synchronisation, and on a busy 2-core machine they made each batch 5-10x
    slower (0.28-0.42 s vs 0.04-0.06 s for 8 images at 224 px, load average 16)."""
    import torch

    torch.set_num_threads(1)


def prepare_demo(
    workdir: Path,
    *,
    n: int = 300,
    seed: int = 0,
    image_model: str | None = None,
    text_model: str | None = None,
    tiny: bool = False,
    image_size: int = 224,
    device: str = "auto",
    echo: Any = print,
) -> DemoBuild:
    """Generate, split and index a synthetic dataset under ``workdir`` (reused when unchanged)."""
    from indexer.build.pipeline import build_index
    from indexer.index.artifacts import has_manifest, load_artifacts
    from indexer.split.splitter import split_files
    from indexer.synthetic.generator import generate_dataset
    from models.taxonomy import load_taxonomy
    from models.text_encoder import load_text_encoder

    workdir.mkdir(parents=True, exist_ok=True)
    taxonomy = load_taxonomy()
    encoder, is_tiny, reason = _load_encoder(
        image_model, tiny=tiny, workdir=workdir, image_size=image_size, device=device
    )
    if is_tiny:
        echo(TINY_WARNING.format(reason=reason, path=workdir / TINY_DIR))
        _one_torch_thread()
    text_encoder = load_text_encoder(text_model, device=device)
    artifacts = workdir / "artifacts"
    recipe = {
        "n": n,
        "seed": seed,
        "image_model": encoder.info(),
        "text_model": text_encoder.info(),
    }
    recipe_file = workdir / "demo.json"
    reused = (
        recipe_file.is_file()
        and json.loads(recipe_file.read_text()) == json.loads(json.dumps(recipe))
        and has_manifest(artifacts)
    )
    if reused:
        echo(f"reusing the demo index in {artifacts}")
    else:
        echo(f"generating {n} synthetic images in {workdir / 'data'}")
        generate_dataset(workdir / "data", n, seed=seed)
        result, paths, _ = split_files(
            workdir / "data", workdir / "split", taxonomy=taxonomy, seed=seed, group_by="capture"
        )
        echo(
            f"split: {len(result.train)} train / {len(result.test)} test images -> {paths['train']}"
        )
        echo(
            f"indexing the train split with {encoder.model_id} ({encoder.device}, {encoder.dtype})"
        )
        report = build_index(
            paths["train"],
            artifacts,
            image_encoder=encoder,
            text_encoder=text_encoder,
            taxonomy=taxonomy,
            progress=True,
        )
        echo(f"indexed {report.count} images in {report.seconds:.1f} s -> {artifacts}")
        recipe_file.write_text(json.dumps(recipe, indent=2) + "\n")
    samples = workdir / SAMPLES_DIR
    if not reused or not (samples / "samples.json").is_file():
        write_samples(workdir / "split" / "test.jsonl", samples, taxonomy)
    echo(f"sample photos of the held-out split (not indexed): {samples}")
    load_artifacts(artifacts, verify=True)  # what the service will do; fails loudly if broken
    return DemoBuild(artifacts, samples, encoder, text_encoder, taxonomy, is_tiny, reused)


def write_samples(
    test_split: Path, out: Path, taxonomy: Taxonomy, *, count: int = SAMPLE_COUNT
) -> list[dict[str, Any]]:
    """Copy ``count`` held-out photos, varied label sets first, to ``out/01.jpg``... and list them
    with their true labels in ``out/samples.json`` (the demo page shows them after the answer)."""
    rows = [json.loads(line) for line in test_split.read_text().splitlines() if line.strip()]
    seen: set[tuple[str, ...]] = set()
    varied: list[dict[str, Any]] = []
    rest: list[dict[str, Any]] = []
    for row in rows:
        key = tuple(sorted(row.get("labels") or {}))
        (rest if key in seen else varied).append(row)
        seen.add(key)
    if out.exists():
        shutil.rmtree(out)
    out.mkdir(parents=True)
    samples = []
    for i, row in enumerate((varied + rest)[:count], start=1):
        name = f"{i:02d}.jpg"
        shutil.copyfile(test_split.parent / row["image"], out / name)
        labels = [
            {
                "id": label,
                "count": n,
                "name": taxonomy.label(label).name("en"),
                "name_es": taxonomy.label(label).name("es"),
            }
            for label, n in (row.get("labels") or {}).items()
        ]
        samples.append({"file": name, "labels": labels, "id": row["id"]})
    (out / "samples.json").write_text(json.dumps(samples, indent=2) + "\n")
    return samples


def demo_resources(build: DemoBuild, *, rerank_candidates: int = 20) -> Any:
    """Service resources from the encoders the demo already loaded (no second model load)."""
    from app.serving.resources import Resources
    from indexer.retrieval.opening import Overrides, open_index

    opened = open_index(
        build.artifacts,
        Overrides(taxonomy=build.taxonomy),
        image_encoder=build.image_encoder,
        text_encoder=build.text_encoder,
    )
    return Resources(
        retriever=opened.retriever(rerank_candidates=rerank_candidates),
        image_encoder=build.image_encoder,
        text_encoder=build.text_encoder,
    )
