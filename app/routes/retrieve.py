"""POST /retrieve: an image in, the k most similar indexed items out."""

from __future__ import annotations

import time

from fastapi import APIRouter, Depends, Request

from app.auth import require_api_key
from app.dependencies import ReadyServiceDep, UploadDep
from app.schemas import (
    ERROR_RESPONSES,
    QueryForm,
    RetrieveResponse,
    hit_out,
    milliseconds,
    multipart_openapi,
)

router = APIRouter(tags=["retrieval"], dependencies=[Depends(require_api_key)])


@router.post(
    "/retrieve",
    response_model=RetrieveResponse,
    responses=ERROR_RESPONSES,
    openapi_extra=multipart_openapi(QueryForm),
)
async def retrieve(
    request: Request, service: ReadyServiceDep, upload: UploadDep
) -> RetrieveResponse:
    """Multipart ``image`` plus form fields ``k``, ``mode``, ``text``, ``alpha`` and filters."""
    form = QueryForm.from_fields(upload.fields, default_k=service.settings.default_k)
    answer = await service.query(upload.data, form)
    start = time.perf_counter()
    root = request.scope.get("root_path", "")
    hits = [hit_out(hit, root_path=root) for hit in answer.result.hits]
    timings = {**answer.timings, "render": time.perf_counter() - start}
    service.metrics.observe_stages({"render": timings["render"]})
    return RetrieveResponse(
        hits=hits,
        mode=answer.result.mode,
        timings=milliseconds(timings),
        pseudo_text=answer.result.pseudo_text,
    )
