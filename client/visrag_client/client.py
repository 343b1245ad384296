"""``VisragClient`` (sync) and ``AsyncVisragClient``: the visrag HTTP API with typed results.

Both share the request building (:func:`retrieve_request`, :func:`context_request`), the retry
policy and the response parsing; they differ only in how they send and sleep. Retries: on 429 and
503 (and connection failures), honouring ``Retry-After``, while the total waiting stays within
``retry_budget_s`` and the attempts within ``max_retries``; other errors raise at once.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Iterable, Sequence
from typing import Any, Literal, TypedDict

import httpx
from typing_extensions import Unpack

from visrag_client.catalogue import (
    ItemInput,
    add_items_request,
    item_path,
    list_items_params,
    put_item_request,
)
from visrag_client.core import ClientBase, api_error, form_fields, parse
from visrag_client.images import ImageInput, image_upload
from visrag_client.schemas import (
    ContextFormat,
    ContextResponse,
    HealthResponse,
    InfoResponse,
    ItemOut,
    ItemsPage,
    ItemsWritten,
    Language,
    QueryMode,
    ReadyResponse,
    RetrieveResponse,
)

Request = tuple[str, str, dict[str, Any]]


class RetrieveOptions(TypedDict, total=False):
    """``/retrieve``'s form fields besides the image; omitted ones take the service's defaults."""

    k: int | None
    mode: QueryMode | None
    text: str | None
    alpha: float | None
    probe_weight: float | None  # mode "probe" only; None: the index's weight
    labels_any: Iterable[str] | None
    labels_all: Iterable[str] | None
    zones: Iterable[str] | None
    areas: Iterable[str] | None
    item: str | None  # query by this indexed item instead of an image (pass image=None)
    exclude_group: bool | None  # with item: leave out its group too
    region: str | None  # a box "x,y,w,h" or a polygon "x1,y1 x2,y2 ..." of the uploaded image
    explain: Literal["heatmap"] | None  # where the photo looks like indexed damage
    region_k: int | None  # indexed regions per region answer; None: k
    claim: str | None  # an id for the photos of one claim, echoed back


class ContextOptions(RetrieveOptions, total=False):
    """``/context``'s form fields: ``/retrieve``'s plus the block's and the image parts' options."""

    language: Language | None
    format: ContextFormat | None
    max_examples: int | None
    image_urls: bool | None
    max_images: int | None
    max_image_side: int | None
    max_total_bytes: int | None


#: One photo, or several photos of one claim (a list or tuple of them).
Photos = ImageInput | Sequence[ImageInput]


def _upload(path: str, image: Photos | None, options: RetrieveOptions | ContextOptions) -> Request:
    fields = form_fields(**options)
    if image is None:  # by an indexed item: no body, the fields in the query string
        if not fields.get("item"):
            raise TypeError("give an image or item=ID")
        return "POST", path, {"params": fields}
    if isinstance(image, (list, tuple)):  # several photos: repeated `image` fields
        if not image:
            raise TypeError("give at least one image")
        files = [("image", image_upload(one)) for one in image]
        return "POST", path, {"files": files, "data": fields}
    return "POST", path, {"files": {"image": image_upload(image)}, "data": fields}


def retrieve_request(image: Photos | None, options: RetrieveOptions) -> Request:
    """POST /retrieve: the ``k`` most similar indexed items (filters: any/all labels, zones...);
    ``image=None, item=ID``: more like an indexed item, without it; a list of images: the photos
    of one claim (``.photos``, ``.evidence``); ``region=`` / ``explain="heatmap"``: the damage
    regions (``.region``, ``.heatmap``)."""
    return _upload("/retrieve", image, options)


def context_request(image: Photos | None, options: ContextOptions) -> Request:
    """POST /context: the similar verified cases as a prompt block (``format=messages``: chat
    content parts with the neighbours' images, in ``.messages``)."""
    return _upload("/context", image, options)


class VisragClient(ClientBase):
    """Blocking client. ``with VisragClient(url) as c: c.context(path, format="messages")``."""

    _http: httpx.Client
    _http_class = httpx.Client

    def __enter__(self) -> VisragClient:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        self._http.close()

    def _request(
        self, method: str, path: str, *, idempotent: bool = True, **kwargs: Any
    ) -> httpx.Response:
        attempts = self._attempts()
        while True:
            try:
                response = self._http.request(method, path, **kwargs)
            except httpx.TransportError as exc:
                time.sleep(attempts.after_failure(exc, idempotent=idempotent))
                continue
            delay = attempts.after_response(response)
            if delay is None:
                return response
            time.sleep(delay)

    def retrieve(
        self, image: Photos | None = None, **options: Unpack[RetrieveOptions]
    ) -> RetrieveResponse:
        """POST /retrieve (see :class:`RetrieveOptions`)."""
        method, path, kwargs = retrieve_request(image, options)
        return parse(self._request(method, path, **kwargs), RetrieveResponse)

    def context(
        self, image: Photos | None = None, **options: Unpack[ContextOptions]
    ) -> ContextResponse:
        """POST /context (see :class:`ContextOptions`)."""
        method, path, kwargs = context_request(image, options)
        return parse(self._request(method, path, **kwargs), ContextResponse)

    def health(self) -> HealthResponse:
        return parse(self._request("GET", "/health"), HealthResponse)

    def ready(self) -> ReadyResponse:
        """The readiness state; a not-ready service answers (without retries) ready=False."""
        response = self._http.get("/ready")
        if response.status_code >= 400 and response.status_code != 503:
            raise api_error(response)
        return parse(response, ReadyResponse)

    def info(self) -> InfoResponse:
        return parse(self._request("GET", "/info"), InfoResponse)

    # -- the catalogue (visrag_client.catalogue) -------------------------------------------------
    def add_items(self, items: Sequence[ItemInput]) -> ItemsWritten:
        """POST /items (a write key); not replayed after a lost connection: use put_item."""
        method, path, kwargs = add_items_request(items)
        return parse(self._request(method, path, idempotent=False, **kwargs), ItemsWritten)

    def put_item(self, item_id: str, **item: Unpack[ItemInput]) -> ItemsWritten:
        """PUT /items/{id}: add or replace (idempotent, retried)."""
        method, path, kwargs = put_item_request(item_id, item)
        return parse(self._request(method, path, **kwargs), ItemsWritten)

    def delete_item(self, item_id: str) -> None:
        self._request("DELETE", item_path(item_id))

    def get_item(self, item_id: str) -> ItemOut:
        return parse(self._request("GET", item_path(item_id)), ItemOut)

    def list_items(self, **filters: Any) -> ItemsPage:
        """GET /items (``label``, ``zone``, ``path``, ``after``, ``limit``)."""
        return parse(self._request("GET", "/items", params=list_items_params(**filters)), ItemsPage)


class AsyncVisragClient(ClientBase):
    """The same API as ``VisragClient``, awaitable (``async with AsyncVisragClient(url) as c``)."""

    _http: httpx.AsyncClient
    _http_class = httpx.AsyncClient

    async def __aenter__(self) -> AsyncVisragClient:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.aclose()

    async def aclose(self) -> None:
        await self._http.aclose()

    async def _request(
        self, method: str, path: str, *, idempotent: bool = True, **kwargs: Any
    ) -> httpx.Response:
        attempts = self._attempts()
        while True:
            try:
                response = await self._http.request(method, path, **kwargs)
            except httpx.TransportError as exc:
                await asyncio.sleep(attempts.after_failure(exc, idempotent=idempotent))
                continue
            delay = attempts.after_response(response)
            if delay is None:
                return response
            await asyncio.sleep(delay)

    async def retrieve(
        self, image: Photos | None = None, **options: Unpack[RetrieveOptions]
    ) -> RetrieveResponse:
        method, path, kwargs = retrieve_request(image, options)
        return parse(await self._request(method, path, **kwargs), RetrieveResponse)

    async def context(
        self, image: Photos | None = None, **options: Unpack[ContextOptions]
    ) -> ContextResponse:
        method, path, kwargs = context_request(image, options)
        return parse(await self._request(method, path, **kwargs), ContextResponse)

    async def health(self) -> HealthResponse:
        return parse(await self._request("GET", "/health"), HealthResponse)

    async def ready(self) -> ReadyResponse:
        response = await self._http.get("/ready")
        if response.status_code >= 400 and response.status_code != 503:
            raise api_error(response)
        return parse(response, ReadyResponse)

    async def info(self) -> InfoResponse:
        return parse(await self._request("GET", "/info"), InfoResponse)

    async def add_items(self, items: Sequence[ItemInput]) -> ItemsWritten:
        method, path, kwargs = add_items_request(items)
        response = await self._request(method, path, idempotent=False, **kwargs)
        return parse(response, ItemsWritten)

    async def put_item(self, item_id: str, **item: Unpack[ItemInput]) -> ItemsWritten:
        method, path, kwargs = put_item_request(item_id, item)
        return parse(await self._request(method, path, **kwargs), ItemsWritten)

    async def delete_item(self, item_id: str) -> None:
        await self._request("DELETE", item_path(item_id))

    async def get_item(self, item_id: str) -> ItemOut:
        return parse(await self._request("GET", item_path(item_id)), ItemOut)

    async def list_items(self, **filters: Any) -> ItemsPage:
        params = list_items_params(**filters)
        return parse(await self._request("GET", "/items", params=params), ItemsPage)
