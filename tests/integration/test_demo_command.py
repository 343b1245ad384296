"""`visrag demo` wiring: generate -> split -> index (tiny DINOv3, loud warning) -> serve.

The server itself is replaced by a recorder (test_server.py covers a real one); the resources the
command hands it are then served through TestClient to prove they answer queries.
"""

from __future__ import annotations

import json
import time

import pytest
from fastapi.testclient import TestClient
from typer.testing import CliRunner

pytestmark = pytest.mark.slow


def test_demo_builds_once_warns_and_serves(tmp_path, monkeypatch):
    import app.server
    from app.cli import cli
    from app.main import create_app

    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("VISRAG_DEVICE", "cpu")
    served = []
    monkeypatch.setattr(
        app.server, "run_server", lambda s, resources=None: served.append((s, resources)) or 0
    )
    work = tmp_path / "demo"
    args = [
        "demo",
        "--tiny",
        "--n",
        "20",
        "--port",
        "18999",
        "--workdir",
        str(work),
        "--image-size",
        "64",
    ]

    result = CliRunner().invoke(cli, args)
    assert result.exit_code == 0, result.output
    assert "TINY, RANDOMLY INITIALISED DINOv3" in result.output
    assert "NOT A REAL MODEL" in result.output
    assert "http://127.0.0.1:18999/" in result.output
    settings, resources = served[-1]
    assert settings.artifacts == work / "artifacts" and settings.port == 18999
    manifest = json.loads((work / "artifacts" / "manifest.json").read_text())
    train = (work / "split" / "train.jsonl").read_text().splitlines()
    assert resources.retriever.size == len(train) < 20  # the test split is held out
    assert "tiny-random-dinov3" in manifest["image_model"]["id"]

    again = CliRunner().invoke(cli, args)
    assert again.exit_code == 0 and "reusing the demo index" in again.output

    with TestClient(create_app(settings, resources=resources)) as client:
        for _ in range(500):
            if client.get("/ready").status_code == 200:
                break
            time.sleep(0.02)
        image = sorted((work / "data").glob("*.jpg"))[0].read_bytes()
        r = client.post("/context", files={"image": ("q.jpg", image, "image/jpeg")})
        assert r.status_code == 200, r.text
        assert len(r.json()["cases"]) == 5
        assert client.get("/").status_code == 200


def test_demo_on_a_busy_port_says_so_at_once_and_suggests_another(tmp_path):
    import socket

    from app.cli import cli

    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        work = tmp_path / "demo"
        result = CliRunner().invoke(
            cli, ["demo", "--tiny", "--port", str(port), "--workdir", str(work)]
        )
    assert result.exit_code == 2
    assert f"port {port} on 127.0.0.1 is already in use" in result.output
    assert f"--port {port + 1}" in result.output
    assert not work.exists()  # nothing generated or indexed first
