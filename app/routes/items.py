"""The catalogue over HTTP: list and look up items (read keys); add, replace, remove them (write
keys, mounted only when write keys are configured), through :mod:`app.serving.writer`."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Depends, Query, Request, Response

from app.http.auth import require_api_key, require_write_key
from app.http.errors import BadParameterError
from app.http.uploads import Upload, sniff_image
from app.routes.dependencies import ItemUploadsDep, ReadyDep
from app.schemas import ERROR_RESPONSES, ItemForm, item_out, multipart_openapi
from app.serving.writer import CatalogueWriter, NewItem
from indexer.cli.items import page_items, select_items
from indexer.errors import UnknownItemError
from visrag_client.schemas import ItemOut, ItemsPage, ItemsWritten

router = APIRouter(tags=["catalogue"], dependencies=[Depends(require_api_key)])
write_router = APIRouter(tags=["catalogue"], dependencies=[Depends(require_write_key)])

UNKNOWN_ITEM: dict[int | str, dict[str, Any]] = {
    404: ERROR_RESPONSES[422] | {"description": "Unknown item"}
}
WriterNameDep = Annotated[str, Depends(require_write_key)]


def get_writer(request: Request) -> CatalogueWriter:
    writer: CatalogueWriter = request.app.state.writer
    return writer


WriterDep = Annotated[CatalogueWriter, Depends(get_writer)]


@router.get("/items", response_model=ItemsPage, responses=ERROR_RESPONSES)
async def list_items(
    request: Request,
    ready: ReadyDep,
    label: Annotated[list[str] | None, Query(description="Items with all of these.")] = None,
    zone: Annotated[str | None, Query(description="Items in this zone.")] = None,
    path: Annotated[str | None, Query(description="Image path glob or substring.")] = None,
    after: Annotated[str | None, Query(description="The previous page's `next_after`.")] = None,
    limit: Annotated[int, Query(ge=1, le=1000)] = 100,
) -> ItemsPage:
    """Catalogue items in id order, filtered like ``visrag index ls``."""
    taxonomy = ready.resources.taxonomy
    label = [name for name in label or () if name.strip()]  # a blank filter is no filter
    unknown = [name for name in label if not taxonomy.is_known(name)]
    if unknown:
        raise BadParameterError(f"label: not a label of the taxonomy: {', '.join(unknown)}")
    items = ready.resources.retriever.artifacts.items
    chosen = select_items(items, taxonomy, labels=label, path=path or None, zone=zone or None)
    page, next_after = page_items(chosen, after=after or None, limit=limit)
    root = request.scope.get("root_path", "")
    return ItemsPage(
        items=[item_out(it, taxonomy, root_path=root) for it in page],
        total=len(chosen),
        next_after=next_after,
    )


@router.get("/items/{item_id}", response_model=ItemOut, responses=ERROR_RESPONSES | UNKNOWN_ITEM)
async def get_item(request: Request, ready: ReadyDep, item_id: str) -> ItemOut:
    """One item's stored metadata: labels, zone, description, group, defects summary."""
    artifacts = ready.resources.retriever.artifacts
    row = artifacts.row_of(item_id)
    if row is None:
        raise UnknownItemError(f"no catalogue item {item_id!r}")
    root = request.scope.get("root_path", "")
    return item_out(artifacts.items[row], ready.resources.taxonomy, root_path=root)


@write_router.post(
    "/items",
    status_code=201,
    response_model=ItemsWritten,
    responses=ERROR_RESPONSES,
    openapi_extra=multipart_openapi(ItemForm),
)
async def add_items(
    by: WriterNameDep, ready: ReadyDep, writer: WriterDep, upload: ItemUploadsDep
) -> ItemsWritten:
    """Add items: repeated ``image`` files, each field once per image (or not at all). 201 once
    the new generation is on disk and served; 409 ``item_exists`` for an id already indexed."""
    forms = ItemForm.per_image(upload.fields, len(upload.images))
    allow = forms[0].allow_duplicate
    written = await writer.add(
        ready, _new_items(upload, forms), replace=False, by=by, allow_duplicate=allow
    )
    return ItemsWritten(ids=list(written.ids), generation=written.generation, count=written.count)


@write_router.put(
    "/items/{item_id}",
    response_model=ItemsWritten,
    responses=ERROR_RESPONSES,
    openapi_extra=multipart_openapi(ItemForm),
)
async def put_item(
    by: WriterNameDep, ready: ReadyDep, writer: WriterDep, item_id: str, upload: ItemUploadsDep
) -> ItemsWritten:
    """Add or replace the item ``item_id`` (idempotent: the same request twice, one item)."""
    if len(upload.images) != 1:
        raise BadParameterError("PUT /items/{id} takes exactly one image")
    (form,) = ItemForm.per_image(upload.fields, 1)
    if form.id not in (None, item_id):
        raise BadParameterError(f"id: {form.id!r} differs from the path's {item_id!r}")
    form = form.model_copy(update={"id": item_id})
    new = _new_items(upload, [form])
    written = await writer.add(
        ready, new, replace=True, by=by, allow_duplicate=form.allow_duplicate
    )
    return ItemsWritten(ids=list(written.ids), generation=written.generation, count=written.count)


@write_router.delete("/items/{item_id}", status_code=204, responses=ERROR_RESPONSES | UNKNOWN_ITEM)
async def delete_item(
    by: WriterNameDep, ready: ReadyDep, writer: WriterDep, item_id: str
) -> Response:
    """Remove the item (204); 404 if it is not indexed."""
    await writer.remove(ready, [item_id], by=by)
    return Response(status_code=204)


def _new_items(upload: Upload, forms: list[ItemForm]) -> list[NewItem]:
    return [
        NewItem(
            data=data,
            image_format=sniff_image(data[:16]) or upload.image_format,
            id=form.id,
            labels=form.label_entries(),
            zone=form.zone,
            description=form.description,
            group=form.group,
        )
        for data, form in zip(upload.images, forms, strict=True)
    ]
