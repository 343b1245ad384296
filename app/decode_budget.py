"""Bound the memory concurrent image decodes hold together, and give it back after a burst.

A 62 KB PNG of 7999×7999 decodes to ~256 MB (PIL keeps RGB as 4 bytes a pixel; more with alpha),
so the pixel limit alone lets 16 concurrent uploads take gigabytes. Each request asks
:func:`models.imaging.decode_cost` (the header only) what its decode will hold, reserves that
many bytes from the :class:`DecodeBudget` (waiting, on the event loop, while others hold it),
decodes and preprocesses, and releases. One image larger than the whole budget runs alone.

After a large decode the service calls :func:`models.allocator.return_memory` (``malloc_trim``):
under the allocator policy of ``visrag serve`` the heap never trims itself, so that is what hands
a burst's memory back to the OS.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator

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
