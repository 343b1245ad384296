"""Damage regions, what they cost: ``python -m bench.regions build|query``.

**build** — :func:`indexer.build.pipeline.build_index` on a synthetic dataset
(:func:`indexer.synthetic.generator.generate_dataset`, 640×480 JPEGs, several defects each) with
a ViT-S/16-shaped random DINOv3 (:func:`bench.build.make_checkpoint`: the real model's FLOPs) and
the offline text model, three ways in interleaved rounds (the fastest round of each kept):
``--regions none``, ``patches`` (pooled from the same forward pass: target ≤ 1.1× none) and
``crops`` (each region's crop re-encoded: one more forward pass per region). Reports whole-build
seconds, the ratio to ``none``, the mapper's region seconds, and the region files' bytes per
region.

**query** — the search part of a region query and of the dense "where" matching, on random unit
vectors (timing only): a region table of R regions (R = 1k and 100k) in the flat FAISS index the
build writes; a region query is one vector's top-5; "where" is every patch of a 448-px photo
(28×28 = 784 patch tokens) against the table (top-1 each, one batched search) plus the best
cosine to the background bank (4096 patches). Median of ``--repeats`` runs.

Run: ``python -m bench.regions build [--images 48] [--rounds 2]``;
``python -m bench.regions query [--dim 384] [--sizes 1000,100000]``. Measured by this bench,
never by a timed test.
"""

from __future__ import annotations

import argparse
import json
import statistics
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np

from bench.machine import cpu_model


def _bytes_per_region(out: Path, count: int) -> float | None:
    from indexer.index.artifacts import REGION_FILES

    if not count:
        return None
    return sum((out / name).stat().st_size for name in REGION_FILES) / count


def build(args: argparse.Namespace) -> dict[str, Any]:
    from bench.build import make_checkpoint
    from indexer.build.pipeline import build_index
    from indexer.synthetic.generator import generate_dataset
    from models.image_encoder import load_image_encoder
    from models.taxonomy import load_taxonomy
    from models.text_encoder import load_text_encoder

    work = Path(tempfile.mkdtemp(prefix="visrag-bench-regions-"))
    data = work / "data"
    generate_dataset(data, args.images, seed=0, image_size=(640, 480))
    encoder = load_image_encoder(
        str(make_checkpoint(work / "vits16")), device="cpu", image_size=args.px
    )
    text = load_text_encoder(None, device="cpu")
    taxonomy = load_taxonomy(None)
    kinds: dict[str, bool | str] = {"none": False, "patches": "patches", "crops": "crops"}
    best: dict[str, dict[str, Any]] = {}
    for _ in range(args.rounds):
        for name, regions in kinds.items():
            out = work / f"art-{name}"
            report = build_index(
                data,
                out,
                image_encoder=encoder,
                text_encoder=text,
                taxonomy=taxonomy,
                progress=False,
                regions=regions,
            )
            section = report.manifest.regions
            count = section.count if section else 0
            row = {
                "seconds": report.seconds,
                "mapper_seconds": report.stages.get("mapper"),
                "encode_seconds": report.encode_seconds,
                "regions": count,
                "bytes_per_region": _bytes_per_region(out, count),
            }
            if name not in best or row["seconds"] < best[name]["seconds"]:
                best[name] = row
    for row in best.values():
        row["ratio_to_none"] = row["seconds"] / best["none"]["seconds"]
    return {"images": args.images, "px": args.px, "rounds": args.rounds, "builds": best}


def query(args: argparse.Namespace) -> dict[str, Any]:
    from indexer.index.faiss_store import VectorStore
    from models.regions import best_match

    rng = np.random.default_rng(0)

    def unit(n: int) -> np.ndarray:
        v = rng.standard_normal((n, args.dim)).astype(np.float32)
        return v / np.linalg.norm(v, axis=1, keepdims=True)

    rows = []
    patches, bank = unit(784), unit(4096)
    for size in args.sizes:
        vectors = unit(size)
        store = VectorStore.build(vectors, np.arange(size, dtype=np.int64), index_type="flat")
        one = unit(1)
        region_ms, where_ms, index_ms = [], [], []
        for _ in range(args.repeats):
            t0 = time.perf_counter()
            store.search(one, 5)
            region_ms.append((time.perf_counter() - t0) * 1e3)
            t0 = time.perf_counter()  # what the heatmap runs: blocked exact top-1 + the bank
            best_match(patches, vectors)
            (patches @ bank.T).max(axis=1)
            where_ms.append((time.perf_counter() - t0) * 1e3)
            t0 = time.perf_counter()  # the same top-1 through the FAISS index, for comparison
            store.search(patches, 1)
            index_ms.append((time.perf_counter() - t0) * 1e3)
        rows.append(
            {
                "regions": size,
                "dim": args.dim,
                "region_query_ms": statistics.median(region_ms),
                "where_784_patches_ms": statistics.median(where_ms),
                "where_top1_via_faiss_index_ms": statistics.median(index_ms),
                "vector_bytes_per_region": args.dim * 4 * 2,  # .npy + flat index
            }
        )
    return {"repeats": args.repeats, "rows": rows}


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.regions", description=__doc__)
    sub = parser.add_subparsers(dest="what", required=True)
    b = sub.add_parser("build", help="build time and size: regions none / patches / crops")
    b.add_argument("--images", type=int, default=48)
    b.add_argument("--rounds", type=int, default=2)
    b.add_argument("--px", type=int, default=448, help="encoder input, longer side")
    q = sub.add_parser("query", help="region query and dense 'where' search time")
    q.add_argument("--dim", type=int, default=384, help="ViT-S/16 hidden size")
    q.add_argument("--sizes", type=lambda s: [int(v) for v in s.split(",")], default=[1000, 100000])
    q.add_argument("--repeats", type=int, default=20)
    for p in (b, q):
        p.add_argument("--out", type=Path)
    args = parser.parse_args(argv)
    result = build(args) if args.what == "build" else query(args)
    result["machine"] = cpu_model()
    text = json.dumps(result, indent=2)
    print(text)
    if args.out:
        args.out.write_text(text + "\n", "utf-8")


if __name__ == "__main__":
    main()
