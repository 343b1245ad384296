"""The index manifest: one typed, versioned, validated schema (DESIGN §2.4).

:class:`ManifestBody` is what a writer describes (models, template, fusion, taxonomy, dataset,
failed inputs, history); :class:`IndexManifest` adds what :mod:`.artifacts` fills in when it
writes (format version, created-at, counts, index specs, sha256 of every file). Only
:mod:`indexer.index.artifacts` knows the file names and reads or writes the manifest file.

Format versions: ``1`` was written untyped (an image model may carry ``model_id`` beside or
instead of ``id``); ``2`` is this schema; ``3`` adds ``manifest_sha256``, the sha256 of the
manifest's own canonical JSON (every field but itself; :func:`manifest_checksum`), so an edited
field (``fusion.alpha``, an index type, a dim, a model id...) is refused as a "manifest checksum"
mismatch. All validate through the same models (a ``model_id`` is read as ``id``); writers write
``3``. The checksum guards against edits and corruption, not against a forger (who can recompute
it). The image model may record ``weights_sha256`` (:func:`models.fingerprint.weights_sha256`),
compared at open time. Unknown keys inside the model sections are kept
(``extra="allow"``), so a newer encoder's extra ``info()`` fields do not break older readers.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterable, Mapping
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from indexer.errors import ArtifactError, ChecksumError
from indexer.index.faiss_store import INDEX_TYPES
from models.base import POOLINGS, ImageEncoderProtocol, TextEncoderProtocol
from models.description import TEMPLATE_VERSION
from models.taxonomy import Taxonomy

FORMAT_VERSION = 3
READABLE_VERSIONS = (1, 2, 3)
CHECKSUM_FIELD = "manifest_sha256"

__all__ = [
    "FORMAT_VERSION",
    "READABLE_VERSIONS",
    "FailedInput",
    "Fusion",
    "ImageModel",
    "IndexManifest",
    "IndexSpec",
    "LabelHeadSection",
    "ManifestBody",
    "Preprocessing",
    "StoreSpec",
    "TaxonomyRef",
    "TextModel",
    "describe_image_encoder",
    "describe_text_encoder",
    "manifest_checksum",
    "parse_manifest",
]


class _Open(BaseModel):
    """A section that keeps keys it does not know (recorded, never compared)."""

    model_config = ConfigDict(extra="allow", frozen=True)


class _Closed(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class Preprocessing(_Open):
    """How pixels were made: resize policy, longer side, patch, normalisation, interpolation."""

    resize: str | None = None
    image_size: int | None = Field(default=None, gt=0)
    patch_size: int | None = Field(default=None, gt=0)
    mean: tuple[float, float, float] | None = None
    std: tuple[float, float, float] | None = None
    interpolation: str | None = None


def _id_from_model_id(data: Any) -> Any:
    """Format 1 encoders recorded ``model_id``; the schema's name is ``id``."""
    if isinstance(data, dict) and "id" not in data and "model_id" in data:
        return {**{k: v for k, v in data.items() if k != "model_id"}, "id": data["model_id"]}
    if isinstance(data, dict) and "model_id" in data:
        return {k: v for k, v in data.items() if k != "model_id"}
    return data


class ImageModel(_Open):
    """The image encoder the vectors come from. Imported vectors may lack preprocessing."""

    id: str = Field(min_length=1)
    revision: str | None = None
    dtype: str | None = None
    pooling: str | None = None
    dim: int = Field(gt=0)
    preprocessing: Preprocessing | None = None
    weights_sha256: str | None = None  # of the checkpoint's weight files (absent: not compared)
    #: The backbone rule (``models.backbones``) and the ``config.model_type`` that ran.
    family: str | None = None
    model_type: str | None = None

    _normalise = model_validator(mode="before")(_id_from_model_id)

    @property
    def random_weights(self) -> bool:
        """Randomly initialised weights (``models.testing``'s tiny checkpoints): vectors without
        meaning. Recorded as ``random_init``; older demo indexes by the tiny folder's name."""
        return bool((self.model_extra or {}).get("random_init")) or "tiny-random" in self.id

    @model_validator(mode="after")
    def _known_pooling(self) -> ImageModel:
        if self.pooling is not None and self.pooling not in POOLINGS:
            raise ValueError(f"pooling must be one of {POOLINGS}, got {self.pooling!r}")
        return self


class TextModel(_Open):
    """The text encoder of the descriptions (and of hybrid/rerank queries)."""

    id: str = Field(min_length=1)
    dim: int = Field(gt=0)

    _normalise = model_validator(mode="before")(_id_from_model_id)


class Fusion(_Closed):
    """``fused = fuse(image, text, alpha)``; the default query weight too."""

    alpha: float = Field(ge=0.0, le=1.0)
    image_dim: int = Field(gt=0)
    text_dim: int = Field(gt=0)


class TaxonomyRef(_Closed):
    name: str
    version: str
    no_damage_id: str = "no_damage"


class IndexSpec(_Closed):
    """One FAISS index file: its type and build parameters; FAISS id = catalogue row."""

    file: str
    type: str
    params: dict[str, Any] = Field(default_factory=dict)
    metric: Literal["inner_product"] = "inner_product"
    dim: int = Field(gt=0)

    @model_validator(mode="after")
    def _known_type(self) -> IndexSpec:
        if self.type not in INDEX_TYPES:
            raise ValueError(f"index type must be one of {INDEX_TYPES}, got {self.type!r}")
        return self


class StoreSpec(_Closed):
    """Where the vectors are searched: FAISS files in the directory (``faiss``, the default, what
    a manifest without this section means) or a Milvus collection pair (``milvus``: ``uri``
    without secrets, ``collection`` the base name of ``<collection>_image`` / ``_fused`` and,
    with regions, ``_region``)."""

    kind: Literal["faiss", "milvus"] = "faiss"
    uri: str | None = None
    collection: str | None = None
    metric: Literal["inner_product"] = "inner_product"
    index_type: str = "flat"
    params: dict[str, Any] = Field(default_factory=dict)


class FailedInput(_Closed):
    """An input that could not be indexed (the file and why)."""

    file: str
    reason: str


class LabelHeadSection(_Open):
    """The label head (:mod:`indexer.index.catalogue_head`): fitted, or why not; probe's defaults.

    A fitted head also records what :meth:`indexer.labels.head.LabelHead.describe` says (model,
    calibration, reg, folds, training size, groups, positives, fit seconds).
    """

    status: Literal["fitted", "unavailable"]
    reason: str | None = None
    labels: tuple[str, ...] = ()
    probe_weight: float = Field(default=1.0, ge=0.0)
    probe_candidates: int = Field(default=50, gt=0)


class RegionSection(_Closed):
    """The region table (:mod:`indexer.index.regions`): its kind (vector space), dim, count, how
    its vectors were made, the file of its index, and the "where is the damage" calibration."""

    kind: Literal["patches", "crops", "imported"]
    dim: int = Field(ge=0)
    count: int = Field(ge=0)
    pooling: str
    file: str
    background: int = Field(default=0, ge=0)  # background patches in the bank
    calibration: dict[str, Any] = Field(default_factory=dict)


class ManifestBody(_Closed):
    """What the writer of an index describes; :class:`IndexManifest` adds the rest."""

    image_model: ImageModel
    text_model: TextModel
    template_version: str
    fusion: Fusion
    taxonomy: TaxonomyRef
    dataset: dict[str, Any] = Field(default_factory=dict)  # catalogue.dataset_summary + source
    failed: tuple[FailedInput, ...] = ()
    history: tuple[dict[str, Any], ...] = ()
    label_head: LabelHeadSection | None = None  # None: an index written before the head


class IndexManifest(ManifestBody):
    """The whole manifest file as read back and validated."""

    format_version: int
    created_at: str
    vector_count: int = Field(ge=0)
    index: dict[Literal["image", "fused"], IndexSpec]
    files: dict[str, str]
    manifest_sha256: str | None = None  # required from format 3: manifest_checksum(the rest)
    store: StoreSpec = Field(default_factory=StoreSpec)
    regions: RegionSection | None = None  # None: an index without regions

    @model_validator(mode="after")
    def _readable(self) -> IndexManifest:
        if self.format_version not in READABLE_VERSIONS:
            raise ValueError(
                f"format_version {self.format_version!r}, this reader reads {READABLE_VERSIONS}"
            )
        if set(self.index) != {"image", "fused"}:
            raise ValueError(f"index must list 'image' and 'fused', got {sorted(self.index)}")
        if self.format_version >= 3 and not self.manifest_sha256:
            raise ValueError(f"format_version {self.format_version} requires {CHECKSUM_FIELD}")
        return self

    @property
    def body(self) -> ManifestBody:
        """The descriptive part, to hand back to a writer."""
        return ManifestBody.model_validate(self.model_dump(include=set(ManifestBody.model_fields)))

    def as_json(self) -> dict[str, Any]:
        """Plain JSON types (what the manifest file holds and ``/info`` returns)."""
        return self.model_dump(mode="json", exclude_none=False)


def manifest_checksum(data: Mapping[str, Any]) -> str:
    """sha256 of a manifest's canonical JSON (sorted keys, no spaces, UTF-8), without its own
    ``manifest_sha256``: what a writer records and every reader recomputes."""
    body = {k: v for k, v in data.items() if k != CHECKSUM_FIELD}
    text = json.dumps(
        body, sort_keys=True, separators=(",", ":"), ensure_ascii=False, allow_nan=False
    )
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


def parse_manifest(data: Any, *, where: str) -> IndexManifest:
    """Validate parsed JSON into an :class:`IndexManifest` (and check its own checksum).

    Raises:
        ArtifactError: naming the first field that is missing or out of range, and ``where``.
        ChecksumError: the recorded ``manifest_sha256`` is not that of the content: a field was
            edited after the manifest was written.
    """

    if isinstance(data, dict) and data.get("format_version") not in READABLE_VERSIONS:
        raise ArtifactError(
            f"{where}: format_version {data.get('format_version')!r}, this reader reads "
            f"{READABLE_VERSIONS}"
        )
    try:
        manifest = IndexManifest.model_validate(data)
    except ValidationError as exc:
        first = exc.errors()[0]
        loc = ".".join(str(p) for p in first["loc"]) or "(root)"
        raise ArtifactError(f"{where}: invalid field {loc}: {first['msg']}") from exc
    recorded = manifest.manifest_sha256
    if recorded is not None and recorded != manifest_checksum(data):
        raise ChecksumError(
            f"{where}: manifest checksum mismatch: a field was edited after the index was "
            "written (fusion, index, models, counts...); rebuild the index rather than edit it"
        )
    return manifest


def describe_image_encoder(encoder: ImageEncoderProtocol) -> ImageModel:
    """The manifest's description of a loaded image encoder (what a build records)."""
    return ImageModel.model_validate({**encoder.info(), "id": encoder.model_id, "dim": encoder.dim})


def describe_text_encoder(encoder: TextEncoderProtocol) -> TextModel:
    """The manifest's description of a loaded text encoder."""
    return TextModel.model_validate({**encoder.info(), "id": encoder.model_id, "dim": encoder.dim})


def manifest_body(
    *,
    image_model: ImageModel,
    text_model: TextModel,
    alpha: float,
    taxonomy: Taxonomy,
    dataset: dict[str, Any],
    failed: Iterable[FailedInput] = (),
    history: Iterable[dict[str, Any]] = (),
) -> ManifestBody:
    """The descriptive part of a new index's manifest (the writer adds counts, indexes, files)."""
    return ManifestBody(
        image_model=image_model,
        text_model=text_model,
        template_version=TEMPLATE_VERSION,
        fusion=Fusion(alpha=alpha, image_dim=image_model.dim, text_dim=text_model.dim),
        taxonomy=TaxonomyRef(
            name=taxonomy.name, version=taxonomy.version, no_damage_id=taxonomy.no_damage_id
        ),
        dataset=dataset,
        failed=tuple(failed),
        history=tuple(history),
    )
