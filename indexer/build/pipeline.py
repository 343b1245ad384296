"""Build an index from a dataset: reader -> mapper -> writer, each stage timed.

- reader: a dataset path (or records) -> records and the inputs that could not be read
  (:func:`indexer.build.reader.read_records`);
- mapper: records -> image vectors (by an engine: decode + preprocess in worker threads and
  ``encode_preprocessed`` in windows, or Ray Data), catalogue items and description vectors
  (:class:`indexer.build.mapper.Mapper`);
- writer: vector stores + the artifact directory, atomically
  (:func:`indexer.build.writer.write_index`).

:class:`BuildReport` carries each stage's wall seconds (``stages``). Unreadable images are
reported (file, reason), listed in the manifest and skipped; never zero vectors. With
``cache_dir`` encoded vectors go to an :class:`~indexer.build.cache.EmbeddingCache`, so an
interrupted build resumes where it stopped and a rebuild with other index settings re-encodes
nothing. ``add_records`` / ``remove_items`` update an existing directory, and ``write_items``
writes items embedded elsewhere (the service's catalogue writes) through the same lock.
"""

from __future__ import annotations

import logging
import re
import time
from collections.abc import Iterable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt

from indexer.build.cache import EmbeddingCache
from indexer.build.embed import embed_images
from indexer.build.mapper import ImageEngine, Mapped, Mapper
from indexer.build.reader import SourceRecords, read_records
from indexer.build.writer import StoreLayout, write_index
from indexer.errors import IndexInputError, ItemExistsError, UnknownItemError
from indexer.index.artifacts import Artifacts, is_current, load_artifacts
from indexer.index.catalogue import CatalogueItem, dataset_summary, images_root
from indexer.index.locking import writer_lock
from indexer.index.manifest import (
    FailedInput,
    IndexManifest,
    describe_image_encoder,
    describe_text_encoder,
    manifest_body,
)
from indexer.index.stores import StoreTarget
from indexer.index.updating import rewrite_artifacts
from indexer.readers.records import Problem, Record
from indexer.retrieval.opening import OpenedIndex
from models.base import ImageEncoderProtocol, TextEncoderProtocol
from models.taxonomy import Taxonomy

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class BuildReport:
    out: Path
    count: int  # items in the written index
    failed: tuple[Problem, ...]
    embedded: int  # images encoded in this run
    cached: int  # images taken from the cache
    seconds: float  # wall time of the whole run
    encode_seconds: float  # time spent inside the image encoder
    manifest: IndexManifest
    embed_seconds: float = 0.0  # wall time of the embedding stage (decode overlapped with encode)
    stages: dict[str, float] = field(default_factory=dict)  # reader, mapper, writer: wall seconds
    encoders: int = 1  # image encoders that ran side by side (Ray: the actors)
    startup_seconds: float = 0.0  # Ray: start, actors loading models (not in embed_seconds)

    @property
    def images_per_second(self) -> float:
        return self.embedded / self.seconds if self.seconds else 0.0

    @property
    def encoder_busy(self) -> float:
        """Share of the embedding stage the image encoder(s) were computing (1.0: never waited)."""
        if not self.embed_seconds:
            return 0.0
        return min(self.encode_seconds / (self.embed_seconds * self.encoders), 1.0)


class StageClock:
    """Wall seconds of each named stage of one run, and of the whole run since it was made."""

    def __init__(self) -> None:
        self.started = time.perf_counter()
        self.stages: dict[str, float] = {}

    @contextmanager
    def stage(self, name: str) -> Iterator[None]:
        t0 = time.perf_counter()
        try:
            yield
        finally:
            self.stages[name] = time.perf_counter() - t0

    def report(self, out: Path, mapped: Mapped, failed: list[Problem], written: IndexManifest):
        """The run's :class:`BuildReport` (``count``: items in the index written)."""
        seconds = time.perf_counter() - self.started
        logger.info("%s in %.1f s: %s", out, seconds, self.stages)
        return BuildReport(
            out=out,
            count=written.vector_count,
            failed=tuple(failed),
            embedded=int(mapped.stats["embedded"]),
            cached=int(mapped.stats["cached"]),
            seconds=seconds,
            encode_seconds=mapped.stats["encode_seconds"],
            manifest=written,
            embed_seconds=mapped.stats.get("seconds", 0.0),
            stages=dict(self.stages),
            encoders=int(mapped.stats.get("encoders", 1)),
            startup_seconds=mapped.stats.get("startup_seconds", 0.0),
        )


def build_index(
    source: str | Path | Iterable[Record],
    out: str | Path,
    *,
    image_encoder: ImageEncoderProtocol,
    text_encoder: TextEncoderProtocol,
    taxonomy: Taxonomy,
    alpha: float = 0.6,
    index_type: str = "flat",
    index_params: dict[str, Any] | None = None,
    store: StoreTarget | None = None,
    batch_size: int = 8,
    workers: int = 2,
    cache_dir: str | Path | None = None,
    progress: bool = True,
    wait: float = 0.0,
    engine: ImageEngine = embed_images,
    regions: bool | str = True,
) -> BuildReport:
    """Embed a dataset (a manifest/dataset path, or records) and write the artifact directory.

    The writer lock of ``out`` is held for the whole build (``wait``: seconds to wait for it).
    ``engine``: what encodes the images (default: in this process; see
    :data:`~indexer.build.mapper.ImageEngine`). ``regions``: pool a region vector per labelled
    polygon and per cluster of near defects from the same forward pass (the region table;
    ``True`` or ``"patches"``), or re-encode each region's crop (``"crops"``), or none.

    Raises:
        ValueError: no image could be embedded (nothing to index).
        WriterBusyError: another process is writing ``out``.
    """
    mapper = Mapper(
        image_encoder,
        text_encoder,
        taxonomy,
        engine,
        batch_size,
        workers,
        progress=progress,
        regions=regions,
    )
    layout = StoreLayout(alpha, index_type, index_params, store)
    with writer_lock(out, wait=wait):
        return _build(source, Path(out), mapper, layout, cache_dir)


def _build(
    source: str | Path | Iterable[Record],
    out: Path,
    mapper: Mapper,
    layout: StoreLayout,
    cache_dir: str | Path | None,
) -> BuildReport:
    """The build loop: reader -> mapper -> writer."""
    clock = StageClock()
    image_model = describe_image_encoder(mapper.image_encoder)
    with clock.stage("reader"):
        read = read_records(source, mapper.taxonomy)
    with clock.stage("mapper"):
        if cache_dir:
            cache = EmbeddingCache(Path(cache_dir), image_model.model_dump(mode="json"))
            mapper = replace(mapper, cache=cache)
        mapped = mapper(
            read.records,
            catalogue_root=lambda kept: images_root((r.image_path for r in kept), read.root),
        )
    if not mapped.items:
        raise IndexInputError(
            f"no image could be embedded ({len(mapped.failed)} failed, {len(read.problems)} "
            "unreadable inputs); nothing to index"
        )
    failed = [*read.problems, *mapped.failed]
    with clock.stage("writer"):
        root = str(mapped.root) if mapped.root else None
        manifest = manifest_body(
            image_model=image_model,
            text_model=describe_text_encoder(mapper.text_encoder),
            alpha=layout.alpha,
            taxonomy=mapper.taxonomy,
            dataset=dataset_summary(mapped.items, **read.info, root=root),
            failed=(FailedInput(file=p.file, reason=p.reason) for p in failed),
            history=({"op": "build", "count": len(mapped.items), "failed": len(failed)},),
        )
        written = write_index(out, manifest, mapped, layout, mapper.taxonomy.no_damage_id)
    return clock.report(out, mapped, failed, written)


@dataclass(frozen=True)
class NewRecords:
    """The reader stage of an add: records not yet indexed, unreadable inputs, ids skipped."""

    read: SourceRecords  # only the records to embed
    existing: tuple[str, ...] = ()  # ids already indexed and skipped (``skip_existing``)


def read_new_records(
    artifacts: Artifacts,
    source: str | Path | Iterable[Record],
    taxonomy: Taxonomy,
    *,
    skip_existing: bool = False,
) -> NewRecords:
    """Read what an add was given and check it against the index, before any model loads.

    Raises:
        IndexInputError: some ids are already indexed (every one named; ``skip_existing`` skips
            them instead), or every input failed to read (nothing to add).
    """
    read = read_records(source, taxonomy)
    present = tuple(r.id for r in read.records if artifacts.row_of(r.id) is not None)
    if present and not skip_existing:
        raise IndexInputError(
            f"{len(present)} of {len(read.records)} record(s) already indexed; remove them first "
            f"or pass --skip-existing: {', '.join(present)}"
        )
    fresh = [r for r in read.records if artifacts.row_of(r.id) is None]
    if not fresh and (read.problems or not present):
        raise IndexInputError(_nothing_added(read.problems))
    return NewRecords(replace(read, records=fresh), present)


def _nothing_added(failed: Sequence[Problem]) -> str:
    if not failed:
        return "nothing added: the input holds no records; the index is unchanged"
    first = failed[0]
    return (
        f"nothing added: all {len(failed)} input(s) failed (first: {first.file}: {first.reason}); "
        "the index is unchanged"
    )


def add_records(
    index: OpenedIndex,
    new: NewRecords,
    *,
    batch_size: int = 8,
    workers: int = 2,
    progress: bool = True,
    wait: float = 0.0,
) -> BuildReport:
    """Embed new records (:func:`read_new_records`) with the index's (checked) encoders and
    append them (no rebuild).

    ``index``: from :func:`indexer.retrieval.opening.open_index` with both encoders loaded. The
    embedding runs without the writer lock, so other writers (and the service's reloads) go on
    meanwhile; the lock (``wait``: seconds to wait for it) covers only the re-read of the
    directory, the merge and the atomic write. The manifest's failure list keeps earlier failures
    only for inputs this add did not read again.

    Raises:
        IndexInputError: no record could be embedded (nothing is written).
        ItemExistsError: another writer indexed one of these ids while this add embedded.
        WriterBusyError: another writer held the lock for longer than ``wait`` seconds.
    """
    clock = StageClock()
    artifacts, taxonomy, read = index.artifacts, index.taxonomy, new.read
    image_encoder, text_encoder = index.image_encoder, index.text_encoder
    if image_encoder is None or text_encoder is None:
        raise ValueError("add_records needs an index opened with both encoders")
    recorded_root = artifacts.manifest.dataset.get("root")
    root = Path(recorded_root) if recorded_root else read.root
    with clock.stage("mapper"):
        mapper = Mapper(
            image_encoder,
            text_encoder,
            taxonomy,
            embed_images,
            batch_size,
            workers,
            None,
            progress,
            regions=_region_kind(artifacts),
        )
        mapped = mapper(read.records, catalogue_root=lambda _: root, first_row=len(artifacts))
    failed = [*read.problems, *mapped.failed]
    if not mapped.items:
        raise IndexInputError(_nothing_added(failed))
    with clock.stage("writer"), writer_lock(artifacts.path, wait=wait):
        if not is_current(artifacts):  # another writer since the open: merge into its generation
            artifacts = load_artifacts(artifacts.path, verify=True)
        clash = tuple(it.id for it in mapped.items if artifacts.row_of(it.id) is not None)
        if clash:
            raise ItemExistsError(
                f"{len(clash)} id(s) indexed by another writer while this add embedded: "
                f"{', '.join(clash[:10])}",
                clash,
            )
        written = rewrite_artifacts(
            artifacts,
            new_items=mapped.items,
            new_image_vectors=mapped.image_vectors,
            new_text_vectors=mapped.text_vectors,
            new_regions=mapped.regions,
            history={
                "op": "add",
                "count": len(mapped.items),
                "failed": len(failed),
                "skipped_existing": len(new.existing),
                "dtype": image_encoder.dtype,
            },  # what ran (may differ from the build's)
            failed=[
                *(f for f in artifacts.manifest.failed if not _read_again(f, read)),
                *(FailedInput(file=p.file, reason=p.reason) for p in failed),
            ],
        )
    return clock.report(artifacts.path, mapped, failed, written)


def _region_kind(artifacts: Artifacts) -> bool | str:
    """What regions an add makes: those of the index's kind (imported ones cannot be made)."""
    kind = artifacts.regions.kind if artifacts.regions is not None else None
    return kind if kind in ("patches", "crops") else False


def _read_again(earlier: FailedInput, read: SourceRecords) -> bool:
    """Whether an earlier failure is about an image (or its LabelMe annotation) this add read
    again, so this run's outcome replaces it: the file's name appears in the failure's file or
    reason (earlier failures name files relative to another root, or a manifest line with the
    image in the reason; the file name is what both share)."""
    text = f"{earlier.file} {earlier.reason}"
    names = {r.image_path.name for r in read.records}
    names |= {Path(r.source).name for r in read.records if r.source.endswith(".json")}
    return any(re.search(rf"(^|[\\/\s'\"(]){re.escape(n)}($|[\s'\":)])", text) for n in names)


def remove_items(
    artifacts_dir: str | Path,
    ids: Iterable[str],
    *,
    wait: float = 0.0,
    history: dict[str, Any] | None = None,
) -> IndexManifest:
    """Remove items by id; rows after them are renumbered. The writer lock is held from the load
    to the write (``wait``: seconds to wait for it); ``history``: more fields for its entry.

    Raises:
        UnknownItemError: an id is not in the index.
        WriterBusyError: another process is writing the directory.
    """
    with writer_lock(artifacts_dir, wait=wait):
        return _remove(artifacts_dir, ids, history or {})


def _remove(
    artifacts_dir: str | Path, ids: Iterable[str], history: dict[str, Any]
) -> IndexManifest:
    artifacts = load_artifacts(artifacts_dir, verify=True)
    ids = list(dict.fromkeys(ids))
    rows = {i: artifacts.row_of(i) for i in ids}
    unknown = [i for i, row in rows.items() if row is None]
    if unknown:
        raise UnknownItemError(f"not in the index: {unknown[:10]}")
    keep = np.ones(len(artifacts), bool)
    keep[[row for row in rows.values() if row is not None]] = False
    return rewrite_artifacts(
        artifacts,
        keep=keep,
        history={"op": "remove", "count": len(ids), "ids": ids[:100], **history},
    )


def write_items(
    artifacts_dir: str | Path,
    items: Sequence[CatalogueItem],
    image_vectors: npt.NDArray[np.float32],
    text_vectors: npt.NDArray[np.float32],
    *,
    replace: bool = False,
    history: dict[str, Any] | None = None,
    wait: float = 0.0,
) -> IndexManifest:
    """Append items embedded beforehand (the service's ``POST /items``); with ``replace``, items
    already indexed under the same ids are replaced (``PUT``: idempotent). Only the re-read, the
    merge and the atomic write hold the writer lock, never the embedding.

    Raises:
        ItemExistsError: an id is already indexed and ``replace`` is off (every such id named).
        WriterBusyError: another writer held the lock for longer than ``wait`` seconds.
    """
    with writer_lock(artifacts_dir, wait=wait):
        artifacts = load_artifacts(artifacts_dir, verify=True)
        rows = {it.id: artifacts.row_of(it.id) for it in items}
        present = tuple(i for i, row in rows.items() if row is not None)
        if present and not replace:
            raise ItemExistsError(
                f"{len(present)} id(s) already indexed: {', '.join(present[:10])}", present
            )
        keep = np.ones(len(artifacts), bool)
        keep[[row for row in rows.values() if row is not None]] = False
        return rewrite_artifacts(
            artifacts,
            keep=keep,
            new_items=items,
            new_image_vectors=image_vectors,
            new_text_vectors=text_vectors,
            history={
                "op": "put" if replace else "add",
                "count": len(items),
                "replaced": len(present),
                "ids": [it.id for it in items][:100],
                **(history or {}),
            },
        )
