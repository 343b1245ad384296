"""Replay issue 12's service attacks on a loopback server and print what happened (JSON).

- ``burst``: ``--burst`` concurrent uploads of a tiny PNG of ``--side``² pixels (7999² = 62 KB on
  the wire, ~256 MB decoded; ``--grey16``: a 16-bit greyscale PNG): the server's peak RSS growth
  (VmHWM, reset first) and RSS after.
- ``messages``: ``--burst`` parallel ``/context?format=messages``, each with its own
  ``max_image_side`` (so no thumbnail is cached): the same RSS figures. Point it at a server whose
  catalogue images are large (e.g. 36-MP PNGs) to see the neighbours' decodes.
- ``shed``: ``--clients`` clients at once against a small queue (start the server with
  ``VISRAG_MAX_QUEUE=4``): how many got 429 and how fast (median seconds to the 429).
- ``headers``: a connection that sends half a request line and stalls: seconds until the server
  closes it.
- ``trickle``: ``--clients`` connections each send their headers and the start of an upload, then
  one body byte every ``--interval`` seconds; meanwhile ``--calls`` normal ``/retrieve`` calls in
  a row: their statuses and latencies, and how (and when) the server ended each slow upload.

Run: ``python -m bench.attacks --url http://127.0.0.1:PORT --pid PID [--api-key K] burst shed
headers trickle``. Only point it at a server you started on 127.0.0.1.
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
import numpy as np
from PIL import Image


def status(pid: int) -> dict[str, float]:
    out = {}
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        name, _, value = line.partition(":")
        if name in ("VmRSS", "VmHWM"):
            out[name] = int(value.split()[0]) / 1024  # MB
    return out


def png(side: int, *, grey16: bool = False) -> bytes:
    out = io.BytesIO()
    image = Image.linear_gradient("L").resize((side, side))
    if grey16:  # mode I;16: Pillow decodes it as 16-bit greyscale
        Image.fromarray(np.asarray(image, dtype=np.uint16) * 257).save(out, format="PNG")
    else:
        image.convert("RGB").save(out, format="PNG")
    return out.getvalue()


async def _post_all(
    url: str, n: int, data: bytes, headers: dict[str, str], *, messages: bool = False
) -> list[tuple[int, float]]:
    limits = httpx.Limits(max_connections=n)
    async with httpx.AsyncClient(limits=limits, timeout=600, headers=headers) as client:

        async def one(i: int) -> tuple[int, float]:
            start = time.perf_counter()
            files = {"image": ("a.png", data, "image/png")}
            if messages:  # a distinct max_image_side each: no thumbnail comes from the cache
                form = {"format": "messages", "max_image_side": str(300 + i), "k": "5"}
                r = await client.post(f"{url}/context", files=files, data=form)
            else:
                r = await client.post(f"{url}/retrieve", files=files)
            return r.status_code, time.perf_counter() - start

        return await asyncio.gather(*(one(i) for i in range(n)))


def burst(args: argparse.Namespace, headers: dict[str, str], *, messages: bool) -> dict[str, Any]:
    data = png(256) if messages else png(args.side, grey16=args.grey16)
    asyncio.run(_post_all(args.url, 1, data, headers))  # warm the path once
    Path(f"/proc/{args.pid}/clear_refs").write_text("5")  # reset VmHWM
    before = status(args.pid)
    results = asyncio.run(_post_all(args.url, args.burst, data, headers, messages=messages))
    peak = status(args.pid)
    time.sleep(2.0)
    after = status(args.pid)
    return {
        "png_bytes": len(data),
        "side": None if messages else args.side,
        "requests": args.burst,
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


_PART_HEAD = (
    b'--xyz\r\nContent-Disposition: form-data; name="image"; filename="a.jpg"\r\n'
    b"Content-Type: image/jpeg\r\n\r\n\xff\xd8\xff"
)


async def _trickler(
    host: str, port: int, headers: dict[str, str], interval_s: float, max_s: float
) -> tuple[str, float]:
    """One slow upload: a byte per ``interval_s`` until the server answers or closes."""
    reader, writer = await asyncio.open_connection(host, port)
    lines = [
        "POST /retrieve HTTP/1.1",
        f"Host: {host}",
        "Content-Type: multipart/form-data; boundary=xyz",
        f"Content-Length: {len(_PART_HEAD) + 100_000}",
        *(f"{k}: {v}" for k, v in headers.items()),
    ]
    writer.write(("\r\n".join(lines) + "\r\n\r\n").encode() + _PART_HEAD)
    start = time.perf_counter()
    try:
        while time.perf_counter() - start < max_s:
            try:
                line = await asyncio.wait_for(reader.readline(), interval_s)
            except TimeoutError:
                writer.write(b"\0")
                await writer.drain()
                continue
            return (line.decode().strip() or "closed"), time.perf_counter() - start
        return "still open", time.perf_counter() - start
    except OSError:
        return "closed", time.perf_counter() - start
    finally:
        writer.close()


async def trickle_while_calling(
    url: str,
    *,
    clients: int,
    interval_s: float,
    calls: int,
    headers: dict[str, str],
    max_s: float = 60.0,
) -> dict[str, Any]:
    """``clients`` slow uploads at once, and ``calls`` normal /retrieve calls in a row meanwhile."""
    parsed = urlparse(url)
    host, port = parsed.hostname or "127.0.0.1", parsed.port or 80
    slow = [
        asyncio.create_task(_trickler(host, port, headers, interval_s, max_s))
        for _ in range(clients)
    ]
    await asyncio.sleep(1.0)  # every slow upload is being received by now
    data = png(256)
    normal: list[tuple[int, float]] = []
    async with httpx.AsyncClient(timeout=60, headers=headers) as client:
        for _ in range(calls):
            start = time.perf_counter()
            r = await client.post(f"{url}/retrieve", files={"image": ("a.png", data, "image/png")})
            normal.append((r.status_code, time.perf_counter() - start))
    ended = await asyncio.gather(*slow)
    return {
        "slow_uploads": clients,
        "interval_s": interval_s,
        "normal_statuses": [s for s, _ in normal],
        "normal_max_s": round(max(t for _, t in normal), 3),
        "slow_answers": dict(Counter(a for a, _ in ended)),
        "slow_closed_after_s": round(statistics.median(t for _, t in ended), 1),
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
    ap.add_argument(
        "attacks", nargs="+", choices=["burst", "messages", "shed", "headers", "trickle"]
    )
    ap.add_argument("--url", required=True)
    ap.add_argument("--pid", type=int)
    ap.add_argument("--api-key")
    ap.add_argument("--side", type=int, default=7999)
    ap.add_argument("--burst", type=int, default=16)
    ap.add_argument("--grey16", action="store_true", help="burst: a 16-bit greyscale PNG")
    ap.add_argument("--clients", type=int, default=128)
    ap.add_argument("--interval", type=float, default=2.0, help="trickle: seconds per byte")
    ap.add_argument("--calls", type=int, default=5, help="trickle: normal calls meanwhile")
    args = ap.parse_args()
    if urlparse(args.url).hostname not in ("127.0.0.1", "localhost", "::1"):
        ap.error("loopback servers only")
    headers = {"Authorization": f"Bearer {args.api_key}"} if args.api_key else {}
    out: dict[str, Any] = {}
    for attack in args.attacks:
        if attack in ("burst", "messages"):
            if args.pid is None:
                ap.error(f"{attack} needs --pid")
            out[attack] = burst(args, headers, messages=attack == "messages")
        elif attack == "shed":
            out["shed"] = shed(args, headers)
        elif attack == "trickle":
            out["trickle"] = asyncio.run(
                trickle_while_calling(
                    args.url,
                    clients=args.clients,
                    interval_s=args.interval,
                    calls=args.calls,
                    headers=headers,
                )
            )
        else:
            out["headers"] = headers_attack(args)
    print(json.dumps(out, indent=2))


if __name__ == "__main__":
    main()
