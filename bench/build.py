"""Index build throughput, one question per mode: ``python -m bench.build local|engines ...``.

**local** — does ``visrag index build`` keep the model busy? On 1024×768 JPEG files and a DINOv3
ViT-S/16-sized random checkpoint at 224 px (``dtype=auto``: bf16 weights where the CPU has native
bf16, fp32 elsewhere), it measures in the same run, in interleaved rounds (the fastest round of
each kept: other processes only ever slow a round down):

- **encoder**: ``encode_preprocessed`` over the already preprocessed pixels of all N photos in
  windows of 4 batches, as the build calls it: the model with nothing to wait for;
- **sequential**: decode + preprocess every photo, then encode (no overlap), one thread;
- **build (embed stage)**: :func:`indexer.build.embed.embed_images` on the files, decode and
  preprocess in worker threads overlapped with the model (per ``--workers``), and once more with
  every core's intra-op thread to the encoder (``_all_cores``: the build before issue 25);
- **build (whole)**: :func:`indexer.build.pipeline.build_index` (what ``visrag index build`` runs:
  reader, mapper, writer), images embedded per second of the whole run;
- **naive**: the reference path, one image at a time in fp32 from the file, squashed to 224×224
  (:func:`bench.encoder.naive_preprocessor`), on the same checkpoint.

Targets (issue 16): build ≥ 90% of the encoder; build ≥ 3× naive on a native-bf16 CPU (≥ 1.3× on
fp32-only CPUs). Run: ``python -m bench.build local [--images 96] [--rounds 3] [--workers 1,2]
[--load N] [--out build.json]``; ``--load N`` runs N busy-loop processes meanwhile (a machine
other jobs also use: the build should stay ≥ 2× naive there, issue 25).

**engines** — the in-process engine vs ``--engine ray`` on the same dataset. A synthetic dataset
(:func:`indexer.synthetic.generator.generate_dataset`, 640×480 JPEGs) is indexed with the same
ViT-S/16-sized random checkpoint (same FLOPs, same cost as the real model) and the offline text
model, through :func:`indexer.build.pipeline.build_index`, once per engine:

- **local**: ``embed_images`` (decode threads + the encoder in this process);
- **ray wN**: :func:`indexer.build.ray_engine.ray_engine` with N encoder actors on a local Ray
  started with ``--ray-cpus`` CPUs (started before the timer: cluster start-up is not a build
  cost; actor start-up and model loading are, they are paid on every build).

Each row: wall seconds of the whole build, images/s, images/s per encoder worker, the overhead
ratio (engine seconds / local seconds), the cosine of the vectors to the local build's (the
engines must agree) and, in the JSON, the build's stage durations. Run:
``python -m bench.build engines --images 200 --ray-workers 1,2 [--out results.json]``.

Measured by this bench, never by a timed test.
"""

from __future__ import annotations

import argparse
import contextlib
import datetime as dt
import json
import multiprocessing
import os
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image

from bench.encoder import make_photos, naive_preprocessor
from bench.machine import add_allocator_option, apply_allocator, cpu_model
from indexer.readers.records import Record
from models.base import ImageEncoderProtocol, TextEncoderProtocol

VIT_S16 = {
    "hidden_size": 384,
    "num_hidden_layers": 12,
    "num_attention_heads": 6,
    "intermediate_size": 1536,
}


def make_dataset(directory: Path, count: int, width: int = 1024, height: int = 768) -> list[Record]:
    """``count`` distinct width×height JPEG files (quality 90) and their records."""
    directory.mkdir(parents=True, exist_ok=True)
    records = []
    for i, photo in enumerate(make_photos(count, width, height)):
        path = directory / f"photo_{i:04d}.jpg"
        if not path.exists():
            photo.save(path, "JPEG", quality=90)
        records.append(
            Record(
                id=f"photo-{i:04d}",
                image_path=path,
                width=width,
                height=height,
                labels={"dent": i % 2},
            )
        )
    return records


def make_checkpoint(directory: Path) -> Path:
    """A DINOv3 checkpoint with ViT-S/16's shape and random weights (same FLOPs, no download)."""
    from models.testing import make_tiny_dinov3

    if not (directory / "config.json").exists():
        make_tiny_dinov3(directory, **VIT_S16)
    return directory


def _naive_seconds(model: torch.nn.Module, paths: list[Path]) -> float:
    """Seconds for the reference path over ``paths``: open, squash, fp32 forward, batch 1."""
    preprocess, _ = naive_preprocessor()
    t0 = time.perf_counter()
    with torch.inference_mode():
        for path in paths:
            with Image.open(path) as image:
                pixels = preprocess(image.convert("RGB"))
            F.normalize(model(pixel_values=pixels).pooler_output, dim=-1).numpy()
    return time.perf_counter() - t0


@contextlib.contextmanager
def every_core_to_the_encoder() -> Iterator[None]:
    """The build as it was before :func:`indexer.build.embed.cores_left_to_decoding`: the encoder
    keeps torch's default intra-op threads (every core) while the decode threads run."""
    from indexer.build import embed

    rule = embed.cores_left_to_decoding
    embed.cores_left_to_decoding = lambda encoder: contextlib.nullcontext()
    try:
        yield
    finally:
        embed.cores_left_to_decoding = rule


@contextlib.contextmanager
def competing_load(processes: int) -> Iterator[None]:
    """``processes`` other CPU-bound processes (busy loops) running meanwhile: a machine whose
    cores other jobs also use."""
    procs = [multiprocessing.Process(target=_spin, daemon=True) for _ in range(processes)]
    for proc in procs:
        proc.start()
    try:
        yield
    finally:
        for proc in procs:
            proc.terminate()
            proc.join()


def _spin() -> None:
    while True:
        pass


def local_build_rates(
    records: list[Record],
    image_encoder: ImageEncoderProtocol,
    text_encoder: TextEncoderProtocol,
    naive_model: torch.nn.Module,
    *,
    workdir: Path,
    batch_size: int = 8,
    workers: tuple[int, ...] = (2,),
    rounds: int = 3,
    naive_images: int = 16,
) -> dict[str, Any]:
    """Images/s of the encoder, the sequential path, the build (per worker count) and the naive
    path, measured in ``rounds`` interleaved rounds; the fastest round of each is kept."""
    from indexer.build.embed import embed_images
    from indexer.build.pipeline import build_index
    from models.embedding import prepare_image
    from models.taxonomy import load_taxonomy

    taxonomy = load_taxonomy()
    n = len(records)
    window = batch_size * 4
    pixels = [prepare_image(r.image_path, image_encoder).pixels for r in records]
    image_encoder.encode_preprocessed(pixels[:batch_size], batch_size=batch_size)  # warm-up
    best: dict[str, float] = {}

    def keep(name: str, images: int, seconds: float) -> None:
        best[name] = max(best.get(name, 0.0), images / seconds)

    for _ in range(rounds):
        t0 = time.perf_counter()
        for start in range(0, n, window):
            image_encoder.encode_preprocessed(pixels[start : start + window], batch_size=batch_size)
        keep("encoder", n, time.perf_counter() - t0)
        t0 = time.perf_counter()
        for start in range(0, n, window):
            chunk = [
                prepare_image(r.image_path, image_encoder).pixels
                for r in records[start : start + window]
            ]
            image_encoder.encode_preprocessed(chunk, batch_size=batch_size)
        keep("sequential", n, time.perf_counter() - t0)
        for w in workers:
            t0 = time.perf_counter()
            embed_images(
                records,
                image_encoder=image_encoder,
                batch_size=batch_size,
                workers=w,
                progress=False,
            )
            keep(f"build_embed_w{w}", n, time.perf_counter() - t0)
        with every_core_to_the_encoder():  # the build before cores_left_to_decoding
            t0 = time.perf_counter()
            embed_images(
                records,
                image_encoder=image_encoder,
                batch_size=batch_size,
                workers=max(workers),
                progress=False,
            )
            keep(f"build_embed_w{max(workers)}_all_cores", n, time.perf_counter() - t0)
        report = build_index(
            records,
            workdir / "index",
            image_encoder=image_encoder,
            text_encoder=text_encoder,
            taxonomy=taxonomy,
            batch_size=batch_size,
            workers=max(workers),
            progress=False,
        )
        keep("build_whole", report.embedded, report.seconds)
        paths = [r.image_path for r in records[:naive_images]]
        keep("naive", len(paths), _naive_seconds(naive_model, paths))
    encoder, naive = best["encoder"], best["naive"]
    return {
        "images": n,
        "images_per_s": best,
        "of_encoder": {k: v / encoder for k, v in best.items()},
        "x_naive": {k: v / naive for k, v in best.items()},
    }


def run_local(args: argparse.Namespace) -> None:
    """``local`` mode: the build's rates against the encoder's and the naive path's."""
    apply_allocator(args)
    from models.device import cpu_supports_bf16
    from models.image_encoder import load_image_encoder
    from models.text_encoder import load_text_encoder

    workdir = args.workdir or Path(tempfile.mkdtemp(prefix="visrag-bench-build-"))
    load_start, started = os.getloadavg(), dt.datetime.now(dt.UTC)
    records = make_dataset(workdir / "photos", args.images)
    model = args.image_model or str(make_checkpoint(workdir / "vits16"))
    encoder = load_image_encoder(model, device="cpu", dtype=args.dtype, image_size=args.image_size)
    naive_model = load_image_encoder(model, device="cpu", dtype="fp32").model
    text = load_text_encoder(device="cpu")
    print(
        f"encoder: {encoder.info()['dtype']} weights, {args.image_size} px, batch "
        f"{args.batch_size}, {args.images} photos 1024×768; naive: {naive_preprocessor()[1]}",
        flush=True,
    )
    with competing_load(args.load):
        result = local_build_rates(
            records,
            encoder,
            text,
            naive_model,
            workdir=workdir,
            batch_size=args.batch_size,
            workers=tuple(int(w) for w in args.workers.split(",")),
            rounds=args.rounds,
        )
    result.update(
        date=started.isoformat(timespec="seconds"),
        seconds=(dt.datetime.now(dt.UTC) - started).total_seconds(),
        load_average=[round(load_start[0], 2), round(os.getloadavg()[0], 2)],
        competing_processes=args.load,
        cpu=cpu_model(),
        native_bf16=cpu_supports_bf16(),
        torch=torch.__version__,
        threads=torch.get_num_threads(),
        dtype=encoder.info()["dtype"],
        image_model=args.image_model or "random ViT-S/16-shaped DINOv3",
    )
    print(f"{'path':<18} {'img/s':>8} {'of encoder':>11} {'x naive':>8}")
    for name, rate in result["images_per_s"].items():
        print(
            f"{name:<18} {rate:8.2f} {result['of_encoder'][name]:10.0%} "
            f"{result['x_naive'][name]:8.2f}"
        )
    target = 3.0 if result["native_bf16"] else 1.3
    embeds = {k: v for k, v in result["of_encoder"].items() if k.startswith("build_embed")}
    best_embed = max(embeds, key=lambda k: embeds[k])
    print(
        f"build ({best_embed}) {embeds[best_embed]:.0%} of the encoder (target ≥ 90%); "
        f"{result['x_naive'][best_embed]:.2f}× naive, whole build "
        f"{result['x_naive']['build_whole']:.2f}× (target ≥ {target}×); load average "
        f"{result['load_average'][0]} → {result['load_average'][1]}"
    )
    if args.out:
        args.out.write_text(json.dumps(result, indent=2, default=str))


def engine_rows(args: argparse.Namespace) -> dict[str, Any]:
    """One build per engine on one synthetic dataset; rows comparable to the local one."""
    import ray

    from indexer.build.pipeline import build_index
    from indexer.build.ray_engine import RayOptions, ray_engine
    from indexer.index.artifacts import load_artifacts
    from indexer.synthetic.generator import generate_dataset
    from models.image_encoder import load_image_encoder
    from models.taxonomy import load_taxonomy
    from models.text_encoder import load_text_encoder

    work = Path(tempfile.mkdtemp(prefix="bench-build-"))
    generate_dataset(work / "data", args.images, seed=0)
    model = make_checkpoint(work / "vit-s")
    taxonomy = load_taxonomy()
    encoder = load_image_encoder(str(model), device=args.device, dtype="fp32", image_size=args.px)
    text = load_text_encoder(None, device="cpu")

    def build(name: str, **kw: Any) -> dict[str, Any]:
        report = build_index(
            work / "data",
            work / name,
            image_encoder=encoder,
            text_encoder=text,
            taxonomy=taxonomy,
            batch_size=args.batch_size,
            progress=False,
            **kw,
        )
        return {
            "engine": name,
            "seconds": report.seconds,
            "embedded": report.embedded,
            "encode_seconds": report.encode_seconds,
            "stages": report.stages,
        }

    rows = [{**build("local", workers=2), "workers": 1}]
    t0 = time.perf_counter()
    ray.init(num_cpus=args.ray_cpus, include_dashboard=False, log_to_driver=False)
    ray_start = time.perf_counter() - t0
    ray_gpus = ray.cluster_resources().get("GPU", 0)
    for n in args.ray_workers:
        options = RayOptions(workers=n, gpus_per_worker=args.gpus_per_worker)
        row = build(f"ray-w{n}", engine=ray_engine(options))
        rows.append({**row, "workers": n})
    ray.shutdown()
    reference = load_artifacts(work / "local").image_vectors
    for row in rows:
        vectors = load_artifacts(work / row["engine"]).image_vectors
        row["min_cosine_to_local"] = float(np.sum(vectors * reference, axis=1).min())
        row["images_per_s"] = row["embedded"] / row["seconds"]
        row["images_per_s_per_worker"] = row["images_per_s"] / row["workers"]
        row["overhead_vs_local"] = row["seconds"] / rows[0]["seconds"]
    return {
        "date": dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds"),
        "machine": {"cpu": cpu_model(), "cores": os.cpu_count(), "gpus": ray_gpus},
        "setting": {
            "images": args.images,
            "photo": "640x480 JPEG",
            "model": "ViT-S/16 random",
            "px": args.px,
            "dtype": "fp32",
            "batch_size": args.batch_size,
            "ray_cpus": args.ray_cpus,
            "ray_start_seconds": ray_start,
        },
        "rows": rows,
    }


def run_engines(args: argparse.Namespace) -> None:
    """``engines`` mode: one build per engine, as a markdown table."""
    args.ray_workers = [int(n) for n in args.ray_workers.split(",")]
    result = engine_rows(args)
    print(
        f"{result['machine']['cpu']}, {result['machine']['cores']} cores; "
        f"{args.images} images, ViT-S/16 fp32 at {args.px} px; "
        f"ray start {result['setting']['ray_start_seconds']:.1f} s (not counted)"
    )
    print("| engine | workers | seconds | img/s | img/s per worker | × local time | min cos |")
    print("|---|---|---|---|---|---|---|")
    for r in result["rows"]:
        print(
            f"| {r['engine']} | {r['workers']} | {r['seconds']:.1f} | {r['images_per_s']:.2f} "
            f"| {r['images_per_s_per_worker']:.2f} | {r['overhead_vs_local']:.2f} "
            f"| {r['min_cosine_to_local']:.6f} |"
        )
    if args.out:
        args.out.write_text(json.dumps(result, indent=2))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    modes = parser.add_subparsers(dest="mode", required=True)
    local = modes.add_parser("local", help="does the build keep the model busy (local engine)")
    local.add_argument("--images", type=int, default=96, help="1024×768 JPEGs built per round")
    local.add_argument("--rounds", type=int, default=3, help="interleaved rounds; best kept")
    local.add_argument("--workers", default="2", help="decode worker threads, comma-separated")
    local.add_argument("--batch-size", type=int, default=8)
    local.add_argument("--image-size", type=int, default=224)
    local.add_argument("--dtype", default="auto", help="image encoder dtype (default auto)")
    local.add_argument("--image-model", help="checkpoint (default: random ViT-S/16-shaped)")
    local.add_argument("--workdir", type=Path, help="default: a temporary directory")
    local.add_argument("--out", type=Path, help="write the results as JSON here")
    local.add_argument(
        "--load", type=int, default=0, help="busy-loop processes competing for the CPU meanwhile"
    )
    add_allocator_option(local)
    local.set_defaults(run=run_local)
    engines = modes.add_parser("engines", help="the local engine vs Ray Data, same dataset")
    engines.add_argument("--images", type=int, default=200)
    engines.add_argument("--px", type=int, default=224, help="encoder image size (longer side)")
    engines.add_argument("--batch-size", type=int, default=8)
    engines.add_argument("--ray-cpus", type=int, default=os.cpu_count() or 2)
    engines.add_argument("--ray-workers", default="1", help="comma-separated actor counts")
    engines.add_argument("--gpus-per-worker", type=float, default=0.0, help="0: CPU actors")
    engines.add_argument("--device", default="cpu", help="the local engine's and driver's device")
    engines.add_argument("--out", type=Path)
    engines.set_defaults(run=run_engines)
    args = parser.parse_args()
    args.run(args)


if __name__ == "__main__":
    main()
