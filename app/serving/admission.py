"""Admission control: 429 before any work when full, slow bodies closed, every decode budgeted.

:class:`Admission` keeps two pools apart, so that slow clients cannot hold the capacity meant for
real work:

- the *inference capacity* (``capacity`` = ``max_queue + max_batch_size``): a request takes a token
  only once it holds its whole body, and keeps it while it decodes, waits in the queue and is
  encoded. Whether the capacity is full is checked when the request arrives (after the API key and
  readiness checks, before a byte of its body is read): a full service answers 429 + Retry-After
  (:class:`~app.http.errors.OverloadedError`) without reading the body;
- the *body-reading pool* (``readers`` = ``max_uploads``): requests receiving their bodies. One
  more is answered 429 before its body is read. A body slower than ``min_upload_rate_bps`` after
  ``upload_grace_s`` is closed with 408 (:mod:`app.http.uploads`), so a trickling client holds a
  reader for a few seconds, never a token of the inference capacity. With the pool full, a new
  body makes room by closing the slowest one below ``min_upload_rate_bps`` (408); only when every
  body being received keeps that pace is the newcomer answered 429.

There is no cap per client address: a gateway is one address with many honest requests. Every
refusal is counted by its rule (``queue_full``, ``uploads_full``, ``slow_upload``,
``upload_timeout``) through ``on_refusal`` (``visrag_admission_refusals`` in /metrics).

:class:`DecodeBudget`: a 62 KB PNG of 7999×7999 decodes to ~256 MB (PIL keeps RGB as 4 bytes a
pixel; more with alpha), so the pixel limit alone lets 16 concurrent uploads take gigabytes. Each
request asks :func:`models.imaging.decode_cost` (the header only) what its decode will hold,
reserves that many bytes from the budget (waiting, on the event loop, while others hold it),
decodes and preprocesses, and releases. One image larger than the whole budget runs alone. After a
large decode the service calls :func:`models.allocator.return_memory` (``malloc_trim``): under the
allocator policy of ``visrag serve`` the heap never trims itself, so that is what hands a burst's
memory back to the OS.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import logging
import time
from collections.abc import AsyncIterator, Callable, Iterator
from typing import TypeVar

import anyio

from app.http.errors import OverloadedError, UploadTimeoutError, UploadTooSlowError
from app.http.uploads import BodyProgress
from models.allocator import return_memory
from models.imaging import decode_cost

T = TypeVar("T")

RULES = ("queue_full", "uploads_full", "slow_upload", "upload_timeout")
EVICTABLE_AFTER_S = 1.0  # a body younger than this is never closed to make room


class Admission:
    """Non-blocking counters of requests in the inference capacity and in the body-reading pool.

    Runs on the event loop only (no lock needed: nothing awaits between test and take).
    """

    def __init__(
        self,
        capacity: int,
        *,
        readers: int,
        min_rate_bps: float = 0.0,
        on_refusal: Callable[[str], None] = lambda rule: None,
    ) -> None:
        if capacity < 1 or readers < 1:
            raise ValueError("admission capacity and readers must be at least 1")
        self.capacity = capacity
        self.readers = readers
        self.min_rate_bps = min_rate_bps
        self.in_progress = 0  # holding a token of the inference capacity
        self._readers: set[BodyProgress] = set()  # receiving a body
        self.refusals = dict.fromkeys(RULES, 0)
        self._on_refusal = on_refusal

    @property
    def refused(self) -> int:
        """Requests answered 429 by either pool."""
        return self.refusals["queue_full"] + self.refusals["uploads_full"]

    def _refuse(self, rule: str) -> None:
        self.refusals[rule] += 1
        self._on_refusal(rule)

    def check(self, retry_after: Callable[[], float] = lambda: 1.0) -> None:
        """Raise OverloadedError (429) when the inference capacity is full; takes nothing."""
        if self.in_progress >= self.capacity:
            self._refuse("queue_full")
            raise OverloadedError(
                f"the service is full ({self.capacity} requests in progress); retry later",
                retry_after=retry_after(),
            )

    @contextlib.contextmanager
    def receiving(self, retry_after: float = 1.0) -> Iterator[BodyProgress]:
        """Hold a place in the body-reading pool while the body arrives; a body closed for being
        too slow or too late is counted by its rule.

        With the pool full, the body furthest below ``min_rate_bps`` (and at least
        :data:`EVICTABLE_AFTER_S` old) is closed to make room, so slow bodies cannot keep honest
        ones out for their grace period; with none that slow, the answer is 429.
        """
        if len(self._readers) >= self.readers:
            victim = self._slowest()
            if victim is None:
                self._refuse("uploads_full")
                raise OverloadedError(
                    f"the service is receiving {self.readers} uploads; retry later",
                    retry_after=retry_after,
                )
            self._readers.discard(victim)
            victim.evict()  # its own receiving() counts it as slow_upload
        progress = BodyProgress()
        self._readers.add(progress)
        try:
            yield progress
        except UploadTooSlowError:
            self._refuse("slow_upload")
            raise
        except UploadTimeoutError:
            self._refuse("upload_timeout")
            raise
        finally:
            self._readers.discard(progress)

    @property
    def reading(self) -> int:
        """Bodies being received."""
        return len(self._readers)

    def _slowest(self) -> BodyProgress | None:
        now = time.monotonic()
        old = [r for r in self._readers if now - r.started >= EVICTABLE_AFTER_S]
        slow = [r for r in old if r.rate(now) < self.min_rate_bps]
        return min(slow, key=lambda r: r.rate(now), default=None)

    @contextlib.contextmanager
    def enter(self, retry_after: Callable[[], float] = lambda: 1.0) -> Iterator[None]:
        """Hold a token of the inference capacity for the ``with`` block (429 if none is free)."""
        self.check(retry_after)
        self.in_progress += 1
        try:
            yield
        finally:
            self.in_progress -= 1


logger = logging.getLogger(__name__)


class DecodeBudget:
    """An async byte semaphore: ``async with budget.hold(cost):`` decode, then release; or
    :meth:`decode`, what every decode in the service goes through (uploads, thumbnails, message
    images)."""

    def __init__(self, total_bytes: int) -> None:
        if total_bytes <= 0:
            raise ValueError("the decode budget must be positive")
        self.total = total_bytes
        self.held = 0
        self.peak = 0  # largest amount ever held at once (for tests and /metrics)
        self._cond: asyncio.Condition | None = None

    @contextlib.asynccontextmanager
    async def hold(self, cost: int) -> AsyncIterator[int]:
        """Reserve ``min(cost, total)`` bytes until the block exits (FIFO-ish, cancel-safe)."""
        amount = max(0, min(cost, self.total))
        if self._cond is None:
            self._cond = asyncio.Condition()
        cond = self._cond
        async with cond:
            await cond.wait_for(lambda: self.held + amount <= self.total)
            self.held += amount
            self.peak = max(self.peak, self.held)
        try:
            yield amount
        finally:
            async with cond:
                self.held -= amount
                cond.notify_all()

    async def decode(
        self,
        payload: bytes,
        work: Callable[[], T],
        *,
        max_pixels: int | None,
        max_side: int | None = None,
    ) -> T:
        """Run ``work`` (a decode of ``payload`` as :func:`models.imaging.decode_image` does it
        with ``max_side``) in a worker thread with its cost reserved, then hand large decodes'
        memory back to the OS.

        Raises:
            ImageTooLargeError / ImageDecodeError: from the header, before anything is reserved.
        """
        cost = await anyio.to_thread.run_sync(
            functools.partial(decode_cost, payload, max_pixels=max_pixels, max_side=max_side)
        )

        def run() -> T:
            try:
                return work()
            finally:
                return_memory(cost)  # malloc_trim after a large decode (models.allocator)

        async with self.hold(cost):  # the memory is held until it ends: no abandon_on_cancel
            return await anyio.to_thread.run_sync(run)
