"""Admission control: 429 before any work when full, and every decode inside a memory budget.

:class:`Admission`: every query request takes a token when it arrives (after the API key and
readiness checks, before a byte of its body is read) and gives it back when it finishes, however it
finishes. With ``capacity`` requests already in progress (receiving, decoding, queued or encoding),
the next one is refused at once with :class:`~app.http.errors.OverloadedError` (429 + Retry-After)
instead of being read, decoded and preprocessed only to be refused at the inference queue.

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
import logging
from collections.abc import AsyncIterator, Callable, Iterator

from app.http.errors import OverloadedError


class Admission:
    """A non-blocking counter of requests in progress, bounded by ``capacity``."""

    def __init__(self, capacity: int) -> None:
        if capacity < 1:
            raise ValueError("admission capacity must be at least 1")
        self.capacity = capacity
        self.in_progress = 0
        self.refused = 0

    @contextlib.contextmanager
    def enter(self, retry_after: Callable[[], float] = lambda: 1.0) -> Iterator[None]:
        """Hold a token for the ``with`` block; raise OverloadedError if none is free.

        Runs on the event loop only (no lock needed: nothing awaits between test and take).
        """
        if self.in_progress >= self.capacity:
            self.refused += 1
            raise OverloadedError(
                f"the service is full ({self.capacity} requests in progress); retry later",
                retry_after=retry_after(),
            )
        self.in_progress += 1
        try:
            yield
        finally:
            self.in_progress -= 1


logger = logging.getLogger(__name__)


class DecodeBudget:
    """An async byte semaphore: ``async with budget.hold(cost):`` decode, then release."""

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
