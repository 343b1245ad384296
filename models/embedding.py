"""The one image -> vector path, shared by the service, the build and the evaluation.

Two steps, because they run in different places: :func:`prepare_image` (decode + preprocess, CPU,
per image: worker threads) and the encoder's ``encode_preprocessed`` (the model, batched: the one
inference worker). :func:`embed_image` chains them for callers that need neither split.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO

import numpy as np
from PIL import Image

from models.base import ImageEncoderProtocol, Pixels, Vectors
from models.imaging import DEFAULT_MAX_PIXELS, decode_image

ImageSource = bytes | str | Path | BinaryIO | Image.Image


@dataclass(frozen=True)
class Prepared:
    """Preprocessed pixels of one image and what producing them cost (seconds)."""

    pixels: Pixels
    decode_seconds: float
    preprocess_seconds: float


def prepare_image(
    source: ImageSource,
    encoder: ImageEncoderProtocol,
    *,
    max_pixels: int = DEFAULT_MAX_PIXELS,
) -> Prepared:
    """Decode (EXIF-transposed RGB, at a reduced JPEG scale when the photo is much larger than
    the encoder's input) and preprocess one image for ``encoder``.

    Raises:
        ImageDecodeError: not an image, truncated, or unreadable.
        ImageTooLargeError: over ``max_pixels``.
    """
    t0 = time.perf_counter()
    if isinstance(source, Image.Image):
        image = source if source.mode == "RGB" else source.convert("RGB")
    else:
        image = decode_image(source, max_pixels=max_pixels, max_side=encoder.image_size)
    t1 = time.perf_counter()
    pixels = np.asarray(encoder.preprocess(image), dtype=np.float32)
    return Prepared(pixels, t1 - t0, time.perf_counter() - t1)


def embed_image(
    source: ImageSource, encoder: ImageEncoderProtocol, *, max_pixels: int = DEFAULT_MAX_PIXELS
) -> tuple[Vectors, dict[str, float]]:
    """One image -> its unit vector ``(dim,)`` and the seconds each stage took."""
    prepared = prepare_image(source, encoder, max_pixels=max_pixels)
    t0 = time.perf_counter()
    vector = encoder.encode_preprocessed([prepared.pixels])[0]
    timings = {
        "decode": prepared.decode_seconds,
        "preprocess": prepared.preprocess_seconds,
        "encode": time.perf_counter() - t0,
    }
    return vector, timings
