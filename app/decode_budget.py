"""Bound the memory concurrent image decodes hold together, and give it back after a burst.

A 62 KB PNG of 7999×7999 decodes to ~256 MB (PIL keeps RGB as 4 bytes a pixel; more with alpha),
so the pixel limit alone lets 16 concurrent uploads take gigabytes. Each request asks
:func:`models.imaging.decode_cost` (the header only) what its decode will hold, reserves that
many bytes from the :class:`DecodeBudget` (waiting, on the event loop, while others hold it),
decodes and preprocesses, and releases. One image larger than the whole budget runs alone.

glibc keeps freed heap memory for reuse, so a burst of large decodes would leave the process
gigabytes larger for good: :func:`return_memory` (``malloc_trim``) hands it back after a large
decode. Between decodes the heap should instead keep what it has: every forward pass of the image
encoder allocates and frees the same tensors (tens to hundreds of MB), and memory handed back to
the OS after one batch is page-faulted (zeroed) in again by the next, on the inference thread.
:func:`tune_allocator` (called by ``visrag serve``) therefore lets the heap serve blocks up to
glibc's largest mmap threshold (32 MB) and never trim itself; ``malloc_trim`` after large decodes
is what returns memory. Both are no-ops off glibc.
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
_M_TRIM_THRESHOLD, _M_MMAP_THRESHOLD = -1, -3  # mallopt parameters (malloc.h)
_MMAP_THRESHOLD = 32 * MB  # glibc's upper limit on 64-bit: larger blocks are always mmapped
_NEVER = -1  # M_TRIM_THRESHOLD -1: the heap never trims itself (return_memory does)


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
    """Keep freed blocks up to 32 MB in the heap for reuse, untrimmed; True if set.

    glibc's defaults mmap (and unmap on free) any block above a threshold that starts at 128 KB
    and trim the heap's free top above twice that, so each encoder batch page-faults much of its
    working memory in again (ViT-S/16 bf16, batch 16: ~30,000-50,000 page faults a batch with
    the defaults, ~100,000 with a 4 MB threshold, ~0 with this). ``return_memory`` still returns
    memory after large decodes.
    """
    libc = _libc()
    if libc is None:
        return False
    mmap_set = libc.mallopt(_M_MMAP_THRESHOLD, _MMAP_THRESHOLD)
    trim_set = libc.mallopt(_M_TRIM_THRESHOLD, _NEVER)
    return bool(mmap_set and trim_set)


def return_memory(cost: int) -> None:
    """After a decode of ``cost`` bytes: give freed heap pages back to the OS if it was large."""
    libc = _libc()
    if libc is not None and cost >= TRIM_AFTER_BYTES:
        libc.malloc_trim(0)
