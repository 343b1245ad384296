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
    """The ``(left, top, right, bottom)`` pixels of a region's crop: a square around its
    ``x, y, w, h`` box, the box's longer side plus ``margin`` of it and :data:`MARGIN_PIXELS` on
    each side, moved inside the ``(width, height)`` photo (cut where the photo is smaller).

    Square, so every crop reaches the encoder at one input size: crops batch together and
    the backend sees one shape (crops of their own aspect made the build 6× slower, bench.regions).
    """
    x, y, w, h = box
    width, height = size
    side = max(w, h) * (1 + 2 * margin) + 2 * MARGIN_PIXELS

    def span(centre: float, extent: int) -> tuple[int, int]:
        if side >= extent:
            return 0, extent
        start = float(np.clip(centre - side / 2, 0, extent - side))
        return int(np.floor(start)), int(min(extent, np.ceil(start + side)))

    left, right = span(x + w / 2, width)
    top, bottom = span(y + h / 2, height)
    return left, top, max(right, left + 1), max(bottom, top + 1)


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
