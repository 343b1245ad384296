"""The app factory. ``create_app(settings=None, resources=None)``; nothing heavy at import.

The lifespan starts loading models and index in the background, so ``/health`` answers at once
and ``/ready`` says 503 (with the reason) until everything is loaded and warmed up. A start-up
failure (manifest mismatch, checksum, missing weights) is logged with the field that differs and
reported by ``/ready``; ``visrag serve`` then stops the server with a non-zero exit code.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator

from fastapi import FastAPI
from fastapi.staticfiles import StaticFiles
from fastapi_offline import FastAPIOffline

from app.http.auth import KeyRing
from app.http.errors import install_error_handlers
from app.metrics import Metrics, RequestMetricsMiddleware
from app.routes import context, demo, items, ops, retrieve
from app.routes.openapi import install_openapi
from app.serving.resources import Resources
from app.serving.service import Service
from app.serving.writer import CatalogueWriter
from app.settings import Settings

logger = logging.getLogger(__name__)


def create_app(settings: Settings | None = None, resources: Resources | None = None) -> FastAPI:
    """Build the app. ``resources`` (fakes in tests) replaces loading from ``settings``."""
    settings = settings or Settings()
    metrics = Metrics()
    service = Service(settings, metrics, resources=resources)

    @contextlib.asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        start = asyncio.create_task(service.start(), name="visrag-start")
        try:
            yield
        finally:
            if not start.done():
                start.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await start
            await service.stop()

    app = FastAPIOffline(  # /docs and /redoc load their scripts from the package, not a CDN
        title="visrag",
        summary="Visual retrieval for multimodal RAG: similar verified cases for a VLM prompt.",
        version="0.1.0",
        lifespan=lifespan,
    )
    app.state.service = service
    app.state.keys = keys = KeyRing.from_values(
        [k.get_secret_value() for k in settings.api_keys],
        [k.get_secret_value() for k in settings.write_keys],
    )
    app.state.writer = CatalogueWriter(
        uploads_dir=settings.uploads_dir,
        lock_wait_s=settings.write_lock_wait_s,
        duplicate_bits=settings.duplicate_hash_bits,
        duplicate_cosine=settings.duplicate_cosine,
    )
    install_error_handlers(app)
    app.add_middleware(RequestMetricsMiddleware, metrics=metrics)
    app.include_router(ops.router)
    app.include_router(retrieve.router)
    app.include_router(context.router)
    app.include_router(demo.items_router)
    app.include_router(items.router)
    if keys.writes_enabled:  # the catalogue writes exist only with write keys
        app.include_router(items.write_router)
    if settings.demo_page:
        app.include_router(demo.page_router)
        app.mount("/static", StaticFiles(directory=demo.STATIC_DIR), name="static")
    install_openapi(  # security, every error status, the served taxonomy's filter values
        app,
        keys_required=not keys.reads_open,
        writes=keys.writes_enabled,
        taxonomy=lambda: service.resources.taxonomy if service.resources is not None else None,
    )
    return app
