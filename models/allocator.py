"""The process's memory allocator policy for model work (glibc; no-ops elsewhere).

Every forward pass of the image encoder allocates and frees the same tensors (tens to hundreds of
MB). glibc's defaults mmap (and unmap on free) blocks above a threshold that starts at 128 KB and
trim the heap's free top above twice that, so each batch page-faults (and the kernel zeroes) much
of its working memory in again, on the thread running the model. :func:`tune_allocator` lets the
heap serve blocks up to glibc's largest mmap threshold (32 MB) and never trim itself: a batch
reuses what the previous one freed. Processes whose main job is the model call it at start:
``visrag serve``, ``visrag index build`` and ``index add``, the benches that compare with them.

The cost: a burst of large allocations (e.g. concurrent decodes of huge images in the service)
stays resident until :func:`return_memory` (``malloc_trim``) hands it back; the service calls it
after every decode of :data:`TRIM_AFTER_BYTES` or more (docs/reliability.md §3).
"""

from __future__ import annotations

import ctypes
import ctypes.util
from functools import cache

MB = 1024 * 1024
TRIM_AFTER_BYTES = 32 * MB  # decodes at least this large are followed by malloc_trim
_M_TRIM_THRESHOLD, _M_MMAP_THRESHOLD = -1, -3  # mallopt parameters (malloc.h)
_MMAP_THRESHOLD = 32 * MB  # glibc's upper limit on 64-bit: larger blocks are always mmapped
_NEVER = -1  # M_TRIM_THRESHOLD -1: the heap never trims itself (return_memory does)


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
