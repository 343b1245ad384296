"""Service load test: `visrag serve` under 1/4/16/64 concurrent clients, beside the offline encoder.

In one run, on one machine:

1. builds a small index of synthetic photos with the image model (default: a DINOv3 ViT-S/16-shaped
   network with random weights, saved as a real checkpoint: same FLOPs as the released one, so the
   timings are representative and nothing is downloaded);
2. measures the **offline batched encoder throughput** (``encode_preprocessed`` on batches of
   ``max_batch_size`` preprocessed query photos, no HTTP, no decode) — the baseline — before the
   server starts and again after it stops, keeping the better figure;
3. starts ``python -m app.cli serve`` in its own process on 127.0.0.1 and, from this process,
   keeps ``c`` clients posting photos to ``/retrieve`` for ``--duration`` seconds at each
   concurrency: throughput, p50/p95/p99, errors, the batch sizes the server formed and the time
   per stage (from ``/metrics`` before/after each level).

"Overhead outside the model" = 1 - (queue + encode) / client latency: decode, preprocess, search,
rendering, multipart parsing, JSON and the loopback HTTP round trip. The load generator shares the
machine's cores with the server (as it must, on loopback), so it slows the server a little: each
level reports the CPU it and the server used per request (the server split into its model threads
and the rest) and the "CPU ceiling", the requests/s the cores could serve if the model cost what
it costs offline and the rest of the server and the load generator what they cost here. The bench
process sets the allocator policy of ``visrag serve`` (``models.allocator.tune_allocator``)
before the offline measurement, so both sides run the encoder in the same memory regime.

Run: ``python -m bench.service [--duration 20] [--out results.json] [--markdown]``.
"""

from __future__ import annotations

import argparse
import asyncio
import datetime as dt
import json
import os
import resource
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import httpx
import numpy as np
from prometheus_client.parser import text_string_to_metric_families

from bench.machine import cpu_model
from bench.server import start_server

REPO = Path(__file__).resolve().parents[1]

VIT_S16 = {
    "hidden_size": 384,
    "num_hidden_layers": 12,
    "num_attention_heads": 6,
    "intermediate_size": 1536,
}
STAGES = ("decode", "preprocess", "queue", "encode", "search", "render")


def prepare(workdir: Path, *, image_model: str | None, image_size: int, n_index: int) -> dict:
    """The model checkpoint, an index of ``n_index`` synthetic photos, and query photos."""
    from indexer.build.pipeline import build_index
    from indexer.synthetic.generator import generate_dataset
    from models.image_encoder import load_image_encoder
    from models.taxonomy import load_taxonomy
    from models.testing import make_tiny_dinov3
    from models.text_encoder import load_text_encoder

    if image_model is None:
        model = workdir / "random-vits16-dinov3"
        if not (model / "config.json").is_file():
            make_tiny_dinov3(model, **VIT_S16)
        image_model = str(model)
    generate_dataset(workdir / "data", n_index, seed=0)
    generate_dataset(workdir / "queries", 32, seed=1)
    encoder = load_image_encoder(image_model, device="cpu", image_size=image_size)
    build_index(
        workdir / "data",
        workdir / "art",
        image_encoder=encoder,
        text_encoder=load_text_encoder(device="cpu"),
        taxonomy=load_taxonomy(),
        progress=False,
    )
    queries = [p.read_bytes() for p in sorted((workdir / "queries").glob("*.jpg"))]
    return {"image_model": image_model, "encoder": encoder, "queries": queries}


def offline_throughput(encoder: Any, queries: list[bytes], *, batch: int, seconds: float) -> dict:
    """Images/s of the encoder alone on batches of ``batch`` preprocessed photos."""
    from models.imaging import decode_image

    pixels = [encoder.preprocess(decode_image(q)) for q in queries[:batch]]
    while len(pixels) < batch:
        pixels += pixels[: batch - len(pixels)]
    encoder.encode_preprocessed(pixels, batch_size=batch)  # warm-up
    times = []
    begin = time.perf_counter()
    while time.perf_counter() - begin < seconds or len(times) < 3:
        t0 = time.perf_counter()
        encoder.encode_preprocessed(pixels, batch_size=batch)
        times.append(time.perf_counter() - t0)
    per_batch = float(np.median(times))
    return {
        "batch": batch,
        "images_per_s": batch / per_batch,
        "batches_timed": len(times),
        "shape": list(pixels[0].shape),
    }


def scrape(base: str) -> dict[tuple[str, tuple], float]:
    text = httpx.get(f"{base}/metrics", timeout=10).text
    out = {}
    for family in text_string_to_metric_families(text):
        for s in family.samples:
            out[(s.name, tuple(sorted(s.labels.items())))] = s.value
    return out


def cpu_seconds(server_pid: int) -> tuple[float, dict[str, float]]:
    """CPU seconds used so far by this process (the load generator) and by each server thread."""
    usage = resource.getrusage(resource.RUSAGE_SELF)
    tick = os.sysconf("SC_CLK_TCK")
    threads = {}
    for tid in os.listdir(f"/proc/{server_pid}/task"):
        try:
            fields = Path(f"/proc/{server_pid}/task/{tid}/stat").read_text().rsplit(")", 1)[1]
        except OSError:  # the thread ended
            continue
        utime, stime = fields.split()[11:13]
        threads[tid] = (int(utime) + int(stime)) / tick
    return usage.ru_utime + usage.ru_stime, threads


def cpu_split(before: tuple, after: tuple, *, requests: int, model_threads: int) -> dict:
    """Core-ms per request: the load generator, the server's model threads, the rest of it.

    The model threads are the server's ``model_threads`` busiest threads (the inference thread
    and its OpenMP workers: nothing else in the server comes near them).
    """
    per_thread = sorted((s - before[1].get(t, 0.0) for t, s in after[1].items()), reverse=True)
    n = max(1, requests)
    return {
        "client_core_ms": 1000 * (after[0] - before[0]) / n,
        "server_model_core_ms": 1000 * sum(per_thread[:model_threads]) / n,
        "server_other_core_ms": 1000 * sum(per_thread[model_threads:]) / n,
    }


def batch_histogram(before: dict, after: dict) -> dict[str, int]:
    """Encoder calls per batch-size bucket during a level ('<=8': calls of 7 or 8 images...)."""
    les = sorted(
        {dict(k[1])["le"] for k in after if k[0] == "visrag_batch_size_bucket"},
        key=lambda le: float(le),
    )
    hist, previous = {}, 0.0
    for le in les:
        key = ("visrag_batch_size_bucket", (("le", le),))
        cumulative = after.get(key, 0.0) - before.get(key, 0.0)
        if cumulative - previous > 0:
            label = "inf" if le == "+Inf" else str(int(float(le)))
            hist[f"<={label}"] = int(cumulative - previous)
        previous = cumulative
    return hist


async def run_level(
    base: str,
    queries: list[bytes],
    *,
    concurrency: int,
    duration: float,
    warmup: float,
    max_requests: int,
    server_pid: int,
    model_threads: int,
) -> dict[str, Any]:
    """``concurrency`` clients in a closed loop; latencies counted after ``warmup`` seconds."""
    latencies: list[float] = []
    timings: list[dict[str, float]] = []  # the server's own per-stage ms, from each response
    errors: dict[str, int] = {}
    counted = 0
    start = time.perf_counter()
    measure_from = start + warmup
    stop_at = measure_from + duration
    limits = httpx.Limits(max_connections=concurrency, max_keepalive_connections=concurrency)
    snapshot: dict[str, Any] = {}

    async with httpx.AsyncClient(base_url=base, timeout=120, limits=limits) as client:

        async def take_snapshot() -> None:
            await asyncio.sleep(max(0.0, measure_from - time.perf_counter()))
            snapshot["metrics"] = await asyncio.to_thread(scrape, base)
            snapshot["t"] = time.perf_counter()
            snapshot["cpu"] = cpu_seconds(server_pid)

        async def worker(i: int) -> None:
            nonlocal counted
            j = i
            while time.perf_counter() < stop_at and counted < max_requests:
                data = queries[j % len(queries)]
                j += concurrency
                t0 = time.perf_counter()
                try:
                    r = await client.post(
                        "/retrieve",
                        files={"image": ("q.jpg", data, "image/jpeg")},
                        data={"k": "5"},
                    )
                    status = str(r.status_code)
                except httpx.HTTPError as exc:
                    status = type(exc).__name__
                t1 = time.perf_counter()
                if t0 >= measure_from and t1 <= stop_at:
                    counted += 1
                    if status == "200":
                        latencies.append(t1 - t0)
                        timings.append(r.json()["timings"])
                    else:
                        errors[status] = errors.get(status, 0) + 1

        snap = asyncio.ensure_future(take_snapshot())
        await asyncio.gather(*(worker(i) for i in range(concurrency)))
        await snap
    cpu_after = cpu_seconds(server_pid)
    elapsed = min(stop_at, time.perf_counter()) - snapshot["t"]
    after = await asyncio.to_thread(scrape, base)
    before = snapshot["metrics"]

    def delta(name: str, labels: tuple = ()) -> float:
        return after.get((name, labels), 0.0) - before.get((name, labels), 0.0)

    calls = delta("visrag_batch_size_count")
    images = delta("visrag_batch_size_sum")
    stages_ms = {s: float(np.mean([t.get(s, 0.0) for t in timings] or [np.nan])) for s in STAGES}
    lat = np.array(latencies) * 1000 if latencies else np.array([np.nan])
    mean_ms = float(np.mean(lat))
    # Per request, matched: the share of its latency not spent queueing for or in the encoder.
    model_ms = np.array([t["queue"] + t["encode"] for t in timings] or [np.nan])
    overhead = float(1 - model_ms.sum() / lat.sum()) if latencies else float("nan")
    return {
        "concurrency": concurrency,
        "requests": len(latencies),
        "errors": errors,
        "seconds": round(elapsed, 2),
        "throughput": len(latencies) / elapsed if elapsed > 0 else 0.0,
        "p50_ms": float(np.percentile(lat, 50)),
        "p95_ms": float(np.percentile(lat, 95)),
        "p99_ms": float(np.percentile(lat, 99)),
        "mean_ms": mean_ms,
        "mean_batch": images / calls if calls else 0.0,
        "batches": batch_histogram(before, after),
        "stages_ms": stages_ms,
        "overhead_pct": 100 * overhead,
        "cpu": cpu_split(
            snapshot["cpu"], cpu_after, requests=len(latencies), model_threads=model_threads
        ),
    }


def markdown(result: dict[str, Any]) -> str:
    off = result["offline"]["images_per_s"]
    o = result["offline"]
    lines = [
        f"Offline batched encoder (batch {o['batch']}, same run, before/after the load levels: "
        f"{o['images_per_s_before']:.1f} / {o['images_per_s_after']:.1f} img/s): "
        f"**{off:.1f} img/s** (the better of the two) is the baseline.",
        "",
        "| clients | req/s | % of offline | p50 ms | p95 ms | p99 ms | p99/p50 | errors "
        "| mean batch | batch sizes (calls) | overhead outside model | CPU ceiling |",
        "|---:|---:|---:|---:|---:|---:|---:|---:|---:|---|---:|---:|",
    ]
    for lv in result["levels"]:
        errors = sum(lv["errors"].values())
        batches = ", ".join(f"{k}: {v}" for k, v in lv["batches"].items())
        lines.append(
            f"| {lv['concurrency']} | {lv['throughput']:.2f} | {100 * lv['throughput'] / off:.0f}% "
            f"| {lv['p50_ms']:.0f} | {lv['p95_ms']:.0f} | {lv['p99_ms']:.0f} "
            f"| {lv['p99_ms'] / lv['p50_ms']:.2f} | {errors} | {lv['mean_batch']:.1f} "
            f"| {batches} | {lv['overhead_pct']:.1f}% | {100 * lv['ceiling'] / off:.0f}% |"
        )
    lines += [
        "",
        "Mean server-side time per request (ms, from each response's timings):",
        "",
        "| clients | " + " | ".join(STAGES) + " |",
        "|---:|" + "---:|" * len(STAGES),
    ]
    for lv in result["levels"]:
        cells = " | ".join(f"{lv['stages_ms'][s]:.1f}" for s in STAGES)
        lines.append(f"| {lv['concurrency']} | {cells} |")
    lines += [
        "",
        f"CPU per request (core-ms; {result['machine']['cores']} cores; the offline "
        f"encoder: {o['core_ms_per_image']:.1f} core-ms per image). CPU ceiling = cores / "
        "(offline encoder + server outside the model + load generator), per request:",
        "",
        "| clients | load generator | server model threads | server, other threads "
        "| CPU ceiling req/s |",
        "|---:|---:|---:|---:|---:|",
    ]
    for lv in result["levels"]:
        c = lv["cpu"]
        lines.append(
            f"| {lv['concurrency']} | {c['client_core_ms']:.1f} "
            f"| {c['server_model_core_ms']:.1f} | {c['server_other_core_ms']:.1f} "
            f"| {lv['ceiling']:.1f} |"
        )
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--image-model", help="checkpoint (default: random ViT-S/16-shaped)")
    parser.add_argument("--image-size", type=int, default=224)
    parser.add_argument("--n-index", type=int, default=60, help="indexed synthetic photos")
    parser.add_argument("--concurrency", default="1,4,16,64")
    parser.add_argument("--duration", type=float, default=20.0, help="measured seconds per level")
    parser.add_argument("--warmup", type=float, default=3.0, help="unmeasured seconds per level")
    parser.add_argument("--max-requests", type=int, default=5000, help="cap per level")
    parser.add_argument("--max-batch-size", type=int, default=16)
    parser.add_argument("--max-wait-ms", type=float, default=5.0)
    parser.add_argument("--offline-seconds", type=float, default=8.0)
    parser.add_argument("--workdir", type=Path, help="default: a temporary directory")
    parser.add_argument("--out", type=Path, help="write the results as JSON here")
    parser.add_argument("--markdown", action="store_true", help="print the docs table")
    args = parser.parse_args()

    import torch

    from models.allocator import tune_allocator

    # The offline baseline runs under the allocator policy `visrag serve` sets for itself, so
    # the comparison is between the same encoder in the same memory regime, not between mallocs.
    allocator_tuned = tune_allocator()
    os.environ["HF_HUB_OFFLINE"] = "1"
    started = time.perf_counter()
    tmp = tempfile.TemporaryDirectory(prefix="visrag-bench-")
    workdir = args.workdir or Path(tmp.name)
    machine = {
        "cpu": cpu_model(),
        "cores": os.cpu_count(),
        "torch_threads": torch.get_num_threads(),
        "torch": torch.__version__,
        "loadavg_at_start": os.getloadavg(),
        "allocator_tuned": allocator_tuned,
    }
    print(f"machine: {machine}", flush=True)
    prep = prepare(
        workdir, image_model=args.image_model, image_size=args.image_size, n_index=args.n_index
    )
    encoder = prep["encoder"]
    offline = offline_throughput(
        encoder, prep["queries"], batch=args.max_batch_size, seconds=args.offline_seconds
    )
    offline.update(dtype=encoder.dtype, device=encoder.device)
    print(
        f"offline encoder: {offline['images_per_s']:.2f} img/s (batch {offline['batch']}, "
        f"{offline['shape']}, {encoder.dtype})",
        flush=True,
    )

    env = {
        "VISRAG_DEVICE": "cpu",
        "VISRAG_MAX_BATCH_SIZE": str(args.max_batch_size),
        "VISRAG_MAX_WAIT_MS": str(args.max_wait_ms),
        "VISRAG_MAX_QUEUE": "256",
    }
    clean = {k: v for k, v in os.environ.items() if not k.startswith("VISRAG_")}
    proc, base = start_server(
        workdir / "art", workdir / "server.log", env={**clean, "HF_HUB_OFFLINE": "1"}, overrides=env
    )
    levels = []
    try:
        for c in (int(x) for x in args.concurrency.split(",")):
            level = asyncio.run(
                run_level(
                    base,
                    prep["queries"],
                    concurrency=c,
                    duration=args.duration,
                    warmup=args.warmup,
                    max_requests=args.max_requests,
                    server_pid=proc.pid,
                    model_threads=torch.get_num_threads(),
                )
            )
            level["loadavg_after"] = os.getloadavg()[0]
            levels.append(level)
            print(
                f"c={c:>3}: {level['throughput']:.2f} req/s  p50 {level['p50_ms']:.0f} ms  "
                f"p99 {level['p99_ms']:.0f} ms  errors {level['errors']}  mean batch "
                f"{level['mean_batch']:.1f}  {level['batches']}",
                flush=True,
            )
    finally:
        proc.terminate()
        proc.wait(30)
    # Measured again once the server is gone: on a shared machine the baseline drifts, so the
    # comparison uses the better of the two (the harder target).
    after = offline_throughput(
        encoder, prep["queries"], batch=args.max_batch_size, seconds=args.offline_seconds
    )
    print(f"offline encoder again: {after['images_per_s']:.2f} img/s", flush=True)
    offline["images_per_s_before"] = offline["images_per_s"]
    offline["images_per_s_after"] = after["images_per_s"]
    offline["images_per_s"] = max(offline["images_per_s"], after["images_per_s"])
    # The encoder keeps its torch threads busy: that many cores for 1/throughput per image.
    offline["core_ms_per_image"] = 1000 * torch.get_num_threads() / offline["images_per_s"]
    for level in levels:  # what the cores could serve if nothing but CPU time were shared
        c = level["cpu"]
        per_request = offline["core_ms_per_image"] + c["server_other_core_ms"] + c["client_core_ms"]
        level["ceiling"] = 1000 * machine["cores"] / per_request
    result = {
        "date": dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds"),
        "command": " ".join(["python", "-m", "bench.service", *sys.argv[1:]]),
        "machine": machine,
        "image_model": "random ViT-S/16-shaped DINOv3"
        if args.image_model is None
        else args.image_model,
        "image_size": args.image_size,
        "server": env,
        "offline": offline,
        "levels": levels,
        "seconds": round(time.perf_counter() - started, 1),
    }
    print(markdown(result))
    if args.out:
        args.out.write_text(json.dumps(result, indent=2) + "\n")
    tmp.cleanup()


if __name__ == "__main__":
    main()
