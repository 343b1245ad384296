"""Prometheus metrics, one registry per app (so two apps in one process never collide)."""

from __future__ import annotations

import time
from collections.abc import Mapping

from prometheus_client import (
    CONTENT_TYPE_LATEST,
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    generate_latest,
)
from starlette.types import ASGIApp, Message, Receive, Scope, Send

# Seconds: 0.5 ms .. 30 s, dense where CPU encodes and searches land.
_LATENCY_BUCKETS = (
    0.0005,
    0.001,
    0.0025,
    0.005,
    0.01,
    0.025,
    0.05,
    0.1,
    0.25,
    0.5,
    1.0,
    2.5,
    5.0,
    10.0,
    30.0,
)
_P_VALUE_BUCKETS = (0.01, 0.02, 0.05, 0.1, 0.2, 0.3, 0.5, 0.75, 1.0)
_BATCH_BUCKETS = (1, 2, 3, 4, 6, 8, 12, 16, 24, 32, 48, 64, 128)

CONTENT_TYPE = CONTENT_TYPE_LATEST


class Metrics:
    """The service's metrics: stage latencies, requests by route and outcome, batching, index."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry(auto_describe=True)
        self.stage_seconds = Histogram(
            "visrag_stage_seconds",
            "Latency of one pipeline stage for one request "
            "(decode, preprocess, queue, encode, text_encode, search, rerank, render).",
            ["stage"],
            buckets=_LATENCY_BUCKETS,
            registry=self.registry,
        )
        self.request_seconds = Histogram(
            "visrag_request_seconds",
            "End-to-end latency of a request inside the app.",
            ["route"],
            buckets=_LATENCY_BUCKETS,
            registry=self.registry,
        )
        self.requests = Counter(
            "visrag_requests",
            "Requests by route template and outcome ('ok' or the error_type).",
            ["route", "outcome"],
            registry=self.registry,
        )
        self.novelty_p_value = Histogram(
            "visrag_novelty_p_value",
            "Novelty p-value of each answered query: small when no indexed case is close to the "
            "photo (share of indexed photos no closer to the others).",
            buckets=_P_VALUE_BUCKETS,
            registry=self.registry,
        )
        self.batch_size = Histogram(
            "visrag_batch_size",
            "Images per encoder call of the inference worker.",
            buckets=_BATCH_BUCKETS,
            registry=self.registry,
        )
        self.batch_seconds = Histogram(
            "visrag_batch_seconds",
            "Duration of one encoder call of the inference worker.",
            buckets=_LATENCY_BUCKETS,
            registry=self.registry,
        )
        self.queue_depth = Gauge(
            "visrag_queue_depth",
            "Jobs waiting for the inference worker.",
            registry=self.registry,
        )
        self.index_vectors = Gauge(
            "visrag_index_vectors",
            "Items in the served index.",
            registry=self.registry,
        )
        self.index_generation = Gauge(
            "visrag_index_generation",
            "Generation of the served index (1 at start-up, +1 per live reload).",
            registry=self.registry,
        )
        self.index_reloads = Counter(
            "visrag_index_reload",
            "Live reloads of a new index generation by outcome ('ok' or 'refused').",
            ["outcome"],
            registry=self.registry,
        )
        self.admission_refusals = Counter(
            "visrag_admission_refusals",
            "Requests refused or closed by an admission rule: 'queue_full' and 'uploads_full' "
            "(429 before the body is read), 'slow_upload' and 'upload_timeout' (408).",
            ["rule"],
            registry=self.registry,
        )
        self.ready = Gauge(
            "visrag_ready",
            "1 once models and index are loaded and warmed up.",
            registry=self.registry,
        )

    def observe_stages(self, timings: Mapping[str, float]) -> None:
        for stage, seconds in timings.items():
            self.stage_seconds.labels(stage=stage).observe(seconds)

    def observe_batch(self, size: int, seconds: float) -> None:
        self.batch_size.observe(size)
        self.batch_seconds.observe(seconds)

    def render(self) -> bytes:
        return generate_latest(self.registry)


class RequestMetricsMiddleware:
    """Counts every HTTP request by route template (never the raw path) and outcome."""

    def __init__(self, app: ASGIApp, *, metrics: Metrics) -> None:
        self.app = app
        self.metrics = metrics

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        status = 500
        start = time.perf_counter()

        async def send_wrapper(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
            await send(message)

        try:
            await self.app(scope, receive, send_wrapper)
        except Exception:
            status = 500
            raise
        finally:
            route = scope.get("route")
            template = getattr(route, "path", None) or "unmatched"
            if status < 400:
                outcome = "ok"
            else:
                fallback = "internal_error" if status == 500 else f"http_{status}"
                outcome = scope.get("state", {}).get("error_type") or fallback
            self.metrics.requests.labels(route=template, outcome=outcome).inc()
            self.metrics.request_seconds.labels(route=template).observe(time.perf_counter() - start)
