"""Image decoding and preprocessing for the image encoder.

``bytes | Path | BinaryIO -> decode_image -> RGB PIL image -> preprocess -> float32 (3, H, W)``

Errors::

    ValueError
    └── ImageDecodeError          not an image, truncated, empty, unsupported mode
        └── ImageTooLargeError    too many pixels (checked from the header, before decoding)

Choices:

- Transparency is composited on **white**: photos with a cut-out background are shown on white
  almost everywhere, and a fixed colour keeps the vectors of the same picture identical whether it
  arrives as PNG with alpha or as a flattened JPEG.
- 16/32-bit greyscale (``I;16*``, ``I``, ``F``) is scaled to 8 bits by its nominal range: values
  that fit in 0..255 are taken as 8-bit, in 0..65535 as 16-bit (``/257``), float in 0..1 as unit
  range; anything else is min-max stretched (there is no nominal range to honour).
- Huge JPEGs are decoded at a reduced DCT scale (``Image.draft``) when ``max_side`` is given, so an
  8000×6000 photo never materialises at full size; the final resize then uses PIL's
  ``reducing_gap`` (integer box reduction first, then bicubic with antialias).
- Multi-frame files (GIF, TIFF) use their first frame.
"""

from __future__ import annotations

import contextlib
import functools
import io
import math
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import BinaryIO

import numpy as np
import numpy.typing as npt
from PIL import Image, ImageOps, UnidentifiedImageError

from models.errors import VisragError

DEFAULT_MAX_PIXELS = 64_000_000
INTERPOLATION = "bicubic_antialias"
RESIZE_POLICY = "aspect_preserving_longer_side"
# PIL reduces by an integer box filter until the image is within this factor of the target, then
# resamples bicubically. 2.0 rather than 3.0: a 1024×768 photo to 224×176 then box-halves first
# and resizes in 1.9 ms instead of 4.3 ms (bench/encoder.py machine), at a mean pixel difference
# of 0.5/255 from the exact bicubic resize (vector cosine >= 0.9999 on the tiny test model).
_REDUCING_GAP = 2.0
_WHITE = (255, 255, 255)


class ImageDecodeError(VisragError):
    """The bytes are not a usable image; ``str(err)`` is a reason fit for a user."""


class ImageTooLargeError(ImageDecodeError):
    """The image has more pixels than allowed (decompression-bomb guard)."""


#: ``Image.info`` key of a decoded image's full-resolution size after EXIF orientation (a JPEG
#: may decode at a reduced scale: region coordinates stay in the uploaded image's pixels).
ORIGINAL_SIZE = "visrag_original_size"


def original_size(image: Image.Image) -> tuple[int, int]:
    """The size an image had before any reduced-scale decoding (after EXIF orientation)."""
    size = image.info.get(ORIGINAL_SIZE)
    return (int(size[0]), int(size[1])) if size else image.size


def decode_image(
    data: bytes | Path | str | BinaryIO,
    *,
    max_pixels: int | None = DEFAULT_MAX_PIXELS,
    max_side: int | None = None,
) -> Image.Image:
    """Decode an image to an EXIF-transposed RGB ``PIL.Image``.

    Args:
        data: encoded bytes, a file path, or a binary file object.
        max_pixels: refuse images with more pixels than this, read from the header before any
            pixel is decoded. ``None`` disables our limit (PIL's own bomb guard still applies).
        max_side: when given, the image may be decoded at a reduced scale (JPEG DCT scaling) as
            long as its longer side stays at least ``max_side``; use the encoder's ``image_size``.

    Raises:
        ImageTooLargeError: too many pixels.
        ImageDecodeError: empty, unrecognised, truncated or corrupt data, or an unsupported mode.
    """
    if isinstance(data, (bytes, bytearray, memoryview)):
        return _decode_bytes(bytes(data), max_pixels=max_pixels, max_side=max_side)
    if isinstance(data, (str, Path)):
        path = Path(data)
        try:
            payload = path.read_bytes()
        except OSError as exc:
            raise ImageDecodeError(f"cannot read {path.name}: {exc.strerror or exc}") from exc
        return _decode_bytes(payload, max_pixels=max_pixels, max_side=max_side)
    return _decode_bytes(data.read(), max_pixels=max_pixels, max_side=max_side)


def _decode_bytes(payload: bytes, *, max_pixels: int | None, max_side: int | None) -> Image.Image:
    if not payload:
        raise ImageDecodeError("the file is empty (0 bytes)")
    _check_header(payload, max_pixels)
    try:
        with Image.open(io.BytesIO(payload)) as image:
            image.seek(0)
            full = image.size
            if max_side is not None and image.format == "JPEG":
                _draft(image, max_side)
            image.load()
            decoded = image.size
            ImageOps.exif_transpose(image, in_place=True)
            rgb = to_rgb(image)
            # the full-resolution size after orientation: the frame of a region given in pixels
            turned = image.size != decoded
            rgb.info[ORIGINAL_SIZE] = (full[1], full[0]) if turned else full
            return rgb
    except Image.DecompressionBombError as exc:
        raise ImageTooLargeError(f"image is too large: {exc}") from exc
    except ImageDecodeError:
        raise
    except (OSError, SyntaxError, ValueError, EOFError) as exc:
        raise ImageDecodeError(f"the image data is truncated or corrupt ({exc})") from exc


@contextlib.contextmanager
def _open_header(payload: bytes, max_pixels: int | None) -> Iterator[Image.Image]:
    """Open ``payload`` lazily (header only) and check its pixel count; PIL failures, here or in
    the ``with`` body, become :class:`ImageTooLargeError` / :class:`ImageDecodeError`."""
    try:
        with Image.open(io.BytesIO(payload)) as image:
            width, height = image.size
            if max_pixels is not None and width * height > max_pixels:
                raise ImageTooLargeError(
                    f"image is {width}×{height} = {width * height:,} pixels, "
                    f"more than the limit of {max_pixels:,}"
                )
            yield image
    except Image.DecompressionBombError as exc:
        raise ImageTooLargeError(f"image is too large: {exc}") from exc
    except UnidentifiedImageError as exc:
        raise ImageDecodeError("not a recognised image format") from exc
    except ImageDecodeError:
        raise
    except (OSError, SyntaxError, ValueError, EOFError) as exc:
        raise ImageDecodeError(f"the image data is truncated or corrupt ({exc})") from exc


def _check_header(payload: bytes, max_pixels: int | None) -> None:
    """Identify and verify the file and check its pixel count without decoding pixels."""
    with _open_header(payload, max_pixels) as image:
        image.verify()


# Bytes per pixel a decode holds at its peak, by the mode PIL decodes to: the native image (RGB is
# stored as 4 bytes a pixel, LA as 4, I;16 as 2, I and F as 4) plus what to_rgb makes from it
# (alpha: an RGBA copy, a white background, the composite and the RGB; 16/32-bit: the array, one
# working copy, the 8-bit levels, L and RGB). Measured as peak RSS growth of one 4-MP decode in a
# fresh process (tests/unit/test_decode_cost.py): RGB 4.05, L 5.0, I;16 9.6, I;16B 10.3, I and F
# 17.3, CMYK 8.1, RGBA and LA 20.1, P with transparency 21.1.
_PEAK_BYTES_PER_PIXEL = {
    "RGB": 4,
    "1": 5,
    "L": 5,
    "P": 5,
    "I;16": 11,
    "I;16L": 11,
    "I;16B": 11,
    "I;16N": 11,
    "I": 18,
    "F": 18,
    "RGBA": 21,
    "RGBa": 21,
    "LA": 21,
    "La": 21,
    "PA": 22,
}
_OTHER_MODES_BYTES_PER_PIXEL = 8  # CMYK, YCbCr, LAB, HSV: 4 native + 4 RGB


def decode_cost(payload: bytes, *, max_pixels: int | None, max_side: int | None = None) -> int:
    """Bytes that decoding ``payload`` (as :func:`decode_image` does) holds at its peak.

    Reads the header only (``Image.open`` is lazy; a JPEG's reduced DCT scale is applied as
    ``decode_image`` would), so a caller can reserve memory before any pixel is decoded.

    Raises:
        ImageTooLargeError: more than ``max_pixels`` pixels.
        ImageDecodeError: not a recognised image.
    """
    if not payload:
        raise ImageDecodeError("the file is empty (0 bytes)")
    with _open_header(payload, max_pixels) as image:
        if max_side is not None and image.format == "JPEG":
            _draft(image, max_side)
        mode, (width, height) = image.mode, image.size
        if mode == "P" and "transparency" in image.info:
            mode = "PA"  # decoded as a palette, converted through RGBA
    per_pixel = _PEAK_BYTES_PER_PIXEL.get(mode, _OTHER_MODES_BYTES_PER_PIXEL)
    return width * height * per_pixel * 11 // 10  # +10%: the resize's intermediate copies


def _draft(image: Image.Image, max_side: int) -> None:
    scale = max_side / max(image.size)
    if scale >= 1.0:
        return
    # draft() picks the largest DCT reduction (1/2, 1/4, 1/8) keeping both sides >= this size.
    wanted = (math.ceil(image.width * scale), math.ceil(image.height * scale))
    image.draft(image.mode if image.mode in ("RGB", "L") else None, wanted)


def to_rgb(image: Image.Image) -> Image.Image:
    """Convert any PIL mode to RGB (alpha composited on white, high bit depths scaled to 8 bits)."""
    mode = image.mode
    if mode == "RGB":
        return image
    if mode == "P":
        palette_mode = image.palette.mode if image.palette is not None else "RGB"
        has_alpha = "transparency" in image.info or palette_mode == "RGBA"
        image = image.convert("RGBA" if has_alpha else "RGB")
        mode = image.mode
        if mode == "RGB":
            return image
    if mode in ("I;16", "I;16L", "I;16B", "I;16N", "I", "F"):
        return Image.fromarray(_to_uint8(np.asarray(image)), mode="L").convert("RGB")
    if mode in ("RGBA", "LA", "PA", "RGBa", "La"):
        rgba = image.convert("RGBA")
        background = Image.new("RGBA", rgba.size, (*_WHITE, 255))
        return Image.alpha_composite(background, rgba).convert("RGB")
    try:
        return image.convert("RGB")
    except ValueError as exc:
        raise ImageDecodeError(f"unsupported image mode {mode!r}") from exc


def _to_uint8(values: npt.NDArray[np.generic]) -> npt.NDArray[np.uint8]:
    """8-bit levels of a greyscale array by its nominal range, with one working copy at most
    (uint32 for 16-bit integers, float64 otherwise), scaled in place: decode_cost counts it."""
    if values.size == 0:
        return values.astype(np.uint8)
    lo, hi = float(values.min()), float(values.max())
    integer = np.issubdtype(values.dtype, np.integer)
    if integer and lo >= 0 and hi <= 255:
        return values.astype(np.uint8)
    if integer and lo >= 0 and hi <= 65535:
        # rint(v / 257) == (v + 128) // 257 for integers (no value lies half-way)
        levels = values.astype(np.uint32)
        levels += 128
        levels //= 257
        return levels.astype(np.uint8)
    work = values.astype(np.float64)
    if not integer and lo >= 0.0 and hi <= 1.0:
        work *= 255.0
    elif not integer and lo >= 0 and hi <= 255:
        pass
    elif not integer and lo >= 0 and hi <= 65535:
        work /= 257.0
    else:
        work -= lo
        work *= 255.0 / max(hi - lo, 1e-12)
    np.rint(work, out=work)
    np.clip(work, 0, 255, out=work)
    return work.astype(np.uint8)


def target_size(
    width: int, height: int, *, image_size: int = 448, patch_size: int = 16
) -> tuple[int, int]:
    """Aspect-preserving size: longer side ``image_size``, both sides whole patches (>= 1)."""
    if width <= 0 or height <= 0:
        raise ValueError(f"image size must be positive, got {width}×{height}")
    # Round half up (not Python's half-to-even), so 4:3 at 224 px gives 224×176, not 224×160.
    longer = max(patch_size, math.floor(image_size / patch_size + 0.5) * patch_size)
    shorter_exact = min(width, height) * longer / max(width, height)
    shorter = max(patch_size, math.floor(shorter_exact / patch_size + 0.5) * patch_size)
    return (longer, shorter) if width >= height else (shorter, longer)


def preprocess(
    image: Image.Image,
    *,
    image_size: int,
    patch_size: int,
    mean: Sequence[float],
    std: Sequence[float],
) -> npt.NDArray[np.float32]:
    """Resize (aspect-preserving, bicubic with antialias), scale to [0, 1], normalise: (3, H, W)."""
    rgb = to_rgb(image)
    size = target_size(rgb.width, rgb.height, image_size=image_size, patch_size=patch_size)
    if rgb.size != size:
        rgb = rgb.resize(size, Image.Resampling.BICUBIC, reducing_gap=_REDUCING_GAP)
    # One table lookup per channel writes the normalised planes straight into (3, H, W): no
    # float (H, W, 3) intermediate, no transpose copy (0.12 vs 0.32 ms at 224×176).
    table = _normalise_table(tuple(float(v) for v in mean), tuple(float(v) for v in std))
    hwc = np.asarray(rgb)
    out = np.empty((3, hwc.shape[0], hwc.shape[1]), dtype=np.float32)
    for channel in range(3):
        np.take(table[channel], hwc[:, :, channel], out=out[channel])
    return out


@functools.lru_cache(maxsize=16)
def _normalise_table(mean: tuple[float, ...], std: tuple[float, ...]) -> npt.NDArray[np.float32]:
    """(3, 256) float32: the normalised value of every 8-bit level, per channel."""
    levels = np.arange(256, dtype=np.float64) / 255.0
    table = (levels[None, :] - np.asarray(mean)[:, None]) / np.asarray(std)[:, None]
    table = table.astype(np.float32)
    table.setflags(write=False)
    return table
