"""The demo page at ``/`` and the catalogue thumbnails it shows."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Annotated

from fastapi import APIRouter, Depends, Query, Response
from fastapi.responses import FileResponse

from app.http.auth import require_api_key
from app.http.errors import NotFoundError
from app.render.thumbnails import THUMBNAIL_SIZES, thumbnail
from app.routes.dependencies import ReadyDep
from app.schemas import ERROR_RESPONSES
from models.imaging import ImageDecodeError

logger = logging.getLogger(__name__)

STATIC_DIR = Path(__file__).resolve().parent.parent / "static"

page_router = APIRouter(tags=["demo"], include_in_schema=False)
items_router = APIRouter(tags=["catalogue"], dependencies=[Depends(require_api_key)])


@page_router.get("/")
async def index() -> FileResponse:
    return FileResponse(STATIC_DIR / "index.html", media_type="text/html")


@items_router.get(
    "/items/{item_id:path}/image",
    response_class=Response,
    responses={404: ERROR_RESPONSES[422] | {"description": "Unknown item"}},
)
async def item_image(
    item_id: str,
    ready: ReadyDep,
    size: Annotated[int, Query(ge=16, le=512)] = 256,
) -> Response:
    """A JPEG thumbnail of an indexed image, looked up by catalogue id (no paths accepted)."""
    path = ready.image_path(item_id)
    if path is None:
        raise NotFoundError(f"no indexed image for item {item_id!r}")
    size = min((s for s in THUMBNAIL_SIZES if s >= size), default=THUMBNAIL_SIZES[-1])
    try:
        data = await thumbnail(Path(path), size, budget=ready.service.decode_budget)
    except (OSError, ImageDecodeError) as exc:  # file gone, unreadable or broken since indexing
        logger.warning("thumbnail of %s failed: %s: %s", item_id, type(exc).__name__, exc)
        raise NotFoundError(f"the indexed image of item {item_id!r} cannot be read") from exc
    return Response(
        data, media_type="image/jpeg", headers={"Cache-Control": "private, max-age=3600"}
    )
