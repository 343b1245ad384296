"""API keys in two scopes: ``Authorization: Bearer <key>`` or ``X-API-Key: <key>``.

- **read** (``VISRAG_API_KEYS``): with none configured the queries are open. With keys, everything
  needs one except ``/health`` (liveness), ``/ready`` (orchestrator probes carry no secrets; it
  reveals only readiness) and the demo page's static shell; ``/metrics``, ``/info``, the queries,
  the catalogue listing and thumbnails do. A write key reads too.
- **write** (``VISRAG_WRITE_KEYS``, each ``key`` or ``name:key``): the catalogue writes exist only
  when write keys are set. No key or an unknown one is 401; a read key is 403. The key's name (or,
  without one, a short hash of it: never the key) is who the index history says wrote.

Keys are compared in constant time against every configured key of both scopes, so neither the
time taken nor an early exit tells which key, or which scope, matched.
"""

from __future__ import annotations

import hashlib
import re
import secrets
from dataclasses import dataclass

from fastapi import Request

from app.http.errors import ForbiddenError, UnauthorisedError

READ, WRITE = "read", "write"
_NAME = re.compile(r"[A-Za-z0-9_.@-]{1,64}")


@dataclass(frozen=True)
class ApiKey:
    """One configured key: its bytes, its scope and the name the index history records."""

    secret: bytes
    scope: str
    name: str


def api_key(value: str, scope: str) -> ApiKey:
    """A configured key; a write key ``name:key`` carries its name, else it is named by a hash."""
    name, sep, rest = value.partition(":")
    if scope == WRITE and sep and rest and _NAME.fullmatch(name):
        return ApiKey(rest.encode("utf-8"), scope, name)
    digest = hashlib.sha256(value.encode("utf-8")).hexdigest()[:8]
    return ApiKey(value.encode("utf-8"), scope, f"key-{digest}")


@dataclass(frozen=True)
class KeyRing:
    """The configured keys of both scopes."""

    keys: tuple[ApiKey, ...] = ()

    @classmethod
    def from_values(cls, read: list[str], write: list[str]) -> KeyRing:
        return cls(tuple([api_key(v, READ) for v in read] + [api_key(v, WRITE) for v in write]))

    @property
    def reads_open(self) -> bool:
        return not any(k.scope == READ for k in self.keys)

    @property
    def writes_enabled(self) -> bool:
        return any(k.scope == WRITE for k in self.keys)

    def match(self, presented: str | None) -> ApiKey | None:
        """The configured key equal to ``presented`` (constant time over every key), or None."""
        if presented is None:
            return None
        candidate = presented.encode("utf-8", "surrogateescape")
        found: ApiKey | None = None
        for key in self.keys:  # no early exit: the time taken does not depend on which matched
            if secrets.compare_digest(candidate, key.secret) and found is None:
                found = key
        return found


def presented_key(request: Request) -> str | None:
    """The key a request presents, as the client spelled it (UTF-8 headers included)."""
    header = _utf8(request.headers.get("authorization", ""))
    scheme, _, token = header.partition(" ")
    if scheme.lower() == "bearer" and token.strip():
        return token.strip()
    return _utf8(request.headers.get("x-api-key", "")) or None


def _utf8(value: str) -> str:
    """A header value (which Starlette decodes as Latin-1) as the UTF-8 the client sent."""
    return value.encode("latin-1").decode("utf-8", "surrogateescape")


def check_key(presented: str | None, ring: KeyRing, scope: str) -> ApiKey | None:
    """The key allowed to act in ``scope`` (None when the scope is open).

    Raises:
        UnauthorisedError: no key, or one that is not configured (401).
        ForbiddenError: a read key presented for a write (403).
    """
    if scope == READ and ring.reads_open:
        return None
    if presented is None:
        raise UnauthorisedError(
            "missing API key: send 'Authorization: Bearer <key>' or 'X-API-Key'"
        )
    key = ring.match(presented)
    if key is None:
        raise UnauthorisedError("invalid API key")
    if scope == WRITE and key.scope != WRITE:
        raise ForbiddenError("this API key may read but not write the catalogue")
    return key


async def require_api_key(request: Request) -> None:
    """FastAPI dependency for the protected (read) routers."""
    check_key(presented_key(request), request.app.state.keys, READ)


async def require_write_key(request: Request) -> str:
    """FastAPI dependency of the catalogue writes: the writer's name for the index history."""
    key = check_key(presented_key(request), request.app.state.keys, WRITE)
    assert key is not None  # the write routes exist only with write keys
    return key.name
