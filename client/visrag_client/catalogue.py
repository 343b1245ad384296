"""The catalogue requests: add, replace, remove, look up and list items (``/items``).

Writes need a write key (``VisragClient(url, api_key=WRITE_KEY)``). Retries stay safe: a ``POST``
is retried only on the answers that say nothing was written (429, 503); after a lost connection
it raises, and the caller replays it by id with ``put_item`` (``PUT`` is idempotent, so it and
``delete_item`` are retried like reads).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from typing import Any, TypedDict
from urllib.parse import quote

from visrag_client.images import ImageInput, image_upload

Request = tuple[str, str, dict[str, Any]]
ITEM_FIELDS = ("id", "labels", "zone", "description", "group")


class ItemInput(TypedDict, total=False):
    """One item to add: its image and verified metadata (omitted: the service's defaults)."""

    image: ImageInput  # required
    id: str
    labels: Mapping[str, int] | Iterable[str]  # {"dent": 2} or ["dent", "crack"]; empty: none
    zone: str
    description: str
    group: str


def _labels(value: Mapping[str, int] | Iterable[str]) -> str:
    if isinstance(value, Mapping):
        return ",".join(f"{label}:{count}" for label, count in value.items())
    return ",".join(value)


def _fields(items: Sequence[ItemInput]) -> dict[str, list[str]]:
    """Each field once per item (blank where an item has none), or not at all."""
    data: dict[str, list[str]] = {}
    for name in ITEM_FIELDS:
        if not any(name in it for it in items):
            continue
        values = [it.get(name) for it in items]
        data[name] = [
            "" if v is None else _labels(v) if name == "labels" else str(v)  # type: ignore[arg-type]
            for v in values
        ]
    return data


def add_items_request(items: Sequence[ItemInput]) -> Request:
    """POST /items: several items in one request (one write, one refit)."""
    files = [("image", image_upload(it["image"])) for it in items]
    return "POST", "/items", {"files": files, "data": _fields(items)}


def put_item_request(item_id: str, item: ItemInput) -> Request:
    """PUT /items/{id}: add or replace one item (idempotent)."""
    fields = {k: v[0] for k, v in _fields([item]).items() if k != "id"}
    files = {"image": image_upload(item["image"])}
    return "PUT", item_path(item_id), {"files": files, "data": fields}


def item_path(item_id: str) -> str:
    return f"/items/{quote(item_id, safe='')}"


def list_items_params(
    *,
    label: Iterable[str] = (),
    zone: str | None = None,
    path: str | None = None,
    after: str | None = None,
    limit: int = 100,
) -> dict[str, Any]:
    params: dict[str, Any] = {"label": list(label), "limit": limit}
    params.update({k: v for k, v in (("zone", zone), ("path", path), ("after", after)) if v})
    return params
