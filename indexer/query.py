"""What a retrieval returns, display-ready, and the filters a query may carry.

A :class:`RetrievalResult` is everything a renderer needs: hits whose labels, zone and area carry
their display names in every served language (resolved once, from the taxonomy, by the
Retriever), the returned hits' label votes (tallied once, by :mod:`indexer.retrieval.votes`),
the label head's estimates and conformal label set, the query's novelty, the mode that ranked
the hits and the filter that chose the candidates (named, so the renderer can say what chose
the cases).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Literal

from models.errors import VisragError

QueryMode = Literal["image", "hybrid", "rerank", "probe"]
QUERY_MODES: tuple[str, ...] = ("image", "hybrid", "rerank", "probe")


class QueryError(VisragError):
    """A query that cannot be answered as asked (bad mode, missing text for hybrid, bad filter)."""


@dataclass(frozen=True)
class Filters:
    """Restrict a search to catalogue items; applied inside the index so k results still come back.

    ``labels_any``: item has at least one of these canonical labels; ``labels_all``: all of them;
    ``zones`` / ``areas``: item's zone / zone area is one of these. Empty means no restriction.
    """

    labels_any: tuple[str, ...] = ()
    labels_all: tuple[str, ...] = ()
    zones: tuple[str, ...] = ()
    areas: tuple[str, ...] = ()

    def __bool__(self) -> bool:
        return bool(self.labels_any or self.labels_all or self.zones or self.areas)


@dataclass(frozen=True)
class Name:
    """A display name in each language the service speaks."""

    en: str
    es: str

    def get(self, language: str) -> str:
        """The name in ``language``; English for any language but Spanish."""
        return self.es if language == "es" else self.en


@dataclass(frozen=True)
class LabelCount:
    id: str
    count: int
    name: Name
    coarse: str
    phrase: Name | None = None  # the count with the taxonomy's counted form: "1 pieza faltante"


@dataclass(frozen=True)
class Hit:
    """One neighbour: cosine score in [-1, 1] (of the vectors searched), rank from 1."""

    id: str
    rank: int
    score: float
    labels: tuple[LabelCount, ...]
    zone: str
    zone_name: Name
    area: str
    area_name: Name
    summary: Name  # the template description of its labels on its zone (models.description)
    description: str  # the catalogue's description of the item
    image: str  # reference to the indexed image (path relative to the dataset root, or as given)
    group: str = ""


@dataclass(frozen=True)
class LabelVote:
    """The returned neighbours' vote for one label, by the one rule of
    :mod:`indexer.retrieval.votes`."""

    label: str
    name: Name
    support: int  # neighbours carrying the label
    neighbours: int  # neighbours voting
    weighted: float  # their share of the similarity weight, 0..1
    predicted: bool  # the rule keeps it: at least half of the neighbours (or the top vote)


@dataclass(frozen=True)
class LabelEstimate:
    """The label head's calibrated probability that the query carries ``label`` (an estimate)."""

    label: str
    name: Name
    probability: float


FilterField = Literal["labels_any", "labels_all", "zones", "areas"]


@dataclass(frozen=True)
class FilterTerm:
    """One restriction of a filtered query, display-ready: the :class:`Filters` field, the
    canonical ids it allows and their names."""

    field: FilterField
    ids: tuple[str, ...]
    names: tuple[Name, ...]


@dataclass(frozen=True)
class LabelSet:
    """A conformal label set (:mod:`indexer.labels.conformal`): over photos like the indexed
    cases, a set built this way holds ALL of a photo's true labels with probability >=
    ``coverage``. A guarantee over such photos, never a certainty about one photo."""

    labels: tuple[LabelEstimate, ...]  # the members, most probable first (empty: no damage label)
    coverage: float  # 1 - alpha
    every_label: bool = False  # too few indexed cases for this coverage: the set is every label


@dataclass(frozen=True)
class Novelty:
    """How close the query's nearest indexed cases are (:mod:`indexer.retrieval.novelty`)."""

    score: float  # mean cosine of the nearest image vectors
    p_value: float  # share of indexed photos no closer to the others; small: no close case


@dataclass(frozen=True)
class QueryPatches:
    """What a region query or a heatmap needs of the query image besides its vector: its final
    patch tokens ``(rows, cols, d)`` (from the same forward pass) and its size in pixels (after
    EXIF orientation), the frame of ``region`` and of every box returned."""

    tokens: Any  # numpy (rows, cols, d) float32
    width: float
    height: float
    region: tuple[tuple[float, float], ...] | None = None  # a box as 4 corners, or a polygon
    heatmap: bool = False


@dataclass(frozen=True)
class RegionHit:
    """One indexed damage region near a query region (or a damaged-looking area of the query):
    cosine of the region vectors, rank from 1. ``box`` and ``polygon`` are in the indexed
    image's pixels (after EXIF orientation); ``image`` as :attr:`Hit.image`."""

    id: str
    rank: int
    score: float
    item: str  # the catalogue item (image) the region belongs to
    labels: tuple[LabelCount, ...]  # one per label of the region (count: 1)
    box: tuple[float, float, float, float]  # x, y, w, h
    polygon: tuple[tuple[float, float], ...]
    members: int  # defects the region covers (> 1: a cluster of near defects)
    zone: str
    zone_name: Name
    image: str
    group: str = ""


@dataclass(frozen=True)
class RegionAnswer:
    """A query region (``box`` in the query image's pixels, where it lies in words) and the
    indexed regions most like it."""

    box: tuple[float, float, float, float]
    position: Name  # "lower left of the photo"
    hits: tuple[RegionHit, ...]


@dataclass(frozen=True)
class DamageArea:
    """A connected area of query patches that resemble indexed damage regions (above the
    catalogue's calibrated threshold), with the indexed regions most like the whole area."""

    box: tuple[float, float, float, float]  # x, y, w, h in the query image's pixels
    position: Name
    patches: int
    peak: float  # the best patch's similarity
    votes: tuple[LabelVote, ...]  # the neighbour regions' labels, by the votes rule
    neighbours: tuple[RegionHit, ...]


@dataclass(frozen=True)
class Heatmap:
    """Where the query looks like indexed damage: per patch (row-major ``rows x cols``), its
    damage score (best cosine to an indexed region minus best cosine to an indexed background
    patch: above 0, more like damage than like undamaged surface) and that region's first label;
    the areas above the threshold; the peak patch's centre in the query image's pixels."""

    rows: int
    cols: int
    width: float  # the query image's size, pixels (after EXIF orientation)
    height: float
    scores: tuple[float, ...]
    labels: tuple[str, ...]
    peak: tuple[float, float]
    peak_hit: RegionHit | None  # the indexed region most like the peak patch
    threshold: float | None  # None: the catalogue gave no calibration (no areas then)
    calibration: dict[str, float | int | None]  # how the threshold was fitted (auroc, counts)
    areas: tuple[DamageArea, ...]


@dataclass(frozen=True)
class RetrievalResult:
    hits: tuple[Hit, ...]
    votes: tuple[LabelVote, ...]  # of every returned hit, by support
    mode: str
    timings: dict[str, float]  # stage -> seconds
    pseudo_text: str | None = None  # the consensus description used by mode 'rerank'
    # every label of the index's head, most probable first; () when the index has no head
    estimates: tuple[LabelEstimate, ...] = ()
    filters: tuple[FilterTerm, ...] = ()  # what restricted the candidates; () when nothing did
    label_set: LabelSet | None = None  # None when the index has no head
    novelty: Novelty | None = None  # None when the catalogue has no two photos to compare
    region: RegionAnswer | None = None  # the query named a region
    heatmap: Heatmap | None = None  # the query asked where the damage is
