"""Index build throughput: the in-process engine vs ``--engine ray`` on the same dataset.

A synthetic dataset (:func:`indexer.synthetic.generate_dataset`, 640×480 JPEGs) is indexed with a
DINOv3 ViT-S/16-sized checkpoint with random weights (``make_tiny_dinov3`` at the released
config's sizes: same FLOPs, same cost as the real model) and the offline text model, through
:func:`indexer.build.pipeline.build_index`, once per engine:

- **local**: ``embed_images`` (decode threads + the encoder in this process);
- **ray wN**: :func:`indexer.build.ray_engine.ray_engine` with N encoder actors on a local Ray
started
  with ``--ray-cpus`` CPUs (started before the timer: cluster start-up is not a build cost; actor
  start-up and model loading are, they are paid on every build).

Each row: wall seconds of the whole build (read, embed, text, stores, write), images/s, images/s
per encoder worker, the overhead ratio (engine seconds / local seconds) and the cosine of the
vectors to the local build's (the engines must agree). Run:
``python bench/build.py --images 200 --ray-workers 1,2 [--out results.json]``.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench.machine import cpu_model  # noqa: E402

VIT_S = {
    "hidden_size": 384,
    "num_hidden_layers": 12,
    "num_attention_heads": 6,
    "intermediate_size": 1536,
}


def run(args: argparse.Namespace) -> dict[str, Any]:
    import ray

    from indexer.build.pipeline import build_index
    from indexer.build.ray_engine import RayOptions, ray_engine
    from indexer.index.artifacts import load_artifacts
    from indexer.synthetic.dataset import generate_dataset
    from models.image_encoder import load_image_encoder
    from models.taxonomy import load_taxonomy
    from models.testing import make_tiny_dinov3
    from models.text_encoder import load_text_encoder

    work = Path(tempfile.mkdtemp(prefix="bench-build-"))
    generate_dataset(work / "data", args.images, seed=0)
    model = make_tiny_dinov3(work / "vit-s", **VIT_S)
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


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--images", type=int, default=200)
    parser.add_argument("--px", type=int, default=224, help="encoder image size (longer side)")
    parser.add_argument("--batch-size", type=int, default=8)
    parser.add_argument("--ray-cpus", type=int, default=os.cpu_count() or 2)
    parser.add_argument("--ray-workers", default="1", help="comma-separated actor counts")
    parser.add_argument("--gpus-per-worker", type=float, default=0.0, help="0: CPU actors")
    parser.add_argument("--device", default="cpu", help="the local engine's (and driver's) device")
    parser.add_argument("--out", type=Path)
    args = parser.parse_args()
    args.ray_workers = [int(n) for n in args.ray_workers.split(",")]
    result = run(args)
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


if __name__ == "__main__":
    main()
