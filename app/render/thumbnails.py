"""Thumbnails of indexed images, made on demand from catalogue paths only (never request paths).

Every thumbnail is decoded inside the service's decode budget
(:meth:`app.serving.admission.DecodeBudget.decode`), at a reduced JPEG scale where it needs fewer
pixels, and kept in a small LRU cache keyed by path, size and the file's mtime and size
(:func:`rendered`, which the region crops share).
"""

from __future__ import annotations

import functools
import io
from collections import OrderedDict
from collections.abc import Callable, Hashable
from pathlib import Path

import anyio

from app.serving.admission import DecodeBudget
from models.imaging import decode_image

THUMBNAIL_SIZES = (64, 128, 256, 512)
CACHE_ENTRIES = 512
_cache: OrderedDict[tuple[Hashable, ...], bytes] = OrderedDict()


async def thumbnail(path: Path, size: int, *, budget: DecodeBudget) -> bytes:
    """JPEG bytes of the image at ``path`` fitted into ``size`` x ``size`` (cached by mtime).

    Raises:
        OSError: the file is gone or unreadable.
        ImageDecodeError: it is not a decodable image.
    """
    render = functools.partial(_render, size=size)
    return await rendered(path, (size,), render, budget=budget, max_side=size)


async def rendered(
    path: Path,
    key: tuple[Hashable, ...],
    render: Callable[[bytes], bytes],
    *,
    budget: DecodeBudget,
    max_side: int | None,
) -> bytes:
    """``render(the file's bytes)``, run inside the decode budget and kept in the LRU cache by
    ``path``, ``key`` and the file's mtime and size (thumbnails, region crops)."""
    stat = await anyio.to_thread.run_sync(path.stat)
    full = (str(path), *key, stat.st_mtime_ns, stat.st_size)
    if (hit := _cache.get(full)) is not None:
        _cache.move_to_end(full)
        return hit
    payload = await anyio.to_thread.run_sync(path.read_bytes)
    # catalogue images are not uploads: PIL's own bomb guard applies, not the upload pixel limit
    data = await budget.decode(
        payload, functools.partial(render, payload), max_pixels=None, max_side=max_side
    )
    _cache[full] = data
    while len(_cache) > CACHE_ENTRIES:
        _cache.popitem(last=False)
    return data


def _render(payload: bytes, *, size: int) -> bytes:
    small = decode_image(payload, max_pixels=None, max_side=size)  # JPEG: reduced DCT scale
    small.thumbnail((size, size))
    out = io.BytesIO()
    small.save(out, format="JPEG", quality=85)
    return out.getvalue()
