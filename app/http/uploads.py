"""Read a multipart upload as it streams in, refusing oversized, late, slow or non-image bodies.

Starlette's own form parser spools every file to disk whatever its size; this one keeps at most
``max_bytes`` of the image in memory and stops reading the socket the moment the limit is passed
(a Content-Length over the limit is refused before a byte is read), so a 2 GB upload costs
nothing. A body must arrive within ``timeout_s`` and, after ``grace_s``, keep pace with
``min_rate_bps`` (by then ``min_rate_bps`` bytes for every second past the grace period): a client
trickling a byte every few seconds is closed with 408 after about ``grace_s`` instead of holding
its place for the whole timeout. The file's first bytes are sniffed: only real image formats pass.
"""

from __future__ import annotations

import math
import time
from collections.abc import AsyncGenerator
from dataclasses import dataclass, field

import anyio
from python_multipart.exceptions import MultipartParseError
from python_multipart.multipart import MultipartParser, parse_options_header
from starlette.requests import Request

from app.http.errors import (
    BadParameterError,
    EmptyUploadError,
    UnsupportedMediaError,
    UploadTimeoutError,
    UploadTooLargeError,
    UploadTooSlowError,
)

FILE_FIELD = "image"
FORM_OVERHEAD = 256 * 1024  # form fields and part headers allowed on top of the image
MAX_FIELD_BYTES = 64 * 1024
MAX_FIELDS = 64

# Leading bytes of the formats Pillow decodes for us; anything else is refused with 415.
_MAGIC: tuple[tuple[bytes, int, str], ...] = (
    (b"\xff\xd8\xff", 0, "jpeg"),
    (b"\x89PNG\r\n\x1a\n", 0, "png"),
    (b"GIF87a", 0, "gif"),
    (b"GIF89a", 0, "gif"),
    (b"WEBP", 8, "webp"),
    (b"BM", 0, "bmp"),
    (b"II*\x00", 0, "tiff"),
    (b"MM\x00*", 0, "tiff"),
)
_ACCEPTED_PART_TYPES = ("image/", "application/octet-stream")


@dataclass
class Upload:
    """The image bytes of a multipart request and its other form fields (repeated ones kept)."""

    data: bytes
    filename: str | None
    content_type: str | None
    image_format: str
    fields: dict[str, list[str]] = field(default_factory=dict)
    images: tuple[bytes, ...] = ()  # every file of field ``image``, in order (``data``: the first)


def sniff_image(head: bytes) -> str | None:
    """The image format named by a file's first bytes, or None."""
    for magic, offset, name in _MAGIC:
        if head[offset : offset + len(magic)] == magic:
            if name == "webp" and head[:4] != b"RIFF":
                continue
            return name
    return None


class _PartCollector:
    """python-multipart callbacks that keep the image and small fields, with limits."""

    def __init__(self, *, max_bytes: int, max_files: int = 1) -> None:
        self.max_bytes = max_bytes
        self.max_files = max_files
        self.fields: dict[str, list[str]] = {}
        self.images: list[bytearray] = []
        self.filename: str | None = None
        self.content_type: str | None = None
        self._headers: dict[bytes, bytes] = {}
        self._header_name = b""
        self._header_value = b""
        self._name = ""
        self._buffer = bytearray()
        self._is_file = False
        self._nfields = 0

    def callbacks(self) -> dict[str, object]:
        return {
            "on_part_begin": self.on_part_begin,
            "on_part_data": self.on_part_data,
            "on_part_end": self.on_part_end,
            "on_header_field": self.on_header_field,
            "on_header_value": self.on_header_value,
            "on_header_end": self.on_header_end,
            "on_headers_finished": self.on_headers_finished,
        }

    def on_part_begin(self) -> None:
        self._headers = {}
        self._buffer = bytearray()
        self._is_file = False

    def on_header_field(self, data: bytes, start: int, end: int) -> None:
        self._header_name += data[start:end]

    def on_header_value(self, data: bytes, start: int, end: int) -> None:
        self._header_value += data[start:end]

    def on_header_end(self) -> None:
        self._headers[self._header_name.strip().lower()] = self._header_value.strip()
        self._header_name = b""
        self._header_value = b""

    def on_headers_finished(self) -> None:
        _, options = parse_options_header(self._headers.get(b"content-disposition", b""))
        if b"name" not in options:
            raise BadParameterError("malformed multipart body: a part has no field name")
        self._name = options[b"name"].decode("utf-8", "replace")
        if self._name == FILE_FIELD:
            if len(self.images) >= self.max_files:
                raise BadParameterError(
                    f"send at most {self.max_files} file(s) in field {FILE_FIELD!r}"
                    if self.max_files > 1
                    else f"send exactly one file in field {FILE_FIELD!r}"
                )
            self._is_file = True
            filename = options.get(b"filename")
            self.filename = filename.decode("utf-8", "replace") if filename else None
            ctype = self._headers.get(b"content-type")
            self.content_type = ctype.decode("latin-1").lower() if ctype else None
        elif b"filename" in options:
            raise BadParameterError(
                f"unexpected file field {self._name!r}; send the image as {FILE_FIELD!r}"
            )
        else:
            self._nfields += 1
            if self._nfields > MAX_FIELDS:
                raise BadParameterError(f"too many form fields (at most {MAX_FIELDS})")

    def on_part_data(self, data: bytes, start: int, end: int) -> None:
        self._buffer += data[start:end]
        if self._is_file:
            if len(self._buffer) > self.max_bytes:
                raise UploadTooLargeError(
                    f"the image is larger than the limit of {self.max_bytes} bytes"
                )
        elif len(self._buffer) > MAX_FIELD_BYTES:
            raise BadParameterError(f"form field {self._name!r} is too long")

    def on_part_end(self) -> None:
        if self._is_file:
            self.images.append(self._buffer)
        else:
            value = self._buffer.decode("utf-8", "replace")
            self.fields.setdefault(self._name, []).append(value)
        self._buffer = bytearray()


class BodyProgress:
    """How far one body has come; admission may close it (:meth:`evict`) to make room."""

    def __init__(self) -> None:
        self.started = time.monotonic()
        self.received = 0
        self.evicted = False
        self._scope: anyio.CancelScope | None = None

    def rate(self, now: float) -> float:
        """Bytes a second since the request arrived."""
        return self.received / max(now - self.started, 1e-9)

    def evict(self) -> None:
        """Stop reading this body: it ends with UploadTooSlowError (408)."""
        self.evicted = True
        if self._scope is not None:
            self._scope.cancel()


async def _paced(
    request: Request,
    progress: BodyProgress,
    *,
    timeout_s: float | None,
    min_rate_bps: float | None,
    grace_s: float,
) -> AsyncGenerator[bytes, None]:
    """The body's chunks, each awaited no later than the total and the pace deadlines allow."""
    start = progress.started
    end = start + timeout_s if timeout_s else math.inf
    chunks = request.stream().__aiter__()
    while True:
        pace = start + grace_s + progress.received / min_rate_bps if min_rate_bps else math.inf
        deadline = min(end, pace)
        try:
            with anyio.CancelScope() as scope:
                progress._scope = scope
                if progress.evicted:
                    scope.cancel()
                with anyio.fail_after(
                    None if deadline == math.inf else deadline - time.monotonic()
                ):
                    chunk = await chunks.__anext__()
        except StopAsyncIteration:
            return
        except TimeoutError:
            elapsed = time.monotonic() - start
            if pace < end:
                raise UploadTooSlowError(
                    f"the upload is too slow: {progress.received} bytes in {elapsed:.1f} s, "
                    f"below {min_rate_bps:g} bytes/s after a grace of {grace_s:g} s"
                ) from None
            raise UploadTimeoutError(
                f"the upload did not arrive within {timeout_s:g} s "
                f"({progress.received} bytes received)"
            ) from None
        finally:
            progress._scope = None
        if scope.cancelled_caught:
            raise UploadTooSlowError(
                f"the upload is too slow: {progress.received} bytes in "
                f"{time.monotonic() - start:.1f} s, closed to make room for another upload"
            )
        progress.received += len(chunk)
        yield chunk


async def read_upload(
    request: Request,
    *,
    max_bytes: int,
    timeout_s: float | None = None,
    min_rate_bps: float | None = None,
    grace_s: float = 0.0,
    progress: BodyProgress | None = None,
    max_files: int = 1,
    required: bool = True,
) -> Upload:
    """Parse a ``multipart/form-data`` request with an image in field ``image`` (up to
    ``max_files`` of them, each at most ``max_bytes``).

    ``timeout_s`` bounds reading the whole body: a client that declares a body and stalls would
    otherwise hold the request, and up to ``max_bytes`` of buffer, for as long as it likes.
    ``min_rate_bps`` (after ``grace_s``) closes a body that trickles in long before that.
    ``progress`` is kept up to date, and its :meth:`BodyProgress.evict` closes the body.
    ``required``: False lets a form come without a file (``data`` empty, no ``images``).

    Raises:
        UnsupportedMediaError: not multipart, or the file is not a known image format (415).
        UploadTimeoutError: the body did not arrive within ``timeout_s`` (408).
        UploadTooSlowError: the body fell behind ``min_rate_bps`` after ``grace_s`` (408).
        UploadTooLargeError: the body passes ``max_bytes`` (+ form overhead) (413).
        EmptyUploadError: the file is empty (422).
        BadParameterError: no ``image`` field, malformed body, too many/long fields (422).
    """
    ctype, params = parse_options_header(request.headers.get("content-type", ""))
    if ctype != b"multipart/form-data":
        raise UnsupportedMediaError(
            f"send multipart/form-data with the image in field {FILE_FIELD!r}"
        )
    boundary = params.get(b"boundary")
    if not boundary:
        raise BadParameterError("malformed multipart body: no boundary")
    limit = max_bytes * max_files + FORM_OVERHEAD
    declared = request.headers.get("content-length")
    if declared is not None and declared.isdigit() and int(declared) > limit:
        raise UploadTooLargeError(f"the upload is larger than the limit of {max_bytes} bytes")

    collector = _PartCollector(max_bytes=max_bytes, max_files=max_files)
    parser = MultipartParser(boundary, collector.callbacks())  # type: ignore[arg-type]
    received = 0
    body = _paced(
        request,
        progress or BodyProgress(),
        timeout_s=timeout_s,
        min_rate_bps=min_rate_bps,
        grace_s=grace_s,
    )
    try:
        async for chunk in body:
            received += len(chunk)
            if received > limit:
                raise UploadTooLargeError(
                    f"the upload is larger than the limit of {max_bytes} bytes"
                )
            parser.write(chunk)
        parser.finalize()
    except MultipartParseError as exc:
        raise BadParameterError(f"malformed multipart body: {exc}") from None
    finally:
        await body.aclose()

    if not collector.images:
        if not required:
            return Upload(b"", None, None, "", fields=collector.fields)
        raise BadParameterError(f"missing file field {FILE_FIELD!r}")
    images = tuple(bytes(image) for image in collector.images)
    if not all(images):
        raise EmptyUploadError("the uploaded image is empty (0 bytes)")
    declared_type = collector.content_type
    if declared_type and not declared_type.startswith(_ACCEPTED_PART_TYPES):
        raise UnsupportedMediaError(f"the uploaded file is {declared_type}, not an image")
    formats = [_image_format(data) for data in images]
    return Upload(
        data=images[0],
        filename=collector.filename,
        content_type=declared_type,
        image_format=formats[0],
        fields=collector.fields,
        images=images,
    )


def _image_format(data: bytes) -> str:
    image_format = sniff_image(data[:16])
    if image_format is None:
        raise UnsupportedMediaError(
            "the uploaded file is not a supported image (JPEG, PNG, WebP, GIF, BMP or TIFF)"
        )
    return image_format
