"""POST /context: the similar verified cases as a block for a VLM prompt, and structured."""

from __future__ import annotations

import functools
from dataclasses import asdict

from fastapi import APIRouter, Depends, Request

from app.auth import require_api_key
from app.context import render_context
from app.dependencies import ReadyDep, UploadDep
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
async def context(request: Request, ready: ReadyDep, upload: UploadDep) -> ContextResponse:
    """``/retrieve``'s inputs plus ``language`` (en|es), ``max_examples`` and ``format``."""
    form = ContextForm.from_fields(upload.fields, default_k=ready.settings.default_k)
    root = request.scope.get("root_path", "")
    render = functools.partial(
        render_context,
        language=form.language,
        max_examples=form.max_examples,
        fmt=form.format,
        image_url=lambda item_id: item_image_url(item_id, root),
    )
    answer = await ready.answer(upload.data, form.query(), render)
    rendered = answer.rendered
    return ContextResponse(
        context=rendered.context,
        format=rendered.format,
        language=rendered.language,
        cases=[CaseOut(**asdict(c)) for c in rendered.cases],
        label_votes=[LabelVoteOut(**asdict(v)) for v in rendered.label_votes],
        mode=answer.result.mode,
        timings=milliseconds(answer.timings),
    )
