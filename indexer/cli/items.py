"""Finding indexed items from the command line: by id or image path (`index remove`), and the
listing `visrag index ls` prints, filtered by label or path."""

from __future__ import annotations

import fnmatch
import os
from collections.abc import Iterable, Sequence
from pathlib import Path

from indexer.errors import IndexInputError
from indexer.index.artifacts import Artifacts
from indexer.index.catalogue import CatalogueItem
from models.taxonomy import Taxonomy


def _same_file(a: Path | None, b: Path) -> bool:
    return a is not None and os.path.normpath(a.absolute()) == os.path.normpath(b.absolute())


def resolve_ids(artifacts: Artifacts, refs: Iterable[str]) -> list[str]:
    """Item ids for references that are ids, catalogue image paths (as ``ls`` prints them) or
    paths to the image files.

    Raises:
        IndexInputError: a reference names no indexed item (every such reference named).
    """
    ids: list[str] = []
    unknown: list[str] = []
    for ref in refs:
        if artifacts.row_of(ref) is not None:
            ids.append(ref)
            continue
        found = [
            it.id
            for it in artifacts.items
            if it.image == ref or _same_file(artifacts.image_file(it), Path(ref))
        ]
        ids.extend(found)
        if not found:
            unknown.append(ref)
    if unknown:
        raise IndexInputError(
            f"not in the index (neither an id nor an indexed image path): {', '.join(unknown)}; "
            "`visrag index ls` lists both"
        )
    return list(dict.fromkeys(ids))


def select_items(
    items: Sequence[CatalogueItem],
    taxonomy: Taxonomy,
    *,
    labels: Sequence[str] = (),
    path: str | None = None,
    zone: str | None = None,
) -> list[CatalogueItem]:
    """Items carrying every label named (any spelling the taxonomy knows; ``no_damage`` selects
    items without defects), in ``zone`` (any spelling), whose image path matches ``path`` (a
    glob, or a substring). ``visrag index ls`` and ``GET /items`` list through it."""
    wanted = [taxonomy.normalise(label).id for label in labels]
    in_zone = taxonomy.normalise_zone(zone).id if zone else None
    out = []
    for it in items:
        carried = set(it.labels) or {taxonomy.no_damage_id}
        if not all(label in carried for label in wanted):
            continue
        if in_zone is not None and it.zone != in_zone:
            continue
        if path and not (fnmatch.fnmatch(it.image, path) or path in it.image):
            continue
        out.append(it)
    return out


def item_line(item: CatalogueItem) -> str:
    """One tab-separated line: id, image, labels (label:count, or no_damage), zone."""
    labels = ",".join(f"{k}:{v}" for k, v in item.labels.items()) or "no_damage"
    return "\t".join((item.id, item.image, labels, item.zone))


def page_items(
    items: Sequence[CatalogueItem], *, after: str | None, limit: int
) -> tuple[list[CatalogueItem], str | None]:
    """One page of ``items`` in id order, the ids after ``after``; and the cursor of the next
    page (None on the last). A cursor stays valid while items are added and removed."""
    ordered = sorted((it for it in items if after is None or it.id > after), key=lambda it: it.id)
    page = ordered[:limit]
    return page, page[-1].id if len(ordered) > limit else None
