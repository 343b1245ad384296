"""Replay issue 12's service attacks on a loopback server and print what happened (JSON).

- ``burst``: ``--burst`` concurrent uploads of a tiny PNG of ``--side``² pixels (7999² = 62 KB on
  the wire, ~256 MB decoded): the server's peak RSS growth (VmHWM, reset first) and RSS after.
- ``shed``: ``--clients`` clients at once against a small queue (start the server with
  ``VISRAG_MAX_QUEUE=4``): how many got 429 and how fast (median seconds to the 429).
- ``headers``: a connection that sends half a request line and stalls: seconds until the server
  closes it.

Run: ``python -m bench.attacks --url http://127.0.0.1:PORT --pid PID [--api-key K] burst shed
headers``. Only point it at a server you started on 127.0.0.1.
"""

from __future__ import annotations

import argparse
import asyncio
import io
import json
import socket
import statistics
import time
from collections import Counter
from pathlib import Path
from typing import Any
from urllib.parse import urlparse

import httpx
from PIL import Image


def status(pid: int) -> dict[str, float]:
    out = {}
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        name, _, value = line.partition(":")
        if name in ("VmRSS", "VmHWM"):
            out[name] = int(value.split()[0]) / 1024  # MB
    return out


def png(side: int) -> bytes:
    out = io.BytesIO()
    Image.linear_gradient("L").resize((side, side)).convert("RGB").save(out, format="PNG")
    return out.getvalue()


async def _post_all(
    url: str, n: int, data: bytes, headers: dict[str, str]
) -> list[tuple[int, float]]:
    limits = httpx.Limits(max_connections=n)
    async with httpx.AsyncClient(limits=limits, timeout=600, headers=headers) as client:

        async def one() -> tuple[int, float]:
            start = time.perf_counter()
            r = await client.post(f"{url}/retrieve", files={"image": ("a.png", data, "image/png")})
            return r.status_code, time.perf_counter() - start

        return await asyncio.gather(*(one() for _ in range(n)))


def burst(args: argparse.Namespace, headers: dict[str, str]) -> dict[str, Any]:
    data = png(args.side)
    asyncio.run(_post_all(args.url, 1, data, headers))  # warm the path once
    Path(f"/proc/{args.pid}/clear_refs").write_text("5")  # reset VmHWM
    before = status(args.pid)
    results = asyncio.run(_post_all(args.url, args.burst, data, headers))
    peak = status(args.pid)
    time.sleep(2.0)
    after = status(args.pid)
    return {
        "png_bytes": len(data),
        "side": args.side,
        "uploads": args.burst,
        "statuses": dict(Counter(s for s, _ in results)),
        "rss_before_mb": before["VmRSS"],
        "peak_growth_mb": round(peak["VmHWM"] - before["VmRSS"], 1),
        "rss_after_mb": after["VmRSS"],
        "held_after_mb": round(after["VmRSS"] - before["VmRSS"], 1),
        "seconds_max": round(max(t for _, t in results), 2),
    }


def shed(args: argparse.Namespace, headers: dict[str, str]) -> dict[str, Any]:
    data = png(1024)
    results = asyncio.run(_post_all(args.url, args.clients, data, headers))
    refused = [t for s, t in results if s == 429]
    served = [t for s, t in results if s == 200]
    return {
        "clients": args.clients,
        "ok": len(served),
        "429": len(refused),
        "other": len(results) - len(served) - len(refused),
        "median_s_to_429": round(statistics.median(refused), 3) if refused else None,
        "max_s_to_429": round(max(refused), 3) if refused else None,
        "median_s_ok": round(statistics.median(served), 3) if served else None,
    }


def headers_attack(args: argparse.Namespace) -> dict[str, Any]:
    parsed = urlparse(args.url)
    with socket.create_connection((parsed.hostname, parsed.port)) as sock:
        sock.sendall(b"POST /retrieve HTTP/1.1\r\nHost: x\r\nContent-Ty")
        start = time.perf_counter()
        sock.settimeout(120)
        answer = b""
        try:
            while chunk := sock.recv(4096):
                answer += chunk
        except TimeoutError:
            return {"closed": False, "after_s": 120}
    return {
        "closed": True,
        "after_s": round(time.perf_counter() - start, 2),
        "answer": answer.split(b"\r\n", 1)[0].decode(),
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("attacks", nargs="+", choices=["burst", "shed", "headers"])
    ap.add_argument("--url", required=True)
    ap.add_argument("--pid", type=int)
    ap.add_argument("--api-key")
    ap.add_argument("--side", type=int, default=7999)
    ap.add_argument("--burst", type=int, default=16)
    ap.add_argument("--clients", type=int, default=128)
    args = ap.parse_args()
    if urlparse(args.url).hostname not in ("127.0.0.1", "localhost", "::1"):
        ap.error("loopback servers only")
    headers = {"Authorization": f"Bearer {args.api_key}"} if args.api_key else {}
    out: dict[str, Any] = {}
    for attack in args.attacks:
        if attack == "burst":
            if args.pid is None:
                ap.error("burst needs --pid")
            out["burst"] = burst(args, headers)
        elif attack == "shed":
            out["shed"] = shed(args, headers)
        else:
            out["headers"] = headers_attack(args)
    print(json.dumps(out, indent=2))


if __name__ == "__main__":
    main()
