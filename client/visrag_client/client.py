"""``VisragClient`` (sync) and ``AsyncVisragClient``: the visrag HTTP API with typed results.

Both share the request building, the retry policy and the response parsing below; they differ
only in how they send and sleep. Retries: on 429 and 503 (and connection failures), honouring
``Retry-After``, while the total waiting stays within ``retry_budget_s`` and the attempts within
``max_retries``; other errors raise at once.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Iterable
from typing import Any

import httpx

from visrag_client.core import ClientBase, api_error, form_fields, parse, query_fields
from visrag_client.images import ImageInput, image_upload
from visrag_client.schemas import (
    ContextFormat,
    ContextResponse,
    HealthResponse,
    InfoResponse,
    Language,
    QueryMode,
    ReadyResponse,
    RetrieveResponse,
)


class VisragClient(ClientBase):
    """Blocking client. ``with VisragClient(url) as c: c.context(path, format="messages")``."""

    def __init__(
        self,
        base_url: str,
        *,
        api_key: str | None = None,
        timeout: float | httpx.Timeout = 30.0,
        max_retries: int = 3,
        retry_budget_s: float = 30.0,
        transport: httpx.BaseTransport | None = None,
    ) -> None:
        super().__init__(base_url, api_key=api_key, timeout=timeout, max_retries=max_retries,
                         retry_budget_s=retry_budget_s)  # fmt: skip
        self._http = httpx.Client(base_url=self.base_url, headers=self._headers,
                                  timeout=timeout, transport=transport)  # fmt: skip

    def __enter__(self) -> VisragClient:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        self._http.close()

    def _request(self, method: str, path: str, **kwargs: Any) -> httpx.Response:
        waited, attempt = 0.0, 0
        while True:
            attempt += 1
            try:
                response = self._http.request(method, path, **kwargs)
            except httpx.TransportError as exc:
                delay = self._transport_failure(exc, attempt, waited)
            else:
                outcome = self._outcome(response, attempt, waited)
                if outcome is None:
                    return response
                delay = outcome
            time.sleep(delay)
            waited += delay

    def retrieve(
        self,
        image: ImageInput,
        *,
        k: int | None = None,
        mode: QueryMode | None = None,
        text: str | None = None,
        alpha: float | None = None,
        probe_weight: float | None = None,
        labels_any: Iterable[str] | None = None,
        labels_all: Iterable[str] | None = None,
        zones: Iterable[str] | None = None,
        areas: Iterable[str] | None = None,
    ) -> RetrieveResponse:
        """POST /retrieve: the ``k`` most similar indexed items (filters: any/all labels...)."""
        fields = query_fields(k, mode, text, alpha, labels_any, labels_all, zones, areas)
        fields["probe_weight"] = probe_weight  # mode "probe" only; None: the index's weight
        response = self._request("POST", "/retrieve", files={"image": image_upload(image)},
                                 data=form_fields(**fields))  # fmt: skip
        return parse(response, RetrieveResponse)

    def context(
        self,
        image: ImageInput,
        *,
        language: Language | None = None,
        format: ContextFormat | None = None,
        max_examples: int | None = None,
        image_urls: bool | None = None,
        max_images: int | None = None,
        max_image_side: int | None = None,
        max_total_bytes: int | None = None,
        k: int | None = None,
        mode: QueryMode | None = None,
        text: str | None = None,
        alpha: float | None = None,
        probe_weight: float | None = None,
        labels_any: Iterable[str] | None = None,
        labels_all: Iterable[str] | None = None,
        zones: Iterable[str] | None = None,
        areas: Iterable[str] | None = None,
    ) -> ContextResponse:
        """POST /context: the similar verified cases as a prompt block (``format=messages``:
        chat content parts with the neighbours' images, in ``.messages``)."""
        fields = query_fields(k, mode, text, alpha, labels_any, labels_all, zones, areas)
        fields["probe_weight"] = probe_weight  # mode "probe" only; None: the index's weight
        fields.update(language=language, format=format, max_examples=max_examples,
                      image_urls=image_urls, max_images=max_images,
                      max_image_side=max_image_side, max_total_bytes=max_total_bytes)  # fmt: skip
        response = self._request("POST", "/context", files={"image": image_upload(image)},
                                 data=form_fields(**fields))  # fmt: skip
        return parse(response, ContextResponse)

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


class AsyncVisragClient(ClientBase):
    """The same API as ``VisragClient``, awaitable (``async with AsyncVisragClient(url) as c``)."""

    def __init__(
        self,
        base_url: str,
        *,
        api_key: str | None = None,
        timeout: float | httpx.Timeout = 30.0,
        max_retries: int = 3,
        retry_budget_s: float = 30.0,
        transport: httpx.AsyncBaseTransport | None = None,
    ) -> None:
        super().__init__(base_url, api_key=api_key, timeout=timeout, max_retries=max_retries,
                         retry_budget_s=retry_budget_s)  # fmt: skip
        self._http = httpx.AsyncClient(base_url=self.base_url, headers=self._headers,
                                       timeout=timeout, transport=transport)  # fmt: skip

    async def __aenter__(self) -> AsyncVisragClient:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.aclose()

    async def aclose(self) -> None:
        await self._http.aclose()

    async def _request(self, method: str, path: str, **kwargs: Any) -> httpx.Response:
        waited, attempt = 0.0, 0
        while True:
            attempt += 1
            try:
                response = await self._http.request(method, path, **kwargs)
            except httpx.TransportError as exc:
                delay = self._transport_failure(exc, attempt, waited)
            else:
                outcome = self._outcome(response, attempt, waited)
                if outcome is None:
                    return response
                delay = outcome
            await asyncio.sleep(delay)
            waited += delay

    async def retrieve(
        self,
        image: ImageInput,
        *,
        k: int | None = None,
        mode: QueryMode | None = None,
        text: str | None = None,
        alpha: float | None = None,
        probe_weight: float | None = None,
        labels_any: Iterable[str] | None = None,
        labels_all: Iterable[str] | None = None,
        zones: Iterable[str] | None = None,
        areas: Iterable[str] | None = None,
    ) -> RetrieveResponse:
        fields = query_fields(k, mode, text, alpha, labels_any, labels_all, zones, areas)
        fields["probe_weight"] = probe_weight  # mode "probe" only; None: the index's weight
        response = await self._request("POST", "/retrieve", files={"image": image_upload(image)},
                                       data=form_fields(**fields))  # fmt: skip
        return parse(response, RetrieveResponse)

    async def context(
        self,
        image: ImageInput,
        *,
        language: Language | None = None,
        format: ContextFormat | None = None,
        max_examples: int | None = None,
        image_urls: bool | None = None,
        max_images: int | None = None,
        max_image_side: int | None = None,
        max_total_bytes: int | None = None,
        k: int | None = None,
        mode: QueryMode | None = None,
        text: str | None = None,
        alpha: float | None = None,
        probe_weight: float | None = None,
        labels_any: Iterable[str] | None = None,
        labels_all: Iterable[str] | None = None,
        zones: Iterable[str] | None = None,
        areas: Iterable[str] | None = None,
    ) -> ContextResponse:
        fields = query_fields(k, mode, text, alpha, labels_any, labels_all, zones, areas)
        fields["probe_weight"] = probe_weight  # mode "probe" only; None: the index's weight
        fields.update(language=language, format=format, max_examples=max_examples,
                      image_urls=image_urls, max_images=max_images,
                      max_image_side=max_image_side, max_total_bytes=max_total_bytes)  # fmt: skip
        response = await self._request("POST", "/context", files={"image": image_upload(image)},
                                       data=form_fields(**fields))  # fmt: skip
        return parse(response, ContextResponse)

    async def health(self) -> HealthResponse:
        return parse(await self._request("GET", "/health"), HealthResponse)

    async def ready(self) -> ReadyResponse:
        response = await self._http.get("/ready")
        if response.status_code >= 400 and response.status_code != 503:
            raise api_error(response)
        return parse(response, ReadyResponse)

    async def info(self) -> InfoResponse:
        return parse(await self._request("GET", "/info"), InfoResponse)
