"""The Ray Data engine of a build (``visrag index build --engine ray``).

Only the map stage's images move to Ray; reading, the catalogue, the text vectors, the stores, the
embedding cache and the atomic artifact writer stay those of
:func:`indexer.build.pipeline.build_index`,
which takes this engine in place of :func:`indexer.build.embed.embed_images` (same
signature, same results). The pipeline:

- the records not already in the cache -> a Ray Dataset of ``{id, file}`` rows;
- decode + preprocess as CPU tasks (:func:`models.embedding.prepare_image` with the encoder's
  :class:`~models.embedding.Preprocessing`: the same pixels, no model shipped); an unreadable
  image becomes an error row, reported by file name and skipped, never a zero vector;
- ``encode_preprocessed`` in an actor pool: ``workers`` actors (default: the cluster's CPUs but
  one, which the decode tasks keep), each loading the model once by
  the :class:`EncoderRecipe` (model, revision, dtype, image size, pooling of the driver's encoder,
  checked on load), on a GPU when ``gpus_per_worker`` > 0; with a region sink (a build with
  regions), ``encode_with_patches`` instead, and the actor pools each record's regions and
  samples its calibration patches from the patch tokens itself
  (:meth:`indexer.build.regions.RegionSink.add`, as the local engine): what returns to the
  driver is the region drafts and patch samples, never the raw tokens;
- the driver streams the results: progress bar, every batch into the cache (so an interrupted
  build resumes), vectors (and regions) in record order.

Ray is an optional extra (``pip install 'visrag[ray]'``); it is imported only when this engine
runs. On a cluster, every node needs visrag installed (the same image) and the images and the
model readable at the same paths.
"""

from __future__ import annotations

import logging
import math
import os
import time
from collections.abc import Sequence
from dataclasses import dataclass, replace
from functools import partial
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt

from indexer.build.cache import EmbeddingCache
from indexer.build.embed import add_regions, encode_with_patches, progress_bar, split_cached
from indexer.build.mapper import ImageEngine
from indexer.build.regions import RegionSink
from indexer.index.manifest import describe_image_encoder
from indexer.readers.records import Problem, Record
from models.base import ImageEncoderProtocol
from models.embedding import Preprocessing, prepare_image
from models.errors import VisragError

logger = logging.getLogger(__name__)
Vectors = npt.NDArray[np.float32]
NO_PIXELS = np.zeros((3, 0, 0), np.float32)  # an error row's pixels (Ray wants one column type)
#: What must be identical between the driver's encoder and every actor's (not device/autocast).
#: What a decode task reserves besides its CPU: a block of decoded photos and their pixels. Giving
#: it also keeps Ray Data from fusing decoding into the encoder actors (it fuses maps whose
#: resources are equal): decoding stays in CPU tasks, overlapped with encoding.
DECODE_MEMORY = 256 * 2**20
COMPARED = ("id", "revision", "dtype", "pooling", "dim", "preprocessing")


class RayEngineError(VisragError):
    """Ray is missing, or an actor's encoder is not the driver's."""


@dataclass(frozen=True)
class RayOptions:
    """Where and how wide: ``address`` None = a local Ray (or the one already initialised).
    ``workers``: encoder actors (one loaded model each); ``None``: as many as the cluster's CPUs
    allow while leaving one to the decode tasks (and, with GPUs, no more than the GPUs hold)."""

    address: str | None = None
    workers: int | None = None
    gpus_per_worker: float = 0.0
    cpus_per_worker: float = 1.0


def local_cpus() -> int:
    """The CPUs a local Ray started here would count (this process's affinity)."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not on Linux
        return os.cpu_count() or 1


def actor_count(options: RayOptions, cpus: float, gpus: float = 0.0) -> int:
    """How many encoder actors to start on a cluster of ``cpus`` (and ``gpus``).

    Raises:
        RayEngineError: the actors would take every CPU (the decode tasks would never run).
    """
    per = options.cpus_per_worker
    room = math.floor((cpus - 1) / per) if per > 0 else 1  # one CPU stays with decoding
    workers = options.workers
    if workers is None:
        workers = room
        if options.gpus_per_worker > 0:
            workers = min(workers, math.floor(gpus / options.gpus_per_worker))
    if workers < 1 or workers > room:
        fix = f"use --workers {room} or fewer" if room >= 1 else "it needs at least 2 CPUs"
        raise RayEngineError(
            f"{max(workers, 1)} encoder actor(s) would take all {cpus:g} CPUs of the Ray cluster; "
            f"the decode tasks need at least one: {fix}"
        )
    return workers


def check_before_start(options: RayOptions) -> int | None:
    """For a local Ray not started yet: the actor count, checked against this machine's CPUs
    before Ray starts (seconds) and the models load; ``None`` when a cluster address decides."""
    if options.address:
        return None
    return actor_count(replace(options, gpus_per_worker=0.0), local_cpus())  # GPUs: once joined


@dataclass(frozen=True)
class EncoderRecipe:
    """How an actor loads the driver's image encoder (a small picklable value)."""

    model: str
    revision: str | None
    dtype: str
    image_size: int
    pooling: str
    expected: dict[str, Any]  # the driver's description, fields of COMPARED

    @classmethod
    def of(cls, encoder: ImageEncoderProtocol) -> EncoderRecipe:
        described = describe_image_encoder(encoder).model_dump(mode="json", include=set(COMPARED))
        return cls(
            encoder.model_id,
            encoder.revision,
            encoder.dtype,
            encoder.image_size,
            encoder.pooling,
            described,
        )

    def load(self, device: str) -> ImageEncoderProtocol:
        from models.image_encoder import load_image_encoder

        encoder = load_image_encoder(
            self.model,
            device=device,
            dtype=self.dtype,
            image_size=self.image_size,
            pooling=self.pooling,
            revision=self.revision,
        )
        loaded = describe_image_encoder(encoder).model_dump(mode="json", include=set(COMPARED))
        if loaded != self.expected:
            diff = sorted(k for k in COMPARED if loaded.get(k) != self.expected.get(k))
            raise RayEngineError(f"a Ray worker's image encoder differs from the driver's: {diff}")
        return encoder


def prepare_row(row: dict[str, Any], *, preprocessing: Preprocessing) -> dict[str, Any]:
    """A Ray CPU task: one ``{id, file}`` row -> its pixels, or the reason it cannot be read (the
    row's other fields, a ``record`` for regions, pass along)."""
    try:
        pixels, error = prepare_image(Path(row["file"]), preprocessing).pixels, ""
    except (VisragError, OSError) as exc:
        pixels, error = NO_PIXELS, f"{type(exc).__name__}: {exc}"
    return {**row, "pixels": pixels, "error": error}


class EncodeActor:
    """A Ray actor: one loaded model; batches of prepared rows -> vectors (error rows pass).

    ``regions``: the rows carry their :class:`~indexer.readers.records.Record` (``record``); one
    forward pass gives vectors and patch tokens, and each row leaves with its region drafts and
    calibration patches (``regions``: ``(drafts, samples)``; ``None`` for an error row).
    """

    def __init__(
        self, recipe: EncoderRecipe, device: str, batch_size: int, regions: bool = False
    ) -> None:
        from models.allocator import tune_allocator

        tune_allocator()  # this actor's process runs the model: reuse its memory between batches
        self.encoder = recipe.load(device)
        self.batch_size = batch_size
        self.regions = regions

    def __call__(self, batch: dict[str, Any]) -> dict[str, Any]:
        errors = [str(e) for e in batch["error"]]
        ok = [i for i, e in enumerate(errors) if not e]
        vectors = np.zeros((len(errors), self.encoder.dim), np.float32)
        pooled: list[Any] = [None] * len(errors)
        t0 = time.perf_counter()
        region_seconds = 0.0
        if ok:
            pixels = [np.asarray(batch["pixels"][i], np.float32) for i in ok]
            if not self.regions:
                vectors[ok] = self.encoder.encode_preprocessed(pixels, batch_size=self.batch_size)
            else:
                vectors[ok], grids = encode_with_patches(self.encoder, pixels, self.batch_size)
                t1 = time.perf_counter()
                for i, grid in zip(ok, grids, strict=True):
                    sink = RegionSink()
                    record = batch["record"][i]
                    add_regions(sink, record, grid)
                    pooled[i] = (sink.drafts.get(record.id, []), sink.samples.get(record.id, []))
                region_seconds = time.perf_counter() - t1
        share = max(len(errors), 1)
        seconds = np.full(len(errors), (time.perf_counter() - t0 - region_seconds) / share)
        out = {
            "id": batch["id"],
            "file": batch["file"],
            "error": np.asarray(errors, object),
            "vector": vectors,
            "encode_seconds": seconds,
        }
        if self.regions:
            column = np.empty(len(errors), object)
            column[:] = pooled
            out["regions"] = column
            out["region_seconds"] = np.full(len(errors), region_seconds / share)
        return out


def connect(options: RayOptions) -> None:
    """Join the cluster at ``options.address``, or start a local Ray (unless one is running)."""
    try:
        import ray
    except ImportError as exc:
        raise RayEngineError("--engine ray needs Ray: pip install 'visrag[ray]'") from exc
    if ray.is_initialized():
        return
    # Ray's own start-up lines (INFO) and its workers' logs say nothing a build user can act on
    if options.address:
        ray.init(address=options.address, log_to_driver=False, logging_level=logging.ERROR)
    else:
        ray.init(include_dashboard=False, log_to_driver=False, logging_level=logging.ERROR)


def _quiet_console(ray_data: logging.Logger) -> None:
    """Errors only on the console from Ray Data: its execution start, plan and finish lines are
    not news to a build user (they stay in its log file under the Ray session folder)."""
    for handler in ray_data.handlers:
        if not isinstance(handler, logging.FileHandler) and "File" not in type(handler).__name__:
            handler.setLevel(logging.ERROR)


def embed_images_ray(
    records: Sequence[Record],
    *,
    image_encoder: ImageEncoderProtocol,
    batch_size: int = 8,
    workers: int = 2,  # decode threads of the local engine: Ray schedules its own tasks
    cache: EmbeddingCache | None = None,
    progress: bool = True,
    region_sink: RegionSink | None = None,
    options: RayOptions = RayOptions(),
) -> tuple[list[Record], Vectors, list[Problem], dict[str, float]]:
    """:func:`indexer.build.embed.embed_images` on Ray Data: (kept, vectors, failed, stats);
    ``region_sink`` filled as there (the actors pool the regions)."""
    del workers
    vectors, todo, stats = split_cached(records, cache, region_sink)
    if region_sink is not None:
        stats["region_seconds"] = 0.0
    failed: list[Problem] = []
    if todo:
        failed = _run(
            todo, image_encoder, batch_size, cache, progress, options, vectors, stats, region_sink
        )
    kept = [r for r in records if r.id in vectors]
    dim = image_encoder.dim
    stacked = np.stack([vectors[r.id] for r in kept]) if kept else np.zeros((0, dim), np.float32)
    return kept, stacked.astype(np.float32), failed, stats


def _run(
    todo: list[Record],
    image_encoder: ImageEncoderProtocol,
    batch_size: int,
    cache: EmbeddingCache | None,
    progress: bool,
    options: RayOptions,
    vectors: dict[str, Vectors],
    stats: dict[str, float],
    sink: RegionSink | None = None,
) -> list[Problem]:
    t_start = time.perf_counter()
    connect(options)
    import ray.data

    resources = ray.cluster_resources()
    actors = actor_count(options, resources.get("CPU", 0), resources.get("GPU", 0))
    logger.info("Ray: %d encoder actor(s), decoding on the other CPUs", actors)
    stats["encoders"] = actors

    _quiet_console(logging.getLogger("ray.data"))
    context = ray.data.DataContext.get_current()
    context.enable_progress_bars = False  # ours below counts images, not blocks
    window = max(batch_size * 4, 1)  # as the local engine: the encoder buckets equal shapes
    by_id = {r.id: r for r in todo}
    rows: list[dict[str, Any]] = [{"id": r.id, "file": str(r.image_path)} for r in todo]
    if sink is not None:  # the actors pool each record's polygons: the record travels along
        for row, record in zip(rows, todo, strict=True):
            row["record"] = record
    gpus = options.gpus_per_worker
    dataset = (
        ray.data.from_items(rows, override_num_blocks=max(1, math.ceil(len(rows) / window)))
        .map(
            partial(prepare_row, preprocessing=Preprocessing.of(image_encoder)),
            num_cpus=1,
            memory=DECODE_MEMORY,
        )
        .map_batches(
            EncodeActor,
            batch_size=window,
            num_gpus=gpus,
            compute=ray.data.ActorPoolStrategy(size=actors),
            num_cpus=options.cpus_per_worker,
            batch_format="numpy",
            fn_constructor_kwargs={
                "recipe": EncoderRecipe.of(image_encoder),
                "device": "cuda" if gpus > 0 else "cpu",
                "batch_size": batch_size,
                "regions": sink is not None,
            },
        )
    )
    failed: list[Problem] = []
    t_first = None
    with progress_bar(len(todo), progress) as bar:
        task = bar.add_task("embed", total=len(todo), rate="")
        for batch in dataset.iter_batches(batch_size=None, batch_format="numpy"):
            if t_first is None:  # Ray started, the actors loaded their models, one batch ran
                t_first = time.perf_counter()
                stats["startup_seconds"] = t_first - t_start
            done: list[Record] = []
            for i, (rid, error) in enumerate(zip(batch["id"], batch["error"], strict=True)):
                record = by_id[str(rid)]
                if error:
                    logger.warning("skipping %s: %s", record.image_path, error)
                    failed.append(Problem(str(record.image_path), str(error)))
                    continue
                vectors[record.id] = np.asarray(batch["vector"][i], np.float32)
                if sink is not None:
                    sink.drafts[record.id], sink.samples[record.id] = batch["regions"][i]
                done.append(record)
            if cache and done:
                cache.put(done, np.stack([vectors[r.id] for r in done]), sink)
            if sink is not None:
                stats["region_seconds"] += float(np.sum(batch["region_seconds"]))
            stats["embedded"] += len(done)
            stats["encode_seconds"] += float(np.sum(batch["encode_seconds"]))
            rate = stats["embedded"] / (time.perf_counter() - t_start)
            bar.update(task, advance=len(batch["id"]), rate=f"{rate:.1f} img/s")
    # the busy share is of the time after start-up (else seconds of Ray start read as "idle")
    stats["seconds"] = time.perf_counter() - (t_first or t_start)
    missing = len(todo) - len(failed) - int(stats["embedded"])
    if missing:
        raise RayEngineError(f"the Ray pipeline returned {missing} fewer images than it was given")
    order = {str(r.image_path): i for i, r in enumerate(todo)}
    return sorted(failed, key=lambda p: order[p.file])  # record order, as the local engine


def ray_engine(options: RayOptions) -> ImageEngine:
    """What :func:`indexer.build.pipeline.build_index` takes: ``engine=ray_engine(options)``."""
    return partial(embed_images_ray, options=options)
