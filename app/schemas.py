"""Pydantic models of the HTTP boundary: form fields in, JSON out. Nothing inside app uses them."""

from __future__ import annotations

from typing import Any, Literal, TypeVar
from urllib.parse import quote

from pydantic import BaseModel, ConfigDict, Field, field_validator

from indexer.hits import Hit

_LIST_FIELDS = ("labels_any", "labels_all", "zones", "areas")
F = TypeVar("F", bound="QueryForm")


class QueryForm(BaseModel):
    """The form fields of ``POST /retrieve`` (besides the ``image`` file)."""

    model_config = ConfigDict(extra="forbid")

    k: int = Field(5, ge=1, le=100, description="Number of neighbours.")
    mode: Literal["image", "hybrid", "rerank"] = Field("image", description="Query mode.")
    text: str | None = Field(None, max_length=2000, description="Caption; needed by 'hybrid'.")
    alpha: float | None = Field(
        None, ge=0.0, le=1.0, description="Image weight of the hybrid score; default: manifest's."
    )
    labels_any: list[str] = Field(default_factory=list, description="Items with any of these.")
    labels_all: list[str] = Field(default_factory=list, description="Items with all of these.")
    zones: list[str] = Field(default_factory=list, description="Items on one of these zones.")
    areas: list[str] = Field(default_factory=list, description="Items in one of these areas.")

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


class ContextForm(QueryForm):
    """``POST /context``: the query fields plus how to render the context block."""

    language: Literal["en", "es"] = Field("en", description="Language of the context block.")
    max_examples: int = Field(5, ge=1, le=100, description="Cases listed in the block.")
    format: Literal["markdown", "text", "json"] = Field("markdown", description="Block format.")


class LabelOut(BaseModel):
    id: str = Field(description="Canonical label id.")
    count: int = Field(description="Instances of this label on the item.")
    name: str = Field(description="English display name.")
    name_es: str = Field(description="Spanish display name.")
    coarse: str = Field(description="Coarse (benchmark) label.")


class HitOut(BaseModel):
    id: str
    rank: int = Field(description="1 = most similar.")
    score: float = Field(description="Cosine similarity of the searched vectors, -1..1.")
    labels: list[LabelOut]
    zone: str
    zone_name: str
    area: str
    description: str
    image_url: str = Field(description="Thumbnail of the indexed image (GET).")


class RetrieveResponse(BaseModel):
    hits: list[HitOut]
    mode: str
    timings: dict[str, float] = Field(description="Milliseconds per pipeline stage.")
    pseudo_text: str | None = Field(None, description="Consensus description used by 'rerank'.")


class CaseLabelOut(BaseModel):
    id: str
    count: int
    name: str = Field(description="Display name in the requested language.")


class CaseOut(BaseModel):
    rank: int
    id: str
    similarity_pct: int = Field(description="Cosine similarity x 100, rounded.")
    score: float
    labels: list[CaseLabelOut]
    zone: str
    zone_name: str
    area: str
    area_name: str
    description: str = Field(description="Template description in the requested language.")
    image_url: str


class LabelVoteOut(BaseModel):
    label: str
    name: str
    support: int = Field(description="Neighbours carrying the label.")
    neighbours: int = Field(description="Neighbours voting.")
    weighted: float = Field(description="Share of the similarity weight carrying the label, 0..1.")
    predicted: bool = Field(description="The vote rule keeps the label (>= half the neighbours).")


class ContextResponse(BaseModel):
    context: str = Field(description="The block to paste into the VLM prompt.")
    format: str
    language: str
    cases: list[CaseOut]
    label_votes: list[LabelVoteOut]
    mode: str
    timings: dict[str, float] = Field(description="Milliseconds per pipeline stage.")


class ErrorResponse(BaseModel):
    error: str
    error_type: str


class HealthResponse(BaseModel):
    status: Literal["ok"] = "ok"


class ReadyResponse(BaseModel):
    ready: bool
    status: str = Field(description="loading | warming_up | ready | failed | stopping")
    reason: str | None = None


class InfoResponse(BaseModel):
    manifest: dict[str, Any]
    runtime: dict[str, Any]


def item_image_url(item_id: str, root_path: str = "") -> str:
    return f"{root_path}/items/{quote(item_id, safe='')}/image"


def hit_out(hit: Hit, *, root_path: str = "") -> HitOut:
    return HitOut(
        id=hit.id,
        rank=hit.rank,
        score=round(hit.score, 6),
        labels=[
            LabelOut(id=lb.id, count=lb.count, name=lb.en, name_es=lb.es, coarse=lb.coarse)
            for lb in hit.labels
        ],
        zone=hit.zone,
        zone_name=hit.zone_name,
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
    return {
        "requestBody": {
            "required": True,
            "content": {
                "multipart/form-data": {
                    "schema": {"type": "object", "required": ["image"], "properties": properties}
                }
            },
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
