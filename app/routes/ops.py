"""Operations: liveness, readiness, Prometheus metrics, manifest and runtime info."""

from __future__ import annotations

from fastapi import APIRouter, Depends, Request, Response
from fastapi.responses import JSONResponse

from app.http.auth import READ, check_key, presented_key, require_api_key
from app.http.errors import UnauthorisedError
from app.metrics import CONTENT_TYPE
from app.routes.dependencies import ServiceDep
from visrag_client.schemas import (
    HealthResponse,
    InfoResponse,
    ReadyResponse,
)

router = APIRouter(tags=["ops"])


@router.get("/health", response_model=HealthResponse)
async def health() -> HealthResponse:
    """Liveness: the process answers. Never touches the model."""
    return HealthResponse()


@router.get("/ready", response_model=ReadyResponse, responses={503: {"model": ReadyResponse}})
async def ready(request: Request, service: ServiceDep) -> JSONResponse:
    """200 once models and index are loaded and warmed up; 503 with the reason until then.

    Open to probes; with API keys configured, the reason (which may name paths and models) is
    given only to callers presenting a valid key.
    """
    reason, ready = service.reason, service.ready
    problem = service.store_problem() if ready else None
    if problem:
        reason, ready = problem, False
    try:
        check_key(presented_key(request), request.app.state.keys, READ)
    except UnauthorisedError:
        reason = None
    body = ReadyResponse(ready=ready, status=service.status, reason=reason)
    headers = {} if ready else {"Retry-After": "5"}
    return JSONResponse(body.model_dump(), status_code=200 if body.ready else 503, headers=headers)


@router.get("/metrics", dependencies=[Depends(require_api_key)], response_class=Response)
async def metrics(service: ServiceDep) -> Response:
    """Prometheus text exposition of this app's registry."""
    return Response(service.metrics_text(), media_type=CONTENT_TYPE)


@router.get("/info", response_model=InfoResponse, dependencies=[Depends(require_api_key)])
async def info(service: ServiceDep) -> InfoResponse:
    """The artifacts' manifest and the runtime: device, dtype, batching, index size."""
    return InfoResponse(**service.info())
