"""Live reload: the service follows its index directory without a restart.

A *generation* is one content of the served directory, identified by
:func:`indexer.index.artifacts.manifest_fingerprint` (every writer rewrites the manifest).
:class:`Reloader` owns the live generation: the :class:`~app.serving.resources.Resources` a request
starting now gets, its number and its fingerprint. It looks every ``reload_interval_s`` (0: never
by itself) and on SIGHUP; when the manifest changed it opens the directory in a worker thread
through :func:`indexer.retrieval.opening.open_index` **with the encoders already loaded** (no
weights are read for a catalogue change; a generation that needs other models is refused by
``check_compatible``, naming the field: restart the service to change models), checksums every
file, and swaps the new resources in between requests. A request holds the resources it started
with (:class:`app.serving.service.Ready`), so in-flight requests finish on their generation and
thumbnails follow the live catalogue. A broken generation is refused: the old one keeps serving,
``/info`` (``runtime.reload``) and ``visrag_index_reload_total{outcome="refused"}`` say so.

FAISS- and Milvus-backed indexes reload alike; nothing reads the directory per query. A Milvus
write (``index add/remove``: the collections first, then the directory swap) changes the
manifest, so it is served from the next check on. Every generation opens the same collections
(one client per URI and process: a Milvus Lite file stays with this process) bound to its own
catalogue; until the swap, the serving generation skips the ids a writer added (its k hits are
items it knows) and no longer finds the ones a writer removed. A generation whose collection is
missing or disagrees is refused like any broken one; one that failed while the serving store is
down too (Milvus unreachable) is refused for now and tried again at the next check.

Identity without races: the fingerprint is read *before* the open; the next check reloads again if
a writer swapped the directory after it. A load that failed while the manifest changed under it
is retried, not refused.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from dataclasses import replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

import anyio

from app.metrics import Metrics
from app.serving.resources import Resources, assemble_resources
from models.errors import VisragError

if TYPE_CHECKING:
    from indexer.index.artifacts import Artifacts

logger = logging.getLogger(__name__)

OK, REFUSED, UNCHANGED = "ok", "refused", "unchanged"


class Reloader:
    """Owns the live generation: watches the served directory and swaps a new one in (see the
    module docstring)."""

    def __init__(
        self, metrics: Metrics, *, interval_s: float, resources: Resources | None = None
    ) -> None:
        self.metrics = metrics
        self.interval_s = float(interval_s)
        self.resources = resources  # the live generation: what a request starting now gets
        self.generation = 0
        self.fingerprint: str | None = None  # of the generation being served
        self.refused: str | None = None  # fingerprint of the last refused generation
        self.last: dict[str, Any] = {"outcome": None, "error": None, "at": None}
        self._wake: asyncio.Event | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._task: asyncio.Task[None] | None = None
        self._busy = asyncio.Lock()
        self._pending = False  # a SIGHUP arrived before the loop ran

    # -- lifecycle -------------------------------------------------------------------------------
    async def start(self, resources: Resources) -> None:
        """Adopt the generation the service loaded, then watch (call when warm, before ready)."""
        self.resources = resources
        self.fingerprint = await anyio.to_thread.run_sync(
            self._adopt, resources.retriever.artifacts
        )
        self._set_generation(1, resources)
        self._loop = asyncio.get_running_loop()
        self._wake = asyncio.Event()
        if self._pending:
            self._wake.set()
        self._task = asyncio.create_task(self._watch(), name="visrag-reload")

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task

    def request(self, *_: object) -> None:
        """Check now (a SIGHUP handler: safe to call from a signal handler or another thread)."""
        if self._loop is None or self._wake is None:
            self._pending = True
            return
        self._loop.call_soon_threadsafe(self._wake.set)

    # -- checking --------------------------------------------------------------------------------
    async def check(self, *, force: bool = False) -> str:
        """Load and swap in the directory's generation if it changed (``force``: even if not, or
        if it was refused before); returns ``ok``, ``refused`` or ``unchanged``."""
        current = self.resources
        if current is None:
            return UNCHANGED
        async with self._busy:
            return await self._check(self.resources or current, force)

    async def _check(self, current: Resources, force: bool) -> str:
        from indexer.index.artifacts import manifest_fingerprint

        directory = current.retriever.artifacts.path
        before = await anyio.to_thread.run_sync(manifest_fingerprint, directory)
        if not force and before in (self.fingerprint, self.refused):
            return UNCHANGED
        try:
            fresh = await anyio.to_thread.run_sync(self._open, directory, current)
        except (VisragError, OSError) as exc:
            after = await anyio.to_thread.run_sync(manifest_fingerprint, directory)
            if after != before:  # a writer swapped the directory mid-load: look again soon
                logger.info("index %s changed while loading; retrying", directory)
                self.request()
                return UNCHANGED
            # the store all generations share is down (Milvus unreachable): not this generation's
            # fault, so the next check tries it again instead of skipping it until the next write
            down = await anyio.to_thread.run_sync(current.store_problem)
            self.refused = None if down else before
            self._record(REFUSED, f"{type(exc).__name__}: {exc}")
            logger.error(
                "new index generation in %s refused, still serving generation %d: %s",
                directory,
                self.generation,
                exc,
            )
            return REFUSED
        self.fingerprint, self.refused = before, None
        self.resources = fresh  # requests from now on; in-flight ones keep theirs
        self._set_generation(self.generation + 1, fresh)
        self._record(OK, None)
        logger.info(
            "index generation %d loaded from %s: %d items",
            self.generation,
            directory,
            fresh.retriever.size,
        )
        return OK

    def _open(self, directory: Path, current: Resources) -> Resources:
        """The new generation, opened with the loaded encoders (blocking; a worker thread)."""
        from indexer.retrieval.opening import Overrides, open_index

        opened = open_index(
            directory,
            Overrides(taxonomy=current.taxonomy, load_text=current.text_encoder is not None),
            image_encoder=current.image_encoder,
            text_encoder=current.text_encoder,
        )
        fresh = assemble_resources(
            opened.artifacts,
            image_encoder=current.image_encoder,
            text_encoder=current.text_encoder,
            taxonomy=opened.taxonomy,
            rerank_candidates=current.retriever.rerank_candidates,
        )
        return replace(fresh, extra_info=dict(current.extra_info))

    @staticmethod
    def _adopt(loaded: Artifacts) -> str | None:
        """The fingerprint of what was loaded at start-up (``None`` if a write has raced it)."""
        from indexer.index.artifacts import is_current, manifest_fingerprint

        fingerprint = manifest_fingerprint(loaded.path)
        try:
            same = is_current(loaded)
        except VisragError:
            same = False
        return fingerprint if same else None

    async def _watch(self) -> None:
        assert self._wake is not None
        while True:
            timeout = self.interval_s if self.interval_s > 0 else None
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wake.wait(), timeout)
            forced = self._wake.is_set()
            self._wake.clear()
            try:
                await self.check(force=forced)
            except Exception:  # never let the watcher die; the old generation keeps serving
                logger.exception("index reload check failed")

    # -- reporting -------------------------------------------------------------------------------
    def _set_generation(self, generation: int, resources: Resources) -> None:
        self.generation = generation
        self.metrics.index_generation.set(generation)
        self.metrics.index_vectors.set(resources.retriever.size)

    def _record(self, outcome: str, error: str | None) -> None:
        self.metrics.index_reloads.labels(outcome=outcome).inc()
        self.last = {"outcome": outcome, "error": error, "at": time.time()}

    def info(self) -> dict[str, Any]:
        """What ``/info`` reports under ``runtime``: the generation and the last reload."""
        return {
            "generation": self.generation,
            "reload": {
                "interval_s": self.interval_s,
                "manifest_fingerprint": self.fingerprint,
                "last_outcome": self.last["outcome"],
                "last_error": self.last["error"],
                "last_at": self.last["at"],
            },
        }
