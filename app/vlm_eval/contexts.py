"""Each query's context, as the gateway would get it from ``/context``: the text block (arm
``context``) and the ``format=messages`` parts (arm ``context+images``).

In-process, retrieval goes through the evaluation's Retriever with its leave-one-out/group
exclusions and label heads (:mod:`indexer.evaluation`), and the block through the service's
renderers (:mod:`app.render`); ``--service URL`` asks a running visrag instead (held-out queries
only: the exclusions and the cross-fitted head exist in-process only).
"""

from __future__ import annotations

import asyncio
import io
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from app.render.context import render_context
from app.render.messages import ImageLimits, neighbour_images, rendered_parts
from indexer.evaluation.estimate_quality import query_heads
from indexer.evaluation.queries import EvaluationError, Query
from models.embedding import embed_image

TEXT_FORMAT = "text"


@dataclass(frozen=True)
class QueryContext:
    text: str
    parts: tuple[dict[str, Any], ...] = field(default=())


def _jpeg(path: Path, side: int) -> bytes:
    from PIL import Image

    with Image.open(path) as opened:
        img = opened.convert("RGB")
    img.thumbnail((side, side))
    buf = io.BytesIO()
    img.save(buf, format="JPEG", quality=85)
    return buf.getvalue()


async def _local_jpeg(path: Path, side: int) -> bytes:
    return await asyncio.to_thread(_jpeg, path, side)


def in_process_contexts(
    retriever: Any,
    queries: Sequence[Query],
    *,
    k: int,
    max_examples: int,
    images: bool,
    leave_one_out: bool,
    progress: Callable[[int, int], None] | None = None,
) -> list[QueryContext]:
    """Contexts from the Retriever the service uses, rendered as ``/context`` renders them."""
    heads = query_heads(retriever.artifacts, queries, leave_one_out)
    out = []
    for n, q in enumerate(queries):
        vector = q.vector
        if vector is None:
            if q.image_path is None or retriever.image_encoder is None:
                raise EvaluationError(f"query {q.id!r} needs an image and an image encoder")
            vector, _ = embed_image(q.image_path, retriever.image_encoder)
        result = retriever.search(
            vector,
            k=k,
            exclude_ids=q.exclude_ids,
            exclude_groups=q.exclude_groups,
            label_head=None if heads is None else heads[n],
        )
        rendered = render_context(result, max_examples=max_examples, fmt=TEXT_FORMAT)
        parts: list[dict[str, Any]] = []
        if images:
            urls = asyncio.run(
                neighbour_images(
                    rendered.cases,
                    ImageLimits(max_images=max_examples),
                    path_of=retriever.image_path,
                    url_of=lambda item_id, size: item_id,
                    image_of=_local_jpeg,
                )
            )
            parts = rendered_parts(rendered, urls)
        out.append(QueryContext(rendered.context, tuple(parts)))
        if progress is not None:
            progress(n + 1, len(queries))
    return out


def service_contexts(
    url: str,
    queries: Sequence[Query],
    *,
    k: int,
    max_examples: int,
    images: bool,
    api_key: str | None = None,
    progress: Callable[[int, int], None] | None = None,
) -> list[QueryContext]:
    """Contexts from a running visrag service (``POST /context``), held-out queries only."""
    from visrag_client import VisragClient

    if any(q.exclude_ids or q.exclude_groups for q in queries):
        raise EvaluationError("--service takes held-out queries; leave-one-out runs in-process")
    out = []
    with VisragClient(url, api_key=api_key) as client:
        for n, q in enumerate(queries):
            assert q.image_path is not None
            text = client.context(q.image_path, k=k, max_examples=max_examples, format="text")
            parts: list[dict[str, Any]] = []
            if images:
                answer = client.context(
                    q.image_path, k=k, max_examples=max_examples, format="messages"
                )
                parts = [
                    p.model_dump(mode="json", exclude_none=True) for p in answer.messages or []
                ]
            out.append(QueryContext(text.context, tuple(parts)))
            if progress is not None:
                progress(n + 1, len(queries))
    return out
