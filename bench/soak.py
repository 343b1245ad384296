"""Soak test: N requests at C concurrency against a loopback `visrag serve`, RSS watched.

Pass criteria (issue 12): 0 errors, and the server's RSS at the end within 10% of its RSS after
the warm-up. Bounded: it stops after ``--requests`` requests or ``--time-limit`` seconds, whichever
comes first, and stops the server it started.

Two ways to run:

- ``--artifacts DIR``: start ``python -m app.cli serve`` on 127.0.0.1 (a free port) over DIR and
  stop it at the end (``--env KEY=VALUE`` adds server settings);
- ``--url http://127.0.0.1:PORT --pid PID``: an already running server (the pid for its RSS).

The requests cycle through ``/retrieve`` in the three modes and ``/context``, with the images of
``--images`` (a directory of JPEG/PNG files; default: a few generated photos).

``--writer JSONL``: meanwhile, run ``visrag index add DIR --manifest JSONL`` and ``visrag index
remove`` of the added ids in a loop on the served directory (only with ``--artifacts``): requests
must not fail while the directory changes under the server. Whether the server *sees* the change
needs live reload (issue 12 part A); without it, the server keeps serving what it loaded.

Run: ``python -m bench.soak --artifacts art --requests 10000 --concurrency 32 [--out r.json]``.
"""

from __future__ import annotations

import argparse
import asyncio
import io
import itertools
import json
import os
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

import httpx
from PIL import Image

from bench.server import start_server

REPO = Path(__file__).resolve().parents[1]

FORMS: list[tuple[str, dict[str, str]]] = [
    ("/retrieve", {"k": "5", "mode": "image"}),
    ("/retrieve", {"k": "5", "mode": "hybrid", "text": "a scratch on the rear bumper"}),
    ("/retrieve", {"k": "5", "mode": "rerank"}),
    ("/context", {"k": "5", "format": "markdown"}),
]


def rss_bytes(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) * 1024
    raise RuntimeError(f"no VmRSS for pid {pid}")


def images(folder: Path | None) -> list[tuple[str, bytes, str]]:
    if folder is not None:
        files = sorted(
            p for p in folder.rglob("*") if p.suffix.lower() in (".jpg", ".jpeg", ".png")
        )
        if not files:
            raise SystemExit(f"no JPEG/PNG files under {folder}")
        kinds = {".png": "image/png"}
        return [
            (p.name, p.read_bytes(), kinds.get(p.suffix.lower(), "image/jpeg")) for p in files[:64]
        ]
    out = []
    for i in range(8):
        buf = io.BytesIO()
        Image.new("RGB", (320 + 16 * i, 240), (30 * i, 200 - 20 * i, 90)).save(buf, format="JPEG")
        out.append((f"gen{i}.jpg", buf.getvalue(), "image/jpeg"))
    return out


async def load(
    base: str,
    n: int,
    concurrency: int,
    pics: list[tuple[str, bytes, str]],
    headers: dict[str, str],
    deadline: float,
) -> dict[str, Any]:
    counter = itertools.count()
    latencies: list[float] = []
    errors: dict[str, int] = {}
    limits = httpx.Limits(max_connections=concurrency, max_keepalive_connections=concurrency)
    async with httpx.AsyncClient(
        base_url=base, limits=limits, timeout=120, headers=headers
    ) as client:

        async def worker() -> None:
            while (i := next(counter)) < n and time.monotonic() < deadline:
                path, form = FORMS[i % len(FORMS)]
                name, data, ctype = pics[i % len(pics)]
                start = time.perf_counter()
                try:
                    r = await client.post(path, files={"image": (name, data, ctype)}, data=form)
                    key = None if r.status_code == 200 else f"{r.status_code} {r.text[:120]}"
                except httpx.HTTPError as exc:
                    key = f"{type(exc).__name__}: {exc}"
                latencies.append(time.perf_counter() - start)
                if key is not None:
                    errors[key] = errors.get(key, 0) + 1

        start = time.perf_counter()
        await asyncio.gather(*(worker() for _ in range(concurrency)))
        elapsed = time.perf_counter() - start
    latencies.sort()

    def q(p: float) -> float:
        return round(1000 * latencies[min(len(latencies) - 1, int(p * len(latencies)))], 1)

    return {
        "requests": len(latencies),
        "errors": sum(errors.values()),
        "error_kinds": errors,
        "seconds": round(elapsed, 1),
        "rps": round(len(latencies) / elapsed, 1),
        "p50_ms": q(0.5),
        "p99_ms": q(0.99),
    }


def writer_loop(
    artifacts: Path, manifest: Path, stop: threading.Event, out: dict[str, Any]
) -> None:
    """index add, then remove of the added ids, until ``stop``; counts runs and failures."""
    ids = [json.loads(line)["id"] for line in manifest.read_text().splitlines() if line.strip()]
    runs = failures = 0
    base = [sys.executable, "-m", "app.cli", "index"]
    while not stop.is_set():
        for cmd in (
            base + ["add", str(artifacts), "--manifest", str(manifest)],
            base + ["remove", str(artifacts), *ids],
        ):
            done = subprocess.run(cmd, cwd=REPO, capture_output=True, text=True, check=False)
            runs += 1
            if done.returncode != 0:
                failures += 1
                out["last_failure"] = (done.stderr or done.stdout)[-500:]
    out.update(writer_runs=runs, writer_failures=failures)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--artifacts", type=Path)
    ap.add_argument("--url")
    ap.add_argument("--pid", type=int)
    ap.add_argument("--env", action="append", default=[], help="server setting KEY=VALUE")
    ap.add_argument("--api-key")
    ap.add_argument("--images", type=Path)
    ap.add_argument("--requests", type=int, default=10_000)
    ap.add_argument("--concurrency", type=int, default=32)
    ap.add_argument("--warmup", type=int, default=500)
    ap.add_argument("--time-limit", type=float, default=1200.0, help="stop after this (s)")
    ap.add_argument("--writer", type=Path, help="JSONL of records to add/remove meanwhile")
    ap.add_argument("--out", type=Path)
    args = ap.parse_args()
    if (args.artifacts is None) == (args.url is None):
        ap.error("give --artifacts (start a server) or --url with --pid")
    proc = None
    if args.artifacts is not None:
        overrides = dict(pair.split("=", 1) for pair in args.env)
        proc, base = start_server(
            args.artifacts,
            args.artifacts.parent / "soak-server.log",
            env=os.environ,
            overrides=overrides,
        )
        pid = proc.pid
    else:
        base, pid = args.url, args.pid
        if pid is None:
            ap.error("--url needs --pid (the server's RSS is the measure)")
    headers = {"Authorization": f"Bearer {args.api_key}"} if args.api_key else {}
    pics = images(args.images)
    deadline = time.monotonic() + args.time_limit
    stop, writer_out = threading.Event(), {}
    try:
        warm = asyncio.run(load(base, args.warmup, args.concurrency, pics, headers, deadline))
        rss_warm = rss_bytes(pid)
        writer = None
        if args.writer is not None and args.artifacts is not None:
            writer_args = (args.artifacts, args.writer, stop, writer_out)
            writer = threading.Thread(target=writer_loop, args=writer_args)
            writer.start()
        result = asyncio.run(load(base, args.requests, args.concurrency, pics, headers, deadline))
        stop.set()
        if writer is not None:
            writer.join(600)
        time.sleep(1.0)
        rss_end = rss_bytes(pid)
    finally:
        stop.set()
        if proc is not None:
            proc.terminate()
            proc.wait(60)
    growth = (rss_end - rss_warm) / rss_warm
    report = {
        "warmup": warm,
        "soak": result,
        **writer_out,
        "rss_after_warmup_mb": round(rss_warm / 2**20, 1),
        "rss_end_mb": round(rss_end / 2**20, 1),
        "rss_growth_pct": round(100 * growth, 2),
        "passed": result["errors"] == 0
        and result["requests"] == args.requests
        and growth <= 0.10
        and writer_out.get("writer_failures", 0) == 0,
    }
    text = json.dumps(report, indent=2)
    print(text)
    if args.out is not None:
        args.out.write_text(text + "\n")
    sys.exit(0 if report["passed"] else 1)


if __name__ == "__main__":
    main()
