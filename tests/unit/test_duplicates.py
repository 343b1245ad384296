"""Near-duplicates by bytes and by perceptual hash: an exact and a re-encoded copy are found,
another photo and a flat picture are not."""

from __future__ import annotations

import io

import numpy as np
from PIL import Image, ImageDraw

from indexer.index.duplicates import find_duplicates, fingerprint


def scene(seed: int, size: tuple[int, int] = (320, 240)) -> Image.Image:
    """A picture with structure: random filled shapes on a gradient."""
    rng = np.random.default_rng(seed)
    ramp = np.linspace(0, 255, size[0], dtype=np.uint8)
    image = Image.fromarray(np.stack([np.tile(ramp, (size[1], 1))] * 3, axis=-1))
    draw = ImageDraw.Draw(image)
    for _ in range(12):
        x, y = rng.integers(0, size[0] - 40), rng.integers(0, size[1] - 40)
        w, h = rng.integers(20, 120, size=2)
        colour = tuple(int(c) for c in rng.integers(0, 256, size=3))
        (draw.ellipse if rng.random() < 0.5 else draw.rectangle)((x, y, x + w, y + h), colour)
    return image


def encoded(image: Image.Image, *, quality: int = 95, scale: float = 1.0) -> bytes:
    if scale != 1.0:
        image = image.resize((round(image.width * scale), round(image.height * scale)))
    out = io.BytesIO()
    image.save(out, format="JPEG", quality=quality)
    return out.getvalue()


def flagged(data: bytes, known: dict[str, bytes]) -> list[tuple[str, str]]:
    prints = {item: fingerprint(raw) for item, raw in known.items()}
    vector = np.ones(4, np.float32)
    found = find_duplicates([("new", fingerprint(data), vector)], prints, max_distance=8)
    return [(d.duplicate_of, d.reason.split()[0]) for d in found]


def test_an_exact_and_a_reencoded_copy_are_flagged_another_photo_is_not():
    original = encoded(scene(1))
    known = {"a": original, "b": encoded(scene(2)), "c": encoded(scene(3))}
    assert flagged(original, known) == [("a", "identical")]
    assert flagged(encoded(scene(1), quality=70, scale=0.9), known) == [("a", "perceptual")]
    assert flagged(encoded(scene(4)), known) == []


def test_a_flat_picture_is_compared_by_bytes_only():
    flat = encoded(Image.new("RGB", (64, 48), (200, 30, 30)))
    other_flat = encoded(Image.new("RGB", (64, 48), (30, 200, 30)))
    assert fingerprint(flat).phash is None
    assert flagged(other_flat, {"red": flat}) == []


def test_vectors_count_only_from_the_threshold_and_never_the_item_itself():
    prints = {"a": fingerprint(encoded(scene(5)))}
    vectors = np.eye(3, dtype=np.float32)
    near = np.array([0.99, 0.14, 0.0], np.float32)
    new = [("x", fingerprint(encoded(scene(6))), near)]
    common = {"vectors": vectors, "vector_ids": ["a", "b", "c"], "max_distance": 8}
    assert find_duplicates(new, prints, **common) == []  # no threshold: not compared
    assert [d.duplicate_of for d in find_duplicates(new, prints, min_cosine=0.98, **common)] == [
        "a"
    ]
    itself = [("a", fingerprint(encoded(scene(6))), near)]
    assert find_duplicates(itself, prints, min_cosine=0.98, **common) == []
