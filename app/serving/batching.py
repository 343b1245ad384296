"""The inference worker: every model call runs on ONE dedicated thread, image encodes in batches.

Requests hand preprocessed pixel arrays to :meth:`InferenceWorker.encode` (awaitable from the event
loop). The worker takes the first waiting image, then keeps collecting until it has
``max_batch_size`` images or ``max_wait_ms`` has passed (it stops waiting early when no other
request is on its way, i.e. none is still decoding), and runs them through the encoder in one
call (through ``encode_with_patches`` when any image of the batch asked for its patch tokens: a
region query or a heatmap gets them from the same forward pass as its vector); requests that
arrive while a batch is computing form the next batch, so under load batches
fill up without waiting. Other model calls (the text encodes of hybrid and rerank, which the
service hands the Retriever as ``encode_text``) go through :meth:`InferenceWorker.call` from
thread-pool threads and run on the same thread, one at a time, in arrival order. The queue is
bounded: when ``max_queue`` jobs wait, new ones are refused with
:class:`~app.http.errors.OverloadedError` (429 + Retry-After) instead of piling up latency.
"""

from __future__ import annotations

import asyncio
import logging
import math
import threading
import time
from collections import deque
from collections.abc import Callable, Sequence
from concurrent.futures import Future
from dataclasses import dataclass, field
from typing import Any, TypeVar

import numpy as np
import numpy.typing as npt

from app.http.errors import NotReadyError, OverloadedError
from models.base import Pixels

logger = logging.getLogger(__name__)

T = TypeVar("T")
EncodeFn = Callable[[list[Pixels]], npt.NDArray[np.float32]]
#: Vectors and each image's ``(rows, cols, d)`` final patch tokens, from one forward pass.
PatchEncodeFn = Callable[
    [list[Pixels]], tuple[npt.NDArray[np.float32], Sequence[npt.NDArray[np.float32]]]
]


@dataclass(frozen=True)
class Encoded:
    """One image's vector and where its time went: waiting in the queue, then the batch call."""

    vector: npt.NDArray[np.float32]
    queue_seconds: float
    encode_seconds: float
    batch_size: int
    patches: npt.NDArray[np.float32] | None = None  # (rows, cols, d), when asked for


@dataclass
class _Job:
    kind: str  # "encode" or "call"
    payload: Any
    future: Future[Any]
    enqueued: float = field(default_factory=time.perf_counter)
    patches: bool = False  # an encode job that wants its patch tokens too


class InferenceWorker:
    """A single inference thread with dynamic micro-batching and a bounded queue."""

    def __init__(
        self,
        encode: EncodeFn,
        *,
        encode_with_patches: PatchEncodeFn | None = None,
        max_batch_size: int = 16,
        max_wait_ms: float = 5.0,
        max_queue: int = 256,
        on_batch: Callable[[int, float], None] | None = None,
        on_depth: Callable[[int], None] | None = None,
        arriving: Callable[[], int] | None = None,
        name: str = "visrag-inference",
    ) -> None:
        self._encode = encode
        self._encode_with_patches = encode_with_patches
        self.max_batch_size = max_batch_size
        self.max_wait_s = max_wait_ms / 1000.0
        self.max_queue = max_queue
        self._on_batch = on_batch or (lambda size, seconds: None)
        self._on_depth = on_depth or (lambda depth: None)
        # Requests still decoding/preprocessing: worth waiting for; with none, waiting is pure loss.
        self._arriving = arriving or (lambda: 1)
        self._queue: deque[_Job] = deque()
        self._cond = threading.Condition()
        self._stopping = False
        self._batch_seconds = 0.05  # running estimate, for Retry-After
        self._last_batch_size = 0
        self._last_batch_end = 0.0
        self._thread = threading.Thread(target=self._run, name=name, daemon=True)

    # -- lifecycle -------------------------------------------------------------------------------
    def start(self) -> None:
        self._thread.start()

    def stop(self, timeout: float = 10.0) -> None:
        """Finish the batch in hand, fail the waiting jobs, join the thread."""
        with self._cond:
            self._stopping = True
            pending = list(self._queue)
            self._queue.clear()
            self._cond.notify_all()
        for job in pending:
            if job.future.set_running_or_notify_cancel():
                job.future.set_exception(NotReadyError("the service is shutting down"))
        self._on_depth(0)
        if self._thread.is_alive() and threading.current_thread() is not self._thread:
            self._thread.join(timeout)

    @property
    def alive(self) -> bool:
        return self._thread.is_alive() and not self._stopping

    @property
    def depth(self) -> int:
        return len(self._queue)

    def retry_after(self) -> float:
        """Seconds until the current queue has likely drained."""
        batches = math.ceil((len(self._queue) + 1) / self.max_batch_size)
        return max(1.0, batches * self._batch_seconds)

    # -- submission ------------------------------------------------------------------------------
    async def encode(self, pixels: Pixels, *, patches: bool = False) -> Encoded:
        """Encode one preprocessed image (3, H, W) as part of a batch."""
        return await self.result(self.submit(pixels, patches=patches))

    def submit(self, pixels: Pixels, *, patches: bool = False) -> Future[Encoded]:
        """Queue one preprocessed image (``patches``: its patch tokens too); raises
        OverloadedError when the queue is full, NotReadyError when the encoder gives no patch
        tokens and they were asked for."""
        if patches and self._encode_with_patches is None:
            raise NotReadyError("the loaded image encoder gives no patch tokens")
        future: Future[Encoded] = Future()
        self._submit(_Job("encode", pixels, future, patches=patches))
        return future

    @staticmethod
    async def result(future: Future[Encoded]) -> Encoded:
        """Await a submitted image; a request cancelled before its batch starts is skipped."""
        try:
            return await asyncio.wrap_future(future)
        except asyncio.CancelledError:
            future.cancel()
            raise

    def call(self, fn: Callable[..., T], *args: Any, **kwargs: Any) -> T:
        """Run ``fn`` on the inference thread and wait for it (from a non-event-loop thread)."""
        if threading.current_thread() is self._thread:
            return fn(*args, **kwargs)
        future: Future[T] = Future()
        self._submit(_Job("call", (fn, args, kwargs), future))
        return future.result()

    def _submit(self, job: _Job) -> None:
        with self._cond:
            if self._stopping or not self._thread.is_alive():
                raise NotReadyError("the inference worker is not running", retry_after=5)
            if len(self._queue) >= self.max_queue:
                raise OverloadedError(
                    f"inference queue is full ({self.max_queue} waiting); retry later",
                    retry_after=self.retry_after(),
                )
            self._queue.append(job)
            depth = len(self._queue)
            self._cond.notify()
        self._on_depth(depth)

    # -- the worker thread -----------------------------------------------------------------------
    def _run(self) -> None:
        while True:
            jobs = self._next_jobs()
            if jobs is None:
                return
            self._on_depth(len(self._queue))
            live = [j for j in jobs if j.future.set_running_or_notify_cancel()]
            if not live:
                continue
            if live[0].kind == "call":
                self._run_call(live[0])
            else:
                self._run_batch(live)

    def _next_jobs(self) -> list[_Job] | None:
        """Block for work; return one call job, or a batch of encode jobs; None when stopping."""
        with self._cond:
            while not self._queue:
                if self._stopping:
                    return None
                self._cond.wait()
            first = self._queue.popleft()
            if first.kind == "call":
                return [first]
            batch = [first]
            deadline = time.perf_counter() + self.max_wait_s
            while len(batch) < self.max_batch_size and not self._stopping:
                if self._queue:
                    if self._queue[0].kind != "encode":
                        break  # keep arrival order: the call runs after this batch
                    batch.append(self._queue.popleft())
                    continue
                remaining = deadline - time.perf_counter()
                if remaining <= 0 or not self._more_expected(len(batch)):
                    break
                self._cond.wait(remaining)
            return batch

    def _more_expected(self, held: int) -> bool:
        """Worth waiting: requests are decoding, or the last batch was bigger and just finished.

        The second case is the clients of the last batch coming back with their next request;
        without it, closed-loop traffic settles into alternating tiny and big batches.
        """
        if self._arriving() > 0:
            return True
        recent = time.perf_counter() - self._last_batch_end < self.max_wait_s
        return recent and self._last_batch_size > held

    def _run_call(self, job: _Job) -> None:
        fn, args, kwargs = job.payload
        try:
            job.future.set_result(fn(*args, **kwargs))
        except BaseException as exc:  # handed to the caller, who maps it to HTTP
            job.future.set_exception(exc)

    def _run_batch(self, jobs: Sequence[_Job]) -> None:
        start = time.perf_counter()
        grids: Sequence[npt.NDArray[np.float32] | None] = [None] * len(jobs)
        try:
            pixels = [j.payload for j in jobs]
            if self._encode_with_patches is not None and any(j.patches for j in jobs):
                vectors, grids = self._encode_with_patches(pixels)
            else:
                vectors = self._encode(pixels)
            if len(vectors) != len(jobs) or len(grids) != len(jobs):
                raise RuntimeError(
                    f"encoder returned {len(vectors)} vectors for {len(jobs)} images"
                )
        except BaseException as exc:
            logger.exception("encoder failed on a batch of %d", len(jobs))
            for job in jobs:
                job.future.set_exception(exc)
            return
        end = time.perf_counter()
        seconds = end - start
        self._batch_seconds = 0.8 * self._batch_seconds + 0.2 * seconds
        self._last_batch_size, self._last_batch_end = len(jobs), end
        self._on_batch(len(jobs), seconds)
        for job, vector, grid in zip(jobs, vectors, grids, strict=True):
            job.future.set_result(
                Encoded(
                    vector=np.asarray(vector, dtype=np.float32),
                    queue_seconds=start - job.enqueued,
                    encode_seconds=seconds,
                    batch_size=len(jobs),
                    patches=grid if job.patches else None,
                )
            )
