"""Image-encoder throughput: our path vs the naive reference path vs the machine's GEMM bound.

For DINOv3 ViT-S/16 and ViT-B/16 architectures (``DINOv3ViTConfig`` sized like the released
checkpoints, random weights: same FLOPs, same cost) it measures, in the same run:

- **ours**, per precision (``fp32`` weights, ``bf16-autocast`` = fp32 weights under bf16
  autocast, ``bf16`` = bf16 weights, what ``dtype=auto`` picks on CPUs with native bf16) and per
  starting point: ``model`` = the forward pass, pooling and L2 normalisation of a ready batch
  (model-only); ``jpeg`` = the full path of the build and the service from JPEG bytes
  (``prepare_image``: decode with DCT scaling, EXIF, aspect-preserving resize, normalise; then
  ``encode_preprocessed``: buckets, forward, pooling); ``pil`` = ``ImageEncoder.encode`` from
  decoded 1024×768 photos. Each full-path row prints its % of the model-only row of the same
  config, and each 224-px row its minimum cosine to fp32 weights on the same photos;
- **runtimes** (``--runtimes openvino,compile``): model-only rows through OpenVINO (bf16
  inference hint) and ``torch.compile`` of the bf16 model, with their cosine to fp32 eager;
- **naive**: the reference project's path, one image at a time in fp32, through the HF image
  processor (squash to 224×224). In transformers 5 that processor needs torchvision; when it is
  missing the same steps are done with torch ("rescale 1/255, bilinear antialiased squash to
  224×224, normalise with ImageNet mean/std, batch 1, fp32"), and the output says so;
- **GEMM bound**: the best measured matmul GFLOP/s in fp32 and in bf16 (square and model-shaped
  ``torch.matmul``/``F.linear``) divided by the model's FLOPs per image, counted analytically:
  patch embedding + per layer ``8·N·d² (q, k, v, o) + 4·N·d·I (MLP) + 4·N²·d (QKᵀ and AV)`` with
  N = patches + 1 CLS + 4 registers (layer norms, softmax, RoPE and GELU are not counted).

Input photos are 1024×768 (4:3) by default, so "ours" at 224 px runs 14×11 patches where the naive
squash runs 14×14; a ``square`` row runs ours on 1:1 photos (the naive path's token count) to
separate the two effects. Run: ``python -m bench.encoder --quick [--archs ViT-S/16]
[--runtimes openvino] [--out results.json]``; the verdict lines judge ViT-S/16, 224 px, batch 8 in
the dtype ``auto`` picks: full path ≥ 85% of model-only, ≥ 3× naive (≥ 1.3× without native bf16).
"""

from __future__ import annotations

import argparse
import datetime as dt
import io
import json
import os
import sys
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image, ImageDraw

from bench.machine import add_allocator_option, apply_allocator, cpu_model
from models.device import cpu_supports_bf16
from models.embedding import prepare_image
from models.hub import IMAGENET_MEAN, IMAGENET_STD
from models.image_encoder import ImageEncoder
from models.imaging import target_size

PATCH, REGISTERS = 16, 4
ARCHS = {  # as in the released facebook/dinov3-vit{s,b}16-pretrain-lvd1689m configs
    "ViT-S/16": {
        "hidden_size": 384,
        "num_hidden_layers": 12,
        "num_attention_heads": 6,
        "intermediate_size": 1536,
    },
    "ViT-B/16": {
        "hidden_size": 768,
        "num_hidden_layers": 12,
        "num_attention_heads": 12,
        "intermediate_size": 3072,
    },
}
DTYPES = {"fp32": torch.float32, "bf16": torch.bfloat16}
# Precision labels of the 'ours' rows: (weights dtype, autocast).
PRECISIONS = {
    "fp32": (torch.float32, False),
    "bf16-autocast": (torch.float32, True),
    "bf16": (torch.bfloat16, False),
}
# What an encoder path starts from: a ready (b, 3, H, W) batch ('model': the forward pass, pooling
# and normalisation only), JPEG bytes ('jpeg': decode with DCT scaling, EXIF, resize, normalise,
# bucketing, forward; what the build and the service run), or decoded 1024×768 PIL photos ('pil').
STARTS = ("model", "jpeg", "pil")


def build_model(arch: str, dtype: torch.dtype = torch.float32) -> torch.nn.Module:
    from transformers import DINOv3ViTConfig, DINOv3ViTModel

    torch.manual_seed(0)
    config = DINOv3ViTConfig(**ARCHS[arch], num_register_tokens=REGISTERS, patch_size=PATCH)
    return DINOv3ViTModel(config).eval().to(dtype)


def model_flops(arch: str, height: int, width: int) -> float:
    """FLOPs (2 per multiply-add) of one forward pass at height×width pixels."""
    cfg = ARCHS[arch]
    d, inner, layers = cfg["hidden_size"], cfg["intermediate_size"], cfg["num_hidden_layers"]
    patches = (height // PATCH) * (width // PATCH)
    n = patches + 1 + REGISTERS
    embed = 2 * patches * 3 * PATCH * PATCH * d
    per_layer = 8 * n * d * d + 4 * n * d * inner + 4 * n * n * d
    return float(embed + layers * per_layer)


def timed(fn: Callable[[], Any], *, min_time: float, max_iters: int = 1000) -> float:
    """Fastest seconds per call: one warm-up call, then calls until ``min_time`` has passed.

    The minimum, not the median: other processes on shared cores only ever slow a call down.
    """
    start = time.perf_counter()
    fn()
    warm = time.perf_counter() - start
    iters = 1 if warm > 2 * min_time else max_iters
    times: list[float] = []
    begin = time.perf_counter()
    while len(times) < iters:
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
        if time.perf_counter() - begin >= min_time:
            break
    return float(min(times))


def gemm_gflops(dtype: torch.dtype, shapes: list[tuple[int, int, int]], min_time: float) -> dict:
    """Best GFLOP/s over square matmuls and model-shaped linears (x @ Wᵀ)."""
    best: dict[str, Any] = {"gflops": 0.0}
    with torch.inference_mode():
        for m, k, n in shapes:
            a = torch.randn(m, k, dtype=dtype)
            w = torch.randn(n, k, dtype=dtype)
            for op, fn in (
                ("matmul", lambda a=a, w=w: a @ w.T),
                ("linear", lambda a=a, w=w: F.linear(a, w)),
            ):
                seconds = timed(fn, min_time=min_time)
                gflops = 2 * m * k * n / seconds / 1e9
                if gflops > best["gflops"]:
                    best = {"gflops": gflops, "op": op, "shape": [m, k, n]}
    return best


def make_photos(count: int, width: int, height: int) -> list[Image.Image]:
    rng = np.random.default_rng(0)
    photos = []
    for _ in range(count):
        noise = rng.integers(0, 256, (height // 8, width // 8, 3), dtype=np.uint8)
        image = Image.fromarray(noise).resize((width, height), Image.Resampling.BILINEAR)
        draw = ImageDraw.Draw(image)
        for _ in range(6):
            x, y = int(rng.integers(0, width)), int(rng.integers(0, height))
            draw.ellipse(
                (x - 60, y - 40, x + 60, y + 40), fill=tuple(rng.integers(0, 256, 3).tolist())
            )
        photos.append(image)
    return photos


def naive_preprocessor() -> tuple[Callable[[Image.Image], torch.Tensor], str]:
    """The HF processor if it can run here, else the same steps in torch."""
    try:
        from transformers import DINOv3ViTImageProcessor

        processor = DINOv3ViTImageProcessor()

        def hf(image: Image.Image) -> torch.Tensor:
            return processor(images=image, return_tensors="pt")["pixel_values"]

        return hf, "HF DINOv3ViTImageProcessor (squash to 224×224)"
    except ImportError:
        mean = torch.tensor(IMAGENET_MEAN).view(1, 3, 1, 1)
        std = torch.tensor(IMAGENET_STD).view(1, 3, 1, 1)

        def faithful(image: Image.Image) -> torch.Tensor:
            x = torch.from_numpy(np.asarray(image.convert("RGB"))).permute(2, 0, 1)[None]
            x = x.float() * (1 / 255)  # the processor's order: rescale, resize, normalise
            x = F.interpolate(x, size=(224, 224), mode="bilinear", antialias=True)
            return (x - mean) / std

        return faithful, (
            "torchvision missing, so the HF processor cannot run: same steps in torch "
            "(rescale 1/255, bilinear antialiased squash to 224×224, ImageNet normalise, "
            "batch 1, fp32)"
        )


def to_jpegs(photos: list[Image.Image]) -> list[bytes]:
    out = []
    for photo in photos:
        buffer = io.BytesIO()
        photo.save(buffer, "JPEG", quality=90)
        out.append(buffer.getvalue())
    return out


@dataclass
class Row:
    arch: str
    path: str
    image_size: int
    input: str
    batch: int
    dtype: str
    pixels: str
    gflop_per_image: float
    images_per_s: float
    ms_per_image: float
    pct_fp32_bound: float = 0.0
    pct_bf16_bound: float = 0.0
    pct_best_bound: float = 0.0
    x_naive: float | None = None
    cosine_fp32: float | None = None  # min over 8 photos, vs fp32 weights on the same pixels
    pct_model_only: float | None = None  # img/s / the 'ours:model' row of the same config


def run_ours(models, arch, *, image_size, batch, dtype, start, photos, label, min_time) -> Row:
    weights, autocast = PRECISIONS[dtype]
    encoder = ImageEncoder(
        models[arch, weights],
        model_id=arch,
        image_size=image_size,
        dtype="fp32" if dtype == "fp32" else "bf16",
        autocast=autocast,
    )
    images = photos[:batch]
    if start == "model":
        pixels = torch.from_numpy(np.stack([encoder.preprocess(im) for im in images]))
        seconds = timed(lambda: encoder.forward(pixels).numpy(), min_time=min_time)
    elif start == "jpeg":
        jpegs = to_jpegs(images)

        def full() -> None:
            arrays = [prepare_image(j, encoder).pixels for j in jpegs]
            encoder.encode_preprocessed(arrays, batch_size=batch)

        seconds = timed(full, min_time=min_time)
    else:
        seconds = timed(lambda: encoder.encode(images, batch_size=batch), min_time=min_time)
    w, h = target_size(*images[0].size, image_size=image_size, patch_size=PATCH)
    return Row(
        arch,
        f"ours:{start}",
        image_size,
        label,
        batch,
        dtype,
        f"{w}×{h}",
        model_flops(arch, h, w) / 1e9,
        batch / seconds,
        1000 * seconds / batch,
    )


_RUNTIMES: dict[tuple[str, str], Callable[[torch.Tensor], np.ndarray]] = {}


def _runtime(name: str, models, arch: str, pixels: torch.Tensor):
    """(b, 3, H, W) -> unit CLS vectors through an optional runtime, built once per arch."""
    if (name, arch) in _RUNTIMES:
        return _RUNTIMES[name, arch]
    if name == "compile":
        encoder = ImageEncoder(models[arch, torch.bfloat16], model_id=arch, dtype="bf16")
        encoder.model = torch.compile(encoder.model)  # type: ignore[assignment]

        def fn(x: torch.Tensor) -> np.ndarray:
            return encoder.forward(x).numpy()
    elif name == "openvino":
        import openvino as ov

        model = ov.convert_model(
            models[arch, torch.float32], example_input={"pixel_values": pixels}
        )
        compiled = ov.Core().compile_model(model, "CPU", {"INFERENCE_PRECISION_HINT": "bf16"})
        pooled = compiled.output(1)  # outputs: last_hidden_state, pooler_output

        def fn(x: torch.Tensor) -> np.ndarray:
            out = torch.from_numpy(np.asarray(compiled([x.numpy()])[pooled], dtype=np.float32))
            return F.normalize(out, dim=-1).numpy()
    else:
        raise SystemExit(f"unknown runtime {name!r} (compile, openvino)")
    _RUNTIMES[name, arch] = fn
    return fn


def run_runtime(name: str, models, arch: str, photos, min_time: float) -> Row:
    """Model-only (ready batch of 8 at 224 px) through ``name``; cosine to fp32 eager."""
    reference = ImageEncoder(models[arch, torch.float32], model_id=arch, image_size=224)
    pixels = torch.from_numpy(np.stack([reference.preprocess(im) for im in photos[:8]]))
    fn = _runtime(name, models, arch, pixels)
    cosine = float(np.min(np.sum(fn(pixels) * reference.forward(pixels).numpy(), axis=1)))
    seconds = timed(lambda: fn(pixels), min_time=min_time)
    h, w = pixels.shape[2:]
    row = Row(
        arch,
        f"{name}:model",
        224,
        "4:3",
        8,
        "bf16",
        f"{w}×{h}",
        model_flops(arch, h, w) / 1e9,
        8 / seconds,
        1000 * seconds / 8,
    )
    row.cosine_fp32 = cosine
    return row


def run_naive(models, arch, *, photos, min_time) -> Row:
    preprocess, _ = naive_preprocessor()
    model = models[arch, torch.float32]
    image = photos[0]

    def one() -> None:
        with torch.inference_mode():
            out = model(pixel_values=preprocess(image)).pooler_output
            F.normalize(out, dim=-1).numpy()

    seconds = timed(one, min_time=min_time)
    return Row(
        arch,
        "naive",
        224,
        "4:3",
        1,
        "fp32",
        "224×224",
        model_flops(arch, 224, 224) / 1e9,
        1 / seconds,
        1000 * seconds,
    )


def plan(quick: bool, native_bf16: bool) -> list[tuple[str, int, int, str, str, str]]:
    """(arch, image_size, batch, dtype, start, input) of the 'ours' rows."""
    fast = "bf16" if native_bf16 else "fp32"  # what dtype=auto picks on this machine
    if not quick:
        return [
            (a, s, b, d, start, "4:3")
            for a in ARCHS
            for s in (224, 448)
            for b in (1, 8)
            for d in PRECISIONS
            for start in STARTS
            if native_bf16 or d == "fp32" or (start == "model" and s == 224)
        ] + [(a, 224, 8, fast, "model", "1:1") for a in ARCHS]
    # Without native bf16 the bf16 rows run at a few GFLOP/s: only the model-only reference.
    rows = [
        ("ViT-S/16", 224, 8, "fp32", "model", "4:3"),
        ("ViT-S/16", 224, 8, "fp32", "jpeg", "4:3"),
        ("ViT-S/16", 224, 8, "bf16-autocast", "model", "4:3"),
        ("ViT-S/16", 224, 8, "bf16", "model", "4:3"),
        ("ViT-S/16", 224, 8, fast, "model", "1:1"),
        ("ViT-B/16", 224, 8, "fp32", "model", "4:3"),
        ("ViT-B/16", 224, 8, "bf16", "model", "4:3"),
    ]
    if native_bf16:
        rows += [
            ("ViT-S/16", 224, 1, "bf16", "jpeg", "4:3"),
            ("ViT-S/16", 224, 8, "bf16", "jpeg", "4:3"),
            ("ViT-S/16", 224, 8, "bf16", "pil", "4:3"),
            ("ViT-S/16", 448, 8, "bf16", "model", "4:3"),
            ("ViT-S/16", 448, 8, "bf16", "jpeg", "4:3"),
            ("ViT-B/16", 224, 8, "bf16", "jpeg", "4:3"),
        ]
    return rows


def cosines_to_fp32(models, photos) -> dict[tuple[str, str], float]:
    """Min cosine of each precision's vectors to fp32 weights' on the same 8 photos (224 px)."""
    out = {}
    for arch in ARCHS:
        vectors = {}
        for dtype, (weights, autocast) in PRECISIONS.items():
            enc = ImageEncoder(
                models[arch, weights],
                model_id=arch,
                image_size=224,
                dtype=dtype[:4],
                autocast=autocast,
            )
            vectors[dtype] = enc.encode(photos)
        for dtype, v in vectors.items():
            out[arch, dtype] = float(np.min(np.sum(v * vectors["fp32"], axis=1)))
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--quick", action="store_true", help="fewer configs, shorter timings")
    parser.add_argument("--out", type=Path, help="write the results as JSON here")
    parser.add_argument("--min-time", type=float, help="seconds timed per config and round")
    parser.add_argument("--rounds", type=int, default=3, help="interleaved passes; best kept")
    parser.add_argument(
        "--archs", default=",".join(ARCHS), help=f"comma list of {list(ARCHS)} (default: all)"
    )
    parser.add_argument(
        "--runtimes",
        type=lambda text: [t for t in text.split(",") if t],
        default=[],
        help="optional runtimes, model-only at 224 px batch 8: compile (torch.compile of the "
        "bf16 model), openvino (OpenVINO bf16 hint; needs `pip install openvino`)",
    )
    add_allocator_option(parser)
    args = parser.parse_args()
    apply_allocator(args)
    min_time = args.min_time or (1.0 if args.quick else 4.0)
    for arch in set(ARCHS) - set(args.archs.split(",")):
        del ARCHS[arch]
    started = time.perf_counter()

    machine = {
        "cpu": cpu_model(),
        "torch_threads": torch.get_num_threads(),
        "torch": torch.__version__,
        "cpu_capability": torch.backends.cpu.get_cpu_capability(),
        "native_bf16": cpu_supports_bf16(),
        "load_average_at_start": os.getloadavg(),
    }
    print(f"machine: {machine}")
    shapes = [(1024, 1024, 1024), (8 * 181, 384, 1536), (8 * 181, 768, 3072)]
    bf16_shapes = shapes if machine["native_bf16"] else [(512, 512, 512), (8 * 181, 384, 1536)]
    preprocess_note = naive_preprocessor()[1]
    print(f"naive path: {preprocess_note}")
    photos = {"4:3": make_photos(8, 1024, 768), "1:1": make_photos(8, 768, 768)}
    models = {(a, w): build_model(a, w) for a in ARCHS for w in (torch.float32, torch.bfloat16)}
    configs = plan(args.quick, machine["native_bf16"])
    cosine = cosines_to_fp32(models, photos["4:3"])
    print("min cosine to fp32:", {f"{a} {d}": round(c, 5) for (a, d), c in cosine.items()})
    # Every measurement is repeated in `rounds` interleaved passes and the best pass is kept, so a
    # burst of load from another process degrades one pass, not one side of a comparison.
    gemm: dict[str, dict[str, Any]] = {"fp32": {"gflops": 0.0}, "bf16": {"gflops": 0.0}}
    best: dict[tuple, Row] = {}
    for round_ in range(args.rounds):
        for name, dtype_shapes in (("fp32", shapes), ("bf16", bf16_shapes)):
            g = gemm_gflops(DTYPES[name], dtype_shapes, min_time / 2)
            if g["gflops"] > gemm[name]["gflops"]:
                gemm[name] = g
        for arch in ARCHS:
            measured = [run_naive(models, arch, photos=photos["4:3"], min_time=min_time)]
            for a, size, batch, dtype, start, label in configs:
                if a == arch:
                    measured.append(
                        run_ours(
                            models,
                            arch,
                            image_size=size,
                            batch=batch,
                            dtype=dtype,
                            start=start,
                            photos=photos[label],
                            label=label,
                            min_time=min_time,
                        )
                    )
            for runtime in args.runtimes:
                measured.append(run_runtime(runtime, models, arch, photos["4:3"], min_time))
            for row in measured:
                key = (row.arch, row.path, row.image_size, row.input, row.batch, row.dtype)
                if key not in best or row.images_per_s > best[key].images_per_s:
                    best[key] = row
        print(
            f"round {round_ + 1}/{args.rounds} done ({time.perf_counter() - started:.0f} s)",
            flush=True,
        )
    for name, g in gemm.items():
        print(f"GEMM {name}: {g['gflops']:.1f} GFLOP/s ({g['op']} {g['shape']})")
    best_gemm = max(g["gflops"] for g in gemm.values())
    rows = list(best.values())
    naive_by_arch = {r.arch: r for r in rows if r.path == "naive"}
    model_only = {
        (r.arch, r.image_size, r.input, r.batch, r.dtype): r for r in rows if r.path == "ours:model"
    }
    for row in rows:
        row.x_naive = row.images_per_s / naive_by_arch[row.arch].images_per_s
        if row.path.startswith("ours:"):
            if row.image_size == 224:
                row.cosine_fp32 = cosine.get((row.arch, row.dtype))
            ref = model_only.get((row.arch, row.image_size, row.input, row.batch, row.dtype))
            if ref is not None:
                row.pct_model_only = 100 * row.images_per_s / ref.images_per_s
    for row in rows:
        flops = row.gflop_per_image
        row.pct_fp32_bound = 100 * row.images_per_s * flops / gemm["fp32"]["gflops"]
        row.pct_bf16_bound = 100 * row.images_per_s * flops / gemm["bf16"]["gflops"]
        row.pct_best_bound = 100 * row.images_per_s * flops / best_gemm

    print_table(rows, gemm)
    verdict = targets(rows, gemm, machine["native_bf16"])
    for line in verdict["lines"]:
        print(line)
    elapsed = time.perf_counter() - started
    machine["load_average_at_end"] = os.getloadavg()
    print(
        f"total {elapsed:.0f} s; load average at start {machine['load_average_at_start']}, "
        f"at end {machine['load_average_at_end']} (other processes share these cores)"
    )
    if args.out:
        result = {
            "date": dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds"),
            "command": " ".join(["python", "-m", "bench.encoder", *sys.argv[1:]]),
            "machine": machine,
            "gemm": gemm,
            "naive_path": preprocess_note,
            "flops_model": "patch embed + L·(8·N·d² + 4·N·d·I + 4·N²·d), N = patches + 5",
            "rows": [asdict(r) for r in rows],
            "targets": verdict,
            "seconds": elapsed,
        }
        args.out.write_text(json.dumps(result, indent=2) + "\n")
        print(f"wrote {args.out}")


def print_table(rows: list[Row], gemm: dict) -> None:
    head = (
        "| arch | path:start | px | input | batch | dtype | pixels | GFLOP/img | img/s | ms/img "
        "| % of model-only | % best GEMM bound | × naive | cos to fp32 |"
    )
    print()
    print(head)
    print("|" + "---|" * 14)
    for r in sorted(rows, key=lambda r: (r.arch, r.image_size, r.path != "naive", r.batch)):
        x = f"{r.x_naive:.2f}" if r.x_naive is not None else "1.00"
        pct = f"{r.pct_model_only:.0f}%" if r.pct_model_only is not None else ""
        cos = f"{r.cosine_fp32:.5f}" if r.cosine_fp32 is not None else ""
        cells = [r.arch, r.path, r.image_size, r.input, r.batch, r.dtype, r.pixels]
        cells += [f"{r.gflop_per_image:.1f}", f"{r.images_per_s:.2f}", f"{r.ms_per_image:.0f}"]
        cells += [pct, f"{r.pct_best_bound:.0f}%", x, cos]
        print("| " + " | ".join(str(c) for c in cells) + " |")
    print(
        f"\nGEMM bound: fp32 {gemm['fp32']['gflops']:.1f} GFLOP/s, "
        f"bf16 {gemm['bf16']['gflops']:.1f} GFLOP/s"
    )


def targets(rows: list[Row], gemm: dict, native_bf16: bool) -> dict:
    """Issue 16 targets for ViT-S/16 at 224 px, batch 8, the dtype ``auto`` picks here."""
    dtype = "bf16" if native_bf16 else "fp32"
    vits = [r for r in rows if r.arch == "ViT-S/16" and r.image_size == 224 and r.input == "4:3"]
    naive = next(r for r in vits if r.path == "naive")
    model = next(r for r in vits if r.path == "ours:model" and r.batch == 8 and r.dtype == dtype)
    full = next(r for r in vits if r.path == "ours:jpeg" and r.batch == 8 and r.dtype == dtype)
    x_target = 3.0 if native_bf16 else 1.3
    pct = full.pct_model_only or 0.0
    lines = [
        f"ViT-S/16 224 px batch 8 {dtype} (dtype=auto here): model-only "
        f"{model.images_per_s:.2f} img/s, full path from JPEG bytes {full.images_per_s:.2f} img/s",
        f"target full path ≥ 85% of model-only: {'MET' if pct >= 85 else 'NOT MET'} ({pct:.0f}%)",
        f"target full path ≥ {x_target}× naive ({naive.images_per_s:.2f} img/s): "
        f"{'MET' if (full.x_naive or 0) >= x_target else 'NOT MET'} ({full.x_naive:.2f}×)",
        f"model-only at {model.pct_best_bound:.0f}% of the machine's best GEMM bound",
    ]
    return {
        "model_only": asdict(model),
        "full_path": asdict(full),
        "pct_model_only": pct,
        "x_naive": full.x_naive,
        "lines": lines,
    }


if __name__ == "__main__":
    main()
