"""Every error the service answers with, and the one table that maps them to HTTP.

Exceptions raised by the HTTP layer (all subclasses of :class:`ServiceError`)::

    ServiceError
    ├── UnauthorisedError      401 unauthorised       missing or wrong API key
    ├── ForbiddenError         403 forbidden          a read key presented for a write
    ├── NotFoundError          404 not_found          unknown catalogue item
    ├── DuplicateItemError     409 duplicate_of       a near-copy of an indexed photo
    ├── UploadTimeoutError     408 upload_timeout     body not received in request_timeout_s
    │   └── UploadTooSlowError 408 upload_timeout     body slower than min_upload_rate_bps
    ├── UploadTooLargeError    413 too_large          upload over max_upload_bytes
    ├── UnsupportedMediaError  415 unsupported_media  not multipart, or the file is not an image
    ├── EmptyUploadError       422 invalid_image      zero-byte file
    ├── BadParameterError      422 bad_parameter      a form field out of range, a missing field
    ├── OverloadedError        429 overloaded         inference queue full (Retry-After)
    ├── NotReadyError          503 not_ready          models/index still loading (Retry-After)
    ├── WriterBusyServiceError 503 writer_busy        writer lock not free in time (Retry-After)
    └── RequestTimeoutError    504 timeout            request_timeout_s exceeded

Domain errors from ``models``/``indexer`` map through the same table: ``ImageTooLargeError`` 413,
``ImageDecodeError`` 422, ``QueryError`` 422, ``UnknownItemError`` 404, ``ItemExistsError`` 409;
FastAPI's ``RequestValidationError`` 422; Starlette's
``ClientDisconnect`` (the client hung up mid-upload) 499, nginx's "client closed request": nobody
reads that answer, but it keeps a hang-up out of the 5xx counts and the error log. Anything
else is a 500 whose body says only "internal server error"; the traceback goes to the log.
Every body is ``{"error": <message>, "error_type": <type>}``.
"""

from __future__ import annotations

import logging
import math
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from pydantic import ValidationError
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.requests import ClientDisconnect

from indexer.errors import ItemExistsError, UnknownItemError
from indexer.index.milvus_connection import MilvusUnavailableError
from indexer.query import QueryError
from models.imaging import ImageDecodeError, ImageTooLargeError

logger = logging.getLogger(__name__)


class ServiceError(Exception):
    """Base of the errors the HTTP layer raises; ``retry_after`` (seconds) adds a header.

    ``close_connection`` answers with ``Connection: close``: for errors raised before the body
    was read to its end, so the server does not keep waiting for (or reading) the rest.
    """

    retry_after: float | None = None
    close_connection: bool = False

    def __init__(self, message: str, *, retry_after: float | None = None) -> None:
        super().__init__(message)
        if retry_after is not None:
            self.retry_after = retry_after


class UnauthorisedError(ServiceError):
    pass


class ForbiddenError(ServiceError):
    pass


class NotFoundError(ServiceError):
    pass


class DuplicateItemError(ServiceError):
    pass


class UploadTooLargeError(ServiceError):
    pass


class UploadTimeoutError(ServiceError):
    close_connection = True


class UploadTooSlowError(UploadTimeoutError):
    pass


class UnsupportedMediaError(ServiceError):
    pass


class EmptyUploadError(ServiceError):
    pass


class BadParameterError(ServiceError):
    pass


class OverloadedError(ServiceError):
    pass


class NotReadyError(ServiceError):
    pass


class RequestTimeoutError(ServiceError):
    pass


class WriterBusyServiceError(ServiceError):
    pass


# The one status table. Order matters: the first class in an exception's MRO that is listed wins,
# so ImageTooLargeError (a subclass of ImageDecodeError) gets 413, not 422.
ERROR_TABLE: dict[type[BaseException], tuple[int, str]] = {
    UnauthorisedError: (401, "unauthorised"),
    ForbiddenError: (403, "forbidden"),
    NotFoundError: (404, "not_found"),
    UnknownItemError: (404, "not_found"),
    ItemExistsError: (409, "item_exists"),
    DuplicateItemError: (409, "duplicate_of"),
    UploadTimeoutError: (408, "upload_timeout"),
    UploadTooLargeError: (413, "too_large"),
    ImageTooLargeError: (413, "image_too_large"),
    UnsupportedMediaError: (415, "unsupported_media"),
    EmptyUploadError: (422, "invalid_image"),
    ImageDecodeError: (422, "invalid_image"),
    BadParameterError: (422, "bad_parameter"),
    QueryError: (422, "bad_parameter"),
    ValidationError: (422, "bad_parameter"),
    RequestValidationError: (422, "bad_parameter"),
    ClientDisconnect: (499, "client_disconnected"),
    OverloadedError: (429, "overloaded"),
    NotReadyError: (503, "not_ready"),
    WriterBusyServiceError: (503, "writer_busy"),
    MilvusUnavailableError: (503, "store_unavailable"),
    RequestTimeoutError: (504, "timeout"),
}
INTERNAL = (500, "internal_error")
_HTTP_TYPES = {404: "not_found", 405: "method_not_allowed", 400: "bad_request"}


def classify(exc: BaseException) -> tuple[int, str]:
    """(status, error_type) of an exception; unknown exceptions are internal errors."""
    for cls in type(exc).__mro__:
        if cls in ERROR_TABLE:
            return ERROR_TABLE[cls]
    return INTERNAL


def _message(exc: BaseException) -> str:
    if isinstance(exc, (RequestValidationError, ValidationError)):
        return describe_validation(exc.errors())
    return str(exc) or type(exc).__name__


def describe_validation(errors: Any) -> str:
    """Pydantic error list -> 'k: Input should be less than or equal to 100; mode: ...'."""
    parts = []
    for err in errors:
        loc = [str(p) for p in err.get("loc", ()) if p not in ("body", "query", "path", "form")]
        where = ".".join(loc) or "request"
        parts.append(f"{where}: {err.get('msg', 'invalid')}")
    return "; ".join(parts) or "invalid request"


def error_body(message: str, error_type: str) -> dict[str, str]:
    return {"error": message, "error_type": error_type}


def error_response(request: Request, exc: BaseException) -> JSONResponse:
    """The JSON response for any exception, by the table; 5xx internals stay in the log."""
    status, error_type = classify(exc)
    headers: dict[str, str] = {}
    if status >= 500 and error_type == INTERNAL[1]:
        logger.exception("unhandled error on %s %s", request.method, request.url.path, exc_info=exc)
        message = "internal server error"
    else:
        message = _message(exc)
    if isinstance(exc, ServiceError) and exc.retry_after is not None:
        headers["Retry-After"] = str(max(1, math.ceil(exc.retry_after)))
    if status == 401:
        headers["WWW-Authenticate"] = "Bearer"
    if isinstance(exc, ServiceError) and exc.close_connection:
        headers["Connection"] = "close"
    request.state.error_type = error_type
    return JSONResponse(error_body(message, error_type), status_code=status, headers=headers)


def _http_exception(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, StarletteHTTPException)
    error_type = _HTTP_TYPES.get(exc.status_code, "http_error")
    request.state.error_type = error_type
    message = exc.detail if isinstance(exc.detail, str) else "request failed"
    return JSONResponse(
        error_body(message, error_type), status_code=exc.status_code, headers=exc.headers
    )


def install_error_handlers(app: FastAPI) -> None:
    """Route every exception through the table (and FastAPI's own 404/405/validation errors)."""

    async def handle(request: Request, exc: Exception) -> JSONResponse:
        return error_response(request, exc)

    async def handle_http(request: Request, exc: Exception) -> JSONResponse:
        return _http_exception(request, exc)

    for exc_type in (*ERROR_TABLE, Exception):
        app.add_exception_handler(exc_type, handle)
    app.add_exception_handler(StarletteHTTPException, handle_http)
