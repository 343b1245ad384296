"""Fixtures of the API tests: the app built by ``create_app(settings, resources=fakes)``."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from api_fakes import Fakes, wait_ready
from fastapi.testclient import TestClient

from app.main import create_app
from app.settings import Settings


@pytest.fixture
def fakes(tmp_path: Path) -> Fakes:
    return Fakes(tmp_path)


@pytest.fixture
def make_client(fakes: Fakes) -> Iterator[Callable[..., TestClient]]:
    """Build an app with fakes and settings overrides; the client is entered (lifespan runs)."""
    clients: list[TestClient] = []

    def make(*, ready: bool = True, raise_errors: bool = True, **overrides: Any) -> TestClient:
        settings = Settings(_env_file=None, **overrides)  # type: ignore[call-arg]
        app = create_app(settings, resources=fakes.resources)
        client = TestClient(app, raise_server_exceptions=raise_errors)
        client.__enter__()
        clients.append(client)
        if ready:
            wait_ready(client)
        return client

    yield make
    for client in clients:
        client.__exit__(None, None, None)


@pytest.fixture
def client(make_client: Callable[..., TestClient]) -> TestClient:
    return make_client()
