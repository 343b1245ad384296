"""Crops of indexed damage regions: the region's box plus a margin, from its catalogue image
(never a request path), size-capped JPEG, decoded inside the service's decode budget.

Served by ``GET /items/{item}/regions/{region}/crop`` and attached to ``/context``'s
``format=messages`` parts instead of whole photos when the query named a region or asked where.
"""

from __future__ import annotations

import functools
import io
from collections import OrderedDict
from collections.abc import Sequence
from pathlib import Path

import anyio

from app.serving.admission import DecodeBudget
from models.imaging import decode_image

CACHE_ENTRIES = 256
_cache: OrderedDict[tuple[str, tuple[float, ...], float, int, int, int], bytes] = OrderedDict()


def crop_box(
    box: Sequence[float], size: tuple[int, int], *, margin: float
) -> tuple[int, int, int, int]:
    """``(left, top, right, bottom)``: ``box`` (x, y, w, h) grown by ``margin`` x its longer
    side on every side, clipped to the image, at least one pixel."""
    x, y, w, h = box
    pad = margin * max(w, h)
    width, height = size
    left = max(0, int(x - pad))
    top = max(0, int(y - pad))
    right = min(width, int(round(x + w + pad)))
    bottom = min(height, int(round(y + h + pad)))
    return left, top, max(right, left + 1), max(bottom, top + 1)


async def region_crop(
    path: Path,
    box: Sequence[float],
    *,
    margin: float,
    max_side: int,
    budget: DecodeBudget,
) -> bytes:
    """JPEG bytes of ``box`` (the indexed image's pixels after EXIF orientation) plus a margin,
    fitted into ``max_side`` x ``max_side`` (cached by the file's mtime and size).

    Raises:
        OSError: the file is gone or unreadable.
        ImageDecodeError: it is not a decodable image.
    """
    stat = await anyio.to_thread.run_sync(path.stat)
    key = (str(path), tuple(box), margin, max_side, stat.st_mtime_ns, stat.st_size)
    if (hit := _cache.get(key)) is not None:
        _cache.move_to_end(key)
        return hit
    payload = await anyio.to_thread.run_sync(path.read_bytes)
    # full resolution: the box is in the original's pixels
    work = functools.partial(_render, payload, tuple(box), margin, max_side)
    data = await budget.decode(payload, work, max_pixels=None, max_side=None)
    _cache[key] = data
    while len(_cache) > CACHE_ENTRIES:
        _cache.popitem(last=False)
    return data


def _render(payload: bytes, box: tuple[float, ...], margin: float, max_side: int) -> bytes:
    image = decode_image(payload, max_pixels=None)
    crop = image.crop(crop_box(box, image.size, margin=margin))
    crop.thumbnail((max_side, max_side))
    out = io.BytesIO()
    crop.convert("RGB").save(out, format="JPEG", quality=85)
    return out.getvalue()
