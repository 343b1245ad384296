"""The wire schemas of the visrag HTTP API: the one definition, shared by the service and clients.

The service (``app/``) answers with these models; ``VisragClient`` parses its answers into them.
Only pydantic: importing this module pulls neither torch nor FAISS.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import BaseModel, Field

QueryMode = Literal["image", "hybrid", "rerank", "probe"]
ContextFormat = Literal["markdown", "text", "json", "messages"]
Language = Literal["en", "es"]


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


class LabelEstimateOut(BaseModel):
    label: str
    name: str = Field(description="Display name (English in /retrieve, the request's in /context).")
    probability: float = Field(
        description="The label head's calibrated probability that the image carries the label: "
        "an estimate from a model trained on the indexed cases, not a fact."
    )
    support: int = Field(description="Neighbours carrying the label.")
    neighbours: int = Field(description="Neighbours returned.")


class LabelSetMemberOut(BaseModel):
    label: str
    name: str = Field(description="Display name (English in /retrieve, the request's in /context).")
    probability: float = Field(description="The label head's calibrated probability.")


class LabelSetOut(BaseModel):
    labels: list[LabelSetMemberOut] = Field(
        description="The set's labels, most probable first (empty: no damage label)."
    )
    coverage: float = Field(
        description="1 - alpha: over photos like the indexed cases, a set built this way contains "
        "ALL of a photo's true labels with at least this probability (conformal, over photos; "
        "not a certainty about this photo)."
    )
    every_label: bool = Field(
        description="Too few indexed cases for this coverage: the set is every label."
    )
    statement: str = Field(description="The set and its guarantee in words.")


class NoveltyOut(BaseModel):
    score: float = Field(description="Mean cosine of the query's 5 nearest indexed images.")
    p_value: float = Field(
        description="Share of indexed photos that are no closer to the other indexed photos than "
        "this photo is to them: small means no indexed case is close to this photo."
    )
    flag: bool = Field(description="p_value below the service's novelty threshold.")
    threshold: float = Field(description="The service's novelty threshold.")
    note: str | None = Field(None, description="When flagged, the warning in words.")


LabelEstimates = Annotated[
    list[LabelEstimateOut],
    Field(
        description="How likely each label is (estimates, not facts): the leading estimate (the "
        "label whose evidence stands out most against its frequency) always, then the others at "
        "or above the service's threshold (empty: no label head)."
    ),
]
LabelSetSignal = Annotated[
    LabelSetOut | None,
    Field(description="Conformal label set with its coverage guarantee (null: no label head)."),
]
NoveltySignal = Annotated[
    NoveltyOut | None,
    Field(description="How close the nearest indexed cases are (null: fewer than two photos)."),
]


class RetrieveResponse(BaseModel):
    hits: list[HitOut]
    mode: str
    timings: dict[str, float] = Field(description="Milliseconds per pipeline stage.")
    pseudo_text: str | None = Field(None, description="Consensus description used by 'rerank'.")
    label_estimates: LabelEstimates = Field(default_factory=list)
    label_set: LabelSetSignal = None
    novelty: NoveltySignal = None


class CaseLabelOut(BaseModel):
    id: str
    count: int
    name: str = Field(description="Display name in the requested language.")
    phrase: str | None = Field(
        None,
        description="The count and the label as the context block says them, in the requested "
        "language: '2 dents', '1 pieza faltante'.",
    )


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


class ImageURL(BaseModel):
    url: str = Field(description="A data:image/jpeg;base64 URL or an http(s) thumbnail URL.")


class TextPart(BaseModel):
    type: Literal["text"] = "text"
    text: str


class ImagePart(BaseModel):
    type: Literal["image_url"] = "image_url"
    image_url: ImageURL


ContentPart = Annotated[TextPart | ImagePart, Field(discriminator="type")]


class ContextResponse(BaseModel):
    context: str = Field(description="The block to paste into the VLM prompt.")
    format: str
    language: str
    cases: list[CaseOut]
    label_votes: list[LabelVoteOut]
    label_estimates: LabelEstimates = Field(default_factory=list)
    label_set: LabelSetSignal = None
    novelty: NoveltySignal = None
    mode: str
    timings: dict[str, float] = Field(description="Milliseconds per pipeline stage.")
    messages: list[ContentPart] | None = Field(
        None,
        description="format=messages: OpenAI-compatible chat content parts (instruction, each "
        "neighbour's image and labels, the label votes), for a user message's 'content'.",
    )

    def content_parts(self) -> list[dict[str, Any]]:
        """``messages`` as plain dicts, ready for a chat-completions request body."""
        return [part.model_dump() for part in self.messages or ()]


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


class ItemOut(BaseModel):
    """One catalogue item as stored (``GET /items/{id}``)."""

    id: str
    labels: list[LabelOut]
    zone: str
    area: str
    description: str
    group: str
    image_url: str = Field(description="The indexed image (GET).")
    defects: dict[str, Any] = Field(default_factory=dict, description="Defects summary.")


class ItemsPage(BaseModel):
    """A page of ``GET /items``, in id order."""

    items: list[ItemOut]
    total: int = Field(description="Items matching the filters, over every page.")
    next_after: str | None = Field(
        None, description="Pass as `after` for the next page; null on the last."
    )


class ItemsWritten(BaseModel):
    """What a catalogue write did (``POST /items``, ``PUT /items/{id}``)."""

    ids: list[str] = Field(description="The written items' ids, in request order.")
    generation: int = Field(description="The index generation the service now serves.")
    count: int = Field(description="Items in the index after the write.")
