"""``split_report.json``: per-label and per-zone counts and proportions on each side."""

from __future__ import annotations

from typing import Any

import numpy as np
import numpy.typing as npt

from indexer.readers.records import Record
from indexer.split.stratification import NO_DAMAGE, ZONE_PREFIX, GroupMatrix

FREQUENT = 20  # images a label needs to count in "largest_deviation_frequent"


def build_report(
    p: GroupMatrix,
    in_test: npt.NDArray[np.bool_],
    train: list[Record],
    test: list[Record],
    *,
    test_size: float,
    seed: int,
) -> dict[str, Any]:
    def side_stats(key_of) -> dict[str, dict[str, Any]]:
        out: dict[str, dict[str, Any]] = {}
        for side, recs in (("train", train), ("test", test)):
            for r in recs:
                for key, instances in key_of(r):
                    entry = out.setdefault(key, _empty_entry())
                    entry["images"][side] += 1
                    entry["instances"][side] += instances
        for key, entry in out.items():
            images = entry["images"]
            total = images["train"] + images["test"]
            entry["proportion"] = {
                side: _r(images[side] / n) if n else 0.0
                for side, n in (("train", len(train)), ("test", len(test)))
            }
            entry["test_fraction"] = _r(images["test"] / total)
            entry["deviation"] = _r(abs(images["test"] / total - test_size))
            entry["groups"] = int(p.group_has[p.keys.index(key)])
        return dict(sorted(out.items()))

    labels = side_stats(
        lambda r: [(k, n) for k, n in r.labels.items() if n > 0] or [(NO_DAMAGE, 0)]
    )
    zones = side_stats(lambda r: [(ZONE_PREFIX + r.zone, len(r.defects))])
    zones = {k[len(ZONE_PREFIX) :]: v for k, v in zones.items()}
    for entry in zones.values():
        entry.pop("instances")
    one_sided = [
        k
        for k, e in labels.items()
        if e["groups"] >= 2 and (e["images"]["train"] == 0 or e["images"]["test"] == 0)
    ]
    n = len(train) + len(test)
    return {
        "seed": seed,
        "test_size": test_size,
        "method": "iterative stratification (Sechidis et al. 2011) over canonical labels at "
        "group level, zone as secondary key, then local search on per-label deviation",
        "images": {
            "train": len(train),
            "test": len(test),
            "total": n,
            "test_fraction": _r(len(test) / n),
        },
        "groups": {
            "train": int((~in_test).sum()),
            "test": int(in_test.sum()),
            "total": len(p.groups),
            "largest": int(p.sizes.max()),
        },
        "largest_deviation": _largest(labels),
        # a label on 3 images cannot be split 80/20; this one shows the balance that was possible
        "largest_deviation_frequent": {
            "min_images": FREQUENT,
            **_largest({k: e for k, e in labels.items() if _images(e) >= FREQUENT}),
        },
        "largest_zone_deviation": _largest(zones),
        "labels_missing_from_a_side": one_sided,
        "labels_in_one_group_only": [k for k, e in labels.items() if e["groups"] < 2],
        "labels": labels,
        "zones": zones,
    }


def _empty_entry() -> dict[str, Any]:
    return {"images": {"train": 0, "test": 0}, "instances": {"train": 0, "test": 0}}


def _images(entry: dict[str, Any]) -> int:
    return int(entry["images"]["train"] + entry["images"]["test"])


def _largest(entries: dict[str, dict[str, Any]]) -> dict[str, Any]:
    if not entries:
        return {"key": None, "value": 0.0}
    key = max(entries, key=lambda k: (entries[k]["deviation"], k))
    return {"key": key, "value": entries[key]["deviation"]}


def _r(x: float) -> float:
    return round(float(x), 6)
