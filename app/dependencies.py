"""FastAPI dependencies as ``Annotated`` aliases: the service, a ready service, the upload."""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends, Request

from app.service import Service
from app.uploads import Upload, read_upload


def get_service(request: Request) -> Service:
    service: Service = request.app.state.service
    return service


ServiceDep = Annotated[Service, Depends(get_service)]


def get_ready_service(service: ServiceDep) -> Service:
    service.require_ready()
    return service


ReadyServiceDep = Annotated[Service, Depends(get_ready_service)]


async def get_upload(request: Request, service: ReadyServiceDep) -> Upload:
    """The streamed multipart upload; read only once the service is ready (else 503 first)."""
    settings = service.settings
    return await read_upload(
        request, max_bytes=settings.max_upload_bytes, timeout_s=settings.request_timeout_s
    )


UploadDep = Annotated[Upload, Depends(get_upload)]
