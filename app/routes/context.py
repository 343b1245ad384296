"""POST /context: the similar verified cases as a block for a VLM prompt, and structured.

One request, top-down: the form (:mod:`app.schemas`) -> :meth:`app.serving.service.Ready.answer`
(decode, encode, :meth:`indexer.retrieval.retriever.Retriever.search`: display-ready hits and
their votes, :mod:`indexer.retrieval.votes`, in a :class:`indexer.query.RetrievalResult`) -> here,
:func:`app.render.context.render_context` (and :mod:`app.render.messages` for format=messages)
-> the wire models of ``visrag_client.schemas``.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from pathlib import Path
from typing import Any

from fastapi import APIRouter, Depends, Request

from app.http.auth import require_api_key
from app.render.context import RenderedContext, render_context
from app.render.messages import ImageLimits, neighbour_images, rendered_parts
from app.render.thumbnails import thumbnail
from app.routes.dependencies import ReadyDep, UploadDep
from app.schemas import (
    ERROR_RESPONSES,
    ContextForm,
    item_image_url,
    milliseconds,
    multipart_openapi,
)
from app.serving.admission import DecodeBudget
from visrag_client.schemas import ContextResponse

router = APIRouter(tags=["retrieval"], dependencies=[Depends(require_api_key)])


@router.post(
    "/context",
    response_model=ContextResponse,
    responses=ERROR_RESPONSES,
    openapi_extra=multipart_openapi(ContextForm),
)
async def context(request: Request, ready: ReadyDep, upload: UploadDep) -> ContextResponse:
    """``/retrieve``'s inputs plus ``language`` (en|es), ``max_examples`` and ``format``.

    The block words the label set as its promise over photos like the indexed ones, and opens
    with a warning when ``novelty.flag`` says no indexed case is close to this photo.
    """
    form = ContextForm.from_fields(upload.fields, default_k=ready.settings.default_k)
    root = request.scope.get("root_path", "")
    answer = await ready.answer(upload.data, form.query())
    with ready.rendering(answer):
        rendered = render_context(
            answer.result,
            language=form.language,
            max_examples=form.max_examples,
            fmt="text" if form.format == "messages" else form.format,
            image_url=lambda item_id: item_image_url(item_id, root),
            estimate_threshold=ready.settings.label_estimate_threshold,
            novelty_threshold=ready.settings.novelty_threshold,
        )
    messages = None
    if form.format == "messages":
        budget = ready.service.decode_budget
        messages = await _messages(request, form, rendered, ready.image_path, budget)
    return ContextResponse(
        context=rendered.context,
        format=form.format,
        language=rendered.language,
        cases=list(rendered.cases),
        label_votes=list(rendered.label_votes),
        label_estimates=list(rendered.label_estimates),
        label_set=rendered.label_set,
        novelty=rendered.novelty,
        mode=answer.result.mode,
        timings=milliseconds(answer.timings),
        messages=messages,
    )


async def _messages(
    request: Request,
    form: ContextForm,
    rendered: RenderedContext,
    path_of: Callable[[str], Path | str | None],
    budget: DecodeBudget,
) -> list[dict[str, Any]]:
    """format=messages: the content parts, the images decoded inside the decode budget."""
    base = str(request.base_url).rstrip("/")  # includes the root path
    limits = ImageLimits(
        max_images=form.max_images,
        max_side=form.max_image_side,
        max_total_bytes=form.max_total_bytes,
        urls=form.image_urls,
    )
    images = await neighbour_images(
        rendered.cases,
        limits,
        path_of=path_of,
        url_of=lambda item_id, size: f"{base}{item_image_url(item_id)}?size={size}",
        image_of=functools.partial(thumbnail, budget=budget),
    )
    return rendered_parts(rendered, images)
