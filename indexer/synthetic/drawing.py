"""Drawing a car-body panel and each damage type; every drawer returns the defect's polygon."""

from __future__ import annotations

import math
from collections.abc import Callable

import numpy as np
from PIL import Image, ImageDraw

Point = tuple[float, float]
Rng = np.random.Generator


def panel(colour: tuple[int, int, int], size: tuple[int, int], rng: Rng) -> Image.Image:
    """Body colour with a vertical gradient, a soft diagonal highlight and panel gaps."""
    w, h = size
    # The shading is smooth: compute it at 1/8 resolution and let PIL upsample (10x faster).
    sw, sh = max(2, w // 8), max(2, h // 8)
    ys = np.linspace(1.15, 0.72, sh, dtype=np.float32)[:, None]
    xs = np.linspace(-1.0, 1.0, sw, dtype=np.float32)[None, :]
    angle = rng.uniform(0.3, 1.2)
    offset = rng.uniform(-0.6, 0.6)
    along = xs * math.cos(angle) + (ys - 0.9) * 3 * math.sin(angle)
    band = np.exp(-(((along - offset) / 0.25) ** 2))
    base = np.asarray(colour, np.float32)
    pixels = base * ys[..., None] + (70.0 * band)[..., None] + rng.normal(0, 3, (1, 1, 3))
    small = Image.fromarray(np.clip(pixels, 0, 255).astype(np.uint8), "RGB")
    image = small.resize((w, h), Image.Resampling.BILINEAR)
    draw = ImageDraw.Draw(image)
    gap = tuple(int(c * 0.35) for c in colour)
    s = min(w, h) / 480
    for _ in range(int(rng.integers(1, 3))):
        if rng.random() < 0.5:
            x = rng.uniform(0.15, 0.85) * w
            draw.line(
                [(x, 0), (x + rng.uniform(-0.1, 0.1) * w, h)], fill=gap, width=max(1, round(2 * s))
            )
        else:
            y = rng.uniform(0.15, 0.85) * h
            draw.line(
                [(0, y), (w, y + rng.uniform(-0.1, 0.1) * h)], fill=gap, width=max(1, round(2 * s))
            )
    return image


# -- damage drawers: each draws on the image and returns the defect's polygon -------------------
def scale(size: tuple[int, int]) -> float:
    return min(size) / 480


def _centre(size: tuple[int, int], rng: Rng, margin: float = 0.12) -> Point:
    return (rng.uniform(margin, 1 - margin) * size[0], rng.uniform(margin, 1 - margin) * size[1])


def _band(p: Point, q: Point, half: float) -> list[Point]:
    """The quadrilateral of half-width ``half`` around segment pq."""
    dx, dy = q[0] - p[0], q[1] - p[1]
    norm = math.hypot(dx, dy) or 1.0
    nx, ny = -dy / norm * half, dx / norm * half
    return [
        (p[0] + nx, p[1] + ny),
        (q[0] + nx, q[1] + ny),
        (q[0] - nx, q[1] - ny),
        (p[0] - nx, p[1] - ny),
    ]


def _segment(size: tuple[int, int], rng: Rng, length: float) -> tuple[Point, Point]:
    cx, cy = _centre(size, rng)
    a = rng.uniform(0, math.pi)
    dx, dy = math.cos(a) * length / 2, math.sin(a) * length / 2
    return (cx - dx, cy - dy), (cx + dx, cy + dy)


def _mix(colour: tuple[int, int, int], other: tuple[int, int, int], t: float) -> tuple[int, ...]:
    return tuple(int(a * (1 - t) + b * t) for a, b in zip(colour, other, strict=True))


def _surface_scratch(draw: ImageDraw.ImageDraw, colour, size, rng: Rng, s: float) -> list[Point]:
    p, q = _segment(size, rng, rng.uniform(30, 90) * s)
    light = _mix(colour, (245, 245, 245), 0.6)
    lines = int(rng.integers(2, 5))
    spread = 2.5 * s
    dx, dy = q[0] - p[0], q[1] - p[1]
    norm = math.hypot(dx, dy) or 1.0
    nx, ny = -dy / norm, dx / norm
    for i in range(lines):
        o = (i - (lines - 1) / 2) * spread + rng.uniform(-0.8, 0.8)
        draw.line(
            [(p[0] + nx * o, p[1] + ny * o), (q[0] + nx * o, q[1] + ny * o)], fill=light, width=1
        )
    return _band(p, q, lines * spread / 2 + 2)


def _deep_scratch(draw: ImageDraw.ImageDraw, colour, size, rng: Rng, s: float) -> list[Point]:
    p, q = _segment(size, rng, rng.uniform(40, 120) * s)
    width = max(3, round(rng.uniform(4, 7) * s))
    draw.line([p, q], fill=_mix(colour, (230, 230, 230), 0.5), width=width + 2)
    draw.line([p, q], fill=(35, 33, 32), width=width)
    return _band(p, q, width / 2 + 2)


def draw_dent(draw: ImageDraw.ImageDraw, colour, size, rng: Rng, s: float) -> list[Point]:
    cx, cy = _centre(size, rng)
    rx, ry = rng.uniform(15, 45) * s, rng.uniform(12, 35) * s
    for k, t in enumerate(np.linspace(0.0, 1.0, 5)):
        f = 1 - 0.6 * t
        shade = _mix(colour, (0, 0, 0), 0.12 + 0.28 * t)
        ox = 0.25 * rx * t
        draw.ellipse(
            [cx - rx * f + ox, cy - ry * f + ox, cx + rx * f + ox, cy + ry * f + ox], fill=shade
        )
        if k == 0:
            draw.arc(
                [cx - rx, cy - ry, cx + rx, cy + ry],
                200,
                290,
                fill=_mix(colour, (255, 255, 255), 0.7),
                width=2,
            )
    return [
        (cx + rx * math.cos(a), cy + ry * math.sin(a))
        for a in np.linspace(0, 2 * math.pi, 12, endpoint=False)
    ]


def _crack(draw: ImageDraw.ImageDraw, colour, size, rng: Rng, s: float) -> list[Point]:
    start = _centre(size, rng, 0.2)
    points = [start]
    for _ in range(int(rng.integers(2, 4))):
        x, y = start
        heading = rng.uniform(0, 2 * math.pi)
        path = [(x, y)]
        for _ in range(int(rng.integers(5, 10))):
            heading += rng.uniform(-0.6, 0.6)
            step = rng.uniform(5, 12) * s
            x, y = x + math.cos(heading) * step, y + math.sin(heading) * step
            path.append((x, y))
        draw.line(path, fill=(20, 18, 18), width=max(1, round(1.5 * s)))
        points.extend(path)
    pad = 3.0
    padded = [
        (x + dx, y + dy) for x, y in points for dx, dy in ((pad, 0), (-pad, 0), (0, pad), (0, -pad))
    ]
    return _convex_hull(padded)


def _paint_peeling(draw: ImageDraw.ImageDraw, colour, size, rng: Rng, s: float) -> list[Point]:
    cx, cy = _centre(size, rng)
    r = rng.uniform(15, 40) * s
    angles = np.sort(rng.uniform(0, 2 * math.pi, int(rng.integers(8, 15))))
    radii = r * rng.uniform(0.55, 1.0, len(angles))
    polygon = [
        (cx + f * math.cos(a), cy + f * math.sin(a)) for a, f in zip(angles, radii, strict=True)
    ]
    draw.polygon(polygon, fill=(196, 194, 186), outline=_mix(colour, (0, 0, 0), 0.4))
    for _ in range(int(rng.integers(1, 4))):
        x, y = cx + rng.uniform(-0.4, 0.4) * r, cy + rng.uniform(-0.4, 0.4) * r
        d = rng.uniform(2, 6) * s
        draw.ellipse([x - d, y - d, x + d, y + d], fill=(150, 152, 158))
    return polygon


def _missing_part(draw: ImageDraw.ImageDraw, colour, size, rng: Rng, s: float) -> list[Point]:
    cx, cy = _centre(size, rng)
    hw, hh = rng.uniform(20, 45) * s, rng.uniform(12, 30) * s
    box = [cx - hw, cy - hh, cx + hw, cy + hh]
    radius = int(min(hw, hh) / 3) - 1
    if radius >= 2:  # PIL cannot round the corners of a box smaller than twice the radius
        draw.rounded_rectangle(box, radius=radius, fill=(14, 14, 16), outline=(90, 90, 92), width=1)
    else:
        draw.rectangle(box, fill=(14, 14, 16), outline=(90, 90, 92))
    return [(box[0], box[1]), (box[2], box[1]), (box[2], box[3]), (box[0], box[3])]


def _missing_accessory(draw: ImageDraw.ImageDraw, colour, size, rng: Rng, s: float) -> list[Point]:
    cx, cy = _centre(size, rng)
    hw, hh = rng.uniform(15, 35) * s, rng.uniform(8, 18) * s
    box = [cx - hw, cy - hh, cx + hw, cy + hh]
    draw.rectangle(
        box, fill=_mix(colour, (128, 128, 128), 0.75), outline=_mix(colour, (0, 0, 0), 0.5)
    )
    for fx in (-0.6, 0.0, 0.6):
        d = max(1.5, 2.5 * s)
        draw.ellipse([cx + fx * hw - d, cy - d, cx + fx * hw + d, cy + d], fill=(10, 10, 10))
    return [(box[0], box[1]), (box[2], box[1]), (box[2], box[3]), (box[0], box[3])]


def _misaligned_part(draw: ImageDraw.ImageDraw, colour, size, rng: Rng, s: float) -> list[Point]:
    p, q = _segment(size, rng, rng.uniform(80, 200) * s)
    shift = rng.uniform(6, 12) * s
    side = _band(p, q, shift)  # one side of the gap sits lower: a shadow band along it
    draw.polygon([p, q, side[1], side[0]], fill=_mix(colour, (0, 0, 0), 0.45))
    draw.line([p, q], fill=(12, 12, 12), width=max(2, round(3 * s)))
    hi = _band(p, q, -shift)[:2]
    draw.line(hi, fill=_mix(colour, (255, 255, 255), 0.6), width=max(1, round(2 * s)))
    return _band(p, q, shift + 2)


DRAWERS: dict[str, Callable[..., list[Point]]] = {
    "1": _surface_scratch,
    "2": draw_dent,
    "3": _paint_peeling,
    "4": _deep_scratch,
    "5": _crack,
    "6": _missing_part,
    "7": _missing_accessory,
    "8": _misaligned_part,
}


def _convex_hull(points: list[Point]) -> list[Point]:
    """Andrew's monotone chain."""
    pts = sorted(set(points))
    if len(pts) < 3:
        return pts

    def cross(o: Point, a: Point, b: Point) -> float:
        return (a[0] - o[0]) * (b[1] - o[1]) - (a[1] - o[1]) * (b[0] - o[0])

    lower: list[Point] = []
    upper: list[Point] = []
    for p in pts:
        while len(lower) >= 2 and cross(lower[-2], lower[-1], p) <= 0:
            lower.pop()
        lower.append(p)
    for p in reversed(pts):
        while len(upper) >= 2 and cross(upper[-2], upper[-1], p) <= 0:
            upper.pop()
        upper.append(p)
    return lower[:-1] + upper[:-1]
