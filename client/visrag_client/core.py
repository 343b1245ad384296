"""What the sync and async clients share: the retry policy, form fields, error and body parsing."""

from __future__ import annotations

import email.utils
import time
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any, TypeVar

import httpx
from pydantic import BaseModel, ValidationError

from visrag_client.errors import VisragAPIError, VisragConnectionError

M = TypeVar("M", bound=BaseModel)
RETRY_STATUSES = (429, 503)


@dataclass(frozen=True)
class RetryPolicy:
    """At most ``max_retries`` retries, ``budget_s`` seconds of waiting in all."""

    max_retries: int = 3
    budget_s: float = 30.0
    backoff_s: float = 0.5

    def delay(self, attempt: int, retry_after: float | None, waited: float) -> float | None:
        """Seconds to wait before retry ``attempt`` (1-based), or None to give up."""
        if attempt > self.max_retries:
            return None
        wait = retry_after if retry_after is not None else self.backoff_s * 2 ** (attempt - 1)
        return wait if waited + wait <= self.budget_s else None


def retry_after(response: httpx.Response) -> float | None:
    value = response.headers.get("retry-after")
    if value is None:
        return None
    try:
        return max(0.0, float(value))
    except ValueError:
        parsed = email.utils.parsedate_to_datetime(value) if value else None
        return None if parsed is None else max(0.0, parsed.timestamp() - time.time())


def api_error(response: httpx.Response) -> VisragAPIError:
    try:
        body = response.json()
        message, error_type = str(body["error"]), str(body["error_type"])
    except (ValueError, KeyError, TypeError):
        message, error_type = response.text[:500] or response.reason_phrase, "http_error"
    return VisragAPIError(
        message,
        status_code=response.status_code,
        error_type=error_type,
        retry_after=retry_after(response),
    )


def parse(response: httpx.Response, model: type[M]) -> M:
    try:
        return model.model_validate(response.json())
    except (ValueError, ValidationError) as exc:
        raise VisragAPIError(
            f"unexpected response body: {exc}",
            status_code=response.status_code,
            error_type="invalid_response",
        ) from exc


def form_fields(**values: Any) -> dict[str, Any]:
    """Form fields: None dropped, lists joined by commas, booleans as true/false."""
    out: dict[str, Any] = {}
    for name, value in values.items():
        if value is None:
            continue
        if isinstance(value, bool):
            out[name] = "true" if value else "false"
        elif isinstance(value, Iterable) and not isinstance(value, (str, bytes)):
            joined = ",".join(str(v) for v in value)
            if joined:
                out[name] = joined
        else:
            out[name] = str(value)
    return out


class Attempts:
    """One request's retries: counts the attempts and the waiting, decides each next wait.

    The sync and async clients own only the sending and the sleeping around it.
    """

    def __init__(self, policy: RetryPolicy, base_url: str) -> None:
        self._policy = policy
        self._base_url = base_url
        self._attempt = 0
        self._waited = 0.0

    def after_response(self, response: httpx.Response) -> float | None:
        """None: ``response`` is final (raises if it is an error); else seconds to wait."""
        if response.status_code in RETRY_STATUSES:
            delay = self._next_delay(retry_after(response))
            if delay is not None:
                return delay
        if response.status_code >= 400:
            raise api_error(response)
        return None

    def after_failure(self, exc: httpx.TransportError, *, idempotent: bool = True) -> float:
        """Seconds to wait after a connection failure; raises once retrying is over, and at once
        for a request that is not safe to replay (it may have been carried out)."""
        delay = self._next_delay(None) if idempotent else None
        if delay is None:
            raise VisragConnectionError(f"{self._base_url}: {exc}") from exc
        return delay

    def _next_delay(self, retry_after: float | None) -> float | None:
        self._attempt += 1
        delay = self._policy.delay(self._attempt, retry_after, self._waited)
        if delay is not None:
            self._waited += delay
        return delay


class ClientBase:
    """What the sync and async clients share: options, headers, the retry decisions."""

    _http_class: Any  # httpx.Client or httpx.AsyncClient, set by the subclass

    def __init__(
        self,
        base_url: str,
        *,
        api_key: str | None = None,
        timeout: float | httpx.Timeout = 30.0,
        max_retries: int = 3,
        retry_budget_s: float = 30.0,
        transport: Any = None,
    ) -> None:
        """``transport``: an ``httpx`` transport (sync or async to match), e.g. for tests."""
        self.base_url = base_url.rstrip("/")
        self.retry = RetryPolicy(max_retries=max_retries, budget_s=retry_budget_s)
        self._headers = {"Authorization": f"Bearer {api_key}"} if api_key else {}
        self._timeout = timeout
        self._transport = transport
        self._http = self._connect()

    def _connect(self) -> Any:
        """The ``httpx`` client (sync or async) of this client."""
        return self._http_class(
            base_url=self.base_url,
            headers=self._headers,
            timeout=self._timeout,
            transport=self._transport,
        )

    def _attempts(self) -> Attempts:
        """The retry bookkeeping of one request."""
        return Attempts(self.retry, self.base_url)
