"""Build an index from a dataset: read -> map -> write, three small stages.

- read: a dataset path (or records) -> records and the inputs that could not be read
  (:func:`read_records`);
- map: records -> image vectors (:func:`indexer.build.embed.embed_images`: decode +
  preprocess in worker threads, ``encode_preprocessed`` in windows), catalogue items
  (:func:`~indexer.index.catalogue.catalogue_items`) and description vectors
  (:func:`embed_descriptions`, each distinct description encoded once);
- write: FAISS stores + the artifact directory, atomically (:mod:`indexer.index.artifacts`).

Unreadable images are reported (file, reason), listed in the manifest and skipped; never zero
vectors. With ``cache_dir`` encoded vectors go to an
:class:`~indexer.build.cache.EmbeddingCache`, so an interrupted build resumes where it stopped
and a rebuild with other index settings re-encodes nothing. ``add_records`` / ``remove_items``
update an existing directory.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt

from indexer.build.cache import EmbeddingCache
from indexer.build.embed import embed_images
from indexer.errors import IndexInputError
from indexer.index.artifacts import load_artifacts, write_artifacts
from indexer.index.catalogue import (
    CatalogueItem,
    catalogue_items,
    dataset_summary,
    images_root,
)
from indexer.index.locking import writer_lock
from indexer.index.manifest import (
    FailedInput,
    IndexManifest,
    describe_image_encoder,
    describe_text_encoder,
    manifest_body,
)
from indexer.index.stores import StoreTarget, make_stores
from indexer.index.updating import rewrite_artifacts
from indexer.readers.records import Problem, Record
from indexer.retrieval.opening import OpenedIndex
from models.base import ImageEncoderProtocol, TextEncoderProtocol
from models.taxonomy import Taxonomy

logger = logging.getLogger(__name__)
Vectors = npt.NDArray[np.float32]
#: The map stage's image engine: :func:`~indexer.build.embed.embed_images` (in process, the
#: default) or :func:`indexer.build.ray_engine.ray_engine` (a Ray Data pipeline); same signature.
ImageEngine = Callable[..., tuple[list[Record], Vectors, list[Problem], dict[str, float]]]


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

    @property
    def images_per_second(self) -> float:
        return self.embedded / self.seconds if self.seconds else 0.0

    @property
    def encoder_busy(self) -> float:
        """Share of the embedding stage the image encoder was computing (1.0: never waited)."""
        return min(self.encode_seconds / self.embed_seconds, 1.0) if self.embed_seconds else 0.0


def embed_descriptions(
    items: Sequence[CatalogueItem], text_encoder: TextEncoderProtocol
) -> Vectors:
    """Text vectors row-aligned with items; each distinct description is encoded once."""
    unique = sorted({it.description for it in items})
    if not unique:
        return np.zeros((0, text_encoder.dim), np.float32)
    encoded = np.asarray(text_encoder.encode(unique), np.float32)
    by_text = dict(zip(unique, encoded, strict=True))
    return np.stack([by_text[it.description] for it in items]).astype(np.float32)


def read_records(
    source: str | Path | Iterable[Record], taxonomy: Taxonomy
) -> tuple[list[Record], list[Problem], Path | None, dict[str, Any]]:
    if isinstance(source, (str, Path)):
        from indexer.readers.dataset import read_dataset

        scan = read_dataset(source, taxonomy=taxonomy)
        info = {
            "source": str(Path(source).resolve()),
            "format": scan.format,
            "coverage": scan.coverage.as_dict(),
        }
        return list(scan.records), list(scan.problems), Path(scan.root).resolve(), info
    records = list(source)
    return records, [], None, {"source": "records"}


# -- entry points ---------------------------------------------------------------------------------
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
) -> BuildReport:
    """Embed a dataset (a manifest/dataset path, or records) and write the artifact directory.

    The writer lock of ``out`` is held for the whole build (``wait``: seconds to wait for it).
    ``engine``: what encodes the images (default: in this process; see :data:`ImageEngine`).

    Raises:
        ValueError: no image could be embedded (nothing to index).
        WriterBusyError: another process is writing ``out``.
    """
    with writer_lock(out, wait=wait):
        return _build(
            source,
            out,
            image_encoder,
            text_encoder,
            taxonomy,
            alpha,
            index_type,
            index_params,
            store,
            batch_size,
            workers,
            cache_dir,
            progress,
            engine,
        )


def _build(
    source: str | Path | Iterable[Record],
    out: str | Path,
    image_encoder: ImageEncoderProtocol,
    text_encoder: TextEncoderProtocol,
    taxonomy: Taxonomy,
    alpha: float,
    index_type: str,
    index_params: dict[str, Any] | None,
    store: StoreTarget | None,
    batch_size: int,
    workers: int,
    cache_dir: str | Path | None,
    progress: bool,
    engine: ImageEngine,
) -> BuildReport:
    t0 = time.perf_counter()
    records, problems, root, source_info = read_records(source, taxonomy)
    image_model = describe_image_encoder(image_encoder)
    cache_key = image_model.model_dump(mode="json")
    cache = EmbeddingCache(Path(cache_dir), cache_key) if cache_dir else None
    kept, image_vectors, failed, stats = engine(
        records,
        image_encoder=image_encoder,
        batch_size=batch_size,
        workers=workers,
        cache=cache,
        progress=progress,
    )
    if not kept:
        raise IndexInputError(
            f"no image could be embedded ({len(failed)} failed, {len(problems)} "
            "unreadable inputs); nothing to index"
        )
    root = images_root((r.image_path for r in kept), root)
    items = catalogue_items(kept, taxonomy, root=root)
    text_vectors = embed_descriptions(items, text_encoder)
    image_store, fused_store = make_stores(
        image_vectors,
        text_vectors,
        alpha=alpha,
        items=items,
        index_type=index_type,
        params=index_params,
        target=store,
        no_damage_id=taxonomy.no_damage_id,
    )
    all_failed = [*problems, *failed]
    manifest = manifest_body(
        image_model=image_model,
        text_model=describe_text_encoder(text_encoder),
        alpha=alpha,
        taxonomy=taxonomy,
        dataset=dataset_summary(items, **source_info, root=str(root) if root else None),
        failed=(FailedInput(file=p.file, reason=p.reason) for p in all_failed),
        history=({"op": "build", "count": len(items), "failed": len(all_failed)},),
    )
    written = write_artifacts(
        out,
        manifest=manifest,
        items=items,
        image_vectors=image_vectors,
        text_vectors=text_vectors,
        image_store=image_store,
        fused_store=fused_store,
    )
    return BuildReport(
        out=Path(out),
        count=len(items),
        failed=tuple(all_failed),
        embedded=int(stats["embedded"]),
        cached=int(stats["cached"]),
        seconds=time.perf_counter() - t0,
        encode_seconds=stats["encode_seconds"],
        manifest=written,
        embed_seconds=stats.get("seconds", 0.0),
    )


def add_records(
    index: OpenedIndex,
    source: str | Path | Iterable[Record],
    *,
    batch_size: int = 8,
    workers: int = 2,
    progress: bool = True,
) -> BuildReport:
    """Embed new records with the index's (checked) encoders and append them (no rebuild).

    ``index``: from :func:`indexer.retrieval.opening.open_index` with both encoders loaded. Hold
    :func:`~indexer.index.locking.writer_lock` over the open and this call (``index add`` does);
    without it, a write by another process since the open is refused rather than lost.

    Raises:
        IndexInputError: a record id is already indexed (remove it first).
    """
    t0 = time.perf_counter()
    artifacts, taxonomy = index.artifacts, index.taxonomy
    image_encoder, text_encoder = index.image_encoder, index.text_encoder
    if image_encoder is None or text_encoder is None:
        raise ValueError("add_records needs an index opened with both encoders")
    records, problems, root, _ = read_records(source, taxonomy)
    present = [r.id for r in records if artifacts.row_of(r.id) is not None]
    if present:
        raise IndexInputError(f"already indexed (remove them first): {present[:10]}")
    kept, image_vectors, failed, stats = embed_images(
        records,
        image_encoder=image_encoder,
        batch_size=batch_size,
        workers=workers,
        progress=progress,
    )
    recorded_root = artifacts.manifest.dataset.get("root")
    items = catalogue_items(
        kept,
        taxonomy,
        root=Path(recorded_root) if recorded_root else root,
        first_row=len(artifacts),
    )
    all_failed = [*problems, *failed]
    written = rewrite_artifacts(
        artifacts,
        new_items=items,
        new_image_vectors=image_vectors,
        new_text_vectors=embed_descriptions(items, text_encoder),
        history={
            "op": "add",
            "count": len(items),
            "failed": len(all_failed),
            "dtype": image_encoder.dtype,
        },  # what ran (may differ from the build's)
        failed=[p.as_dict() for p in all_failed],
    )
    return BuildReport(
        out=artifacts.path,
        count=written.vector_count,
        failed=tuple(all_failed),
        embedded=int(stats["embedded"]),
        cached=0,
        seconds=time.perf_counter() - t0,
        encode_seconds=stats["encode_seconds"],
        manifest=written,
        embed_seconds=stats.get("seconds", 0.0),
    )


def remove_items(
    artifacts_dir: str | Path, ids: Iterable[str], *, wait: float = 0.0
) -> IndexManifest:
    """Remove items by id; rows after them are renumbered. The writer lock is held from the load
    to the write (``wait``: seconds to wait for it).

    Raises:
        IndexInputError: an id is not in the index.
        WriterBusyError: another process is writing the directory.
    """
    with writer_lock(artifacts_dir, wait=wait):
        return _remove(artifacts_dir, ids)


def _remove(artifacts_dir: str | Path, ids: Iterable[str]) -> IndexManifest:
    artifacts = load_artifacts(artifacts_dir, verify=True)
    ids = list(dict.fromkeys(ids))
    rows = {i: artifacts.row_of(i) for i in ids}
    unknown = [i for i, row in rows.items() if row is None]
    if unknown:
        raise IndexInputError(f"not in the index: {unknown[:10]}")
    keep = np.ones(len(artifacts), bool)
    keep[[row for row in rows.values() if row is not None]] = False
    return rewrite_artifacts(
        artifacts, keep=keep, history={"op": "remove", "count": len(ids), "ids": ids[:100]}
    )
