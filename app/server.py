"""Run the app under uvicorn (one process, one worker), stopping with an error if start-up fails.

The app loads in the background so ``/health`` answers at once; if loading fails (manifest
mismatch, checksum, missing weights) the service reports it and this runner shuts uvicorn down and
returns a non-zero exit code, so ``visrag serve`` refuses to start rather than lingering unready.
"""

from __future__ import annotations

import logging
import signal

import uvicorn

from app.http.guard import header_timeout_protocol
from app.main import create_app
from app.serving.resources import Resources
from app.serving.service import Service
from app.settings import Settings
from models.allocator import tune_allocator

STARTUP_FAILED = 3


def configure_logging(level: str) -> None:
    logging.basicConfig(
        level=level.upper(),
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )
    # faiss's loader reports at INFO each CPU-specific build it could not import
    # (ModuleNotFoundError lines) before it loads the generic one; its warnings still show.
    quiet = logging.getLevelName(level.upper()) != logging.DEBUG
    logging.getLogger("faiss.loader").setLevel(logging.WARNING if quiet else logging.DEBUG)


def run_server(settings: Settings, *, resources: Resources | None = None) -> int:
    """Serve until interrupted; return the process exit code (0, or 3 when start-up failed)."""
    configure_logging(settings.log_level)
    tune_allocator()  # the encoder reuses its working memory between batches
    app = create_app(settings, resources=resources)
    config = uvicorn.Config(
        app,
        host=settings.host,
        port=settings.port,
        workers=1,  # one process per model copy; scale with processes behind a balancer
        log_level=settings.log_level.lower(),
        timeout_graceful_shutdown=int(settings.request_timeout_s) + 5,
        http=header_timeout_protocol(settings.header_timeout_s),  # uvicorn has no header timeout
    )
    server = uvicorn.Server(config)
    service: Service = app.state.service
    failure: list[BaseException] = []

    def stop(exc: BaseException) -> None:
        failure.append(exc)
        server.should_exit = True

    service.on_fatal = stop
    signal.signal(signal.SIGHUP, service.reloader.request)  # reload the index now
    server.run()
    if failure:
        logging.getLogger("app").error("visrag refused to start: %s", failure[0])
        return STARTUP_FAILED
    return 0
