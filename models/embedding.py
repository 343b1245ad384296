"""The one image -> vector path, shared by the service, the build and the evaluation.

Two steps, because they run in different places: :func:`prepare_image` (decode + preprocess, CPU,
per image: worker threads) and the encoder's ``encode_preprocessed`` (the model, batched: the one
inference worker). :func:`embed_image` chains them for callers that need neither split.

:class:`Preprocessing` is an encoder's preprocessing without its model (image size, patch, mean,
std, from ``encoder.info()``): a small picklable value, so decode + preprocess can run where the
model is not loaded (the CPU tasks of the Ray build); ``prepare_image`` accepts either.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, BinaryIO, Protocol

import numpy as np
from PIL import Image

from models.base import ImageEncoderProtocol, Pixels, Vectors
from models.imaging import DEFAULT_MAX_PIXELS, decode_image, original_size, preprocess

ImageSource = bytes | str | Path | BinaryIO | Image.Image


class Preprocessor(Protocol):
    """What :func:`prepare_image` needs: an image encoder, or its :class:`Preprocessing` alone."""

    @property
    def image_size(self) -> int: ...

    def preprocess(self, image: Image.Image) -> Pixels: ...


@dataclass(frozen=True)
class Preprocessing:
    """An encoder's preprocessing as a value: same pixels as ``encoder.preprocess``, no model."""

    image_size: int
    patch_size: int
    mean: tuple[float, ...]
    std: tuple[float, ...]

    @classmethod
    def of(cls, encoder: ImageEncoderProtocol) -> Preprocessing:
        """The preprocessing ``encoder.info()`` records (what the index manifest stores)."""
        recorded: dict[str, Any] = encoder.info().get("preprocessing") or {}
        if "mean" not in recorded or "std" not in recorded:
            raise ValueError(f"{encoder.model_id}: its info() records no preprocessing mean/std")
        return cls(
            encoder.image_size,
            encoder.patch_size,
            _floats(recorded["mean"]),
            _floats(recorded["std"]),
        )

    def preprocess(self, image: Image.Image) -> Pixels:
        return preprocess(
            image,
            image_size=self.image_size,
            patch_size=self.patch_size,
            mean=self.mean,
            std=self.std,
        )


def _floats(values: Sequence[float]) -> tuple[float, ...]:
    return tuple(float(v) for v in values)


@dataclass(frozen=True)
class Prepared:
    """Preprocessed pixels of one image and what producing them cost (seconds)."""

    pixels: Pixels
    decode_seconds: float
    preprocess_seconds: float
    size: tuple[int, int] = (0, 0)  # the image's full-resolution size after EXIF orientation


def prepare_image(
    source: ImageSource,
    encoder: Preprocessor,
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
    return Prepared(pixels, t1 - t0, time.perf_counter() - t1, original_size(image))


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
