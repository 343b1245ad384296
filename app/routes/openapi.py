"""The OpenAPI document as the service really behaves: its security and every error it answers.

FastAPI derives the document from the routes; this completes it from what the dependencies do:

- **security**: ``components.securitySchemes`` declares both ways to present a key (``bearerAuth``:
  ``Authorization: Bearer <key>``; ``apiKeyHeader``: ``X-API-Key``). With API keys configured,
  every operation behind :func:`app.http.auth.require_api_key` lists them as alternatives in its
  ``security`` and documents 401; with write keys, ``writeBearerAuth`` / ``writeKeyHeader`` are
  the schemes of the catalogue writes, which document 401 and 403 (a read key); with none
  configured, nothing requires a key and no operation
  claims to (a client generator, or schemathesis, would otherwise expect a 401 that never comes).
- **errors**: every error status an operation can answer, each with the ``ErrorResponse`` body of
  :mod:`app.http.errors`: 503 for those needing a ready service, 408/413/415/422/429/499/504 for the
  uploads (429 is answered by admission before the body is read), 422 for any parameter. FastAPI's
  own ``HTTPValidationError`` is replaced: the service never answers with it.
"""

from __future__ import annotations

import copy
from collections.abc import Callable, Iterator
from typing import Any

from fastapi import FastAPI
from fastapi.dependencies.models import Dependant
from fastapi.routing import APIRoute

from app.http.auth import require_api_key, require_write_key
from app.routes.dependencies import get_item_uploads, get_ready, get_upload
from models.taxonomy import Taxonomy

SECURITY_SCHEMES: dict[str, dict[str, str]] = {
    "bearerAuth": {"type": "http", "scheme": "bearer", "description": "An API key as a bearer."},
    "apiKeyHeader": {"type": "apiKey", "in": "header", "name": "X-API-Key"},
}
WRITE_SCHEMES: dict[str, dict[str, str]] = {
    "writeBearerAuth": {
        "type": "http",
        "scheme": "bearer",
        "description": "A write key (VISRAG_WRITE_KEYS) as a bearer; it reads too.",
    },
    "writeKeyHeader": {
        "type": "apiKey",
        "in": "header",
        "name": "X-API-Key",
        "description": "A write key (VISRAG_WRITE_KEYS); it reads too.",
    },
}
_ERROR_REF = {"$ref": "#/components/schemas/ErrorResponse"}
KEY_ERRORS = {401: "Missing or invalid API key"}
WRITE_ERRORS = {
    401: "Missing or invalid API key",
    403: "A read key: this key may not write",
    404: "No such catalogue item",
    409: "An id already indexed (item_exists)",
    503: "Not ready, or the writer lock is busy (Retry-After)",
}
READY_ERRORS = {503: "Not ready (Retry-After)"}
UPLOAD_ERRORS = {
    408: "Upload not received within the request timeout",
    413: "Upload or image too large",
    415: "Not multipart, or not an image",
    422: "Invalid image or parameter",
    429: "Overloaded: refused before the body is read (Retry-After)",
    499: "The client closed the connection mid-upload (nobody reads this answer)",
    504: "Request timed out",
}
PARAMETER_ERRORS = {422: "Invalid parameter"}
ITEM_QUERY_ERRORS = {404: "No such catalogue item (a query by item)"}


_NUMBER = r"-?[0-9]+(\.[0-9]+)?"
#: A box ``x,y,w,h`` or a polygon ``x1,y1 x2,y2 x3,y3 ...`` (what :func:`app.query.parse_region`
#: reads).
REGION_PATTERN = (
    rf"^\s*({_NUMBER}\s*,\s*{_NUMBER}\s*,\s*{_NUMBER}\s*,\s*{_NUMBER}"
    rf"|{_NUMBER},{_NUMBER}(\s+{_NUMBER},{_NUMBER}){{2,}})\s*$"
)
IMAGE_TYPES = "image/jpeg, image/png, image/webp, image/gif, image/bmp, image/tiff"
# The spellings of a boolean form field the service accepts (pydantic's, lower case).
BOOLEAN_SPELLINGS = ["true", "false", "1", "0", "yes", "no", "on", "off", "t", "f", "y", "n"]
_HYBRID_NEEDS_TEXT = {
    "if": {"properties": {"mode": {"const": "hybrid"}}, "required": ["mode"]},
    "then": {"required": ["text"], "properties": {"text": {"pattern": "\\S"}}},
}


def install_openapi(
    app: FastAPI,
    *,
    keys_required: bool,
    writes: bool = False,
    taxonomy: Callable[[], Taxonomy | None] = lambda: None,
) -> None:
    """Replace ``app.openapi`` with the completed document (cached once ``taxonomy()`` gives the
    served taxonomy, whose labels, zones and areas are the filters' enumerations)."""
    default = app.openapi

    cached: list[dict[str, Any]] = []

    def openapi() -> dict[str, Any]:
        if cached:
            return cached[0]
        served = taxonomy()
        app.openapi_schema = None  # FastAPI's own cache: build afresh
        spec = complete(copy.deepcopy(default()), app, keys_required=keys_required, writes=writes)
        _forms(spec, served)
        _listing(spec, served)
        app.openapi_schema = spec
        if served is not None:  # not loaded yet: rebuilt with the enumerations once ready
            cached.append(spec)
        return spec

    app.openapi = openapi  # type: ignore[method-assign]


def complete(
    spec: dict[str, Any], app: FastAPI, *, keys_required: bool, writes: bool = False
) -> dict[str, Any]:
    """Add security and error responses to FastAPI's ``spec`` (modified in place and returned)."""
    components = spec.setdefault("components", {})
    components.setdefault("securitySchemes", {}).update(SECURITY_SCHEMES)
    if writes:
        components["securitySchemes"].update(WRITE_SCHEMES)
    for route, path in _api_routes(app):
        if not route.include_in_schema:
            continue
        calls = set(_calls(route.dependant))
        errors: dict[int, str] = {}
        if require_api_key in calls and keys_required:
            errors.update(KEY_ERRORS)
        if require_write_key in calls:
            errors.update(WRITE_ERRORS)
        if get_ready in calls:
            errors.update(READY_ERRORS)
        if get_upload in calls or get_item_uploads in calls:
            errors.update(UPLOAD_ERRORS)
        if get_upload in calls:
            errors.update(ITEM_QUERY_ERRORS)
        if route.dependant.query_params or route.dependant.path_params:
            errors.update(PARAMETER_ERRORS)
        for method in route.methods or ():
            operation = spec["paths"][path][method.lower()]
            _document(operation, errors)
            if require_write_key in calls:
                operation["security"] = [{name: []} for name in WRITE_SCHEMES]
                continue
            if not keys_required:
                operation["responses"].pop("401", None)  # nothing asks for a key
            if require_api_key in calls and keys_required:
                operation["security"] = [{name: []} for name in SECURITY_SCHEMES]
    schemas = components.get("schemas", {})
    if "HTTPValidationError" not in str(spec["paths"]):
        schemas.pop("HTTPValidationError", None)
        schemas.pop("ValidationError", None)
    return spec


def _forms(spec: dict[str, Any], taxonomy: Taxonomy | None) -> None:
    """The multipart forms: the image's types, boolean spellings, hybrid's text, filter values."""
    for ops in spec["paths"].values():
        for op in ops.values():
            content = op.get("requestBody", {}).get("content", {}).get("multipart/form-data")
            if content is None:
                continue
            content["encoding"] = {"image": {"contentType": IMAGE_TYPES}}
            schema = content["schema"]
            schema["additionalProperties"] = False  # the forms refuse unknown fields (422)
            props = schema["properties"]
            for prop in props.values():
                if prop.get("type") == "boolean":
                    prop.pop("type")
                    prop.update(type="string", enum=BOOLEAN_SPELLINGS)
            if "mode" in props and "text" in props:
                schema.update(_HYBRID_NEEDS_TEXT)
            if "region" in props:  # the query forms: a region's syntax, several photos
                props["region"].update(pattern=REGION_PATTERN, format="region")
                props["image"]["description"] = (
                    "The photo. Repeat the field for several photos of one claim (at most "
                    "VISRAG_MAX_PHOTOS): each photo's answer in `photos`, the pooled label "
                    "evidence in `evidence`."
                )
            if taxonomy is None:
                continue
            values: dict[str, list[str]] = {
                "labels_any": list(taxonomy.label_ids),
                "labels_all": list(taxonomy.label_ids),
                "zones": [z.id for z in taxonomy.zones],
                "areas": list(taxonomy.areas),
            }
            for name, allowed in values.items():
                if name in props and props[name].get("type") == "array":
                    props[name]["items"] = {"type": "string", "enum": allowed}


def _listing(spec: dict[str, Any], taxonomy: Taxonomy | None) -> None:
    """``GET /items?label=``: the served taxonomy's labels are the values it accepts."""
    listing = spec["paths"].get("/items", {}).get("get")
    if listing is None or taxonomy is None:
        return
    for param in listing.get("parameters", ()):
        if param["name"] == "label":
            param["schema"] = {"type": "array", "items": {"enum": list(taxonomy.label_ids)}}


def _document(operation: dict[str, Any], errors: dict[int, str]) -> None:
    responses = operation.setdefault("responses", {})
    for status, description in sorted(errors.items()):
        existing = responses.get(str(status), {})
        content = existing.get("content", {}).get("application/json", {}).get("schema")
        if content is not None and content != {"$ref": "#/components/schemas/HTTPValidationError"}:
            continue  # a route's own documented body (e.g. /ready's 503) stays
        responses[str(status)] = {
            "description": existing.get("description", description)
            if existing.get("description") not in (None, "Validation Error")
            else description,
            "content": {"application/json": {"schema": _ERROR_REF}},
        }


def _api_routes(app: FastAPI) -> list[tuple[APIRoute, str]]:
    """The app's API routes and their paths as the document spells them."""
    try:  # FastAPI >= 0.160 includes routers lazily: walk their effective routes
        from fastapi.routing import iter_route_contexts
    except ImportError:
        return [(r, r.path_format) for r in app.routes if isinstance(r, APIRoute)]
    return [
        (c.original_route, c.path_format)
        for c in iter_route_contexts(app.routes)
        if isinstance(c.original_route, APIRoute) and c.path_format
    ]


def _calls(dependant: Dependant) -> Iterator[Callable[..., Any]]:
    """Every dependency callable a route runs, nested ones included."""
    for dep in dependant.dependencies:
        if dep.call is not None:
            yield dep.call
        yield from _calls(dep)
