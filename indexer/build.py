"""Build an index from a dataset: decode in worker threads, encode in the main thread, write.

Pipeline: records -> (threads) decode + preprocess -> (main) ``encode_preprocessed`` on windows of
a few batches (the encoder buckets equal shapes) -> image vectors; descriptions from the one
template -> text vectors (each distinct description encoded once) -> FAISS stores -> artifact
directory (written atomically, see :mod:`indexer.artifacts`).

Unreadable images are reported (file, reason), listed in the manifest and skipped; never zero
vectors. With ``cache_dir`` encoded vectors go to an
:class:`~indexer.embedding_cache.EmbeddingCache`, so an interrupted build resumes where it stopped
and a rebuild with other index settings re-encodes nothing. ``add_records`` / ``remove_items``
update an existing directory.
"""

from __future__ import annotations

import logging
import time
from collections import deque
from collections.abc import Iterable, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt

from indexer.artifacts import (
    CatalogueItem,
    build_stores,
    check_compatible,
    dataset_summary,
    load_artifacts,
    rewrite_artifacts,
    write_artifacts,
)
from indexer.embedding_cache import EmbeddingCache
from indexer.records import Problem, Record
from models.description import TEMPLATE_VERSION, describe
from models.taxonomy import Taxonomy

logger = logging.getLogger(__name__)
Vectors = npt.NDArray[np.float32]


@dataclass(frozen=True)
class BuildReport:
    out: Path
    count: int  # items in the written index
    failed: tuple[Problem, ...]
    embedded: int  # images encoded in this run
    cached: int  # images taken from the cache
    seconds: float  # wall time of the whole run
    encode_seconds: float  # time spent inside the image encoder
    manifest: dict[str, Any] = field(repr=False, default_factory=dict)

    @property
    def images_per_second(self) -> float:
        return self.embedded / self.seconds if self.seconds else 0.0


# -- image embedding ------------------------------------------------------------------------------
def _load(record: Record, image_encoder: Any) -> np.ndarray | Problem:
    from models.imaging import ImageDecodeError, decode_image

    try:
        # max_side: large photos decode at a reduced JPEG scale, never at full size.
        size = getattr(image_encoder, "image_size", None)
        return image_encoder.preprocess(decode_image(Path(record.image_path), max_side=size))
    except (ImageDecodeError, OSError, ValueError) as exc:
        return Problem(str(record.image_path), f"{type(exc).__name__}: {exc}")


def _progress(total: int, enabled: bool) -> Any:
    from rich.progress import (
        BarColumn,
        MofNCompleteColumn,
        Progress,
        TextColumn,
        TimeElapsedColumn,
        TimeRemainingColumn,
    )

    return Progress(
        TextColumn("[bold]embedding images"),
        BarColumn(),
        MofNCompleteColumn(),
        TextColumn("{task.fields[rate]}"),
        TimeElapsedColumn(),
        TextColumn("ETA"),
        TimeRemainingColumn(),
        disable=not enabled,
    )


def embed_images(
    records: Sequence[Record],
    *,
    image_encoder: Any,
    batch_size: int = 8,
    workers: int = 2,
    cache: EmbeddingCache | None = None,
    progress: bool = True,
) -> tuple[list[Record], Vectors, list[Problem], dict[str, float]]:
    """Encode the records' images; returns (records kept, vectors, failures, stats)."""
    vectors: dict[str, Vectors] = {}
    failed: list[Problem] = []
    todo = []
    for record in records:
        hit = cache.get(record) if cache else None
        if hit is not None:
            vectors[record.id] = hit
        else:
            todo.append(record)
    stats = {"cached": float(len(vectors)), "embedded": 0.0, "encode_seconds": 0.0}
    window = max(batch_size * 4, 1)
    t_start = time.perf_counter()

    with _progress(len(todo), progress) as bar, ThreadPoolExecutor(max(workers, 1)) as pool:
        task = bar.add_task("embed", total=len(todo), rate="")
        pending: deque[tuple[Record, Future[Any]]] = deque()
        source = iter(todo)

        def submit() -> None:
            record = next(source, None)
            if record is not None:
                pending.append((record, pool.submit(_load, record, image_encoder)))

        for _ in range(window * 2):  # decode runs ahead of the encoder by up to two windows
            submit()
        buffer: list[tuple[Record, np.ndarray]] = []

        def flush() -> None:
            if not buffer:
                return
            t0 = time.perf_counter()
            out = image_encoder.encode_preprocessed([x for _, x in buffer], batch_size=batch_size)
            stats["encode_seconds"] += time.perf_counter() - t0
            out = np.asarray(out, np.float32)
            batch = [r for r, _ in buffer]
            if cache:
                cache.put(batch, out)
            for record, vec in zip(batch, out, strict=True):
                vectors[record.id] = vec
            stats["embedded"] += len(buffer)
            rate = stats["embedded"] / (time.perf_counter() - t_start)
            bar.update(task, advance=len(buffer), rate=f"{rate:.1f} img/s")
            buffer.clear()

        while pending:
            record, future = pending.popleft()
            submit()
            result = future.result()
            if isinstance(result, Problem):
                logger.warning("skipping %s: %s", result.file, result.reason)
                failed.append(result)
                bar.update(task, advance=1)
                continue
            buffer.append((record, result))
            if len(buffer) >= window:
                flush()
        flush()
    kept = [r for r in records if r.id in vectors]
    dim = int(getattr(image_encoder, "dim", 0))
    stacked = np.stack([vectors[r.id] for r in kept]) if kept else np.zeros((0, dim), np.float32)
    return kept, stacked.astype(np.float32), failed, stats


def embed_descriptions(items: Sequence[CatalogueItem], text_encoder: Any) -> Vectors:
    """Text vectors row-aligned with items; each distinct description is encoded once."""
    unique = sorted({it.description for it in items})
    if not unique:
        return np.zeros((0, int(text_encoder.dim)), np.float32)
    encoded = np.asarray(text_encoder.encode(unique), np.float32)
    by_text = dict(zip(unique, encoded, strict=True))
    return np.stack([by_text[it.description] for it in items]).astype(np.float32)


def _image_ref(path: Path, root: Path | None) -> str:
    path = Path(path)
    if root is not None:
        try:
            return path.absolute().relative_to(Path(root).absolute()).as_posix()
        except ValueError:
            pass
    return path.absolute().as_posix()


def catalogue_items(
    records: Sequence[Record], taxonomy: Taxonomy, *, root: Path | None, first_row: int = 0
) -> list[CatalogueItem]:
    items = []
    for row, record in enumerate(records, start=first_row):
        zone = taxonomy.normalise_zone(record.zone)
        by_label: dict[str, int] = {}
        for d in record.defects:
            by_label[d.label] = by_label.get(d.label, 0) + 1
        defects = {
            "count": len(record.defects),
            "total_area": float(sum(d.area for d in record.defects)),
        }
        if by_label:
            defects["by_label"] = taxonomy.sort_counts(by_label)
        items.append(
            CatalogueItem(
                row=row,
                id=record.id,
                image=_image_ref(record.image_path, root),
                labels=dict(record.labels),
                zone=zone.id,
                area=zone.area,
                description=record.description or describe(record.labels, zone.id, taxonomy),
                group=record.group or record.id,
                defects=defects,
            )
        )
    return items


def _read_records(
    source: str | Path | Iterable[Record], taxonomy: Taxonomy
) -> tuple[list[Record], list[Problem], Path | None, dict[str, Any]]:
    if isinstance(source, (str, Path)):
        from indexer.readers import read_dataset

        scan = read_dataset(source, taxonomy=taxonomy)
        info = {"source": str(Path(source).resolve()), "format": scan.format,
                "coverage": scan.coverage.as_dict()}  # fmt: skip
        return list(scan.records), list(scan.problems), Path(scan.root).resolve(), info
    records = list(source)
    return records, [], None, {"source": "records"}


def _model_info(encoder: Any) -> dict[str, Any]:
    info = dict(encoder.info()) if hasattr(encoder, "info") else {}
    info.setdefault("id", info.get("model_id") or getattr(encoder, "model_id", None))
    info.setdefault("dim", int(encoder.dim))
    return info


# -- entry points ---------------------------------------------------------------------------------
def build_index(
    source: str | Path | Iterable[Record],
    out: str | Path,
    *,
    image_encoder: Any,
    text_encoder: Any,
    taxonomy: Taxonomy,
    alpha: float = 0.6,
    index_type: str = "flat",
    index_params: dict[str, Any] | None = None,
    batch_size: int = 8,
    workers: int = 2,
    cache_dir: str | Path | None = None,
    progress: bool = True,
) -> BuildReport:
    """Embed a dataset (a manifest/dataset path, or records) and write the artifact directory.

    Raises:
        ValueError: no image could be embedded (nothing to index).
    """
    t0 = time.perf_counter()
    records, problems, root, source_info = _read_records(source, taxonomy)
    image_info = _model_info(image_encoder)
    cache = EmbeddingCache(Path(cache_dir), image_info) if cache_dir else None
    kept, image_vectors, failed, stats = embed_images(
        records, image_encoder=image_encoder, batch_size=batch_size, workers=workers,
        cache=cache, progress=progress,
    )  # fmt: skip
    if not kept:
        raise ValueError(f"no image could be embedded ({len(failed)} failed, {len(problems)} "
                         "unreadable inputs); nothing to index")  # fmt: skip
    items = catalogue_items(kept, taxonomy, root=root)
    text_vectors = embed_descriptions(items, text_encoder)
    image_store, fused_store = build_stores(
        image_vectors, text_vectors, alpha=alpha, index_type=index_type, params=index_params
    )
    all_failed = [*problems, *failed]
    manifest = {
        "image_model": image_info,
        "text_model": _model_info(text_encoder),
        "template_version": TEMPLATE_VERSION,
        "fusion": {"alpha": alpha, "image_dim": image_vectors.shape[1],
                   "text_dim": text_vectors.shape[1]},
        "taxonomy": {"name": taxonomy.name, "version": taxonomy.version,
                     "no_damage_id": taxonomy.no_damage_id},
        "dataset": dataset_summary(items, **source_info, root=str(root) if root else None),
        "failed": [p.as_dict() for p in all_failed],
        "history": [{"op": "build", "count": len(items), "failed": len(all_failed)}],
    }  # fmt: skip
    written = write_artifacts(
        out, manifest=manifest, items=items, image_vectors=image_vectors,
        text_vectors=text_vectors, image_store=image_store, fused_store=fused_store,
    )  # fmt: skip
    return BuildReport(
        out=Path(out), count=len(items), failed=tuple(all_failed),
        embedded=int(stats["embedded"]), cached=int(stats["cached"]),
        seconds=time.perf_counter() - t0, encode_seconds=stats["encode_seconds"],
        manifest=written,
    )  # fmt: skip


def add_records(
    artifacts_dir: str | Path,
    source: str | Path | Iterable[Record],
    *,
    image_encoder: Any,
    text_encoder: Any,
    taxonomy: Taxonomy,
    batch_size: int = 8,
    workers: int = 2,
    progress: bool = True,
) -> BuildReport:
    """Embed new records with the recorded models and append them (no rebuild of the rest).

    Raises:
        ManifestMismatchError: the encoders are not the ones the artifacts were built with.
        ValueError: a record id is already indexed (remove it first).
    """
    t0 = time.perf_counter()
    artifacts = load_artifacts(artifacts_dir, verify=True)
    check_compatible(
        artifacts.manifest, image_model_info=_model_info(image_encoder),
        text_model_info=_model_info(text_encoder), taxonomy=taxonomy,
    )  # fmt: skip
    records, problems, root, _ = _read_records(source, taxonomy)
    present = [r.id for r in records if artifacts.row_of(r.id) is not None]
    if present:
        raise ValueError(f"already indexed (remove them first): {present[:10]}")
    kept, image_vectors, failed, stats = embed_images(
        records, image_encoder=image_encoder, batch_size=batch_size, workers=workers,
        progress=progress,
    )  # fmt: skip
    recorded_root = artifacts.manifest.get("dataset", {}).get("root")
    items = catalogue_items(kept, taxonomy, root=Path(recorded_root) if recorded_root else root,
                            first_row=len(artifacts))  # fmt: skip
    all_failed = [*problems, *failed]
    artifacts.manifest["failed"] = [*artifacts.manifest.get("failed", []),
                                    *(p.as_dict() for p in all_failed)]  # fmt: skip
    written = rewrite_artifacts(
        artifacts, new_items=items, new_image_vectors=image_vectors,
        new_text_vectors=embed_descriptions(items, text_encoder),
        history={"op": "add", "count": len(items), "failed": len(all_failed)},
    )  # fmt: skip
    return BuildReport(
        out=Path(artifacts_dir), count=written["vector_count"], failed=tuple(all_failed),
        embedded=int(stats["embedded"]), cached=0, seconds=time.perf_counter() - t0,
        encode_seconds=stats["encode_seconds"], manifest=written,
    )  # fmt: skip


def remove_items(artifacts_dir: str | Path, ids: Iterable[str]) -> dict[str, Any]:
    """Remove items by id; rows after them are renumbered. Raises KeyError for unknown ids."""
    artifacts = load_artifacts(artifacts_dir, verify=True)
    ids = list(dict.fromkeys(ids))
    unknown = [i for i in ids if artifacts.row_of(i) is None]
    if unknown:
        raise KeyError(f"not in the index: {unknown[:10]}")
    keep = np.ones(len(artifacts), bool)
    keep[[artifacts.row_of(i) for i in ids]] = False
    return rewrite_artifacts(
        artifacts, keep=keep, history={"op": "remove", "count": len(ids), "ids": ids[:100]}
    )
