"""POST /retrieve: an image in, the k most similar indexed items out."""

from __future__ import annotations

from fastapi import APIRouter, Depends, Request

from app.http.auth import require_api_key
from app.render.estimates import label_estimates
from app.render.label_sets import label_set_out
from app.render.novelty_note import novelty_out
from app.routes.dependencies import ReadyDep, UploadDep
from app.schemas import (
    ERROR_RESPONSES,
    QueryForm,
    hit_out,
    milliseconds,
    multipart_openapi,
)
from visrag_client.schemas import RetrieveResponse

router = APIRouter(tags=["retrieval"], dependencies=[Depends(require_api_key)])


@router.post(
    "/retrieve",
    response_model=RetrieveResponse,
    responses=ERROR_RESPONSES,
    openapi_extra=multipart_openapi(QueryForm),
)
async def retrieve(request: Request, ready: ReadyDep, upload: UploadDep) -> RetrieveResponse:
    """Multipart ``image`` plus form fields ``k``, ``mode``, ``text``, ``alpha`` and filters.

    Besides the hits: ``label_estimates`` (how likely each label is), ``label_set`` (the labels to
    consider, with a coverage promise over photos like the indexed ones) and ``novelty`` (whether
    any indexed case is close to this photo).
    """
    form = QueryForm.from_fields(upload.fields, default_k=ready.settings.default_k)
    root = request.scope.get("root_path", "")
    threshold = ready.settings.label_estimate_threshold
    answer = await ready.answer(upload.data, form.query())
    with ready.rendering(answer):
        hits = [hit_out(hit, root_path=root) for hit in answer.result.hits]
        estimates = label_estimates(answer.result, language="en", threshold=threshold)
        label_set = label_set_out(answer.result, language="en")
        novelty = novelty_out(
            answer.result, language="en", threshold=ready.settings.novelty_threshold
        )
    return RetrieveResponse(
        hits=hits,
        label_estimates=estimates,
        label_set=label_set,
        novelty=novelty,
        mode=answer.result.mode,
        timings=milliseconds(answer.timings),
        pseudo_text=answer.result.pseudo_text,
    )
