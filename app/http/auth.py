"""Optional API keys: ``Authorization: Bearer <key>`` or ``X-API-Key: <key>``.

With no keys configured every route is open. With keys, everything needs one except ``/health``
(liveness), ``/ready`` (orchestrator probes carry no secrets; it reveals only readiness) and the
demo page's static shell; ``/metrics``, ``/info``, the queries and the catalogue thumbnails do.
Keys are compared in constant time against every configured key.
"""

from __future__ import annotations

import secrets

from fastapi import Request

from app.http.errors import UnauthorisedError


def presented_key(request: Request) -> str | None:
    header = request.headers.get("authorization", "")
    scheme, _, token = header.partition(" ")
    if scheme.lower() == "bearer" and token.strip():
        return token.strip()
    return request.headers.get("x-api-key") or None


def check_key(presented: str | None, keys: list[bytes]) -> None:
    """Raise UnauthorisedError unless ``presented`` equals one of ``keys`` (constant time)."""
    if not keys:
        return
    if presented is None:
        raise UnauthorisedError(
            "missing API key: send 'Authorization: Bearer <key>' or 'X-API-Key'"
        )
    candidate = presented.encode("utf-8")
    matched = False
    for key in keys:  # no early exit: the time taken does not depend on which key matched
        matched |= secrets.compare_digest(candidate, key)
    if not matched:
        raise UnauthorisedError("invalid API key")


async def require_api_key(request: Request) -> None:
    """FastAPI dependency for the protected routers."""
    check_key(presented_key(request), request.app.state.api_keys)
