"""The catalogue writer of a running service: ``POST/PUT/DELETE /items`` beside the queries.

An add embeds every image through the service's own loaded encoder and inference worker (the
same decode budget and micro-batches as the queries; no second model in memory), the
descriptions through its text encoder on the same thread, and only then writes: through
:func:`indexer.build.pipeline.write_items` / :func:`~indexer.build.pipeline.remove_items`, the
writer of ``visrag index add/remove``, whose lock covers the re-read, the merge and the atomic
swap (never the embedding). The uploaded images are kept, fsynced, under ``uploads_dir`` by the
hash of their bytes before the index names them. Once the new generation is on disk the
service's reloader swaps it in, so the answer's generation already serves the write: a 201 means
durable and visible. A writer lock not free within ``write_lock_wait_s`` answers 503 with
Retry-After (a client retries by id: ``PUT`` is idempotent).
"""

from __future__ import annotations

import asyncio
import functools
import hashlib
import os
import tempfile
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import anyio
import numpy as np

from app.http.errors import BadParameterError, DuplicateItemError, WriterBusyServiceError
from app.serving.service import Ready
from indexer.build.pipeline import remove_items, write_items
from indexer.index.atomic import fsync
from indexer.index.catalogue import catalogue_items
from indexer.index.duplicates import (
    Fingerprint,
    catalogue_fingerprints,
    describe,
    find_duplicates,
    fingerprint,
)
from indexer.index.locking import FILE_MODE, WriterBusyError
from indexer.index.manifest import IndexManifest
from indexer.readers.records import Record
from models.taxonomy import Taxonomy

_RETRY_AFTER_S = 1.0


@dataclass(frozen=True)
class NewItem:
    """One item of a write request: the image and its verified metadata (raw spellings)."""

    data: bytes
    image_format: str
    id: str | None = None
    labels: tuple[str, ...] = ()  # "dent", "surface scratch:2", ... (empty: no damage)
    zone: str | None = None
    description: str | None = None
    group: str | None = None


@dataclass(frozen=True)
class Written:
    ids: tuple[str, ...]
    generation: int
    count: int  # items in the index after the write


def item_id(item: NewItem) -> str:
    """The given id, or one derived from the image's bytes (the same photo: the same id)."""
    return item.id or f"item-{hashlib.sha256(item.data).hexdigest()[:16]}"


def parse_labels(raw: Sequence[str], taxonomy: Taxonomy) -> dict[str, int]:
    """``["dent", "surface_scratch:2"]`` -> canonical counts; ``no_damage`` alone -> ``{}``.

    Raises:
        BadParameterError: a label the taxonomy does not know, or a count that is not >= 1.
    """
    counts: dict[str, int] = {}
    for entry in raw:
        name, _, count = entry.rpartition(":") if ":" in entry else (entry, "", "1")
        name = name.strip()
        if not taxonomy.is_known(name):
            raise BadParameterError(
                f"labels: {name!r} is not a label of the taxonomy ({', '.join(taxonomy.label_ids)})"
            )
        if not count.strip().isdigit() or int(count) < 1:
            raise BadParameterError(f"labels: the count of {name!r} must be an integer >= 1")
        label = taxonomy.normalise(name).id
        if label != taxonomy.no_damage_id:
            counts[label] = counts.get(label, 0) + int(count)
    return taxonomy.sort_counts(counts)


class CatalogueWriter:
    """Adds, replaces and removes catalogue items of one service's index (module docstring)."""

    def __init__(
        self,
        *,
        uploads_dir: Path | None,
        lock_wait_s: float,
        duplicate_bits: int = 8,
        duplicate_cosine: float | None = None,
    ) -> None:
        self.uploads_dir = uploads_dir  # None: ``<served directory>.uploads`` beside it
        self.lock_wait_s = lock_wait_s
        self.duplicate_bits = duplicate_bits
        self.duplicate_cosine = duplicate_cosine
        self._prints: dict[tuple[str, str], Fingerprint] = {}  # (id, image) -> its fingerprint

    async def add(
        self,
        ready: Ready,
        new: Sequence[NewItem],
        *,
        replace: bool,
        by: str,
        allow_duplicate: bool = False,
    ) -> Written:
        """Embed ``new`` (outside the writer lock), then append it (``replace``: ``PUT``).

        Raises:
            ItemExistsError: an id is already indexed and ``replace`` is off (409).
            BadParameterError: an unknown label, or the same id twice in one request (422).
            DuplicateItemError: a near-copy of an indexed photo, unless ``allow_duplicate``
                (409 ``duplicate_of``; :mod:`indexer.index.duplicates`).
            WriterBusyServiceError: the writer lock was not free in time (503, Retry-After).
        """
        ids = [item_id(item) for item in new]
        if len(set(ids)) != len(ids):
            raise BadParameterError("the same item id appears twice in one request")
        taxonomy = ready.resources.taxonomy
        labels = [parse_labels(item.labels, taxonomy) for item in new]
        vectors = await asyncio.gather(*(ready.encode_image(item.data) for item in new))
        directory = ready.resources.retriever.artifacts.path
        keep = functools.partial(self._keep_images, new, self._uploads(directory))
        paths = await anyio.to_thread.run_sync(keep)
        records = [
            Record(
                id=i,
                image_path=path,
                width=None,
                height=None,
                labels=counts,
                zone=item.zone or "unknown",
                group=item.group or "",
                description=item.description,
                source="http",
            )
            for i, item, path, counts in zip(ids, new, paths, labels, strict=True)
        ]
        root = ready.resources.retriever.artifacts.manifest.dataset.get("root")
        items = catalogue_items(records, taxonomy, root=Path(root) if root else None)
        text_vectors = await ready.encode_descriptions(items)
        image_vectors = np.stack(vectors).astype(np.float32)
        if not allow_duplicate:
            await anyio.to_thread.run_sync(self._refuse_duplicates, ready, new, ids, image_vectors)
        manifest = await self._write(
            write_items,
            directory,
            items,
            image_vectors,
            text_vectors,
            replace=replace,
            history=_who(by),
        )
        return await self._served(ready, tuple(ids), manifest)

    async def remove(self, ready: Ready, ids: Sequence[str], *, by: str) -> Written:
        """Remove items by id.

        Raises:
            UnknownItemError: an id is not in the index (404).
            WriterBusyServiceError: the writer lock was not free in time (503, Retry-After).
        """
        manifest = await self._write(
            remove_items, ready.resources.retriever.artifacts.path, list(ids), history=_who(by)
        )
        return await self._served(ready, tuple(ids), manifest)

    async def _write(self, fn: Any, *args: Any, **kwargs: Any) -> IndexManifest:
        kwargs.setdefault("wait", self.lock_wait_s)
        try:
            manifest: IndexManifest = await anyio.to_thread.run_sync(lambda: fn(*args, **kwargs))
        except WriterBusyError as exc:
            raise WriterBusyServiceError(
                f"another writer holds the index: {exc}", retry_after=_RETRY_AFTER_S
            ) from None
        return manifest

    async def _served(self, ready: Ready, ids: tuple[str, ...], manifest: IndexManifest) -> Written:
        """Swap the written generation in before answering, so the answer's write is served."""
        reloader = ready.service.reloader
        await reloader.check()
        return Written(ids=ids, generation=reloader.generation, count=manifest.vector_count)

    def _refuse_duplicates(
        self, ready: Ready, new: Sequence[NewItem], ids: list[str], vectors: np.ndarray
    ) -> None:
        artifacts = ready.resources.retriever.artifacts
        known = catalogue_fingerprints(artifacts, self._prints)
        found = find_duplicates(
            [(i, fingerprint(item.data), v) for i, item, v in zip(ids, new, vectors, strict=True)],
            known,
            max_distance=self.duplicate_bits,
            vectors=np.asarray(artifacts.image_vectors),
            vector_ids=[it.id for it in artifacts.items],
            min_cosine=self.duplicate_cosine,
        )
        if found:
            raise DuplicateItemError(
                f"near-duplicate(s) of indexed photos: {describe(found)}; nothing was written "
                "(send allow_duplicate=true to add them anyway)"
            )

    def _uploads(self, directory: Path) -> Path:
        return self.uploads_dir or directory.parent / f"{directory.name}.uploads"

    @staticmethod
    def _keep_images(new: Sequence[NewItem], folder: Path) -> list[Path]:
        """Each image on disk (fsynced) under the hash of its bytes; the same photo, one file."""
        folder.mkdir(parents=True, exist_ok=True)
        paths = []
        for item in new:
            digest = hashlib.sha256(item.data).hexdigest()
            path = folder / f"{digest}.{item.image_format}"
            if not path.exists():
                with tempfile.NamedTemporaryFile(dir=folder, delete=False) as f:
                    f.write(item.data)
                    f.flush()
                    os.fsync(f.fileno())
                os.chmod(f.name, FILE_MODE)
                os.replace(f.name, path)
            paths.append(path.absolute())
        fsync(folder)
        return paths


def _who(by: str) -> dict[str, Any]:
    """The history fields of an HTTP write: who (a key's name, never the key) and when."""
    return {"via": "http", "by": by, "at": datetime.now(UTC).isoformat(timespec="seconds")}
