"""Checks on the problems a dataset reader reports."""

from __future__ import annotations

from collections.abc import Mapping

from indexer.readers.scan import DatasetScan


def assert_problems(scan: DatasetScan, expected: Mapping[str, str]) -> None:
    """Each file in ``expected`` has a problem whose reason contains the given text."""
    reasons = {p.file: p.reason for p in scan.problems}
    for file, text in expected.items():
        assert file in reasons, f"no problem reported for {file!r}: {sorted(reasons)}"
        assert text in reasons[file], f"{file!r}: {text!r} not in {reasons[file]!r}"
