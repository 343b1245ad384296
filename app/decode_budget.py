"""Bound the memory concurrent image decodes hold together, and give it back after a burst.

A 62 KB PNG of 7999×7999 decodes to ~256 MB (PIL keeps RGB as 4 bytes a pixel; more with alpha),
so the pixel limit alone lets 16 concurrent uploads take gigabytes. Each request asks
:func:`models.imaging.decode_cost` (the header only) what its decode will hold, reserves that
many bytes from the :class:`DecodeBudget` (waiting, on the event loop, while others hold it),
decodes and preprocesses, and releases. One image larger than the whole budget runs alone.

glibc keeps freed heap memory for reuse (and raises its mmap threshold after each large free), so
a burst of large decodes would leave the process gigabytes larger for good. :func:`return_memory`
(``malloc_trim``) hands it back after a large decode; :func:`tune_allocator` fixes the mmap
threshold so PIL's large image blocks are mmapped and unmapped on free. Both are no-ops off glibc.
"""

from __future__ import annotations

import asyncio
import contextlib
import ctypes
import ctypes.util
import logging
from collections.abc import AsyncIterator
from functools import cache

logger = logging.getLogger(__name__)

MB = 1024 * 1024
TRIM_AFTER_BYTES = 32 * MB  # decodes at least this large are followed by malloc_trim
_M_MMAP_THRESHOLD = -3
_MMAP_THRESHOLD = 4 * MB


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


@cache
def _libc() -> ctypes.CDLL | None:
    name = ctypes.util.find_library("c")
    if name is None:
        return None
    try:
        libc = ctypes.CDLL(name)
        libc.malloc_trim  # noqa: B018 - glibc only
        libc.mallopt  # noqa: B018
    except (OSError, AttributeError):
        return None
    return libc


def tune_allocator() -> bool:
    """Serve allocations of 4 MB and more by mmap (returned to the OS on free); True if set."""
    libc = _libc()
    if libc is None:
        return False
    return bool(libc.mallopt(_M_MMAP_THRESHOLD, _MMAP_THRESHOLD))


def return_memory(cost: int) -> None:
    """After a decode of ``cost`` bytes: give freed heap pages back to the OS if it was large."""
    libc = _libc()
    if libc is not None and cost >= TRIM_AFTER_BYTES:
        libc.malloc_trim(0)
