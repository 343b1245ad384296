"""One OpenAI-compatible ``/v1/chat/completions`` endpoint, asked politely.

- Retries: 429 and 5xx answers, timeouts and connection errors are retried up to ``retries``
  times, waiting the answer's ``Retry-After`` seconds (capped at ``max_wait``) or an exponential
  backoff (``backoff`` x 2^attempt). What still fails is returned as a failed call, counted by the
  report; the run goes on.
- Structured output: ``response_format: json_object`` is sent while the endpoint accepts it; a 400
  that names ``response_format`` turns it off for the rest of the run (the tolerant parser of
  :mod:`.answers` reads free text).
- Local only by default: the query photos (and, for ``context+images``, the indexed ones) go to a
  non-loopback host only when the caller says so (:func:`check_destination`).
"""

from __future__ import annotations

import ipaddress
import logging
import threading
import time
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlsplit

import httpx

from models.errors import VisragError

logger = logging.getLogger(__name__)

RETRIED = (429, 500, 502, 503, 504)


class RemoteEndpointError(VisragError):
    """Photos would leave this machine and the caller did not allow it."""


def is_loopback(url: str) -> bool:
    host = urlsplit(url).hostname or ""
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def check_destination(url: str, *, allow_remote: bool) -> None:
    """Refuse to send photos to a host other than this machine unless ``allow_remote``."""
    if not allow_remote and not is_loopback(url):
        raise RemoteEndpointError(
            f"{url} is not on this machine: every request carries a query photo (and with "
            "context+images the indexed photos), so the photos would leave this machine. "
            "Pass --allow-remote-images to send them anyway."
        )


@dataclass
class Reply:
    """One call's outcome: the text (None when every attempt failed) and what it cost."""

    text: str | None
    usage: dict[str, int] = field(default_factory=dict)
    seconds: float = 0.0
    attempts: int = 1
    error: str | None = None
    problems: list[str] = field(default_factory=list)  # each retried failure, e.g. "429"


class ChatEndpoint:
    def __init__(
        self,
        base_url: str,
        *,
        api_key: str | None = None,
        timeout: float = 120.0,
        retries: int = 4,
        backoff: float = 1.0,
        max_wait: float = 60.0,
        json_mode: bool = True,
    ) -> None:
        headers = {"Authorization": f"Bearer {api_key}"} if api_key else {}
        self.url = base_url.rstrip("/") + "/chat/completions"
        self.http = httpx.Client(headers=headers, timeout=timeout)
        self.retries, self.backoff, self.max_wait = retries, backoff, max_wait
        self.json_mode = json_mode
        self.requests = 0  # HTTP requests sent, retries included
        self._lock = threading.Lock()

    def close(self) -> None:
        self.http.close()

    def complete(self, body: dict[str, Any]) -> Reply:
        """POST one chat completion with retries; never raises for the endpoint's failures."""
        problems: list[str] = []
        for attempt in range(self.retries + 1):
            sent = dict(body)
            if not self.json_mode:
                sent.pop("response_format", None)
            with self._lock:
                self.requests += 1
            t0 = time.perf_counter()
            wait = self.backoff * 2**attempt
            try:
                response = self.http.post(self.url, json=sent)
            except httpx.TimeoutException:
                problems.append("timeout")
                self._sleep(wait, attempt)
                continue
            except httpx.TransportError as exc:
                problems.append(type(exc).__name__)
                self._sleep(wait, attempt)
                continue
            seconds = time.perf_counter() - t0
            status = response.status_code
            if status == 400 and "response_format" in sent and "response_format" in response.text:
                logger.warning("the endpoint refuses response_format; asking for plain text")
                self.json_mode = False
                problems.append("400 response_format")
                continue
            if status in RETRIED:
                problems.append(str(status))
                self._sleep(_retry_after(response) or wait, attempt)
                continue
            if status >= 400:
                error = f"HTTP {status}: {response.text[:200]}"
                return Reply(None, {}, seconds, attempt + 1, error, problems)
            try:
                data = response.json()
                text = data["choices"][0]["message"]["content"]
            except (ValueError, KeyError, IndexError, TypeError):
                return Reply(None, {}, seconds, attempt + 1, "no message in the answer", problems)
            usage = {k: int(v) for k, v in (data.get("usage") or {}).items() if _is_int(v)}
            return Reply(str(text or ""), usage, seconds, attempt + 1, None, problems)
        return Reply(None, {}, 0.0, self.retries + 1, f"gave up after {problems}", problems)

    def _sleep(self, seconds: float, attempt: int) -> None:
        if attempt < self.retries:
            time.sleep(min(seconds, self.max_wait))


def _retry_after(response: httpx.Response) -> float | None:
    value = response.headers.get("Retry-After")
    try:
        return max(0.0, float(value)) if value is not None else None
    except ValueError:
        return None


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)
