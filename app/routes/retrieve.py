"""POST /retrieve: an image in (or several photos of one claim), the k most similar indexed items
out."""

from __future__ import annotations

from fastapi import APIRouter, Depends, Request

from app.http.auth import require_api_key
from app.render.claims import label_evidence, pooled_result
from app.render.context import label_votes
from app.render.estimates import label_estimates
from app.render.label_sets import label_set_out
from app.render.novelty_note import novelty_out
from app.render.regions import heatmap_out, region_out
from app.routes.dependencies import ReadyDep, UploadDep
from app.schemas import (
    ERROR_RESPONSES,
    QueryForm,
    hit_out,
    milliseconds,
    multipart_openapi,
)
from app.serving.service import Answer, Ready
from indexer.query import RetrievalResult
from visrag_client.schemas import PhotoOut, RetrieveResponse

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
    any indexed case is close to this photo). ``region`` (a box or polygon) adds the indexed damage
    regions most like it, ``explain=heatmap`` where the photo looks like indexed damage. Several
    ``image`` fields (photos of one claim): each photo's answer in ``photos``, the pooled
    neighbours on top and ``evidence`` (which photo supports which label).
    """
    form = QueryForm.from_fields(upload.fields, default_k=ready.settings.default_k)
    root = request.scope.get("root_path", "")
    query = form.query()
    if len(upload.images) > 1:
        answers = await ready.answer_photos(upload.images, query)
        taxonomy = ready.resources.taxonomy
        results = [a.result for a in answers]
        pooled = Answer(pooled_result(results, query.k, taxonomy), dict(answers[0].timings))
        for a in answers[1:]:
            for stage, seconds in a.timings.items():
                pooled.timings[stage] = max(pooled.timings.get(stage, 0.0), seconds)
        with ready.rendering(pooled):
            response = _response(ready, pooled, root)
            response.photos = [_photo(n, ready, a, root) for n, a in enumerate(answers, start=1)]
            response.evidence = label_evidence(results, language="en")
            response.label_set = response.novelty = None  # per photo
        response.claim, response.timings = form.claim, milliseconds(pooled.timings)
        return response
    answer = await ready.answer(upload.data, query)
    with ready.rendering(answer):
        response = _response(ready, answer, root)
    response.claim, response.timings = form.claim, milliseconds(answer.timings)  # with render
    return response


_PHOTO_FIELDS = {"hits", "label_estimates", "label_set", "novelty", "region", "heatmap"}


def _response(ready: Ready, answer: Answer, root: str) -> RetrieveResponse:
    result: RetrievalResult = answer.result
    threshold = ready.settings.label_estimate_threshold
    return RetrieveResponse(
        hits=[hit_out(hit, root_path=root) for hit in result.hits],
        label_estimates=label_estimates(result, language="en", threshold=threshold),
        label_set=label_set_out(result, language="en"),
        novelty=novelty_out(result, language="en", threshold=ready.settings.novelty_threshold),
        mode=result.mode,
        timings=milliseconds(answer.timings),
        pseudo_text=result.pseudo_text,
        region=region_out(result.region, root_path=root),
        heatmap=heatmap_out(result.heatmap, root_path=root),
    )


def _photo(n: int, ready: Ready, answer: Answer, root: str) -> PhotoOut:
    shown = _response(ready, answer, root).model_dump(include=_PHOTO_FIELDS)
    return PhotoOut(photo=n, label_votes=label_votes(answer.result.votes, language="en"), **shown)
