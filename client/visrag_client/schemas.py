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


class PositionOut(BaseModel):
    en: str = Field(description="Where the box lies in the photo, in English.")
    es: str = Field(description="The same in Spanish.")


class RegionHitOut(BaseModel):
    """One indexed damage region: ``box`` and ``polygon`` in its indexed image's pixels."""

    id: str
    rank: int = Field(description="1 = most similar.")
    score: float = Field(description="Cosine similarity of the region vectors, -1..1.")
    item: str = Field(description="The catalogue item (photo) the region belongs to.")
    labels: list[LabelOut] = Field(description="The region's verified labels.")
    box: list[float] = Field(description="x, y, w, h in the indexed image's pixels.")
    polygon: list[list[float]] = Field(description="[[x, y], ...] in the indexed image's pixels.")
    members: int = Field(description="Defects the region covers (> 1: a cluster of near ones).")
    zone: str
    zone_name: str
    crop_url: str = Field(description="A JPEG crop of the region, box plus a margin (GET).")


class RegionOut(BaseModel):
    """The query's region and the indexed regions most like it."""

    box: list[float] = Field(description="x, y, w, h of the query region, uploaded image pixels.")
    position: PositionOut
    hits: list[RegionHitOut]


class DamageAreaOut(BaseModel):
    """A connected area of the photo that resembles indexed damage, above the threshold."""

    box: list[float] = Field(description="x, y, w, h in the uploaded image's pixels.")
    position: PositionOut
    patches: int = Field(description="Patches of the area.")
    peak: float = Field(description="The best patch's damage score.")
    votes: list[LabelVoteOut] = Field(description="The neighbour regions' labels, voted.")
    neighbours: list[RegionHitOut] = Field(description="The indexed regions most like the area.")


class HeatmapOut(BaseModel):
    """Where the photo looks like indexed damage, per patch of a rows x cols grid over it."""

    rows: int
    cols: int
    width: float = Field(description="The uploaded image's width after EXIF orientation (px).")
    height: float = Field(description="Its height (px).")
    scores: list[list[float]] = Field(
        description="Per patch (rows of cols), best cosine to an indexed damage region minus "
        "best cosine to an indexed background patch: above 0, more like damage than like "
        "undamaged surface."
    )
    labels: list[list[str]] = Field(description="Per patch, its nearest region's first label.")
    peak: list[float] = Field(description="x, y of the best patch's centre (px).")
    peak_hit: RegionHitOut | None = Field(None, description="The region most like the peak.")
    threshold: float | None = Field(
        None, description="The catalogue's calibrated threshold (null: none, then no areas)."
    )
    calibration: dict[str, Any] = Field(description="How the threshold was fitted.")
    areas: list[DamageAreaOut] = Field(description="Areas above the threshold, strongest first.")
    overlay_png: str = Field(
        description="The scores as a PNG overlay (a data:image/png;base64 URL) to stretch over "
        "the whole photo."
    )


class LabelEvidenceOut(BaseModel):
    """Several photos of one claim: which photos support one label."""

    label: str
    name: str = Field(description="Display name (English in /retrieve, the request's in /context).")
    photos: list[int] = Field(description="The photos (1-based, in request order) supporting it.")
    support: int = Field(description="Neighbours carrying the label, over every photo.")
    neighbours: int = Field(description="Neighbours returned, over every photo.")
    probability: float | None = Field(
        None, description="The label head's highest probability over the photos (an estimate)."
    )


RegionAnswer = Annotated[
    RegionOut | None, Field(description="The query named a region: its nearest indexed regions.")
]
HeatmapAnswer = Annotated[
    HeatmapOut | None, Field(description="explain=heatmap: where the photo looks like damage.")
]
Evidence = Annotated[
    list[LabelEvidenceOut] | None,
    Field(description="Several photos: the pooled label evidence, which photo supports which."),
]


class PhotoOut(BaseModel):
    """One photo of a several-photo ``/retrieve``: its own neighbours, signals and regions."""

    photo: int = Field(description="1-based, in request order.")
    hits: list[HitOut]
    label_votes: list[LabelVoteOut]
    label_estimates: LabelEstimates = Field(default_factory=list)
    label_set: LabelSetSignal = None
    novelty: NoveltySignal = None
    region: RegionAnswer = None
    heatmap: HeatmapAnswer = None


class RetrieveResponse(BaseModel):
    hits: list[HitOut]
    mode: str
    timings: dict[str, float] = Field(description="Milliseconds per pipeline stage.")
    pseudo_text: str | None = Field(None, description="Consensus description used by 'rerank'.")
    label_estimates: LabelEstimates = Field(default_factory=list)
    label_set: LabelSetSignal = None
    novelty: NoveltySignal = None
    region: RegionAnswer = None
    heatmap: HeatmapAnswer = None
    claim: str | None = Field(None, description="The request's claim id.")
    photos: list[PhotoOut] | None = Field(
        None,
        description="Several photos only: each photo's answer. The top-level hits are then the "
        "photos' neighbours pooled (an item's best score), the estimates each label's highest "
        "probability; label_set and novelty are per photo.",
    )
    evidence: Evidence = None


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


class ContextPhotoOut(BaseModel):
    """One photo of a several-photo ``/context``: its cases, votes and regions."""

    photo: int = Field(description="1-based, in request order.")
    cases: list[CaseOut]
    label_votes: list[LabelVoteOut]
    region: RegionAnswer = None
    heatmap: HeatmapAnswer = None


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
        "neighbour's image and labels, the label votes), for a user message's 'content'. With "
        "a region or explain=heatmap, crops of the matched indexed regions instead of whole "
        "photos.",
    )
    region: RegionAnswer = None
    heatmap: HeatmapAnswer = None
    claim: str | None = Field(None, description="The request's claim id.")
    photos: list[ContextPhotoOut] | None = Field(
        None, description="Several photos only: each photo's cases and regions."
    )
    evidence: Evidence = None

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
