"""Seeded synthetic photos for the encoder tests: a flat colour with four coloured spots."""

from __future__ import annotations

import numpy as np
from PIL import Image, ImageDraw


def picture(width: int, height: int, seed: int) -> Image.Image:
    """The same ``width`` x ``height`` RGB picture for the same ``seed``, different across seeds."""
    rng = np.random.default_rng(seed)
    image = Image.new("RGB", (width, height), tuple(int(v) for v in rng.integers(0, 256, 3)))
    draw = ImageDraw.Draw(image)
    for _ in range(4):
        x, y = int(rng.integers(0, width)), int(rng.integers(0, height))
        colour = tuple(int(v) for v in rng.integers(0, 256, 3))
        draw.ellipse((x - 10, y - 10, x + 10, y + 10), fill=colour)
    return image
