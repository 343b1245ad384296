"""POST /retrieve: an image in, the k most similar indexed items out."""

from __future__ import annotations

from fastapi import APIRouter, Depends, Request

from app.auth import require_api_key
from app.dependencies import ReadyDep, UploadDep
from app.schemas import (
    ERROR_RESPONSES,
    QueryForm,
    hit_out,
    milliseconds,
    multipart_openapi,
)
from visrag_client.schemas import (
    RetrieveResponse,
)

router = APIRouter(tags=["retrieval"], dependencies=[Depends(require_api_key)])


@router.post(
    "/retrieve",
    response_model=RetrieveResponse,
    responses=ERROR_RESPONSES,
    openapi_extra=multipart_openapi(QueryForm),
)
async def retrieve(request: Request, ready: ReadyDep, upload: UploadDep) -> RetrieveResponse:
    """Multipart ``image`` plus form fields ``k``, ``mode``, ``text``, ``alpha`` and filters."""
    form = QueryForm.from_fields(upload.fields, default_k=ready.settings.default_k)
    root = request.scope.get("root_path", "")
    answer = await ready.answer(
        upload.data,
        form.query(),
        lambda result, _: [hit_out(hit, root_path=root) for hit in result.hits],
    )
    return RetrieveResponse(
        hits=answer.rendered,
        mode=answer.result.mode,
        timings=milliseconds(answer.timings),
        pseudo_text=answer.result.pseudo_text,
    )
