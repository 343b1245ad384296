"""FastAPI dependencies as ``Annotated`` aliases: the service, a ready service, the upload.

Readiness is checked once per request, here: :data:`ReadyDep` is the service's :class:`Ready`
snapshot, and the upload (which depends on it) is only read once the service is ready, so a
request to a loading service gets its 503 before any byte of the body is pulled, and a request to
a full one its 429 (:mod:`app.serving.admission`).
"""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator, Callable
from typing import Annotated

from fastapi import Depends, Request

from app.http.errors import BadParameterError
from app.http.uploads import Upload, read_upload
from app.serving.service import Ready, Service


def get_service(request: Request) -> Service:
    service: Service = request.app.state.service
    return service


ServiceDep = Annotated[Service, Depends(get_service)]


def get_ready(service: ServiceDep) -> Ready:
    return service.require_ready()


ReadyDep = Annotated[Ready, Depends(get_ready)]


async def get_upload(request: Request, ready: ReadyDep) -> AsyncIterator[Upload]:
    """The streamed multipart upload, and a token of the inference capacity for the rest of the
    request (:class:`app.serving.admission.Admission`).

    Read only once the service is ready (else 503 first) and its capacity not full (else 429
    first); the body takes a place in the body-reading pool, the token is taken once the body is
    complete, so a slow body never holds capacity meant for real work.
    """
    item = request.query_params.get("item")
    if item is not None and not request.headers.get("content-type", "").startswith("multipart/"):
        # ``?item=ID`` ("more like this"): no body to read, the query string is the form
        with ready.service.admission.enter(ready.worker.retry_after):
            yield Upload(b"", None, None, "", fields=_listed(request.query_params.multi_items()))
        return

    def image_or_item(upload: Upload) -> None:
        if item is not None:
            upload.fields.setdefault("item", [item])
        if not upload.images and not upload.fields.get("item"):
            raise BadParameterError("missing file field 'image' (or an indexed item's id: item)")

    max_files = ready.settings.max_photos  # several photos of one claim
    async with _admitted(request, ready, max_files=max_files, check=image_or_item) as upload:
        yield upload


def _listed(pairs: list[tuple[str, str]]) -> dict[str, list[str]]:
    fields: dict[str, list[str]] = {}
    for name, value in pairs:
        fields.setdefault(name, []).append(value)
    return fields


async def get_item_uploads(request: Request, ready: ReadyDep) -> AsyncIterator[Upload]:
    """The images of a catalogue write (up to ``max_items_per_request``), admitted like a query."""
    async with _admitted(request, ready, max_files=ready.settings.max_items_per_request) as upload:
        yield upload


@contextlib.asynccontextmanager
async def _admitted(
    request: Request,
    ready: Ready,
    *,
    max_files: int,
    check: Callable[[Upload], None] | None = None,
) -> AsyncIterator[Upload]:
    """Read the body once admitted; ``check`` (the image optional) validates it before the token
    is taken."""
    settings = ready.settings
    admission = ready.service.admission
    admission.check(ready.worker.retry_after)
    with admission.receiving(retry_after=settings.upload_grace_s) as progress:
        upload = await read_upload(
            request,
            max_bytes=settings.max_upload_bytes,
            timeout_s=settings.request_timeout_s,
            min_rate_bps=settings.min_upload_rate_bps,
            grace_s=settings.upload_grace_s,
            progress=progress,
            max_files=max_files,
            required=check is None,
        )
    if check is not None:
        check(upload)
    with admission.enter(ready.worker.retry_after):
        yield upload


UploadDep = Annotated[Upload, Depends(get_upload)]
ItemUploadsDep = Annotated[Upload, Depends(get_item_uploads)]
