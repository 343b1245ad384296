"""POST /context: the similar verified cases as a block for a VLM prompt, and structured."""

from __future__ import annotations

import time
from dataclasses import asdict

from fastapi import APIRouter, Depends, Request

from app.auth import require_api_key
from app.context import render_context
from app.dependencies import ReadyServiceDep, UploadDep
from app.schemas import (
    ERROR_RESPONSES,
    CaseOut,
    ContextForm,
    ContextResponse,
    LabelVoteOut,
    item_image_url,
    milliseconds,
    multipart_openapi,
)

router = APIRouter(tags=["retrieval"], dependencies=[Depends(require_api_key)])


@router.post(
    "/context",
    response_model=ContextResponse,
    responses=ERROR_RESPONSES,
    openapi_extra=multipart_openapi(ContextForm),
)
async def context(request: Request, service: ReadyServiceDep, upload: UploadDep) -> ContextResponse:
    """``/retrieve``'s inputs plus ``language`` (en|es), ``max_examples`` and ``format``."""
    form = ContextForm.from_fields(upload.fields, default_k=service.settings.default_k)
    answer = await service.query(upload.data, form)
    start = time.perf_counter()
    root = request.scope.get("root_path", "")
    resources, _ = service.require_ready()
    rendered = render_context(
        answer.result,
        resources.taxonomy,
        language=form.language,
        max_examples=form.max_examples,
        fmt=form.format,
        image_url=lambda item_id: item_image_url(item_id, root),
    )
    timings = {**answer.timings, "render": time.perf_counter() - start}
    service.metrics.observe_stages({"render": timings["render"]})
    return ContextResponse(
        context=rendered.context,
        format=rendered.format,
        language=rendered.language,
        cases=[CaseOut(**asdict(c)) for c in rendered.cases],
        label_votes=[LabelVoteOut(**asdict(v)) for v in rendered.label_votes],
        mode=answer.result.mode,
        timings=milliseconds(timings),
    )
