"""Decoding edge cases and aspect-preserving preprocessing."""

from __future__ import annotations

import io
import struct
import zlib
from pathlib import Path

import numpy as np
import pytest
from PIL import Image, ImageDraw, ImageFile

from models.imaging import (
    ImageDecodeError,
    ImageTooLargeError,
    decode_image,
    preprocess,
    target_size,
)

MEAN = (0.485, 0.456, 0.406)
STD = (0.229, 0.224, 0.225)


def encode(image: Image.Image, fmt: str, **kwargs) -> bytes:
    buf = io.BytesIO()
    image.save(buf, fmt, **kwargs)
    return buf.getvalue()


@pytest.mark.parametrize(
    ("width", "height"),
    [(600, 800), (1024, 768), (10, 10), (8000, 6000), (5000, 20), (33, 1000)],
    ids=["portrait", "landscape", "tiny", "huge", "panorama", "strip"],
)
@pytest.mark.parametrize("image_size", [224, 448])
def test_target_size_keeps_aspect_in_whole_patches(width, height, image_size):
    w, h = target_size(width, height, image_size=image_size, patch_size=16)
    assert w % 16 == 0 and h % 16 == 0 and min(w, h) >= 16
    assert max(w, h) == image_size
    assert (w >= h) == (width >= height)
    # The shorter side is the exact aspect-preserving length rounded to the nearest patch.
    exact = min(width, height) * image_size / max(width, height)
    assert abs(min(w, h) - max(16, exact)) <= 8


def test_target_size_rounds_longer_side_to_a_patch_multiple():
    assert target_size(100, 50, image_size=450, patch_size=16) == (448, 224)
    assert target_size(1024, 768, image_size=224, patch_size=16) == (224, 176)  # 168 rounds up
    with pytest.raises(ValueError):
        target_size(0, 10)


def test_preprocess_resizes_and_normalises_with_the_given_mean_std():
    mean_colour = tuple(round(m * 255) for m in MEAN)
    image = Image.new("RGB", (300, 200), mean_colour)
    ImageDraw.Draw(image).rectangle((0, 0, 149, 199), fill=(255, 255, 255))
    arr = preprocess(image, image_size=224, patch_size=16, mean=MEAN, std=STD)
    assert arr.dtype == np.float32 and arr.shape == (3, 144, 224)
    white = (1 - np.asarray(MEAN)) / np.asarray(STD)
    np.testing.assert_allclose(arr[:, 70, 10], white, atol=1e-4)  # left half white
    np.testing.assert_allclose(arr[:, 70, 200], 0.0, atol=0.02)  # right half the mean colour


def _modes() -> dict[str, tuple[Image.Image, str, tuple[int, int, int]]]:
    """mode -> (image, format to save it in, expected RGB at pixel (1, 1))."""
    grey16 = Image.new("I;16", (8, 6))
    grey16.putpixel((1, 1), 65535)
    grey32 = Image.new("I", (8, 6))
    grey32.putpixel((1, 1), 65535)
    palette = Image.new("P", (8, 6))
    palette.putpalette([0, 0, 0, 255, 0, 0] + [0] * 762)
    palette.putpixel((1, 1), 1)
    transparent = Image.new("RGBA", (8, 6), (255, 0, 0, 0))  # fully transparent red -> white
    half = Image.new("RGBA", (8, 6), (0, 0, 0, 128))  # half-transparent black on white -> grey
    return {
        "P": (palette, "PNG", (255, 0, 0)),
        "L": (Image.new("L", (8, 6), 200), "PNG", (200, 200, 200)),
        "LA": (Image.new("LA", (8, 6), (0, 0)), "PNG", (255, 255, 255)),
        "RGBA": (transparent, "PNG", (255, 255, 255)),
        "RGBA-half": (half, "PNG", (127, 127, 127)),
        "CMYK": (Image.new("CMYK", (8, 6), (0, 255, 255, 0)), "TIFF", (255, 0, 0)),
        "CMYK-jpeg": (Image.new("CMYK", (8, 6), (0, 0, 0, 0)), "JPEG", (255, 255, 255)),
        "I;16": (grey16, "PNG", (255, 255, 255)),
        "I": (grey32, "TIFF", (255, 255, 255)),
        "1": (Image.new("1", (8, 6), 1), "PNG", (255, 255, 255)),
        "P-transparent": (palette.copy(), "GIF", (255, 0, 0)),
    }


@pytest.mark.parametrize("name", list(_modes()))
def test_every_mode_decodes_to_rgb(name):
    image, fmt, expected = _modes()[name]
    decoded = decode_image(encode(image, fmt))
    assert decoded.mode == "RGB"
    assert decoded.size == (8, 6)
    assert np.abs(np.subtract(decoded.getpixel((1, 1)), expected)).max() <= 2


def test_sixteen_bit_keeps_its_scale_not_stretched():
    grey16 = Image.new("I;16", (4, 4), 0)
    grey16.putpixel((0, 0), 32896)  # half of 65535 -> 128, not stretched to 255
    decoded = decode_image(encode(grey16, "PNG"))
    assert decoded.getpixel((0, 0)) == (128, 128, 128)


def test_exif_orientation_is_applied():
    image = Image.new("RGB", (40, 20), (0, 0, 255))
    ImageDraw.Draw(image).rectangle((0, 0, 19, 19), fill=(255, 0, 0))  # left half red
    exif = Image.Exif()
    exif[0x0112] = 6  # stored image must be rotated 90° clockwise for display
    decoded = decode_image(encode(image, "JPEG", exif=exif.tobytes(), quality=95))
    assert decoded.size == (20, 40)
    top, bottom = decoded.getpixel((10, 5)), decoded.getpixel((10, 35))
    assert top[0] > 200 and top[2] < 60  # the left (red) half is now on top
    assert bottom[2] > 200 and bottom[0] < 60


def test_accepts_bytes_path_and_file_object(tmp_path: Path):
    data = encode(Image.new("RGB", (12, 9), (1, 2, 3)), "PNG")
    path = tmp_path / "a.png"
    path.write_bytes(data)
    for source in (data, path, io.BytesIO(data)):
        assert decode_image(source).getpixel((0, 0)) == (1, 2, 3)


@pytest.mark.parametrize(
    ("payload", "reason"),
    [
        (b"", "empty"),
        (b"definitely not an image" * 10, "not a recognised image"),
        (encode(Image.effect_noise((64, 64), 40).convert("RGB"), "JPEG")[:400], "truncated"),
        (encode(Image.effect_noise((64, 64), 40).convert("RGB"), "PNG")[:300], "truncated"),
    ],
    ids=["zero-byte", "garbage", "truncated-jpeg", "truncated-png"],
)
def test_bad_data_raises_decode_error_with_a_reason(payload, reason):
    with pytest.raises(ImageDecodeError, match=reason) as info:
        decode_image(payload)
    assert not isinstance(info.value, ImageTooLargeError)


def test_missing_file_is_a_decode_error(tmp_path: Path):
    with pytest.raises(ImageDecodeError, match="cannot read"):
        decode_image(tmp_path / "missing.jpg")


def _png_claiming(width: int, height: int) -> bytes:
    """A tiny PNG whose header claims width×height (the pixel data would not even fit)."""
    data = encode(Image.new("L", (1, 1)), "PNG")
    ihdr = struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0)
    chunk = b"IHDR" + ihdr
    patched = struct.pack(">I", 13) + chunk + struct.pack(">I", zlib.crc32(chunk))
    return data[:8] + patched + data[8 + 25 :]


def test_pixel_bomb_is_refused_from_the_header_without_decoding(monkeypatch):
    def no_decoding(self):
        raise AssertionError("pixels were decoded")

    monkeypatch.setattr(ImageFile.ImageFile, "load", no_decoding)
    with pytest.raises(ImageTooLargeError, match="pixels"):
        decode_image(_png_claiming(50_000, 50_000), max_pixels=64_000_000)
    with pytest.raises(ImageTooLargeError, match="limit of 1,000"):
        decode_image(encode(Image.new("RGB", (100, 100)), "PNG"), max_pixels=1_000)


def test_pil_decompression_bomb_error_is_mapped(monkeypatch):
    monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", 100)
    with pytest.raises(ImageTooLargeError):
        decode_image(encode(Image.new("RGB", (100, 100)), "PNG"), max_pixels=None)


@pytest.fixture(scope="module")
def huge_jpeg() -> bytes:
    image = Image.new("RGB", (8000, 6000), (30, 90, 160))
    ImageDraw.Draw(image).rectangle((0, 0, 3999, 5999), fill=(220, 40, 40))
    data = encode(image, "JPEG", quality=80)
    del image
    return data


def test_huge_jpeg_is_decoded_at_reduced_scale(huge_jpeg: bytes):
    # 8000×6000 RGB would be 144 MB; the DCT-scaled decode is 1/64 of that.
    decoded = decode_image(huge_jpeg, max_side=448)
    assert decoded.size == (1000, 750)
    arr = preprocess(decoded, image_size=448, patch_size=16, mean=MEAN, std=STD)
    assert arr.shape == (3, 336, 448)
    red = (np.array([220, 40, 40]) / 255 - MEAN) / STD
    np.testing.assert_allclose(arr[:, 100, 50], red, atol=0.1)  # left half stays red


def test_max_side_never_goes_below_the_requested_size(huge_jpeg: bytes):
    decoded = decode_image(huge_jpeg, max_side=1200)
    assert decoded.size == (2000, 1500)  # 1/4 scale: 1/8 would give 1000 < 1200


def test_preprocess_matches_the_float_formula_in_planar_layout():
    rng = np.random.default_rng(3)
    image = Image.fromarray(rng.integers(0, 256, (48, 64, 3), dtype=np.uint8))
    mean, std = (0.4, 0.5, 0.6), (0.2, 0.25, 0.3)
    got = preprocess(image, image_size=64, patch_size=16, mean=mean, std=std)
    want = (np.asarray(image, dtype=np.float64) / 255.0 - mean) / std
    assert got.dtype == np.float32 and got.flags.c_contiguous
    np.testing.assert_allclose(got, want.transpose(2, 0, 1), atol=1e-5)


def test_downscaling_a_photo_stays_within_half_a_level_of_exact_bicubic():
    rng = np.random.default_rng(4)
    noise = rng.integers(0, 256, (96, 128, 3), dtype=np.uint8)
    photo = Image.fromarray(noise).resize((1024, 768), Image.Resampling.BILINEAR)
    got = preprocess(photo, image_size=224, patch_size=16, mean=(0, 0, 0), std=(1, 1, 1))
    exact = photo.resize((224, 176), Image.Resampling.BICUBIC)
    diff = np.abs(got.transpose(1, 2, 0) * 255 - np.asarray(exact, dtype=np.float32))
    assert got.shape == (3, 176, 224)
    assert diff.mean() < 1.0 and diff.max() <= 16
