"""A visrag server in a child process, started the way the service benches (and the service
tests, through :func:`serve_command`) start it."""

from __future__ import annotations

import socket
import subprocess
import sys
import time
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import httpx

REPO = Path(__file__).resolve().parents[1]


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on now."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def serve_command(artifacts: Path, port: int) -> list[str]:
    """The command line of ``visrag serve`` on ``artifacts``, on 127.0.0.1:``port``."""
    return [
        sys.executable,
        "-m",
        "app.cli",
        "serve",
        "--host",
        "127.0.0.1",
        "--port",
        str(port),
        "--artifacts",
        str(artifacts),
    ]


def wait_ready(
    base: str, seconds: float, *, proc: subprocess.Popen[Any] | None = None, interval: float = 0.25
) -> bool:
    """Poll ``base/ready`` until it answers 200 (True), ``seconds`` pass or ``proc`` exits."""
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline and (proc is None or proc.poll() is None):
        try:
            if httpx.get(f"{base}/ready", timeout=2).status_code == 200:
                return True
        except httpx.TransportError:
            pass
        time.sleep(interval)
    return False


def start_server(
    artifacts: Path,
    log: Path,
    *,
    env: Mapping[str, str],
    overrides: Mapping[str, str],
    port: int | None = None,
) -> tuple[subprocess.Popen[bytes], str]:
    """Start ``app.cli serve`` on ``artifacts`` and wait (180 s at most) until ``/ready`` says 200.

    The child gets ``env`` with the repository on ``PYTHONPATH`` and log level warning, then
    ``overrides``; its output goes to ``log``. Returns the process and its base URL; exits the
    bench with the log when the server dies or is not ready in time.
    """
    port = free_port() if port is None else port
    child_env = {**env, "PYTHONPATH": str(REPO), "VISRAG_LOG_LEVEL": "warning", **overrides}
    with log.open("wb") as out:
        proc = subprocess.Popen(
            serve_command(artifacts, port),
            cwd=REPO,
            env=child_env,
            stdout=out,
            stderr=subprocess.STDOUT,
        )
    base = f"http://127.0.0.1:{port}"
    if wait_ready(base, 180, proc=proc):
        return proc, base
    if proc.poll() is not None:
        raise SystemExit(f"server exited ({proc.returncode}):\n{log.read_text()[-3000:]}")
    proc.kill()
    raise SystemExit(f"server not ready in 180 s:\n{log.read_text()[-3000:]}")
