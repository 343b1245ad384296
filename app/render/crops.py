"""Crops of indexed damage regions: the region's box plus a margin, from its catalogue image
(never a request path), size-capped JPEG, decoded inside the service's decode budget.

Served by ``GET /items/{item}/regions/{region}/crop`` and attached to ``/context``'s
``format=messages`` parts instead of whole photos when the query named a region or asked where.
"""

from __future__ import annotations

import functools
import io
from collections.abc import Sequence
from pathlib import Path

from app.render.thumbnails import rendered
from app.serving.admission import DecodeBudget
from models.imaging import decode_image


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
    # full resolution: the box is in the original's pixels
    render = functools.partial(_render, box=tuple(box), margin=margin, max_side=max_side)
    return await rendered(
        path, ("crop", *box, margin, max_side), render, budget=budget, max_side=None
    )


def _render(payload: bytes, *, box: tuple[float, ...], margin: float, max_side: int) -> bytes:
    image = decode_image(payload, max_pixels=None)
    crop = image.crop(crop_box(box, image.size, margin=margin))
    crop.thumbnail((max_side, max_side))
    out = io.BytesIO()
    crop.convert("RGB").save(out, format="JPEG", quality=85)
    return out.getvalue()
