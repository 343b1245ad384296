"""Size measures of a dataset analysis: summary statistics, defect density terciles, image sizes
and defect area relative to the image (see :mod:`indexer.analysis` for the definitions)."""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
from typing import Any

import numpy as np

from indexer.readers.records import Record

AREA_BUCKETS: tuple[tuple[str, float], ...] = (
    ("very_small", 0.005),
    ("small", 0.02),
    ("medium", 0.10),
    ("large", float("inf")),
)


def rounded(x: float) -> float:
    return round(float(x), 6)


def stats(values: np.ndarray, *, histogram: bool = False) -> dict[str, Any]:
    if values.size == 0:
        out: dict[str, Any] = {"mean": 0.0, "median": 0.0, "std": 0.0, "min": 0, "max": 0}
    else:
        out = {
            "mean": rounded(values.mean()),
            "median": rounded(np.median(values)),
            "std": rounded(values.std()),
            "min": rounded(values.min()),
            "max": rounded(values.max()),
        }
    if histogram:
        counts = Counter(int(v) for v in values)
        out["histogram"] = {str(k): counts[k] for k in sorted(counts)}
    return out


def density(damaged: np.ndarray, no_damage: int) -> dict[str, Any]:
    if damaged.size == 0:
        return {"thresholds": [], "buckets": {}, "no_damage_images": no_damage}
    t1, t2 = (float(q) for q in np.quantile(damaged, [1 / 3, 2 / 3]))
    low = int((damaged <= t1).sum())
    high = int((damaged > t2).sum())
    return {
        "thresholds": [rounded(t1), rounded(t2)],
        "rule": "low: n <= t1; medium: t1 < n <= t2; high: n > t2 (n = defects per damaged image)",
        "buckets": {"low": low, "medium": int(damaged.size) - low - high, "high": high},
        "no_damage_images": no_damage,
    }


def image_sizes(records: Sequence[Record]) -> dict[str, Any]:
    sized = [(r.width, r.height) for r in records if r.width and r.height]
    counts = Counter(sized)
    widths = np.array([w for w, _ in sized], dtype=float)
    heights = np.array([h for _, h in sized], dtype=float)
    top = sorted(counts.items(), key=lambda kv: (-kv[1], kv[0]))[:10]
    return {
        "distinct": len(counts),
        "most_common": [{"width": w, "height": h, "images": n} for (w, h), n in top],
        "width": stats(widths),
        "height": stats(heights),
        "megapixels": stats(widths * heights / 1e6),
    }


def area_bucket(share: float) -> str:
    for name, upper in AREA_BUCKETS:
        if share < upper:
            return name
    return AREA_BUCKETS[-1][0]


def relative_area(records: Sequence[Record], order: list[str]) -> dict[str, Any]:
    buckets: Counter[str] = Counter()
    per_label: dict[str, Counter[str]] = {}
    shares = []
    for r in records:
        if not (r.width and r.height):
            continue
        for d in r.defects:
            share = d.area / (r.width * r.height)
            shares.append(share)
            name = area_bucket(share)
            buckets[name] += 1
            per_label.setdefault(d.label, Counter())[name] += 1
    names = [name for name, _ in AREA_BUCKETS]
    return {
        "thresholds": {
            "very_small": "< 0.5%",
            "small": "0.5% to < 2%",
            "medium": "2% to < 10%",
            "large": ">= 10%",
        },
        "buckets": {name: buckets[name] for name in names},
        "share_of_image": stats(np.array(shares, dtype=float)),
        "per_label": {
            k: {name: per_label[k][name] for name in names} for k in order if k in per_label
        },
    }
