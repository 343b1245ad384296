"""Checks that records written to a manifest read back as the same records."""

from __future__ import annotations

from collections.abc import Sequence

from indexer.readers.records import Record

FIELDS = (
    "id",
    "image_path",
    "width",
    "height",
    "defects",
    "labels",
    "zone",
    "group",
    "description",
)


def assert_same_records(read_back: Sequence[Record], written: Sequence[Record]) -> None:
    """``read_back`` holds the records of ``written``, in order, with every field equal."""
    assert [[getattr(r, f) for f in FIELDS] for r in read_back] == [
        [getattr(r, f) for f in FIELDS] for r in written
    ]
