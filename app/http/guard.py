"""A header-read timeout for uvicorn: a connection that does not finish its headers is closed.

uvicorn has a keep-alive timeout (idle between requests) but nothing bounds the time a client may
take to *send* a request's headers: a connection that opens and stays silent, or trickles one
header byte at a time (slowloris), holds a socket and a protocol object forever. This subclass of
uvicorn's httptools protocol arms a timer when the connection opens and when a new request's first
byte arrives, cancels it once the headers are complete, and closes the connection when it fires
(after a bare ``408 Request Timeout`` if nothing of a response was sent yet). The deadline is
absolute: trickling bytes does not extend it. Slow *bodies* are bounded by the upload timeout
(``app.http.uploads``), not here.
"""

from __future__ import annotations

import asyncio
import logging
from typing import Any

from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol

logger = logging.getLogger(__name__)

_TIMEOUT_BODY = (
    b'{"error": "the request headers did not arrive in time", "error_type": "header_timeout"}'
)
_TIMEOUT_RESPONSE = (
    b"HTTP/1.1 408 Request Timeout\r\ncontent-type: application/json\r\nconnection: close\r\n"
    b"content-length: %d\r\n\r\n%s" % (len(_TIMEOUT_BODY), _TIMEOUT_BODY)
)


class HeaderTimeoutProtocol(HttpToolsProtocol):
    """uvicorn's httptools protocol with a header-read deadline of ``header_timeout_s``."""

    header_timeout_s: float = 10.0

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._header_timer: asyncio.TimerHandle | None = None

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(transport)
        self._arm_header_timer()

    def connection_lost(self, exc: Exception | None) -> None:
        self._cancel_header_timer()
        super().connection_lost(exc)

    def on_message_begin(self) -> None:
        super().on_message_begin()
        self._arm_header_timer()  # keeps a deadline armed at connect: it is not extended

    def on_headers_complete(self) -> None:
        self._cancel_header_timer()
        super().on_headers_complete()

    def _arm_header_timer(self) -> None:
        if self._header_timer is None:
            self._header_timer = self.loop.call_later(self.header_timeout_s, self._header_timeout)

    def _cancel_header_timer(self) -> None:
        if self._header_timer is not None:
            self._header_timer.cancel()
            self._header_timer = None

    def _header_timeout(self) -> None:
        self._header_timer = None
        if self.transport.is_closing():
            return
        in_request = self.cycle is not None and not self.cycle.response_complete
        if not in_request:  # a request in progress owns the socket; never interleave bytes
            self.transport.write(_TIMEOUT_RESPONSE)
        logger.info(
            "closing a connection that did not send its headers within %gs", self.header_timeout_s
        )
        self.transport.close()


def header_timeout_protocol(timeout_s: float) -> type[HeaderTimeoutProtocol]:
    """The protocol class for ``uvicorn.Config(http=...)`` with this header deadline."""
    return type("HeaderTimeoutProtocol", (HeaderTimeoutProtocol,), {"header_timeout_s": timeout_s})
