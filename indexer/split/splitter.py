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
from typing import TYPE_CHECKING, Any

import numpy as np

from indexer.readers.dataset import ReadOptions, read_dataset
from indexer.readers.duplicate_groups import duplicate_clusters, group_duplicates
from indexer.readers.jsonl import relative_image_path, write_jsonl
from indexer.readers.records import Record
from indexer.readers.scan import DatasetScan
from indexer.split.report import build_report
from indexer.split.stratification import NO_DAMAGE, build_matrix, improve, record_keys, stratify
from models.errors import VisragError
from models.taxonomy import Taxonomy

if TYPE_CHECKING:
    from typing_extensions import Unpack

__all__ = [
    "NO_DAMAGE",
    "SplitError",
    "SplitResult",
    "print_summary",
    "record_keys",
    "split_dataset",
    "split_files",
    "write_split",
]


class SplitError(VisragError):
    """The records cannot be split (bad test_size, fewer than two groups, duplicate ids)."""


@dataclass(frozen=True)
class SplitResult:
    train: list[Record]
    test: list[Record]
    report: dict[str, Any]


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
    problem = build_matrix(members)
    rng = np.random.default_rng(seed)
    in_test = stratify(problem, test_size, rng)
    moves = len(problem.groups) if max_moves is None else max_moves
    in_test = improve(problem, in_test, test_size, zone_weight, moves)
    test_groups = {g for g, t in zip(problem.groups, in_test, strict=True) if t}
    train = [r for r in ordered if (r.group or r.id) not in test_groups]
    test = [r for r in ordered if (r.group or r.id) in test_groups]
    report = build_report(problem, in_test, train, test, test_size=test_size, seed=seed)
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
    **read: Unpack[ReadOptions],
) -> tuple[SplitResult, dict[str, Path], DatasetScan]:
    """Read a dataset, split it and write the split; returns (result, paths, scan).

    The report gains a ``dataset`` entry: the dataset path relative to ``out_dir``, its format,
    the group_by rule, how many records were split and how many inputs were skipped; with
    ``group_by="duplicates"`` also how many near-duplicate clusters were merged into one group.
    """
    scan = read_dataset(path, taxonomy=taxonomy, **read)
    records, merged = scan.records, None
    if read.get("group_by") == "duplicates":
        clusters = duplicate_clusters(records)
        records, merged = group_duplicates(records, clusters), len(clusters)
    result = split_dataset(records, test_size=test_size, seed=seed)
    dataset = {
        "path": relative_image_path(Path(path), Path(out_dir)),
        "format": scan.format,
        "group_by": read.get("group_by") or "image",
        "records": len(scan.records),
        "problems": len(scan.problems),
    }
    if merged is not None:
        dataset["duplicate_clusters"] = merged
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
    freq = report["largest_deviation_frequent"]
    console.print(
        f"largest deviation of a test share from the target: label {lab['key']} "
        f"{lab['value']:.3f} (labels on >= {freq['min_images']} images: {freq['key']} "
        f"{freq['value']:.3f}), zone {zone['key']} {zone['value']:.3f}"
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
