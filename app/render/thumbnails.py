"""Thumbnails of indexed images, made on demand from catalogue paths only (never request paths).

Every thumbnail is decoded inside the service's decode budget
(:meth:`app.serving.admission.DecodeBudget.decode`), at a reduced JPEG scale where it needs fewer
pixels, and kept in a small LRU cache keyed by path, size and the file's mtime and size.
"""

from __future__ import annotations

import functools
import io
from collections import OrderedDict
from pathlib import Path

import anyio

from app.serving.admission import DecodeBudget
from models.imaging import decode_image

THUMBNAIL_SIZES = (64, 128, 256, 512)
CACHE_ENTRIES = 512
_cache: OrderedDict[tuple[str, int, int, int], bytes] = OrderedDict()


async def thumbnail(path: Path, size: int, *, budget: DecodeBudget) -> bytes:
    """JPEG bytes of the image at ``path`` fitted into ``size`` x ``size`` (cached by mtime).

    Raises:
        OSError: the file is gone or unreadable.
        ImageDecodeError: it is not a decodable image.
    """
    stat = await anyio.to_thread.run_sync(path.stat)
    key = (str(path), size, stat.st_mtime_ns, stat.st_size)
    if (hit := _cache.get(key)) is not None:
        _cache.move_to_end(key)
        return hit
    payload = await anyio.to_thread.run_sync(path.read_bytes)
    # catalogue images are not uploads: PIL's own bomb guard applies, not the upload pixel limit
    data = await budget.decode(
        payload, functools.partial(_render, payload, size), max_pixels=None, max_side=size
    )
    _cache[key] = data
    while len(_cache) > CACHE_ENTRIES:
        _cache.popitem(last=False)
    return data


def _render(payload: bytes, size: int) -> bytes:
    small = decode_image(payload, max_pixels=None, max_side=size)  # JPEG: reduced DCT scale
    small.thumbnail((size, size))
    out = io.BytesIO()
    small.save(out, format="JPEG", quality=85)
    return out.getvalue()
