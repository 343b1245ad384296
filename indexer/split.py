"""Deterministic, multi-label, group-aware train/test split.

Method, at the level of groups (a group never spans both sides):

1. **Iterative stratification** (Sechidis, Tsoumakas & Vlahavas, 2011) over canonical labels:
   take the label with the fewest images still unassigned, hand each of its groups to the side
   that most wants that label, breaking ties by the side that most wants the group's zones (zone
   is the secondary key), then the side that wants the most images, then a seeded coin.
   ``iterative-stratification``'s splitters cannot keep groups together, hence our own.
2. **Local search** on the result: move one group, or swap two, while that lowers
   ``sum + max`` of the per-label deviation of the test share from ``test_size``, plus
   ``zone_weight`` times the per-zone deviations, plus the deviation of the image count, plus a
   large penalty for every label present in >= 2 groups that is missing from one side (so the
   "every such label on both sides" rule is repaired when stratification misses it).

Images without defects count under ``no_damage`` so they are stratified too. Records and groups
are sorted by id before anything random happens, so the same records and seed give the same
split whatever order they came in.
"""

from __future__ import annotations

import json
from collections import defaultdict
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt

from indexer.jsonl import relative_image_path, write_jsonl
from indexer.readers import DatasetScan, read_dataset
from indexer.records import Record
from models.taxonomy import Taxonomy

NO_DAMAGE = "no_damage"
_PENALTY = 100.0  # per label with >= 2 groups that is missing from one side
_ZONE_PREFIX = "zone:"


class SplitError(ValueError):
    """The records cannot be split (bad test_size, fewer than two groups, duplicate ids)."""


@dataclass(frozen=True)
class SplitResult:
    train: list[Record]
    test: list[Record]
    report: dict[str, Any]


@dataclass(frozen=True)
class _Problem:
    """Group x key image counts; keys are labels first, then zones."""

    groups: list[str]
    keys: list[str]
    n_labels: int
    counts: npt.NDArray[np.float64]  # (G, K) images of the group carrying each key
    sizes: npt.NDArray[np.float64]  # (G,) images per group
    group_has: npt.NDArray[np.int64]  # (K,) groups carrying each key


def split_dataset(
    records: list[Record],
    *,
    test_size: float = 0.2,
    seed: int = 42,
    zone_weight: float = 0.5,
    max_moves: int | None = None,
) -> SplitResult:
    """Split records into train and test; see the module docstring for the method.

    Args:
        records: records with ``group`` set (an empty group means the record is its own group).
        test_size: target share of images in the test side, in (0, 1).
        seed: seeds the tie-breaks and the order groups are visited in.
        zone_weight: weight of the per-zone deviations relative to the per-label ones.
        max_moves: cap on local-search moves (default: the number of groups).

    Returns:
        A :class:`SplitResult`; both sides sorted by id; ``report`` as written to
        ``split_report.json``.
    """
    if not 0.0 < test_size < 1.0:
        raise SplitError(f"test_size must be in (0, 1), got {test_size}")
    ordered = sorted(records, key=lambda r: r.id)
    ids = [r.id for r in ordered]
    if len(set(ids)) != len(ids):
        raise SplitError("duplicate record ids: each record must have a unique id")
    members: dict[str, list[Record]] = defaultdict(list)
    for r in ordered:
        members[r.group or r.id].append(r)
    if len(members) < 2:
        raise SplitError(f"need at least two groups to split, got {len(members)}")
    problem = _build(members)
    rng = np.random.default_rng(seed)
    in_test = _stratify(problem, test_size, rng)
    moves = len(problem.groups) if max_moves is None else max_moves
    in_test = _improve(problem, in_test, test_size, zone_weight, moves)
    test_groups = {g for g, t in zip(problem.groups, in_test, strict=True) if t}
    train = [r for r in ordered if (r.group or r.id) not in test_groups]
    test = [r for r in ordered if (r.group or r.id) in test_groups]
    report = _report(problem, in_test, train, test, test_size=test_size, seed=seed)
    return SplitResult(train=train, test=test, report=report)


def write_split(result: SplitResult, out_dir: str | Path) -> dict[str, Path]:
    """Write ``train.jsonl``, ``test.jsonl`` (image paths relative to ``out_dir``) and
    ``split_report.json``; returns their paths."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    paths = {
        "train": out / "train.jsonl",
        "test": out / "test.jsonl",
        "report": out / "split_report.json",
    }
    write_jsonl(result.train, paths["train"])
    write_jsonl(result.test, paths["test"])
    text = json.dumps(result.report, indent=2, ensure_ascii=False) + "\n"
    paths["report"].write_text(text, encoding="utf-8", newline="\n")
    return paths


def split_files(
    path: str | Path,
    out_dir: str | Path,
    *,
    taxonomy: Taxonomy,
    test_size: float = 0.2,
    seed: int = 42,
    format: str = "auto",
    group_by: str | None = None,
    images_dir: str | Path | None = None,
    progress: bool = False,
) -> tuple[SplitResult, dict[str, Path], DatasetScan]:
    """Read a dataset, split it and write the split; returns (result, paths, scan).

    The report gains a ``dataset`` entry: the dataset path relative to ``out_dir``, its format,
    the group_by rule, how many records were split and how many inputs were skipped.
    """
    scan = read_dataset(
        path,
        taxonomy=taxonomy,
        format=format,
        group_by=group_by,
        images_dir=images_dir,
        progress=progress,
    )
    result = split_dataset(scan.records, test_size=test_size, seed=seed)
    dataset = {
        "path": relative_image_path(Path(path), Path(out_dir)),
        "format": scan.format,
        "group_by": group_by or "image",
        "records": len(scan.records),
        "problems": len(scan.problems),
    }
    result = SplitResult(result.train, result.test, {"dataset": dataset, **result.report})
    return result, write_split(result, out_dir), scan


def print_summary(report: dict[str, Any], *, console: Any = None) -> None:
    """Sizes of both sides, the largest deviations, and labels that could not be spread."""
    from rich.console import Console

    console = console or Console()
    images, groups = report["images"], report["groups"]
    console.print(
        f"train [bold]{images['train']}[/] images / {groups['train']} groups, "
        f"test [bold]{images['test']}[/] images / {groups['test']} groups "
        f"(test fraction {images['test_fraction']:.3f}, target {report['test_size']})"
    )
    lab, zone = report["largest_deviation"], report["largest_zone_deviation"]
    console.print(
        f"largest deviation from the target: label {lab['key']} {lab['value']:.3f}, "
        f"zone {zone['key']} {zone['value']:.3f}"
    )
    if report["labels_in_one_group_only"]:
        console.print(
            "[yellow]in a single group (one side only):[/] "
            + ", ".join(report["labels_in_one_group_only"])
        )
    if report["labels_missing_from_a_side"]:
        console.print(
            "[bold red]missing from a side:[/] " + ", ".join(report["labels_missing_from_a_side"])
        )


def record_keys(record: Record) -> tuple[list[str], str]:
    """The label keys (``no_damage`` for an image without labels) and zone of a record."""
    labels = [k for k, n in record.labels.items() if n > 0] or [NO_DAMAGE]
    return labels, record.zone


# -- building and solving -------------------------------------------------------------------------
def _build(members: dict[str, list[Record]]) -> _Problem:
    groups = sorted(members)
    labels: set[str] = set()
    zones: set[str] = set()
    for recs in members.values():
        for r in recs:
            lab, zone = record_keys(r)
            labels.update(lab)
            zones.add(zone)
    keys = sorted(labels) + [_ZONE_PREFIX + z for z in sorted(zones)]
    index = {k: i for i, k in enumerate(keys)}
    counts = np.zeros((len(groups), len(keys)))
    sizes = np.zeros(len(groups))
    for gi, g in enumerate(groups):
        for r in members[g]:
            lab, zone = record_keys(r)
            for k in lab:
                counts[gi, index[k]] += 1
            counts[gi, index[_ZONE_PREFIX + zone]] += 1
            sizes[gi] += 1
    return _Problem(groups, keys, len(labels), counts, sizes, (counts > 0).sum(axis=0))


def _stratify(p: _Problem, test_size: float, rng: np.random.Generator) -> npt.NDArray[np.bool_]:
    """Sechidis et al.'s iterative stratification with group weights; True = test."""
    ratios = np.array([1.0 - test_size, test_size])
    desired = ratios[:, None] * p.counts.sum(axis=0)[None, :]  # (2, K)
    desired_size = ratios * p.sizes.sum()
    assigned = np.full(len(p.groups), -1)
    order = rng.permutation(len(p.groups))  # the visiting order is the seeded part
    labels = p.counts[:, : p.n_labels]
    while (assigned < 0).any():
        left = labels[assigned < 0].sum(axis=0)
        candidates = np.where(left > 0, left, np.inf)
        key = int(np.argmin(candidates))
        for g in order:
            if assigned[g] >= 0 or labels[g, key] == 0:
                continue
            zones = p.counts[g, p.n_labels :] > 0
            scores = [
                (
                    desired[f, key],
                    desired[f, p.n_labels :][zones].sum(),
                    desired_size[f],
                    rng.random(),
                )
                for f in (0, 1)
            ]
            fold = 0 if scores[0] > scores[1] else 1
            assigned[g] = fold
            desired[fold] -= p.counts[g]
            desired_size[fold] -= p.sizes[g]
    return assigned == 1


def _objective(
    p: _Problem,
    test_counts: npt.NDArray[np.float64],
    test_images: npt.NDArray[np.float64],
    t: float,
    zone_weight: float,
) -> npt.NDArray[np.float64]:
    """Objective for a batch of candidate test sides: test_counts (..., K), test_images (...)."""
    totals = p.counts.sum(axis=0)
    dev = np.abs(test_counts / totals - t)
    label_dev = dev[..., : p.n_labels]
    spread = p.group_has[: p.n_labels] >= 2
    label_counts = test_counts[..., : p.n_labels]
    one_sided = spread & ((label_counts == 0) | (label_counts == totals[: p.n_labels]))
    size_dev = np.abs(test_images / p.sizes.sum() - t)
    return (
        label_dev.sum(axis=-1)
        + label_dev.max(axis=-1)
        + zone_weight * dev[..., p.n_labels :].sum(axis=-1)
        + p.n_labels * size_dev
        + _PENALTY * one_sided.sum(axis=-1)
    )


def _improve(
    p: _Problem,
    in_test: npt.NDArray[np.bool_],
    t: float,
    zone_weight: float,
    max_moves: int,
    swap_candidates: int = 48,
) -> npt.NDArray[np.bool_]:
    """Steepest-descent local search over single-group moves and pairwise swaps."""
    in_test = in_test.copy()
    for _ in range(max_moves):
        counts = p.counts[in_test].sum(axis=0)
        images = p.sizes[in_test].sum()
        current = float(_objective(p, counts, images, t, zone_weight))
        sign = np.where(in_test, -1.0, 1.0)
        moved = _objective(
            p, counts + sign[:, None] * p.counts, images + sign * p.sizes, t, zone_weight
        )
        best = int(np.argmin(moved))
        if moved[best] < current - 1e-9:
            in_test[best] = not in_test[best]
            continue
        # No single move helps: try swapping a train group with a test group.
        train_idx = np.flatnonzero(~in_test)
        test_idx = np.flatnonzero(in_test)
        a = train_idx[np.argsort(moved[train_idx], kind="stable")[:swap_candidates]]
        b = test_idx[np.argsort(moved[test_idx], kind="stable")[:swap_candidates]]
        delta = p.counts[a][:, None, :] - p.counts[b][None, :, :]
        size_delta = p.sizes[a][:, None] - p.sizes[b][None, :]
        swapped = _objective(p, counts + delta, images + size_delta, t, zone_weight)
        i, j = np.unravel_index(int(np.argmin(swapped)), swapped.shape)
        if swapped[i, j] < current - 1e-9:
            in_test[a[i]] = True
            in_test[b[j]] = False
            continue
        break
    return in_test


# -- report ---------------------------------------------------------------------------------------
def _report(
    p: _Problem,
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
    zones = side_stats(lambda r: [(_ZONE_PREFIX + r.zone, len(r.defects))])
    zones = {k[len(_ZONE_PREFIX) :]: v for k, v in zones.items()}
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
        },  # fmt: skip
        "groups": {
            "train": int((~in_test).sum()),
            "test": int(in_test.sum()),
            "total": len(p.groups),
            "largest": int(p.sizes.max()),
        },
        "largest_deviation": _largest(labels),
        "largest_zone_deviation": _largest(zones),
        "labels_missing_from_a_side": one_sided,
        "labels_in_one_group_only": [k for k, e in labels.items() if e["groups"] < 2],
        "labels": labels,
        "zones": zones,
    }


def _empty_entry() -> dict[str, Any]:
    return {"images": {"train": 0, "test": 0}, "instances": {"train": 0, "test": 0}}


def _largest(entries: dict[str, dict[str, Any]]) -> dict[str, Any]:
    if not entries:
        return {"key": None, "value": 0.0}
    key = max(entries, key=lambda k: (entries[k]["deviation"], k))
    return {"key": key, "value": entries[key]["deviation"]}


def _r(x: float) -> float:
    return round(float(x), 6)
