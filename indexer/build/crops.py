"""Re-encoded region crops (``--regions crops``): each region's box plus a margin, cut from the
full-resolution photo and encoded by the image model on its own (its CLS/pooled vector).

The reference project's first design: a small defect fills the encoder's whole input instead of
a few patches of the photo's, at the price of one more forward pass per region (the pooled
``patches`` regions need none). ``python -m bench.regions build`` measures the price.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np
import numpy.typing as npt

from indexer.index.regions import RegionTable
from models.base import ImageEncoderProtocol

Vectors = npt.NDArray[np.float32]
Box = tuple[float, float, float, float]
#: Margin around a region's box, as a share of its longer side (each side), plus MARGIN_PIXELS.
MARGIN = 0.25
MARGIN_PIXELS = 8.0


def crop_box(
    box: Box, size: tuple[int, int], *, margin: float = MARGIN
) -> tuple[int, int, int, int]:
    """The ``(left, top, right, bottom)`` pixels of a region's crop: its ``x, y, w, h`` box grown
    by ``margin`` of its longer side plus :data:`MARGIN_PIXELS` on each side, kept inside the
    ``(width, height)`` photo, at least one pixel wide and high."""
    x, y, w, h = box
    pad = margin * max(w, h) + MARGIN_PIXELS
    width, height = size
    left = int(np.clip(np.floor(x - pad), 0, width - 1))
    top = int(np.clip(np.floor(y - pad), 0, height - 1))
    right = int(np.clip(np.ceil(x + w + pad), left + 1, width))
    bottom = int(np.clip(np.ceil(y + h + pad), top + 1, height))
    return left, top, right, bottom


def crop_vectors(
    image_path: str | Path,
    boxes: Sequence[Box],
    encoder: ImageEncoderProtocol,
    *,
    batch_size: int = 8,
) -> Vectors:
    """``(len(boxes), dim)`` unit vectors of the boxes' crops of one photo (full resolution,
    after EXIF orientation: the frame of the boxes)."""
    from models.imaging import decode_image

    image = decode_image(image_path, max_pixels=None)
    crops = [image.crop(crop_box(b, image.size)) for b in boxes]
    arrays = [np.asarray(encoder.preprocess(c), np.float32) for c in crops]
    return np.asarray(encoder.encode_preprocessed(arrays, batch_size=batch_size), np.float32)


def crop_regions(
    table: RegionTable,
    images: dict[int, Path],
    encoder: ImageEncoderProtocol,
    *,
    batch_size: int = 8,
) -> RegionTable:
    """The same regions with re-encoded crop vectors (kind ``crops``, no "where" calibration:
    a query's patch tokens do not live in this space). ``images``: catalogue row -> photo."""
    vectors = np.zeros((len(table), encoder.dim), np.float32)
    rows = table.item_rows()
    for item in np.unique(rows):
        members = np.flatnonzero(rows == item)
        boxes = [table.regions[i].box for i in members]
        vectors[members] = crop_vectors(images[int(item)], boxes, encoder, batch_size=batch_size)
    return RegionTable("crops", list(table.regions), vectors)
