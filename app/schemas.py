"""The HTTP boundary: form fields in (here; a form becomes a plain :class:`app.query.Query` at
the route, the service never sees pydantic) and the JSON answers, defined once in
``visrag_client.schemas`` and shared with the client."""

from __future__ import annotations

from typing import Any, Literal, TypeVar
from urllib.parse import quote

from pydantic import BaseModel, ConfigDict, Field, field_validator

from app.http.errors import BadParameterError
from app.query import Query, parse_region
from indexer.index.catalogue import CatalogueItem
from indexer.query import Hit
from models.taxonomy import Taxonomy
from visrag_client.schemas import (
    ErrorResponse,
    HitOut,
    ItemOut,
    LabelOut,
)

_LIST_FIELDS = ("labels_any", "labels_all", "zones", "areas")
F = TypeVar("F", bound="QueryForm")


class QueryForm(BaseModel):
    """The form fields of ``POST /retrieve`` (besides the ``image`` file)."""

    model_config = ConfigDict(extra="forbid")

    k: int = Field(5, ge=1, le=100, description="Number of neighbours.")
    mode: Literal["image", "hybrid", "rerank", "probe"] = Field("image", description="Query mode.")
    text: str | None = Field(None, max_length=2000, description="Caption; needed by 'hybrid'.")
    alpha: float | None = Field(
        None, ge=0.0, le=1.0, description="Image weight of the hybrid score; default: manifest's."
    )
    probe_weight: float | None = Field(
        None,
        ge=0.0,
        description="Mode 'probe': weight of the label agreement; default: manifest's.",
    )
    labels_any: list[str] = Field(default_factory=list, description="Items with any of these.")
    labels_all: list[str] = Field(default_factory=list, description="Items with all of these.")
    zones: list[str] = Field(default_factory=list, description="Items on one of these zones.")
    areas: list[str] = Field(default_factory=list, description="Items in one of these areas.")
    item: str | None = Field(
        None,
        min_length=1,
        max_length=200,
        description="Query by this indexed item instead of an image (it is left out of the hits).",
    )
    exclude_group: bool = Field(False, description="With `item`: leave out its group as well.")
    region: str | None = Field(
        None,
        max_length=4000,
        description="A region of the uploaded image to match against the indexed damage "
        "regions: a box `x,y,w,h` or a polygon `x1,y1 x2,y2 x3,y3 ...`, in the image's pixels "
        "after EXIF orientation. Needs an index built with regions; not with `item`.",
    )
    explain: Literal["heatmap"] | None = Field(
        None,
        description="`heatmap`: also where the photo looks like indexed damage (per-patch "
        "scores, a PNG overlay, candidate areas with their neighbour regions). Not with `item`.",
    )
    region_k: int | None = Field(
        None, ge=1, le=100, description="Indexed regions per region answer; default: `k`."
    )
    claim: str | None = Field(
        None,
        max_length=200,
        description="An id for the photos of one claim (one vehicle), echoed in the answer.",
    )

    @field_validator("text")
    @classmethod
    def _blank_is_none(cls, value: str | None) -> str | None:
        return value if value and value.strip() else None

    @classmethod
    def from_fields(cls: type[F], fields: dict[str, list[str]], *, default_k: int) -> F:
        """Multipart fields -> model: lists accept repeats and commas; scalars take the last."""
        data: dict[str, Any] = {"k": default_k}
        for name, values in fields.items():
            if name in _LIST_FIELDS:
                data[name] = [p.strip() for v in values for p in v.split(",") if p.strip()]
            elif values and values[-1].strip() != "":
                data[name] = values[-1].strip() if name != "text" else values[-1]
        return cls.model_validate(data)

    def query(self) -> Query:
        """The plain query the service takes (the form stays at the HTTP boundary)."""
        return Query(
            k=self.k,
            mode=self.mode,
            text=self.text,
            alpha=self.alpha,
            probe_weight=self.probe_weight,
            labels_any=tuple(self.labels_any),
            labels_all=tuple(self.labels_all),
            zones=tuple(self.zones),
            areas=tuple(self.areas),
            item=self.item,
            exclude_group=self.exclude_group,
            region=None if self.region is None else parse_region(self.region),
            heatmap=self.explain == "heatmap",
            region_k=self.region_k,
        )


class ContextForm(QueryForm):
    """``POST /context``: the query fields plus how to render the context block."""

    language: Literal["en", "es"] = Field("en", description="Language of the context block.")
    max_examples: int = Field(5, ge=1, le=100, description="Cases listed in the block.")
    format: Literal["markdown", "text", "json", "messages"] = Field(
        "markdown", description="Block format; 'messages': also chat content parts with images."
    )
    # format=messages only: the neighbours' images in the content parts.
    image_urls: bool = Field(False, description="Thumbnail URLs instead of JPEG data URLs.")
    max_images: int = Field(5, ge=0, le=20, description="Neighbour images in the parts.")
    max_image_side: int = Field(512, ge=64, le=1024, description="Longer side of each image.")
    max_total_bytes: int = Field(
        2_000_000, ge=10_000, le=20_000_000, description="Bytes of all data URLs together."
    )


class ItemForm(BaseModel):
    """The form fields of one item of ``POST /items`` (besides its ``image`` file). With several
    images, each field is absent or given once per image, in the images' order."""

    model_config = ConfigDict(extra="forbid")

    id: str | None = Field(
        None,
        min_length=1,
        max_length=200,
        pattern=r"^[^/?#\s]+$",
        description="Item id; default: from the image's bytes.",
    )
    labels: str = Field(
        "",
        max_length=2000,
        description="Verified labels, comma-separated, each `label` or `label:count` (any "
        "spelling the taxonomy knows); empty: no damage.",
    )
    zone: str | None = Field(None, max_length=200, description="Vehicle zone (id, number, name).")
    description: str | None = Field(
        None, max_length=2000, description="Description; default: from the template."
    )
    group: str | None = Field(
        None, max_length=200, description="What must not be split (e.g. a vehicle); default: id."
    )
    allow_duplicate: bool = Field(
        False, description="Add near-duplicates of indexed photos anyway (once per request)."
    )

    @classmethod
    def per_image(cls, fields: dict[str, list[str]], count: int) -> list[ItemForm]:
        """Multipart fields -> one form per image (each field given 0 or ``count`` times)."""
        unknown = set(fields) - set(cls.model_fields)
        if unknown:
            raise BadParameterError(f"unknown form field(s): {', '.join(sorted(unknown))}")
        fields = dict(fields)
        allow = fields.pop("allow_duplicate", [])  # one per request, not per image
        shared = {"allow_duplicate": allow[-1]} if allow else {}
        for name, values in fields.items():
            if len(values) != count:
                raise BadParameterError(
                    f"{name}: given {len(values)} time(s) for {count} image(s); give it once per "
                    "image, in the images' order, or not at all"
                )
        return [
            cls.model_validate({**shared, **{n: v[i] for n, v in fields.items() if v[i].strip()}})
            for i in range(count)
        ]

    def label_entries(self) -> tuple[str, ...]:
        return tuple(p.strip() for p in self.labels.split(",") if p.strip())


def item_out(item: CatalogueItem, taxonomy: Taxonomy, *, root_path: str = "") -> ItemOut:
    labels = []
    for label_id, count in item.labels.items():
        lb = taxonomy.label(label_id)
        labels.append(LabelOut(id=lb.id, count=count, name=lb.en, name_es=lb.es, coarse=lb.coarse))
    return ItemOut(
        id=item.id,
        labels=labels,
        zone=item.zone,
        area=item.area,
        description=item.description,
        group=item.group,
        image_url=item_image_url(item.id, root_path),
        defects=item.defects,
    )


def item_image_url(item_id: str, root_path: str = "") -> str:
    return f"{root_path}/items/{quote(item_id, safe='')}/image"


def hit_out(hit: Hit, *, root_path: str = "") -> HitOut:
    return HitOut(
        id=hit.id,
        rank=hit.rank,
        score=round(hit.score, 6),
        labels=[
            LabelOut(
                id=lb.id, count=lb.count, name=lb.name.en, name_es=lb.name.es, coarse=lb.coarse
            )
            for lb in hit.labels
        ],
        zone=hit.zone,
        zone_name=hit.zone_name.en,
        area=hit.area,
        description=hit.description,
        image_url=item_image_url(hit.id, root_path),
    )


def milliseconds(timings: dict[str, float]) -> dict[str, float]:
    return {stage: round(seconds * 1000.0, 3) for stage, seconds in timings.items()}


def multipart_openapi(form: type[BaseModel]) -> dict[str, Any]:
    """OpenAPI request body for a route that parses its multipart body itself (to stream it)."""
    schema = form.model_json_schema()
    properties: dict[str, Any] = {"image": {"type": "string", "format": "binary"}}
    for name, prop in schema["properties"].items():
        properties[name] = _without_null(prop)
    body: dict[str, Any] = {"type": "object", "required": ["image"], "properties": properties}
    if "item" in properties:  # a query by an indexed item instead: an image or an item
        # never both; a region or a heatmap needs the photo's patch tokens
        excluded = [n for n in ("image", "region", "explain") if n in properties]
        by_item = {"required": ["item"], "not": {"anyOf": [{"required": [n]} for n in excluded]}}
        by_image = {"required": ["image"], "not": {"required": ["item"]}}
        body.update(required=[], oneOf=[by_image, by_item])
    return {
        "requestBody": {
            "required": True,
            "content": {"multipart/form-data": {"schema": body}},
        }
    }


def _without_null(prop: dict[str, Any]) -> dict[str, Any]:
    """``anyOf: [X, null]`` -> X: a form field is absent or a string, never JSON null."""
    branches = [b for b in prop.get("anyOf", ()) if b.get("type") != "null"]
    if len(branches) != 1:
        return prop
    rest = {key: value for key, value in prop.items() if key not in ("anyOf", "default")}
    return {**branches[0], **rest}


ERROR_RESPONSES: dict[int | str, dict[str, Any]] = {
    status: {"model": ErrorResponse, "description": what}
    for status, what in (
        (401, "Missing or invalid API key"),
        (408, "Upload not received within the request timeout"),
        (413, "Upload or image too large"),
        (415, "Not multipart, or not an image"),
        (422, "Invalid image or parameter"),
        (429, "Overloaded (Retry-After)"),
        (503, "Not ready (Retry-After)"),
        (504, "Request timed out"),
    )
}
