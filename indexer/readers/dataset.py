"""Dataset readers: LabelMe directories, COCO JSON, JSONL manifests -> normalised Records.

Every reader reports what it cannot use as a :class:`~indexer.readers.records.Problem` (file,
reason)
and carries on; only a dataset that cannot be opened at all raises :class:`DatasetError`.
Records come back sorted by id, so the result does not depend on the file system's listing order.

Exceptions: ``DatasetError`` (whole dataset unreadable, unknown format) and ``GroupByError`` (bad
``group_by`` rule), both ``ValueError``.
"""

from __future__ import annotations

from pathlib import Path
from typing import TypedDict

from indexer.readers.coco import is_coco, read_coco
from indexer.readers.jsonl import read_jsonl
from indexer.readers.labelme import read_labelme
from indexer.readers.naming import GroupByError, make_grouper
from indexer.readers.scan import DatasetError, DatasetScan, ScanBuilder
from models.taxonomy import Taxonomy

FORMATS = ("auto", "labelme", "coco", "jsonl")

__all__ = [
    "FORMATS",
    "DatasetError",
    "DatasetScan",
    "GroupByError",
    "detect_format",
    "read_dataset",
]


def detect_format(path: str | Path) -> str:
    """A directory -> labelme; ``.jsonl`` -> jsonl; a ``.json`` with images+annotations -> coco."""
    path = Path(path)
    if path.is_dir():
        return "labelme"
    if path.suffix.lower() == ".jsonl":
        return "jsonl"
    if path.suffix.lower() == ".json" and is_coco(path):
        return "coco"
    raise DatasetError(
        f"cannot tell the format of {path}: expected a LabelMe directory, a COCO .json "
        "(with 'images' and 'annotations') or a .jsonl manifest; pass format explicitly"
    )


class ReadOptions(TypedDict, total=False):
    """How to read a dataset, as the commands that read one before their own work pass it on."""

    format: str
    group_by: str | None
    progress: bool
    images_dir: str | Path | None


def read_dataset(
    path: str | Path,
    *,
    taxonomy: Taxonomy,
    format: str = "auto",
    group_by: str | None = None,
    progress: bool = False,
    images_dir: str | Path | None = None,
) -> DatasetScan:
    """Read a dataset into normalised records.

    Args:
        path: a LabelMe directory, a COCO ``.json`` or a ``.jsonl`` manifest.
        taxonomy: normalises raw labels and zones.
        format: ``auto`` | ``labelme`` | ``coco`` | ``jsonl``.
        group_by: what a split must keep together: ``None``/``"image"`` (default),
            ``"capture"``, ``"folder"`` or a regex with one group (see
            :mod:`indexer.readers.naming`).
        progress: show a progress bar on large datasets.
        images_dir: COCO only: where ``file_name``s are relative to (default: the JSON's folder).

    Returns:
        A :class:`DatasetScan`; its ``root`` is what record ids are relative to.

    Raises:
        DatasetError: the path does not exist, its format is unknown, or a COCO file does
            not parse.
        GroupByError: ``group_by`` is not a known rule nor a regex with one group.
    """
    path = Path(path).absolute()
    if not path.exists():
        raise DatasetError(f"dataset {path} does not exist")
    if format not in FORMATS:
        raise DatasetError(f"unknown format {format!r}; choose one of {', '.join(FORMATS)}")
    fmt = detect_format(path) if format == "auto" else format
    grouper = make_grouper(group_by)
    if fmt == "labelme":
        if not path.is_dir():
            raise DatasetError(f"a LabelMe dataset is a directory; {path} is a file")
        builder = ScanBuilder(path.resolve(), fmt, taxonomy, grouper)
        read_labelme(builder, progress=progress)
    elif fmt == "coco":
        root = Path(images_dir).absolute() if images_dir is not None else path.parent
        builder = ScanBuilder(root.resolve(), fmt, taxonomy, grouper)
        read_coco(builder, path, progress=progress)
    else:
        builder = ScanBuilder(path.parent.resolve(), fmt, taxonomy, grouper)
        read_jsonl(builder, path, progress=progress)
    return builder.finish()
