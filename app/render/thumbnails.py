"""Thumbnails of indexed images, made on demand from catalogue paths only (never request paths)."""

from __future__ import annotations

import io
from functools import lru_cache
from pathlib import Path

from PIL import Image, ImageOps

THUMBNAIL_SIZES = (64, 128, 256, 512)


def thumbnail(path: Path, size: int) -> bytes:
    """JPEG bytes of the image at ``path`` fitted into ``size`` x ``size`` (cached by mtime)."""
    stat = path.stat()
    return _thumbnail(str(path), size, stat.st_mtime_ns, stat.st_size)


@lru_cache(maxsize=512)
def _thumbnail(path: str, size: int, mtime_ns: int, nbytes: int) -> bytes:
    with Image.open(path) as img:
        img.draft("RGB", (size, size))  # JPEG: decode at reduced scale
        small = ImageOps.exif_transpose(img).convert("RGB")
        small.thumbnail((size, size))
        out = io.BytesIO()
        small.save(out, format="JPEG", quality=85)
    return out.getvalue()
