"""The inference worker: batches form under load, the queue is bounded, one thread runs all."""

from __future__ import annotations

import asyncio
import threading
import time

import numpy as np
import pytest

from app.http.errors import NotReadyError, OverloadedError
from app.serving.batching import InferenceWorker


class Recorder:
    def __init__(self) -> None:
        self.batches: list[int] = []
        self.threads: set[str] = set()
        self.gate = threading.Event()
        self.gate.set()
        self.entered = threading.Event()

    def __call__(self, arrays):
        self.threads.add(threading.current_thread().name)
        self.entered.set()
        self.gate.wait(10)
        self.batches.append(len(arrays))
        return np.stack([a.reshape(-1)[:2] for a in arrays])


def run(coro):
    return asyncio.run(coro)


def blocked_worker(**options) -> tuple[Recorder, InferenceWorker]:
    """A started worker whose model blocks until ``rec.gate`` is set."""
    rec = Recorder()
    rec.gate.clear()
    worker = InferenceWorker(rec, **options)
    worker.start()
    return rec, worker


def test_concurrent_requests_share_a_batch_and_get_their_own_vectors():
    rec = Recorder()
    worker = InferenceWorker(rec, max_batch_size=8, max_wait_ms=50)
    worker.start()

    async def main():
        arrays = [np.full((3, 2, 2), i, np.float32) for i in range(6)]
        return await asyncio.gather(*(worker.encode(a) for a in arrays))

    try:
        results = run(main())
    finally:
        worker.stop()
    assert rec.batches == [6]
    assert [r.vector[0] for r in results] == [0, 1, 2, 3, 4, 5]
    assert all(r.batch_size == 6 for r in results)
    assert rec.threads == {"visrag-inference"}


def test_batches_never_exceed_max_batch_size():
    rec, worker = blocked_worker(max_batch_size=4, max_wait_ms=1)

    async def main():
        first = asyncio.ensure_future(worker.encode(np.zeros((3, 1, 1), np.float32)))
        await asyncio.to_thread(rec.entered.wait, 5)
        rest = [
            asyncio.ensure_future(worker.encode(np.zeros((3, 1, 1), np.float32))) for _ in range(10)
        ]
        await asyncio.sleep(0.05)
        rec.gate.set()
        await asyncio.gather(first, *rest)

    try:
        run(main())
    finally:
        worker.stop()
    assert rec.batches == [1, 4, 4, 2]


def test_full_queue_is_refused_with_retry_after():
    rec, worker = blocked_worker(max_batch_size=1, max_wait_ms=0, max_queue=2)

    async def main():
        jobs = [asyncio.ensure_future(worker.encode(np.zeros((3, 1, 1), np.float32)))]
        await asyncio.to_thread(rec.entered.wait, 5)
        jobs += [
            asyncio.ensure_future(worker.encode(np.zeros((3, 1, 1), np.float32))) for _ in range(2)
        ]
        await asyncio.sleep(0.01)
        with pytest.raises(OverloadedError) as info:
            await worker.encode(np.zeros((3, 1, 1), np.float32))
        assert info.value.retry_after >= 1
        rec.gate.set()
        await asyncio.gather(*jobs)

    try:
        run(main())
    finally:
        worker.stop()
    assert rec.batches == [1, 1, 1]


def test_call_runs_on_the_worker_thread_and_propagates_errors():
    worker = InferenceWorker(Recorder())
    worker.start()
    try:
        assert worker.call(lambda: threading.current_thread().name) == "visrag-inference"
        with pytest.raises(ZeroDivisionError):
            worker.call(lambda: 1 / 0)
    finally:
        worker.stop()


def test_encoder_failure_fails_the_batch_but_not_the_worker():
    calls = []

    def flaky(arrays):
        calls.append(len(arrays))
        if len(calls) == 1:
            raise RuntimeError("boom")
        return np.ones((len(arrays), 2), np.float32)

    worker = InferenceWorker(flaky, max_wait_ms=0)
    worker.start()
    try:
        with pytest.raises(RuntimeError):
            run(worker.encode(np.zeros((3, 1, 1), np.float32)))
        assert run(worker.encode(np.zeros((3, 1, 1), np.float32))).vector.tolist() == [1, 1]
    finally:
        worker.stop()


def test_cancelled_request_is_skipped_and_stopped_worker_refuses():
    rec, worker = blocked_worker(max_batch_size=1, max_wait_ms=0)

    async def main():
        first = asyncio.ensure_future(worker.encode(np.zeros((3, 1, 1), np.float32)))
        await asyncio.to_thread(rec.entered.wait, 5)
        second = asyncio.ensure_future(worker.encode(np.zeros((3, 1, 1), np.float32)))
        await asyncio.sleep(0.01)
        second.cancel()
        await asyncio.sleep(0.01)  # let the cancellation reach the queued job
        rec.gate.set()
        await first
        with pytest.raises(asyncio.CancelledError):
            await second

    run(main())
    worker.stop()
    assert rec.batches == [1]
    with pytest.raises(NotReadyError):
        run(worker.encode(np.zeros((3, 1, 1), np.float32)))


def test_no_wait_for_a_batch_when_nothing_else_is_arriving():
    rec = Recorder()
    arriving = [0]
    worker = InferenceWorker(rec, max_batch_size=8, max_wait_ms=5000, arriving=lambda: arriving[0])
    worker.start()
    try:
        t0 = time.perf_counter()
        run(worker.encode(np.zeros((3, 1, 1), np.float32)))
        assert time.perf_counter() - t0 < 2.5  # not the 5 s max_wait
    finally:
        worker.stop()
