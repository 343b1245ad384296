"""POST /context: the similar verified cases as a block for a VLM prompt, and structured.

One request, top-down: the form (:mod:`app.schemas`) -> :meth:`app.serving.service.Ready.answer`
(decode, encode, :meth:`indexer.retrieval.retriever.Retriever.search`: display-ready hits and
their votes, :mod:`indexer.retrieval.votes`, in a :class:`indexer.query.RetrievalResult`) -> here,
:func:`app.render.context.render_context` (and :mod:`app.render.messages` for format=messages)
-> the wire models of ``visrag_client.schemas``. Damage regions are said in words
(:mod:`app.render.regions`); several photos of a claim are pooled (:mod:`app.render.claims`).
"""

from __future__ import annotations

import functools
import logging
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from fastapi import APIRouter, Depends, Request

from app.http.auth import require_api_key
from app.render.claims import label_evidence, pooled_result
from app.render.context import RenderedContext, Section, case_out, label_votes, render_context
from app.render.crops import region_crop
from app.render.messages import ImageLimits, neighbour_images, region_crop_parts, rendered_parts
from app.render.regions import heatmap_out, photo_title, region_lines, region_out, region_title
from app.render.thumbnails import thumbnail
from app.routes.dependencies import ReadyDep, UploadDep
from app.schemas import (
    ERROR_RESPONSES,
    ContextForm,
    item_image_url,
    milliseconds,
    multipart_openapi,
)
from app.serving.service import Answer, Ready
from indexer.query import RegionHit, RetrievalResult
from models.imaging import ImageDecodeError
from visrag_client.schemas import ContextPhotoOut, ContextResponse

logger = logging.getLogger(__name__)
router = APIRouter(tags=["retrieval"], dependencies=[Depends(require_api_key)])

_EVIDENCE = {"en": "Which photo supports which label", "es": "Qué foto respalda cada etiqueta"}
_PHOTOS = {"en": ("photo {n}", "photos {ns}", " and "), "es": ("foto {n}", "fotos {ns}", " y ")}


@router.post(
    "/context",
    response_model=ContextResponse,
    responses=ERROR_RESPONSES,
    openapi_extra=multipart_openapi(ContextForm),
)
async def context(request: Request, ready: ReadyDep, upload: UploadDep) -> ContextResponse:
    """``/retrieve``'s inputs plus ``language`` (en|es), ``max_examples`` and ``format``.

    The block words the label set as its promise over photos like the indexed ones, and opens
    with a warning when ``novelty.flag`` says no indexed case is close to this photo. With
    ``region`` or ``explain=heatmap`` it says where the damage-like regions lie and what they
    resemble, and ``format=messages`` attaches crops of the matched indexed regions instead of
    whole photos. Several ``image`` fields: each photo's cases in ``photos``, the pooled cases
    and which photo supports which label.
    """
    form = ContextForm.from_fields(upload.fields, default_k=ready.settings.default_k)
    root = request.scope.get("root_path", "")
    query = form.query()
    language = form.language
    counted = ready.resources.taxonomy.counted
    several = len(upload.images) > 1
    if several:
        answers = await ready.answer_photos(upload.images, query)
        results = [a.result for a in answers]
        answer = Answer(pooled_result(results, query.k, ready.resources.taxonomy), {})
        for a in answers:
            for stage, seconds in a.timings.items():
                answer.timings[stage] = max(answer.timings.get(stage, 0.0), seconds)
    else:
        answer = await ready.answer(upload.data, query)
        results = [answer.result]
    with ready.rendering(answer):
        sections = []
        for n, result in enumerate(results, start=1):
            lines = region_lines(result.region, result.heatmap, language=language, counted=counted)
            if lines:
                title = region_title(language)
                if several:
                    title = f"{photo_title(n, language)}: {title}"
                sections.append(Section(title, tuple(lines)))
        evidence = label_evidence(results, language=language) if several else None
        if evidence:
            words = _PHOTOS[language]
            lines = [f"{e.name}: {_photos(e.photos, words)}" for e in evidence]
            sections.append(Section(_EVIDENCE[language], tuple(lines)))
        rendered = render_context(
            answer.result,
            language=language,
            max_examples=form.max_examples,
            fmt="text" if form.format == "messages" else form.format,
            image_url=lambda item_id: item_image_url(item_id, root),
            estimate_threshold=ready.settings.label_estimate_threshold,
            novelty_threshold=ready.settings.novelty_threshold,
            sections=sections,
        )
        photos = None
        if several:
            photos = [_photo(n, r, form, root) for n, r in enumerate(results, start=1)]
    messages = None
    if form.format == "messages":
        messages = await _messages(request, ready, form, rendered, results)
    single = None if several else answer.result
    return ContextResponse(
        context=rendered.context,
        format=form.format,
        language=rendered.language,
        cases=list(rendered.cases),
        label_votes=list(rendered.label_votes),
        label_estimates=list(rendered.label_estimates),
        label_set=None if several else rendered.label_set,
        novelty=None if several else rendered.novelty,
        mode=answer.result.mode,
        timings=milliseconds(answer.timings),
        messages=messages,
        region=None if single is None else region_out(single.region, root_path=root),
        heatmap=None
        if single is None
        else heatmap_out(single.heatmap, language=language, root_path=root),
        claim=form.claim,
        photos=photos,
        evidence=evidence,
    )


def _photos(photos: Sequence[int], words: tuple[str, str, str]) -> str:
    one, many, and_ = words
    if len(photos) == 1:
        return one.format(n=photos[0])
    names = ", ".join(str(p) for p in photos[:-1]) + and_ + str(photos[-1])
    return many.format(ns=names)


def _photo(n: int, result: RetrievalResult, form: ContextForm, root: str) -> ContextPhotoOut:
    language = form.language
    return ContextPhotoOut(
        photo=n,
        cases=[
            case_out(hit, language=language, image_url=lambda i: item_image_url(i, root))
            for hit in result.hits[: form.max_examples]
        ],
        label_votes=label_votes(result.votes, language=language),
        region=region_out(result.region, root_path=root),
        heatmap=heatmap_out(result.heatmap, language=language, root_path=root),
    )


def _matched_regions(results: Sequence[RetrievalResult]) -> list[RegionHit]:
    """The indexed regions the photos' region queries and damage-like areas matched, best
    first, each once."""
    hits: dict[str, RegionHit] = {}
    for result in results:
        found = list(result.region.hits) if result.region is not None else []
        if result.heatmap is not None:
            found += [h for area in result.heatmap.areas for h in area.neighbours]
        for hit in found:
            if hit.id not in hits or hit.score > hits[hit.id].score:
                hits[hit.id] = hit
    return sorted(hits.values(), key=lambda h: -h.score)


async def _messages(
    request: Request,
    ready: Ready,
    form: ContextForm,
    rendered: RenderedContext,
    results: Sequence[RetrievalResult],
) -> list[dict[str, Any]]:
    """format=messages: the content parts, the images decoded inside the decode budget; with a
    region or a heatmap, crops of the matched regions instead of the cases' whole photos."""
    budget = ready.service.decode_budget
    regions = _matched_regions(results)
    if regions:
        settings = ready.settings

        async def crop_of(hit: RegionHit) -> bytes | None:
            path = ready.image_path(hit.item)
            if path is None:
                return None
            try:
                return await region_crop(
                    Path(path),
                    hit.box,
                    margin=settings.region_crop_margin,
                    max_side=min(settings.region_crop_side, form.max_image_side),
                    budget=budget,
                )
            except (OSError, ImageDecodeError) as exc:
                logger.warning("crop of %s not included: %s", hit.id, exc)
                return None

        parts = await region_crop_parts(
            regions[: form.max_images],
            language=form.language,
            max_total_bytes=min(settings.region_crop_budget_bytes, form.max_total_bytes),
            crop_of=crop_of,
        )
        if parts:
            return rendered_parts(rendered, {}, region_parts=parts)
    base = str(request.base_url).rstrip("/")  # includes the root path
    limits = ImageLimits(
        max_images=form.max_images,
        max_side=form.max_image_side,
        max_total_bytes=form.max_total_bytes,
        urls=form.image_urls,
    )
    path_of: Callable[[str], Path | str | None] = ready.image_path
    images = await neighbour_images(
        rendered.cases,
        limits,
        path_of=path_of,
        url_of=lambda item_id, size: f"{base}{item_image_url(item_id)}?size={size}",
        image_of=functools.partial(thumbnail, budget=budget),
    )
    return rendered_parts(rendered, images)
