"""Connecting to Milvus (``visrag[milvus]``): the URI, the token, and the error when it fails.

``VISRAG_MILVUS_URI`` overrides the URI a manifest records (e.g. inside compose);
``VISRAG_MILVUS_TOKEN`` is read from the environment only and never written anywhere. A URI
without a scheme is a Milvus Lite file (one process at a time may open it).
"""

from __future__ import annotations

import os
import threading
from pathlib import Path
from typing import TYPE_CHECKING

from indexer.errors import ArtifactError

if TYPE_CHECKING:
    from pymilvus import MilvusClient

_clients: dict[tuple[str, str], MilvusClient] = {}
_lock = threading.Lock()

URI_ENV = "VISRAG_MILVUS_URI"
TOKEN_ENV = "VISRAG_MILVUS_TOKEN"


class MilvusUnavailableError(ArtifactError):
    """Milvus cannot be reached, or a collection is missing or disagrees with the manifest."""


def resolve_uri(uri: str | None) -> str:
    """The URI to connect to: ``VISRAG_MILVUS_URI`` if set, else the recorded one."""
    chosen = os.environ.get(URI_ENV) or uri
    if not chosen:
        raise MilvusUnavailableError(f"no Milvus URI recorded and {URI_ENV} is not set")
    return chosen


def public_uri(uri: str) -> str:
    """The URI as the manifest records it: a Lite file made absolute, no credentials."""
    if "://" not in uri:
        return str(Path(uri).absolute())
    scheme, rest = uri.split("://", 1)
    return f"{scheme}://{rest.rsplit('@', 1)[-1]}"


def connect(uri: str | None) -> MilvusClient:
    """A client for ``resolve_uri(uri)`` with the token from ``VISRAG_MILVUS_TOKEN``."""
    try:
        from pymilvus import MilvusClient
    except ImportError as exc:  # pragma: no cover - the extra is installed in CI
        raise MilvusUnavailableError(
            "Milvus needs the extra: pip install 'visrag[milvus]'"
        ) from exc
    target = resolve_uri(uri)
    token = os.environ.get(TOKEN_ENV, "")
    with _lock:  # one client per URI and process: Milvus Lite runs one server per file
        client = _clients.get((target, token))
        if client is None:
            try:
                client = MilvusClient(uri=target, token=token, timeout=10)
            except Exception as exc:  # pymilvus raises several unrelated types here
                where = public_uri(target)
                raise MilvusUnavailableError(f"cannot reach Milvus at {where}: {exc}") from exc
            _clients[(target, token)] = client
    return client
