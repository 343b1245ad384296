"""The mapper stage of a build: records -> image vectors.

Decode + preprocess (:func:`models.embedding.prepare_image`, the one image -> vector path) runs in
worker threads, ahead of the encoder by up to two windows; ``encode_preprocessed`` runs in the
calling thread on windows of a few batches (the encoder buckets equal shapes), a CPU encoder
with one intra-op thread fewer than the machine has cores (:func:`cores_left_to_decoding`).
Unreadable images become :class:`~indexer.readers.records.Problem` s, never zero vectors. With an
:class:`~indexer.build.cache.EmbeddingCache`, vectors already encoded are reused.
"""

from __future__ import annotations

import logging
import os
import time
from collections import deque
from collections.abc import Iterator, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt

from indexer.build.cache import EmbeddingCache
from indexer.build.regions import RegionSink
from indexer.readers.records import Problem, Record
from models.base import ImageEncoderProtocol, Pixels
from models.embedding import prepare_image
from models.errors import VisragError

logger = logging.getLogger(__name__)
Vectors = npt.NDArray[np.float32]


def _load(record: Record, image_encoder: ImageEncoderProtocol) -> Pixels | Problem:
    """Decode + preprocess one record's image (the one path, :func:`models.embedding.prepare_image`;
    large photos decode at a reduced JPEG scale); an unreadable image becomes a Problem."""
    try:
        return prepare_image(Path(record.image_path), image_encoder).pixels
    except (VisragError, OSError) as exc:
        return Problem(str(record.image_path), f"{type(exc).__name__}: {exc}")


@contextmanager
def cores_left_to_decoding(image_encoder: ImageEncoderProtocol) -> Iterator[None]:
    """A CPU encoder's intra-op threads while decode threads run beside it: the cores but one.

    Intra-op threads meet at a barrier after every parallel op; with decode threads (and any other
    process) competing for the same cores, one descheduled thread holds up the rest while they
    spin, and the build collapses when other jobs use the cores (``python -m bench.build local
    --load N`` times both rules; docs/performance.md, issue 25).
    """
    if image_encoder.device != "cpu":
        yield
        return
    import torch

    before = torch.get_num_threads()
    torch.set_num_threads(max(1, min(before, _cores() - 1)))
    try:
        yield
    finally:
        torch.set_num_threads(before)


def _cores() -> int:
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not on Linux
        return os.cpu_count() or 1


def encode_with_patches(
    image_encoder: ImageEncoderProtocol, pixels: Sequence[Pixels], batch_size: int
) -> tuple[Vectors, list[Vectors]]:
    """Image vectors and patch tokens of one forward pass; a clear error for an encoder without
    patch tokens."""
    encode = getattr(image_encoder, "encode_with_patches", None)
    if encode is None:
        raise VisragError(
            f"{image_encoder.model_id}: this encoder gives no patch tokens, so it cannot build "
            "region vectors; build with --regions none"
        )
    vectors, grids = encode(pixels, batch_size=batch_size)
    return np.asarray(vectors, np.float32), list(grids)


def add_regions(sink: RegionSink, record: Record, grid: Vectors) -> None:
    """A record's regions from its patch tokens; an image whose size cannot be read has none
    (logged: its image vector is still indexed)."""
    try:
        sink.add(record, grid)
    except OSError as exc:
        logger.warning("no regions for %s: %s", record.image_path, exc)


def progress_bar(total: int, enabled: bool) -> Any:
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


def split_cached(
    records: Sequence[Record], cache: EmbeddingCache | None, sink: RegionSink | None = None
) -> tuple[dict[str, Vectors], list[Record], dict[str, float]]:
    """(vectors the cache already holds by record id, records still to embed, starting stats).

    With a region ``sink``, a record counts as cached only when its regions are cached too (they
    go into the sink); else it is embedded again.
    """
    vectors: dict[str, Vectors] = {}
    todo = []
    for record in records:
        hit = cache.get(record) if cache else None
        if hit is not None and sink is not None and cache is not None:
            hit = hit if cache.get_regions(record, sink) else None
        if hit is not None:
            vectors[record.id] = hit
        else:
            todo.append(record)
    stats = {"cached": float(len(vectors)), "embedded": 0.0, "encode_seconds": 0.0}
    return vectors, todo, stats


def embed_images(
    records: Sequence[Record],
    *,
    image_encoder: ImageEncoderProtocol,
    batch_size: int = 8,
    workers: int = 2,
    cache: EmbeddingCache | None = None,
    progress: bool = True,
    region_sink: RegionSink | None = None,
) -> tuple[list[Record], Vectors, list[Problem], dict[str, float]]:
    """Encode the records' images; returns (records kept, vectors, failures, stats).

    ``stats``: ``cached``, ``embedded``, ``encode_seconds`` (inside the encoder), ``seconds``
    (the whole stage): their ratio is how busy decoding kept the model; with ``region_sink``,
    ``region_seconds`` (pooling regions). ``region_sink``: filled with each record's regions,
    pooled from the patch tokens of the same forward pass (the encoder's
    ``encode_with_patches``).
    """
    vectors, todo, stats = split_cached(records, cache, region_sink)
    if region_sink is not None:
        stats["region_seconds"] = 0.0
    failed: list[Problem] = []
    window = max(batch_size * 4, 1)
    t_start = time.perf_counter()

    with (
        progress_bar(len(todo), progress) as bar,
        ThreadPoolExecutor(max(workers, 1)) as pool,
        cores_left_to_decoding(image_encoder),
    ):
        task = bar.add_task("embed", total=len(todo), rate="")
        pending: deque[tuple[Record, Future[Any]]] = deque()
        source = iter(todo)

        def submit() -> None:
            record = next(source, None)
            if record is not None:
                pending.append((record, pool.submit(_load, record, image_encoder)))

        for _ in range(window * 2):  # decode runs ahead of the encoder by up to two windows
            submit()
        buffer: list[tuple[Record, Pixels]] = []

        def flush() -> None:
            if not buffer:
                return
            t0 = time.perf_counter()
            pixels = [x for _, x in buffer]
            batch = [r for r, _ in buffer]
            if region_sink is None:
                out = image_encoder.encode_preprocessed(pixels, batch_size=batch_size)
                stats["encode_seconds"] += time.perf_counter() - t0
            else:
                out, grids = encode_with_patches(image_encoder, pixels, batch_size)
                t1 = time.perf_counter()
                stats["encode_seconds"] += t1 - t0
                for record, grid in zip(batch, grids, strict=True):
                    add_regions(region_sink, record, grid)
                stats["region_seconds"] += time.perf_counter() - t1
            out = np.asarray(out, np.float32)
            if cache:
                cache.put(batch, out, region_sink)
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
    stats["seconds"] = time.perf_counter() - t_start  # wall time of the stage (busy = encode/this)
    kept = [r for r in records if r.id in vectors]
    dim = image_encoder.dim
    stacked = np.stack([vectors[r.id] for r in kept]) if kept else np.zeros((0, dim), np.float32)
    return kept, stacked.astype(np.float32), failed, stats
