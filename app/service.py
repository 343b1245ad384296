"""The running service: start-up state, and the query pipeline every route goes through.

``bytes -> decode -> preprocess`` (thread pool) ``-> encode`` (inference worker, batched)
``-> search`` (thread pool) ``-> RetrievalResult``. Each stage is timed; the whole request is
bounded by ``request_timeout_s``.
"""

from __future__ import annotations

import asyncio
import functools
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import anyio
import numpy as np
import numpy.typing as npt
from PIL import Image

from app.batching import InferenceWorker
from app.errors import BadParameterError, NotReadyError, RequestTimeoutError
from app.metrics import Metrics
from app.resources import Resources, load_resources
from app.schemas import QueryForm
from app.settings import Settings
from indexer.hits import Filters, RetrievalResult
from models.imaging import decode_image
from models.taxonomy import Taxonomy, fold

logger = logging.getLogger(__name__)

LOADING, WARMING_UP, READY, FAILED, STOPPING = (
    "loading",
    "warming_up",
    "ready",
    "failed",
    "stopping",
)


def build_filters(form: QueryForm, taxonomy: Taxonomy) -> Filters:
    """Normalise filter values through the taxonomy; an unknown value is a 422 naming it."""

    def labels(field: str, values: list[str]) -> tuple[str, ...]:
        out = []
        for raw in values:
            if not taxonomy.is_known(raw):
                known = ", ".join(taxonomy.label_ids)
                raise BadParameterError(f"unknown label {raw!r} in {field}; known: {known}")
            out.append(taxonomy.normalise(raw).id)
        return tuple(dict.fromkeys(out))

    zones = []
    for raw in form.zones:
        zone = taxonomy.normalise_zone(raw)
        if zone.id == taxonomy.unknown_id and fold(raw) != fold(taxonomy.unknown_id):
            raise BadParameterError(f"unknown zone {raw!r} in zones")
        zones.append(zone.id)
    area_keys = {fold(a): a for a in taxonomy.areas}
    for key, names in taxonomy.areas.items():
        area_keys.update({fold(n): key for n in names.values()})
    areas = []
    for raw in form.areas:
        if fold(raw) not in area_keys:
            known = ", ".join(taxonomy.areas)
            raise BadParameterError(f"unknown area {raw!r} in areas; known: {known}")
        areas.append(area_keys[fold(raw)])
    return Filters(
        labels_any=labels("labels_any", form.labels_any),
        labels_all=labels("labels_all", form.labels_all),
        zones=tuple(dict.fromkeys(zones)),
        areas=tuple(dict.fromkeys(areas)),
    )


@dataclass(frozen=True)
class Answer:
    result: RetrievalResult
    timings: dict[str, float]  # stage -> seconds, ours and the retriever's


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
        self.resources = resources
        self._loader = loader
        self.worker: InferenceWorker | None = None
        self.status = LOADING
        self.reason: str | None = "loading models and index"
        self.started_at = time.time()
        self.on_fatal: Callable[[BaseException], None] | None = None
        self._preparing = 0  # requests decoding/preprocessing, about to reach the worker

    # -- lifecycle -------------------------------------------------------------------------------
    async def start(self) -> None:
        """Load (off the event loop), start the worker, warm up; record why if anything fails."""
        try:
            if self.resources is None:
                self.resources = await anyio.to_thread.run_sync(self._loader, self.settings)
            resources = self.resources
            s = self.settings
            encoder = resources.image_encoder
            self.worker = InferenceWorker(
                lambda arrays: encoder.encode_preprocessed(arrays, batch_size=len(arrays)),
                max_batch_size=s.max_batch_size,
                max_wait_ms=s.max_wait_ms,
                max_queue=s.max_queue,
                on_batch=self.metrics.observe_batch,
                on_depth=self.metrics.queue_depth.set,
                arriving=lambda: self._preparing,
            )
            self.worker.start()
            resources.bind_worker(self.worker.call)
            self.metrics.index_vectors.set(resources.retriever.size)
            self.status, self.reason = WARMING_UP, "warming up the encoder"
            await self._warm_up(resources, self.worker)
        except Exception as exc:
            self.status, self.reason = FAILED, f"start-up failed: {exc}"
            logger.error("visrag cannot start: %s", exc, exc_info=not _is_expected(exc))
            if self.on_fatal is not None:
                self.on_fatal(exc)
            return
        self.status, self.reason = READY, None
        self.metrics.ready.set(1)
        logger.info("visrag is ready (%d indexed items)", resources.retriever.size)

    async def _warm_up(self, resources: Resources, worker: InferenceWorker) -> None:
        """One dummy image through the whole path, so the first real request is not the slow one."""
        image = Image.new("RGB", (64, 48), (128, 128, 128))
        pixels = await anyio.to_thread.run_sync(resources.image_encoder.preprocess, image)
        encoded = await worker.encode(pixels)
        if resources.retriever.size:
            search = functools.partial(resources.retriever.search, encoded.vector, k=1)
            await anyio.to_thread.run_sync(search)

    async def stop(self) -> None:
        self.status, self.reason = STOPPING, "shutting down"
        self.metrics.ready.set(0)
        if self.worker is not None:
            await anyio.to_thread.run_sync(self.worker.stop)

    @property
    def ready(self) -> bool:
        return self.status == READY and self.worker is not None and self.worker.alive

    def require_ready(self) -> tuple[Resources, InferenceWorker]:
        if not self.ready or self.resources is None or self.worker is None:
            reason = self.reason or "the inference worker stopped"
            raise NotReadyError(f"not ready: {reason}", retry_after=5)
        return self.resources, self.worker

    # -- the query pipeline ----------------------------------------------------------------------
    async def query(self, data: bytes, form: QueryForm) -> Answer:
        """Decode, preprocess, encode (batched) and search one uploaded image."""
        resources, worker = self.require_ready()
        filters = build_filters(form, resources.taxonomy)
        try:
            with anyio.fail_after(self.settings.request_timeout_s):
                return await self._run(resources, worker, data, form, filters)
        except TimeoutError:
            raise RequestTimeoutError(
                f"the request took longer than {self.settings.request_timeout_s:g} s"
            ) from None

    async def _run(
        self,
        resources: Resources,
        worker: InferenceWorker,
        data: bytes,
        form: QueryForm,
        filters: Filters,
    ) -> Answer:
        encoder = resources.image_encoder
        prepare = functools.partial(
            _decode_and_preprocess,
            data,
            max_pixels=self.settings.max_pixels,
            max_side=getattr(encoder, "image_size", None),
            preprocess=encoder.preprocess,
        )
        self._preparing += 1
        try:
            pixels, t_decode, t_pre = await anyio.to_thread.run_sync(
                prepare, abandon_on_cancel=True
            )
            pending = worker.submit(pixels)
        finally:
            self._preparing -= 1  # after submit: the worker never sees a gap between the two
        encoded = await worker.result(pending)
        search = functools.partial(
            resources.retriever.search,
            encoded.vector,
            k=form.k,
            mode=form.mode,
            text=form.text,
            filters=filters or None,
            alpha=form.alpha,
        )
        result: RetrievalResult = await anyio.to_thread.run_sync(search, abandon_on_cancel=True)
        timings = {
            "decode": t_decode,
            "preprocess": t_pre,
            "queue": encoded.queue_seconds,
            "encode": encoded.encode_seconds,
            **result.timings,
        }
        self.metrics.observe_stages(timings)
        return Answer(result=result, timings=timings)

    def info(self) -> dict[str, Any]:
        s = self.settings
        runtime: dict[str, Any] = {
            "status": self.status,
            "uptime_s": round(time.time() - self.started_at, 3),
            "max_batch_size": s.max_batch_size,
            "max_wait_ms": s.max_wait_ms,
            "max_queue": s.max_queue,
            "max_upload_bytes": s.max_upload_bytes,
            "max_pixels": s.max_pixels,
            "request_timeout_s": s.request_timeout_s,
            "default_k": s.default_k,
            "auth": bool(s.api_keys),
        }
        manifest: dict[str, Any] = {}
        if self.resources is not None:
            runtime.update(self.resources.runtime())
            manifest = self.resources.manifest
        if self.worker is not None:
            runtime["queue_depth"] = self.worker.depth
        return {"manifest": manifest, "runtime": runtime}


def _decode_and_preprocess(
    data: bytes,
    *,
    max_pixels: int,
    max_side: int | None,
    preprocess: Callable[[Image.Image], Any],
) -> tuple[npt.NDArray[np.float32], float, float]:
    t0 = time.perf_counter()
    # max_side: huge JPEGs decode at a reduced DCT scale, never at full size.
    image = decode_image(data, max_pixels=max_pixels, max_side=max_side)
    t1 = time.perf_counter()
    pixels = np.asarray(preprocess(image), dtype=np.float32)
    return pixels, t1 - t0, time.perf_counter() - t1


def _is_expected(exc: BaseException) -> bool:
    """Start-up errors with a clear message (mismatch, checksum, missing weights): no traceback."""
    names = {cls.__name__ for cls in type(exc).__mro__}
    expected = {"ArtifactError", "ManifestMismatchError", "ChecksumError", "ModelNotAvailableError"}
    return bool(names & expected) or isinstance(exc, (FileNotFoundError, asyncio.CancelledError))
