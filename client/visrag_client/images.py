"""Query images from a path, bytes, a binary file object or a PIL image -> (filename, bytes, type).

PIL is optional: a PIL image is recognised by duck typing and only then is PIL needed at all.
"""

from __future__ import annotations

import io
import os
from pathlib import Path
from typing import IO, Any, Union

ImageInput = Union[str, "os.PathLike[str]", bytes, bytearray, memoryview, IO[bytes], Any]

_TYPES = {
    b"\xff\xd8\xff": ("query.jpg", "image/jpeg"),
    b"\x89PNG": ("query.png", "image/png"),
    b"GIF8": ("query.gif", "image/gif"),
    b"BM": ("query.bmp", "image/bmp"),
}


def image_upload(image: ImageInput) -> tuple[str, bytes, str]:
    """The multipart ``image`` part for ``image``; TypeError for anything else."""
    if isinstance(image, (bytes, bytearray, memoryview)):
        data = bytes(image)
    elif isinstance(image, (str, os.PathLike)):
        data = Path(image).read_bytes()
    elif hasattr(image, "read"):
        data = image.read()
        if not isinstance(data, bytes):
            raise TypeError("the file object must be opened in binary mode ('rb')")
    elif hasattr(image, "save") and hasattr(image, "mode") and hasattr(image, "size"):
        data = _pil_to_png(image)
    else:
        raise TypeError(
            f"image must be a path, bytes, a binary file object or a PIL image, not "
            f"{type(image).__name__}"
        )
    name, content_type = _name_and_type(data)
    return name, data, content_type


def _name_and_type(data: bytes) -> tuple[str, str]:
    for magic, (name, ctype) in _TYPES.items():
        if data.startswith(magic):
            return name, ctype
    if data[:4] == b"RIFF" and data[8:12] == b"WEBP":
        return "query.webp", "image/webp"
    return "query.bin", "application/octet-stream"


def _pil_to_png(image: Any) -> bytes:
    """Lossless, so the service sees the caller's pixels."""
    out = io.BytesIO()
    image.save(out, format="PNG")
    return out.getvalue()
