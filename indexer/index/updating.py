"""Update an artifact directory in place: drop rows and append items without a full rebuild.

The vector stores (image, fused and region; FAISS files or Milvus collections) are updated
(remove + renumber, add) rather than rebuilt; the result is written back atomically through
:func:`indexer.index.artifacts.write_artifacts`.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from dataclasses import replace
from typing import Any

import numpy as np
import numpy.typing as npt

from indexer.errors import ArtifactError
from indexer.index.artifacts import Artifacts, is_current, write_artifacts
from indexer.index.catalogue import CatalogueItem, dataset_summary
from indexer.index.locking import writer_lock
from indexer.index.manifest import FailedInput, IndexManifest, ManifestBody
from indexer.index.milvus_store import region_entries
from indexer.index.regions import Background, RegionTable
from indexer.index.stores import VectorStoreProtocol
from models.fusion import fuse

logger = logging.getLogger(__name__)


def rewrite_artifacts(
    artifacts: Artifacts,
    *,
    keep: npt.NDArray[np.bool_] | None = None,
    new_items: Sequence[CatalogueItem] = (),
    new_image_vectors: npt.NDArray[np.float32] | None = None,
    new_text_vectors: npt.NDArray[np.float32] | None = None,
    history: Mapping[str, Any] | None = None,
    failed: Sequence[FailedInput] | None = None,
    new_regions: RegionTable | None = None,
) -> IndexManifest:
    """Drop rows (``keep`` False) and/or append items, updating the FAISS indexes in place
    (remove + renumber, add) rather than rebuilding them, then write atomically back.
    ``history`` is appended to the manifest's history; ``failed`` (file, reason), when given,
    replaces the manifest's failure list (``None`` keeps it). The regions of dropped rows go
    with them; ``new_regions`` (each naming its item by the ``row`` that item has in
    ``new_items``) are appended after the kept ones.

    Raises:
        ArtifactError: the directory changed since ``artifacts`` was loaded (another writer got
            there first; writing would lose its update). Hold
            :func:`~indexer.index.locking.writer_lock` over load and rewrite to wait instead.
    """
    with writer_lock(artifacts.path):
        if not is_current(artifacts):
            raise ArtifactError(
                f"{artifacts.path} changed since it was loaded (another writer); load it again"
            )
        return _rewrite(
            artifacts,
            keep,
            new_items,
            new_image_vectors,
            new_text_vectors,
            history,
            failed,
            new_regions,
        )


def _rewrite(
    artifacts: Artifacts,
    keep: npt.NDArray[np.bool_] | None,
    new_items: Sequence[CatalogueItem],
    new_image_vectors: npt.NDArray[np.float32] | None,
    new_text_vectors: npt.NDArray[np.float32] | None,
    history: Mapping[str, Any] | None,
    failed: Sequence[FailedInput] | None,
    new_regions: RegionTable | None = None,
) -> IndexManifest:
    a = artifacts
    n = len(a.items)
    keep = np.ones(n, bool) if keep is None else keep
    kept_rows = np.flatnonzero(keep).astype(np.int64)
    removed = np.flatnonzero(~keep).astype(np.int64)
    m = len(new_items)
    di, dt = a.image_vectors.shape[1], a.text_vectors.shape[1]
    add_img = np.zeros((0, di), np.float32) if new_image_vectors is None else new_image_vectors
    add_txt = np.zeros((0, dt), np.float32) if new_text_vectors is None else new_text_vectors
    if len(add_img) != m or len(add_txt) != m:
        raise ValueError(f"{m} new items but {len(add_img)}/{len(add_txt)} new vectors")
    regions = _regions(a, keep, len(kept_rows), new_items, new_regions)  # checked before writing
    for store in (a.image_store, a.fused_store):
        if len(removed):
            store.remove(removed)
            store.renumber(kept_rows, np.arange(len(kept_rows), dtype=np.int64))
    new_rows = np.arange(len(kept_rows), len(kept_rows) + m, dtype=np.int64)
    if m:
        a.image_store.add(add_img, new_rows, items=new_items)
        a.fused_store.add(fuse(add_img, add_txt, alpha=a.alpha), new_rows, items=new_items)
    items = [
        CatalogueItem(**{**it.__dict__, "row": r})
        for r, it in enumerate([a.items[i] for i in kept_rows] + list(new_items))
    ]
    region_store = _update_region_store(a, keep, regions, [it.id for it in items])
    image_vectors = np.concatenate([np.asarray(a.image_vectors)[kept_rows], add_img])
    text_vectors = np.concatenate([np.asarray(a.text_vectors)[kept_rows], add_txt])
    body = a.manifest.body
    manifest = ManifestBody.model_validate(
        {
            **body.model_dump(),
            "dataset": dataset_summary(
                items,
                **{
                    k: v
                    for k, v in body.dataset.items()
                    if k not in ("count", "labels", "label_instances", "zones")
                },
            ),
            "failed": body.model_dump()["failed"]
            if failed is None
            else [f.model_dump() for f in failed],
            "history": [*body.history, *([dict(history)] if history else [])],
        }
    )
    return write_artifacts(
        a.path,
        manifest=manifest,
        items=items,
        image_vectors=image_vectors,
        text_vectors=text_vectors,
        image_store=a.image_store,
        fused_store=a.fused_store,
        regions=regions,
        region_store=region_store,
    )


def _regions(
    a: Artifacts,
    keep: npt.NDArray[np.bool_],
    kept: int,
    new_items: Sequence[CatalogueItem],
    new_regions: RegionTable | None,
) -> RegionTable | None:
    """The kept regions (items renumbered) plus the new ones, their items placed after the kept
    rows. An index without regions stays without (new regions are dropped, with a warning)."""
    if a.regions is None:
        if new_regions is not None and len(new_regions):
            logger.warning(
                "%d new regions not stored: this index was built without regions", len(new_regions)
            )
        return None
    table = a.regions.keep_items(keep)
    if new_regions is None or not len(new_regions):
        return table
    position = {it.row: kept + j for j, it in enumerate(new_items)}
    moved = [replace(r, item=position[r.item]) for r in new_regions.regions]
    bank = new_regions.background
    if bank is not None:
        items = np.array([position[int(i)] for i in bank.items], np.int64)
        bank = Background(bank.vectors, items)
    return table.extended(RegionTable(new_regions.kind, moved, new_regions.vectors, {}, bank))


def _update_region_store(
    a: Artifacts,
    keep: npt.NDArray[np.bool_],
    table: RegionTable | None,
    item_ids: Sequence[str],
) -> VectorStoreProtocol | None:
    """The loaded region store with the dropped items' regions removed (the rest renumbered as
    the table's kept rows are) and the new regions (``table``'s rows after the kept ones) added."""
    store = a.region_store
    if a.regions is None or table is None or store is None:
        return None
    kept = keep[a.regions.item_rows()] if len(a.regions) else np.zeros(0, bool)
    kept_rows = np.flatnonzero(kept).astype(np.int64)
    removed = np.flatnonzero(~kept).astype(np.int64)
    if len(removed):
        store.remove(removed)
        store.renumber(kept_rows, np.arange(len(kept_rows), dtype=np.int64))
    start = len(kept_rows)
    if len(table) > start:
        added = RegionTable(table.kind, table.regions[start:], table.vectors[start:])
        store.add(
            added.vectors,
            np.arange(start, len(table), dtype=np.int64),
            items=region_entries(added, item_ids),
        )
    return store
