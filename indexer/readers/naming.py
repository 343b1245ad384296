"""What a file name tells: the vehicle zone (``zona_<N>``) and the group a record belongs to.

``group_by`` choices (the unit a split never cuts across):

- ``None`` or ``"image"``: every image is its own group (the default);
- ``"capture"``: the capture id parsed from the file name, i.e. the first run of 10 or more
  digits (the reference names look like ``zona1_ok_2_3_1555327199894_zona_5_imageDANO_original``,
  where ``1555327199894`` is the capture timestamp shared by the photos of one vehicle);
- ``"folder"``: the image's directory relative to the dataset root;
- ``"duplicates"``: near-duplicate photos share a group; the readers give image groups and the
  split regroups them from the pixels (:mod:`indexer.readers.duplicate_groups`);
- anything else: a regular expression with exactly one capturing group, searched in the image path
  relative to the root (POSIX separators); the captured text is the group.

An image the rule does not match stays in a group of its own, and the reader counts it.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import PurePosixPath

from models.errors import VisragError

_ZONE = re.compile(r"zona_(\d+)", re.IGNORECASE)
_CAPTURE = r"(?<!\d)(\d{10,})(?!\d)"


class GroupByError(VisragError):
    """A ``group_by`` value that is neither a known rule nor a regex with one group."""


def zone_from_name(*names: str) -> str | None:
    """The number after ``zona_`` in the first name that has one (last occurrence), else None."""
    for name in names:
        found = _ZONE.findall(name)
        if found:
            return found[-1]
    return None


@dataclass(frozen=True)
class Grouper:
    """Maps (relative image path, record id) to the group key; counts images it could not match."""

    rule: str
    pattern: re.Pattern[str] | None = None

    def __call__(self, rel_path: str, record_id: str) -> tuple[str, bool]:
        """Returns (group, matched)."""
        if self.rule in ("image", "duplicates"):
            return record_id, True
        if self.rule == "folder":
            parent = PurePosixPath(rel_path).parent.as_posix()
            return ("." if parent in ("", ".") else parent), True
        assert self.pattern is not None
        target = PurePosixPath(rel_path).name if self.rule == "capture" else rel_path
        match = self.pattern.search(target)
        if match is None or not match.group(1):
            return record_id, False
        return (f"capture-{match.group(1)}" if self.rule == "capture" else match.group(1)), True


def make_grouper(group_by: str | None) -> Grouper:
    if group_by in (None, "", "image"):
        return Grouper("image")
    if group_by in ("folder", "duplicates"):
        return Grouper(str(group_by))
    if group_by == "capture":
        return Grouper("capture", re.compile(_CAPTURE))
    try:
        pattern = re.compile(str(group_by))
    except re.error as exc:
        raise GroupByError(
            f"group_by {group_by!r} is not a valid regular expression: {exc}"
        ) from exc
    if pattern.groups != 1:
        raise GroupByError(
            f"group_by regex {group_by!r} must have exactly one capturing group "
            f"(has {pattern.groups}); or use image, capture, folder, duplicates"
        )
    return Grouper("regex", pattern)
