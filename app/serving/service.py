"""The running service: start-up state, readiness, and the one pipeline every query goes through.

A route parses its request, calls :meth:`Ready.answer` once, renders the answer's result inside
:meth:`Ready.rendering` and returns it (LitServe style: the service decodes, batches, searches,
times and records; the route is glue).
``bytes -> decode + preprocess`` (thread pool, :func:`models.embedding.prepare_image`) ``->
encode`` (inference worker, batched) ``-> search`` (thread pool; any text encode hops back onto
the inference worker) ``-> Answer``, then ``render`` (the route's renderer, :mod:`app.render`).
Each stage is timed and recorded once; the query part is bounded by ``request_timeout_s``.
"""

from __future__ import annotations

import asyncio
import functools
import logging
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import anyio
import numpy as np
from PIL import Image

from app.http.errors import BadParameterError, NotReadyError, RequestTimeoutError
from app.metrics import Metrics
from app.query import Query, check_region_inside, resolve_filters
from app.serving.admission import Admission, DecodeBudget
from app.serving.batching import Encoded, InferenceWorker
from app.serving.reloading import Reloader
from app.serving.resources import Resources, load_resources
from app.settings import Settings
from indexer.build.mapper import embed_descriptions
from indexer.errors import UnknownItemError
from indexer.index.catalogue import CatalogueItem
from indexer.index.regions import Region
from indexer.query import Filters, QueryPatches, RetrievalResult
from indexer.retrieval.regions import RegionQueryError, require_patch_regions
from models.allocator import MB
from models.base import Vectors
from models.embedding import Prepared, prepare_image
from models.errors import VisragError

logger = logging.getLogger(__name__)

LOADING, WARMING_UP, READY, FAILED, STOPPING = (
    "loading",
    "warming_up",
    "ready",
    "failed",
    "stopping",
)


@dataclass(frozen=True)
class Answer:
    result: RetrievalResult
    timings: dict[str, float]  # stage -> seconds, ours, the retriever's and the route's render


class Service:
    """Owns the resources and the inference worker of one app, and its readiness."""

    def __init__(
        self,
        settings: Settings,
        metrics: Metrics,
        *,
        resources: Resources | None = None,
        loader: Callable[[Settings], Resources] = load_resources,
    ) -> None:
        self.settings = settings
        self.metrics = metrics
        self._loader = loader
        self.worker: InferenceWorker | None = None
        self.status = LOADING
        self.reason: str | None = "loading models and index"
        self.started_at = time.time()
        self.on_fatal: Callable[[BaseException], None] | None = None
        self.preparing = 0  # requests decoding/preprocessing, about to reach the worker
        # owns the live index generation (self.resources) and swaps a new one in
        self.reloader = Reloader(
            metrics, interval_s=settings.reload_interval_s, resources=resources
        )
        # 429 before a request's body is read: a queue's worth waiting, plus the batch computing;
        # bodies are received in their own pool and take a token only once complete
        self.admission = Admission(
            settings.max_queue + settings.max_batch_size,
            readers=settings.max_uploads,
            min_rate_bps=settings.min_upload_rate_bps,
            on_refusal=lambda rule: metrics.admission_refusals.labels(rule=rule).inc(),
        )
        self.decode_budget = DecodeBudget(settings.decode_budget_mb * MB)

    # -- lifecycle -------------------------------------------------------------------------------
    async def start(self) -> None:
        """Load (off the event loop), start the worker, warm up; record why if anything fails."""
        try:
            resources = self.resources
            if resources is None:
                resources = await anyio.to_thread.run_sync(self._loader, self.settings)
                self.reloader.resources = resources  # /info shows it while warming up
            s = self.settings
            encoder = resources.image_encoder
            with_patches = getattr(encoder, "encode_with_patches", None)
            self.worker = InferenceWorker(
                lambda arrays: encoder.encode_preprocessed(arrays, batch_size=len(arrays)),
                # region queries and heatmaps: the patch tokens of the same forward pass
                encode_with_patches=None
                if with_patches is None
                else lambda arrays: with_patches(arrays, batch_size=len(arrays)),
                max_batch_size=s.max_batch_size,
                max_wait_ms=s.max_wait_ms,
                # admitted requests never overflow it, each with up to max_photos images
                max_queue=self.admission.capacity * s.max_photos,
                on_batch=self.metrics.observe_batch,
                on_depth=self.metrics.queue_depth.set,
                arriving=lambda: self.preparing,
            )
            self.worker.start()
            self.metrics.index_vectors.set(resources.retriever.size)
            self.status, self.reason = WARMING_UP, "warming up the encoder"
            await Ready(self, resources, self.worker).warm_up()
            # adopt the loaded generation before /ready says yes: requests see generation 1
            await self.reloader.start(resources)
        except Exception as exc:
            self.status, self.reason = FAILED, f"start-up failed: {exc}"
            logger.error("visrag cannot start: %s", exc, exc_info=not _is_expected(exc))
            if self.on_fatal is not None:
                self.on_fatal(exc)
            return
        self.status, self.reason = READY, None
        self.metrics.ready.set(1)
        logger.info("visrag is ready (%d indexed items)", resources.retriever.size)

    async def stop(self) -> None:
        self.status, self.reason = STOPPING, "shutting down"
        self.metrics.ready.set(0)
        await self.reloader.stop()
        if self.worker is not None:
            await anyio.to_thread.run_sync(self.worker.stop)

    @property
    def ready(self) -> bool:
        return self.status == READY and self.worker is not None and self.worker.alive

    @property
    def resources(self) -> Resources | None:
        """The live index generation (the reloader's); None until loaded."""
        return self.reloader.resources

    def store_problem(self) -> str | None:
        """Why the vector store cannot answer now (a Milvus store unreachable), else None."""
        return None if self.resources is None else self.resources.store_problem()

    def require_ready(self) -> Ready:
        """The one readiness check of a request: 503 (Retry-After) unless loaded and warmed up."""
        if not self.ready or self.resources is None or self.worker is None:
            reason = self.reason or "the inference worker stopped"
            raise NotReadyError(f"not ready: {reason}", retry_after=5)
        return Ready(self, self.resources, self.worker)

    # -- operations ------------------------------------------------------------------------------
    def metrics_text(self) -> bytes:
        """The Prometheus exposition, with the queue depth read now."""
        if self.worker is not None:
            self.metrics.queue_depth.set(self.worker.depth)
        return self.metrics.render()

    def info(self) -> dict[str, Any]:
        s = self.settings
        runtime: dict[str, Any] = {
            "status": self.status,
            "uptime_s": round(time.time() - self.started_at, 3),
            "max_batch_size": s.max_batch_size,
            "max_wait_ms": s.max_wait_ms,
            "max_queue": s.max_queue,
            "admitted": self.admission.in_progress,
            "receiving": self.admission.reading,
            "refused_at_admission": self.admission.refused,
            "admission_refusals": dict(self.admission.refusals),
            "max_upload_bytes": s.max_upload_bytes,
            "max_pixels": s.max_pixels,
            "request_timeout_s": s.request_timeout_s,
            "max_uploads": s.max_uploads,
            "min_upload_rate_bps": s.min_upload_rate_bps,
            "upload_grace_s": s.upload_grace_s,
            "header_timeout_s": s.header_timeout_s,
            "decode_budget_mb": s.decode_budget_mb,
            "default_k": s.default_k,
            "auth": bool(s.api_keys),
            "catalogue_writes": bool(s.write_keys),
        }
        manifest: dict[str, Any] = {}
        if self.resources is not None:
            runtime.update(self.resources.runtime())
            runtime.update(self.reloader.info())
            manifest = self.resources.manifest
        if self.worker is not None:
            runtime["queue_depth"] = self.worker.depth
        return {"manifest": manifest, "runtime": runtime}


class Ready:
    """A service found ready by a request: what that request's pipeline runs against."""

    def __init__(self, service: Service, resources: Resources, worker: InferenceWorker) -> None:
        self.service = service
        self.settings = service.settings
        self.resources = resources
        self.worker = worker

    async def answer(self, data: bytes, query: Query) -> Answer:
        """Decode, preprocess, encode (batched) and search one uploaded image, or search with a
        stored item's vector (``query.item``; ``data`` empty)."""
        filters = resolve_filters(query, self.resources.taxonomy)
        if query.item is not None and data:
            raise BadParameterError("send an image or an indexed item's id (item), not both")
        if query.wants_patches:
            self._check_patch_query(query)
        timeout = self.settings.request_timeout_s
        try:
            with anyio.fail_after(timeout):
                result, timings = await self._run(data, query, filters)
        except TimeoutError:
            raise RequestTimeoutError(f"the request took longer than {timeout:g} s") from None
        if result.novelty is not None:
            self.service.metrics.novelty_p_value.observe(result.novelty.p_value)
        return Answer(result=result, timings=timings)

    async def answer_photos(self, images: Sequence[bytes], query: Query) -> list[Answer]:
        """Several photos of one claim, each through :meth:`answer`, concurrently (so their
        encodes share batches); every decode inside the service's decode budget."""
        if len(images) > self.settings.max_photos:
            raise BadParameterError(
                f"send at most {self.settings.max_photos} photos in one request (got {len(images)})"
            )
        if query.item is not None:
            raise BadParameterError("send photos or an indexed item's id (item), not both")
        return list(await asyncio.gather(*(self.answer(data, query) for data in images)))

    def _check_patch_query(self, query: Query) -> None:
        """A region or heatmap needs an uploaded image, patch tokens and a region table: say
        which is missing before any work."""
        asked = "a region" if query.region is not None else "explain=heatmap"
        if query.item is not None:
            raise BadParameterError(
                f"{asked} needs an uploaded image: an item=ID query has no patch tokens (upload "
                "the item's photo instead)"
            )
        if getattr(self.resources.image_encoder, "encode_with_patches", None) is None:
            raise RegionQueryError(
                f"{asked}: the loaded image encoder gives no patch tokens ({asked} needs them)"
            )
        require_patch_regions(self.resources.retriever.artifacts)

    @contextmanager
    def rendering(self, answer: Answer) -> Iterator[None]:
        """Time the route's rendering of ``answer`` as stage ``render``, then record every stage
        of the request (nothing is recorded when rendering fails)."""
        start = time.perf_counter()
        yield
        answer.timings["render"] = time.perf_counter() - start
        self.service.metrics.observe_stages(answer.timings)

    def image_path(self, item_id: str) -> Path | None:
        """The indexed image of a catalogue item; None if unknown or gone."""
        return self.resources.retriever.image_path(item_id)

    def region(self, item_id: str, suffix: str) -> Region | None:
        """The indexed region ``{item_id}#{suffix}`` of a catalogue item; None if either is
        unknown (only the item's own regions: the id is built from the item's)."""
        artifacts = self.resources.retriever.artifacts
        table, row = artifacts.regions, artifacts.row_of(item_id)
        if table is None or row is None:
            return None
        found = table.row_of(f"{item_id}#{suffix}")
        return None if found is None else table.regions[found]

    async def encode_image(self, data: bytes) -> Vectors:
        """One uploaded image's vector, decoded, preprocessed and encoded as a query's is (the
        catalogue writes embed through it)."""
        _, encoded = await self._encode(data)
        return np.asarray(encoded.vector, dtype=np.float32)

    async def encode_descriptions(self, items: Sequence[CatalogueItem]) -> Vectors:
        """The items' description vectors, encoded on the inference thread."""
        encoder = self.resources.text_encoder
        if encoder is None:
            raise NotReadyError("the service has no text encoder loaded", retry_after=5)
        call = functools.partial(self.worker.call, embed_descriptions, items, encoder)
        vectors: Vectors = await anyio.to_thread.run_sync(call)
        return vectors

    async def _encode(self, data: bytes, *, patches: bool = False) -> tuple[Prepared, Encoded]:
        encoder, max_pixels = self.resources.image_encoder, self.settings.max_pixels
        self.service.preparing += 1
        try:
            prepared = await self.service.decode_budget.decode(
                data,
                functools.partial(prepare_image, data, encoder, max_pixels=max_pixels),
                max_pixels=max_pixels,
                max_side=encoder.image_size,
            )
            pending = self.worker.submit(prepared.pixels, patches=patches)
        finally:
            self.service.preparing -= 1  # after submit: the worker never sees a gap between them
        return prepared, await self.worker.result(pending)

    async def _run(
        self, data: bytes, query: Query, filters: Filters
    ) -> tuple[RetrievalResult, dict[str, float]]:
        exclude_ids: tuple[str, ...] = ()
        exclude_groups: tuple[str, ...] = ()
        if query.item is not None:  # "more like this": the stored vector, the item left out
            item, vector = self._stored(query.item)
            exclude_ids = (item.id,)
            exclude_groups = (item.group,) if query.exclude_group else ()
            timings: dict[str, float] = {}
            patches = None
        else:
            prepared, encoded = await self._encode(data, patches=query.wants_patches)
            vector = encoded.vector
            patches = self._patches(query, prepared, encoded)
            timings = {
                "decode": prepared.decode_seconds,
                "preprocess": prepared.preprocess_seconds,
                "queue": encoded.queue_seconds,
                "encode": encoded.encode_seconds,
            }
        search = functools.partial(
            self.resources.retriever.search,
            vector,
            k=query.k,
            mode=query.mode,
            text=query.text,
            filters=filters or None,
            exclude_ids=exclude_ids,
            exclude_groups=exclude_groups,
            alpha=query.alpha,
            probe_weight=query.probe_weight,
            set_alpha=self.settings.label_set_alpha,
            encode_text=self._encode_text if self.resources.text_encoder is not None else None,
            patches=patches,
            region_k=query.region_k,
        )
        result: RetrievalResult = await anyio.to_thread.run_sync(search, abandon_on_cancel=True)
        return result, {**timings, **result.timings}

    @staticmethod
    def _patches(query: Query, prepared: Prepared, encoded: Encoded) -> QueryPatches | None:
        """What the retriever needs for the query's region or heatmap, checked against the
        uploaded image's size (after EXIF orientation)."""
        if not query.wants_patches or encoded.patches is None:
            return None
        width, height = prepared.size
        if query.region is not None:
            check_region_inside(query.region, width, height)
        return QueryPatches(
            encoded.patches, width, height, region=query.region, heatmap=query.heatmap
        )

    def _stored(self, item_id: str) -> tuple[CatalogueItem, Vectors]:
        """A catalogue item and its stored image vector (the query of ``item=ID``)."""
        artifacts = self.resources.retriever.artifacts
        row = artifacts.row_of(item_id)
        if row is None:
            raise UnknownItemError(f"no catalogue item {item_id!r}")
        return artifacts.items[row], np.asarray(artifacts.image_vectors[row], dtype=np.float32)

    def _encode_text(self, text: str) -> Vectors:
        """One text -> its vector, on the inference thread (called from the search thread)."""
        encoder = self.resources.text_encoder
        assert encoder is not None
        vectors: Vectors = self.worker.call(encoder.encode, [text])
        return np.asarray(vectors[0], dtype=np.float32)

    async def warm_up(self) -> None:
        """One dummy image through the whole path, so the first real request is not the slow one."""
        image = Image.new("RGB", (64, 48), (128, 128, 128))
        encoder = self.resources.image_encoder
        prepared = await anyio.to_thread.run_sync(prepare_image, image, encoder)
        encoded = await self.worker.encode(prepared.pixels)
        if self.resources.retriever.size:
            search = functools.partial(self.resources.retriever.search, encoded.vector, k=1)
            await anyio.to_thread.run_sync(search)


def _is_expected(exc: BaseException) -> bool:
    """Start-up errors with a clear message (mismatch, checksum, missing weights): no traceback."""
    return isinstance(exc, (VisragError, FileNotFoundError, asyncio.CancelledError))
