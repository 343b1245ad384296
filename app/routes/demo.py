"""The demo page at ``/`` and the catalogue thumbnails it shows."""

from __future__ import annotations

import json
import logging
from pathlib import Path
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Query, Response
from fastapi.responses import FileResponse

from app.http.auth import require_api_key
from app.http.errors import NotFoundError
from app.render.crops import region_crop
from app.render.thumbnails import THUMBNAIL_SIZES, thumbnail
from app.routes.dependencies import ReadyDep, ServiceDep
from app.schemas import ERROR_RESPONSES
from models.imaging import ImageDecodeError

logger = logging.getLogger(__name__)

STATIC_DIR = Path(__file__).resolve().parent.parent / "static"
SAMPLES_FILE = "samples.json"

page_router = APIRouter(tags=["demo"], include_in_schema=False)
items_router = APIRouter(tags=["catalogue"], dependencies=[Depends(require_api_key)])


@page_router.get("/")
async def index() -> FileResponse:
    return FileResponse(STATIC_DIR / "index.html", media_type="text/html")


@page_router.get("/demo/samples")
def samples(service: ServiceDep) -> list[dict[str, Any]]:
    """The sample photos the page offers (held-out, with their true labels); [] when none.
    (Plain ``def``: FastAPI runs it in the thread pool, off the event loop, as it reads a file.)"""
    folder = service.settings.demo_samples
    if folder is None or not (folder / SAMPLES_FILE).is_file():
        return []
    listed: list[dict[str, Any]] = json.loads((folder / SAMPLES_FILE).read_text("utf-8"))
    return [{**s, "url": f"demo/samples/{s['file']}"} for s in listed]


@page_router.get("/demo/samples/{name}")
def sample_image(name: str, service: ServiceDep) -> FileResponse:
    """One sample photo, by a name that ``samples.json`` lists (no paths accepted)."""
    folder = service.settings.demo_samples
    if folder is None or name not in {s["file"] for s in samples(service)}:
        raise NotFoundError(f"no demo sample {name!r}")
    return FileResponse(folder / name, media_type="image/jpeg")


@items_router.get(
    "/items/{item_id:path}/annotation",
    responses={404: ERROR_RESPONSES[422] | {"description": "Unknown item"}},
)
async def item_annotation(item_id: str, ready: ReadyDep) -> dict[str, Any]:
    """The verified defect outlines of an indexed image (pixels of the original): ``size``
    [width, height] and ``shapes`` [{label, polygon}]; empty for no damage or no outlines."""
    item = ready.resources.retriever.item(item_id)
    if item is None:
        raise NotFoundError(f"no indexed item {item_id!r}")
    return {"size": item.defects.get("size"), "shapes": item.defects.get("shapes", [])}


@items_router.get(
    "/items/{item_id:path}/regions/{region}/crop",
    response_class=Response,
    responses={404: ERROR_RESPONSES[422] | {"description": "Unknown item or region"}},
)
async def region_crop_image(
    item_id: str,
    region: str,
    ready: ReadyDep,
    size: Annotated[int | None, Query(ge=32, le=1024)] = None,
) -> Response:
    """A JPEG crop of one indexed damage region of an item: its box plus a margin
    (``region_crop_margin``), the longer side at most ``size`` (default ``region_crop_side``).
    ``region`` is the part of the region id after ``#`` (as the answers' ``crop_url`` give it);
    only the item's own regions, from the catalogue's image (no paths accepted)."""
    found = ready.region(item_id, region)
    path = ready.image_path(item_id)
    if found is None or path is None:
        raise NotFoundError(f"no region {region!r} of indexed item {item_id!r}")
    s = ready.settings
    try:
        data = await region_crop(
            Path(path),
            found.box,
            margin=s.region_crop_margin,
            max_side=size or s.region_crop_side,
            budget=ready.service.decode_budget,
        )
    except (OSError, ImageDecodeError) as exc:
        logger.warning("crop of %s#%s failed: %s: %s", item_id, region, type(exc).__name__, exc)
        raise NotFoundError(f"the indexed image of item {item_id!r} cannot be read") from exc
    return Response(
        data, media_type="image/jpeg", headers={"Cache-Control": "private, max-age=3600"}
    )


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
