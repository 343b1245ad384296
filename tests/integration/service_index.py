"""The service tests' real server: a small index (synthetic images, tiny DINOv3, real FAISS)
and `visrag serve` on it in a subprocess on a loopback port."""

from __future__ import annotations

import os
import socket
import subprocess
from pathlib import Path
from typing import Any

from bench.server import serve_command

REPO = Path(__file__).resolve().parents[2]


def build_small_index(
    root: Path, tiny_dinov3: Path, text_encoder: Any, taxonomy: Any, *, n: int = 24
) -> Path:
    """Generate ``n`` images under ``root/data`` and build ``root/art``; returns ``root``."""
    from indexer.build.pipeline import build_index
    from indexer.synthetic.generator import generate_dataset
    from models.image_encoder import load_image_encoder

    generate_dataset(root / "data", n, seed=0, image_size=(160, 120))
    encoder = load_image_encoder(tiny_dinov3, device="cpu", image_size=64)
    build_index(
        root / "data",
        root / "art",
        image_encoder=encoder,
        text_encoder=text_encoder,
        taxonomy=taxonomy,
        progress=False,
    )
    return root


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def server_env(**extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("VISRAG_")}
    env.update(
        HF_HUB_OFFLINE="1",
        VISRAG_DEVICE="cpu",
        VISRAG_LOG_LEVEL="warning",
        VISRAG_MAX_UPLOAD_BYTES="2000000",
        VISRAG_MAX_BATCH_SIZE="8",
        VISRAG_MAX_WAIT_MS="100",
        # this checkout's client package too (the wire schemas), not an installed copy
        PYTHONPATH=os.pathsep.join([str(REPO), str(REPO / "client")]),
    )
    env.update(extra)
    return env


def start_server(artifacts: Path, port: int, log: Path, **env: str) -> subprocess.Popen[bytes]:
    with log.open("wb") as out:
        return subprocess.Popen(
            serve_command(artifacts, port),
            cwd=REPO,
            env=server_env(**env),
            stdout=out,
            stderr=subprocess.STDOUT,
        )


def stop_server(proc: subprocess.Popen[bytes]) -> None:
    """Terminate the server; kill it if it has not exited within 20 s."""
    proc.terminate()
    try:
        proc.wait(20)
    except subprocess.TimeoutExpired:
        proc.kill()
