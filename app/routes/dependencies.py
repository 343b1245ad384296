"""FastAPI dependencies as ``Annotated`` aliases: the service, a ready service, the upload.

Readiness is checked once per request, here: :data:`ReadyDep` is the service's :class:`Ready`
snapshot, and the upload (which depends on it) is only read once the service is ready, so a
request to a loading service gets its 503 before any byte of the body is pulled, and a request to
a full one its 429 (:mod:`app.serving.admission`).
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Annotated

from fastapi import Depends, Request

from app.http.uploads import Upload, read_upload
from app.serving.service import Ready, Service


def get_service(request: Request) -> Service:
    service: Service = request.app.state.service
    return service


ServiceDep = Annotated[Service, Depends(get_service)]


def get_ready(service: ServiceDep) -> Ready:
    return service.require_ready()


ReadyDep = Annotated[Ready, Depends(get_ready)]


async def admit(ready: ReadyDep) -> AsyncIterator[None]:
    """A token of :class:`app.serving.admission.Admission` for the whole request (else 429 at
    once)."""
    with ready.service.admission.enter(ready.worker.retry_after):
        yield


AdmittedDep = Annotated[None, Depends(admit)]


async def get_upload(request: Request, ready: ReadyDep, _admitted: AdmittedDep) -> Upload:
    """The streamed multipart upload; read only once the service is ready (else 503 first) and
    the request admitted (else 429 first)."""
    settings = ready.settings
    return await read_upload(
        request, max_bytes=settings.max_upload_bytes, timeout_s=settings.request_timeout_s
    )


UploadDep = Annotated[Upload, Depends(get_upload)]
