"""Image files seen from their headers only: size and a cheap truncation check, no pixel decode."""

from __future__ import annotations

import os
import warnings
from pathlib import Path

from PIL import Image, UnidentifiedImageError

from models.errors import VisragError

IMAGE_SUFFIXES = frozenset({".jpg", ".jpeg", ".png", ".bmp", ".webp", ".tif", ".tiff"})
_JPEG_SUFFIXES = frozenset({".jpg", ".jpeg"})
_JPEG_TAIL = 4096  # some cameras pad after the end-of-image marker; look this far back for it


class ImageHeaderError(VisragError):
    """The file is not a readable image (header unreadable, or a JPEG cut short)."""


def is_image(path: Path) -> bool:
    return path.suffix.lower() in IMAGE_SUFFIXES


def image_size(path: Path) -> tuple[int, int]:
    """(width, height) from the header; raises ImageHeaderError for unreadable or truncated files.

    PIL's ``open`` parses the header lazily without decoding pixels. A JPEG cut short keeps a
    valid header, so for JPEGs we also look for the end-of-image marker near the end of the file:
    that costs one small read and catches truncated downloads before the indexer chokes on them.
    """
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)
            with Image.open(path) as img:
                size = (int(img.size[0]), int(img.size[1]))
                fmt = img.format
    except (OSError, UnidentifiedImageError, Image.DecompressionBombError) as exc:
        raise ImageHeaderError(f"unreadable image: {exc}") from exc
    if fmt == "JPEG" or path.suffix.lower() in _JPEG_SUFFIXES:
        with open(path, "rb") as fh:
            end = fh.seek(0, os.SEEK_END)
            fh.seek(max(0, end - _JPEG_TAIL))
            if b"\xff\xd9" not in fh.read():
                raise ImageHeaderError("truncated JPEG: no end-of-image marker")
    return size


def declared_size(width: object, height: object) -> tuple[int, int] | None:
    """A size declared in an annotation as ints; None when absent or not a number."""
    try:
        return int(width), int(height)  # type: ignore[call-overload]
    except (TypeError, ValueError):
        return None
