"""Schemathesis hooks for the hardening run: the image part is generated as a real image.

The document declares the part's media types (``encoding.image.contentType``); schemathesis
generates arbitrary bytes for them unless given a strategy, and arbitrary bytes are not an image
(the service answers 415, correctly). Loaded with ``SCHEMATHESIS_HOOKS=schemathesis_hooks``.
"""

from __future__ import annotations

import io

import schemathesis
from hypothesis import strategies as st
from PIL import Image


def _encoded(fmt: str, size: tuple[int, int], colour: tuple[int, int, int]) -> bytes:
    out = io.BytesIO()
    Image.new("RGB", size, colour).save(out, format=fmt)
    return out.getvalue()


def _images(fmt: str) -> st.SearchStrategy[bytes]:
    sizes = st.tuples(st.integers(1, 64), st.integers(1, 64))
    colours = st.tuples(st.integers(0, 255), st.integers(0, 255), st.integers(0, 255))
    return st.builds(_encoded, st.just(fmt), sizes, colours)


FORMATS = {
    "image/jpeg": "JPEG",
    "image/png": "PNG",
    "image/webp": "WEBP",
    "image/gif": "GIF",
    "image/bmp": "BMP",
    "image/tiff": "TIFF",
}
for media_type, fmt in FORMATS.items():
    schemathesis.openapi.media_type(media_type, _images(fmt))


# A region's syntax is in the document (a pattern, format "region"); whether it lies inside the
# photo depends on the photo, which the document cannot say (the service answers 422 "outside
# the image", correctly; tests/api checks those reasons): generated regions stay inside the
# 1-64 px images above.
schemathesis.openapi.format(
    "region", st.sampled_from(["0,0,1,1", "0.5,0.25,0.5,0.5", "0,0 1,0 1,1", " 0, 0 ,1,1 "])
)
