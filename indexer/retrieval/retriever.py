"""The Retriever: query -> display-ready hits, their label votes and the head's estimates.

Shared by the service and the evaluation, so the evaluation measures exactly what the service
serves. A query is an image (or its precomputed vector) and, optionally, a caller-supplied text;
it never carries ground-truth labels. Every display name (labels, zones, areas, in en and es) is
resolved here, once, from the taxonomy, and the returned hits' label votes are tallied here, once
(:func:`indexer.retrieval.votes.hit_votes`): renderers read the :class:`RetrievalResult`.

Modes (DESIGN §3):
- ``image``: the image vector against the image index; score = cosine of the image vectors.
- ``hybrid``: ``fuse(image, text)`` against the fused index; score = a*cos_img + (1-a)*cos_txt.
- ``rerank``: image search for the top-N candidates, consensus labels of those neighbours ->
  template description -> text vector -> hybrid score over the candidates.
- ``probe``: the image top-N re-ranked by the label head's estimate
  (:mod:`indexer.retrieval.probe`); score = image cosine.

Every mode returns the head's label estimates and conformal label set when the index has one,
and the query's novelty (:mod:`indexer.retrieval.novelty`: how close its nearest indexed cases
are, against the catalogue's own leave-one-photo-out reference, computed once per Retriever).
"""

from __future__ import annotations

import functools
import threading
import time
from collections import OrderedDict
from collections.abc import Callable, Iterable
from dataclasses import replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import numpy.typing as npt

from indexer.index.stores import FilteringStore
from indexer.labels.conformal import DEFAULT_ALPHA, grid_threshold, label_set
from indexer.query import (
    QUERY_MODES,
    FilterField,
    Filters,
    FilterTerm,
    Heatmap,
    Hit,
    LabelCount,
    LabelEstimate,
    LabelSet,
    Name,
    Novelty,
    QueryError,
    QueryPatches,
    RegionAnswer,
    RegionHit,
    RetrievalResult,
)
from indexer.retrieval import novelty, probe, regions
from indexer.retrieval.votes import consensus, hit_votes
from models.base import ImageEncoderProtocol, TextEncoderProtocol
from models.description import describe
from models.embedding import embed_image, prepare_image
from models.fusion import fuse, l2_normalise
from models.taxonomy import Taxonomy

if TYPE_CHECKING:
    from PIL import Image

    from indexer.index.artifacts import Artifacts
    from indexer.index.catalogue import CatalogueItem
    from indexer.labels.head import LabelHead

Vector = npt.NDArray[np.float32]
Rows = npt.NDArray[np.int64]


class Retriever:
    """Answers queries against loaded artifacts with the configured encoders."""

    def __init__(
        self,
        artifacts: Artifacts,
        *,
        image_encoder: ImageEncoderProtocol | None,
        text_encoder: TextEncoderProtocol | None,
        taxonomy: Taxonomy,
        rerank_candidates: int = 20,
    ) -> None:
        self.artifacts = artifacts
        self.image_encoder = image_encoder
        self.text_encoder = text_encoder
        self.taxonomy = taxonomy
        self.rerank_candidates = rerank_candidates
        # Template texts repeat a lot (rerank pseudo-texts, gateway captions): cache their vectors.
        self._text_cache: OrderedDict[str, Vector] = OrderedDict()
        self._text_cache_size, self._text_lock = 4096, threading.Lock()
        # Items share few (labels, zone) pairs: resolve each one's names and descriptions once.
        # (A partial of the taxonomy, not a bound method: no cycle keeps an old index alive.)
        self._shown = functools.lru_cache(maxsize=4096)(functools.partial(_shown, taxonomy))
        self._novelty_ref: npt.NDArray[np.float64] | None = None
        self._novelty_lock = threading.Lock()

    @property
    def manifest(self) -> dict[str, Any]:
        return self.artifacts.manifest.as_json()

    @property
    def size(self) -> int:
        return len(self.artifacts.items)

    # -- full path: image in ---------------------------------------------------------------------
    def retrieve(
        self,
        image: Image.Image,
        *,
        k: int = 5,
        mode: str = "image",
        text: str | None = None,
        filters: Filters | None = None,
        alpha: float | None = None,
        probe_weight: float | None = None,
        set_alpha: float = DEFAULT_ALPHA,
        region: tuple[tuple[float, float], ...] | None = None,
        heatmap: bool = False,
    ) -> RetrievalResult:
        """Embed an image (:func:`models.embedding.embed_image`), then :meth:`search`; with a
        ``region`` (a polygon in the image's pixels) or ``heatmap``, its patch tokens from the
        same forward pass answer them too."""
        if self.image_encoder is None:
            raise QueryError("no image encoder is loaded: query with a vector instead")
        patches = None
        if region is None and not heatmap:
            vector, stages = embed_image(image, self.image_encoder)
        else:
            vector, patches, stages = embed_with_patches(image, self.image_encoder)
            patches = replace(patches, region=region, heatmap=heatmap)
        result = self.search(
            vector,
            k=k,
            mode=mode,
            text=text,
            filters=filters,
            alpha=alpha,
            probe_weight=probe_weight,
            set_alpha=set_alpha,
            patches=patches,
        )
        return replace(result, timings={**stages, **result.timings})

    # -- vector in -------------------------------------------------------------------------------
    def search(
        self,
        image_vector: npt.ArrayLike,
        *,
        k: int = 5,
        mode: str = "image",
        text: str | None = None,
        filters: Filters | None = None,
        exclude_ids: Iterable[str] = (),
        exclude_groups: Iterable[str] = (),
        alpha: float | None = None,
        encode_text: Callable[[str], Vector] | None = None,
        probe_weight: float | None = None,
        label_head: LabelHead | None = None,
        set_alpha: float = DEFAULT_ALPHA,
        patches: QueryPatches | None = None,
        region_k: int | None = None,
    ) -> RetrievalResult:
        """Rank catalogue items for an encoded image (precomputed vectors, leave-one-out, service).

        ``patches``: the query's patch tokens, with a region to answer (its ``region_k``, default
        ``k``, nearest indexed regions) and/or a heatmap to draw (:mod:`.regions`); the excluded
        items' regions are excluded too.

        ``exclude_ids`` / ``exclude_groups`` drop items (e.g. the query itself and crops of the same
        source photo) while still returning k hits when enough remain. ``encode_text`` (one text ->
        its unit vector) replaces this Retriever's text encoder for this call: the service passes
        one that runs the model on its inference thread. ``probe_weight`` overrides the head's;
        ``label_head`` replaces the stored head for this query (the leave-one-out evaluation's
        head fitted without the query's group, with its own weight).
        """
        if mode not in QUERY_MODES:
            raise QueryError(f"unknown mode {mode!r}; expected one of {', '.join(QUERY_MODES)}")
        if k < 1:
            raise QueryError(f"k must be >= 1, got {k}")
        if mode == "hybrid" and not (text and text.strip()):
            raise QueryError("mode 'hybrid' needs a text (e.g. a caption of the image)")
        a = self.artifacts.alpha if alpha is None else float(alpha)
        if not 0.0 <= a <= 1.0:
            raise QueryError(f"alpha must be in [0, 1], got {a}")
        if not 0.0 < set_alpha < 1.0:
            raise QueryError(f"set_alpha must be in (0, 1), got {set_alpha}")
        vec = l2_normalise(np.asarray(image_vector, dtype=np.float32).reshape(-1))
        dim = self.artifacts.image_vectors.shape[1]
        if vec.shape[0] != dim:
            raise QueryError(f"query vector has {vec.shape[0]} dimensions, the index has {dim}")
        allowed = self._allowed(filters)
        excluded = self._excluded(exclude_ids, exclude_groups)
        timings: dict[str, float] = {}
        pseudo_text = None
        head = probe.query_head(self.artifacts, label_head)
        weight, n_probe = probe.probe_settings(self.artifacts, head, probe_weight)

        t0 = time.perf_counter()
        proba = probe.query_proba(head, vec)
        image_scores = None  # this query's image-search cosines, reused by the novelty score
        if mode == "image":
            rows, scores = self._image_search(vec, k, allowed, excluded, filters)
            image_scores = scores
        elif mode == "hybrid":
            assert text is not None
            tvec = self._encode_text(text, timings, encode_text)
            t0 = time.perf_counter()
            rows, scores = self._hybrid_search(vec, tvec, a, k, allowed, excluded, filters)
        elif mode == "probe":
            n = max(n_probe, k)
            cand_rows, cand_scores = self._image_search(vec, n, allowed, excluded, filters)
            image_scores = cand_scores
            rows, scores = probe.probe_rank(
                self.artifacts, cand_rows, cand_scores, head, vec, k, weight
            )
        else:
            n = max(self.rerank_candidates, k)
            cand_rows, cand_scores = self._image_search(vec, n, allowed, excluded, filters)
            image_scores = cand_scores
            timings["search"] = time.perf_counter() - t0
            items = [self.artifacts.items[r] for r in cand_rows]
            agreed = consensus(items, cand_scores.tolist(), self.taxonomy)
            pseudo_text = describe(agreed.labels, agreed.zone, self.taxonomy)
            tvec = self._encode_text(pseudo_text, timings, encode_text)
            t0 = time.perf_counter()
            fused = a * cand_scores + (1 - a) * (self.artifacts.text_vectors[cand_rows] @ tvec)
            order = np.lexsort((cand_rows, -fused))[:k]
            rows, scores = cand_rows[order], fused[order]
            timings["rerank"] = time.perf_counter() - t0
            t0 = time.perf_counter()
        if "search" not in timings:
            timings["search"] = time.perf_counter() - t0
        hits = tuple(
            self._hit(int(r), float(s), rank)
            for rank, (r, s) in enumerate(zip(rows, scores, strict=True), 1)
        )
        estimates = probe.label_estimates(head, proba, self.taxonomy, vec)
        region, heat = self._regions(patches, region_k or k, excluded, timings)
        return RetrievalResult(
            hits,
            hit_votes(hits, self.taxonomy),
            mode,
            timings,
            pseudo_text,
            estimates,
            filter_terms(filters, self.taxonomy),
            _label_set(head, proba, estimates, set_alpha),
            self._novelty(vec, excluded, image_scores if allowed is None and not filters else None),
            region,
            heat,
        )

    def search_regions(
        self,
        vector: npt.ArrayLike,
        *,
        k: int,
        exclude_ids: Iterable[str] = (),
        exclude_groups: Iterable[str] = (),
    ) -> tuple[RegionHit, ...]:
        """The ``k`` indexed regions nearest a region vector (its own kind's space), the excluded
        items' regions left out: what a region query answers (the service's and the evaluation's
        ``--unit region``)."""
        regions.require_regions(self.artifacts)
        excluded = self._excluded(exclude_ids, exclude_groups)
        return regions.search_regions(
            self.artifacts,
            np.asarray(vector, np.float32),
            k,
            excluded_items=excluded,
            hit=self._region_hit,
        )

    def _regions(
        self,
        patches: QueryPatches | None,
        k: int,
        excluded: set[int],
        timings: dict[str, float],
    ) -> tuple[RegionAnswer | None, Heatmap | None]:
        if patches is None or (patches.region is None and not patches.heatmap):
            return None, None
        t0 = time.perf_counter()
        tokens = np.asarray(patches.tokens, np.float32)
        size = (patches.width, patches.height)
        region = heat = None
        if patches.region is not None:
            region = regions.region_answer(
                self.artifacts,
                tokens,
                size,
                patches.region,
                k,
                excluded_items=excluded,
                hit=self._region_hit,
            )
        if patches.heatmap:
            heat = regions.heatmap(
                self.artifacts,
                tokens,
                size,
                excluded_items=excluded,
                hit=self._region_hit,
                votes=lambda hits: hit_votes(hits, self.taxonomy),
            )
        timings["regions"] = time.perf_counter() - t0
        return region, heat

    def _region_hit(self, row: int, score: float, rank: int) -> RegionHit:
        table = self.artifacts.regions
        assert table is not None
        region = table.regions[row]
        item = self.artifacts.items[region.item]
        shown = self._shown(tuple((lb, 1) for lb in region.labels), item.zone)
        return RegionHit(
            id=region.id,
            rank=rank,
            score=max(-1.0, min(1.0, score)),
            item=item.id,
            labels=shown.labels,
            box=region.box,
            polygon=region.polygon,
            members=region.members,
            zone=shown.zone,
            zone_name=shown.zone_name,
            image=item.image,
            group=item.group,
        )

    def novelty_reference(self) -> npt.NDArray[np.float64]:
        """The catalogue's sorted leave-one-photo-out closeness (computed on first use, kept)."""
        with self._novelty_lock:
            if self._novelty_ref is None:
                groups = [it.group or it.id for it in self.artifacts.items]
                ref = np.empty(0)  # fewer than two photos: nothing to compare a query with
                if len(set(groups)) > 1:
                    ref = novelty.reference(self.artifacts.image_vectors, groups)
                self._novelty_ref = np.asarray(ref, np.float64)[np.isfinite(ref)]
            return self._novelty_ref

    def _novelty(
        self, vec: Vector, excluded: set[int], searched: npt.NDArray[np.float32] | None
    ) -> Novelty | None:
        """``searched``: the cosines of an unfiltered image search of this query already run (its
        top :data:`~indexer.retrieval.novelty.K` are the novelty neighbours; no second search)."""
        ref = self.novelty_reference()
        if searched is None or len(searched) < novelty.K:
            _, sims = self._image_search(vec, novelty.K, None, excluded, None)
        else:  # the same K cosines, in the order a search of K returns them
            sims = np.sort(np.asarray(searched))[::-1][: novelty.K]
        if not len(ref) or not len(sims):
            return None
        score = float(novelty.closeness(np.asarray(sims).reshape(1, -1))[0])
        return Novelty(round(score, 6), round(float(novelty.p_value([score], ref)[0]), 6))

    # -- catalogue -------------------------------------------------------------------------------
    def item(self, item_id: str) -> CatalogueItem | None:
        row = self.artifacts.row_of(item_id)
        return None if row is None else self.artifacts.items[row]

    def image_path(self, item_id: str) -> Path | None:
        """The indexed image file of a catalogue item (for thumbnails); None if unknown/missing."""
        item = self.item(item_id)
        if item is None or not item.image:
            return None
        path = self.artifacts.image_file(item)
        return path if path is not None and path.is_file() else None

    # -- internals -------------------------------------------------------------------------------
    def _encode_text(
        self, text: str, timings: dict[str, float], encode: Callable[[str], Vector] | None
    ) -> Vector:
        if encode is None and self.text_encoder is not None:
            encoder = self.text_encoder
            encode = lambda t: encoder.encode([t])[0]  # noqa: E731
        if encode is None:
            raise QueryError("no text encoder is loaded: modes 'hybrid' and 'rerank' need one")
        t0 = time.perf_counter()
        with self._text_lock:
            tvec = self._text_cache.get(text)
            if tvec is not None:
                self._text_cache.move_to_end(text)
        if tvec is None:
            tvec = np.asarray(encode(text), dtype=np.float32)
            with self._text_lock:
                self._text_cache[text] = tvec
                while len(self._text_cache) > self._text_cache_size:
                    self._text_cache.popitem(last=False)
        timings["text_encode"] = time.perf_counter() - t0
        dim = self.artifacts.text_vectors.shape[1]
        if tvec.shape[0] != dim:
            raise QueryError(f"text vector has {tvec.shape[0]} dimensions, the index has {dim}")
        return tvec

    def _allowed(self, filters: Filters | None) -> npt.NDArray[np.int64] | None:
        if not filters:
            return None
        for label in (*filters.labels_any, *filters.labels_all):
            if label not in self.taxonomy.label_ids:
                raise QueryError(f"unknown label in filter: {label!r}")
        return self.artifacts.select(filters)

    def _excluded(self, ids: Iterable[str], groups: Iterable[str]) -> set[int]:
        rows = {r for r in (self.artifacts.row_of(i) for i in ids) if r is not None}
        group_set = set(groups)
        if group_set:
            rows |= {it.row for it in self.artifacts.items if it.group in group_set}
        return rows

    def _image_search(
        self, vec: Vector, k: int, allowed: Rows | None, excluded: set[int], filters: Filters | None
    ) -> tuple[Rows, npt.NDArray[np.float32]]:
        return self._store_search(self.artifacts.image_store, vec, k, allowed, excluded, filters)

    def _hybrid_search(
        self,
        vec: Vector,
        tvec: Vector,
        alpha: float,
        k: int,
        allowed: npt.NDArray[np.int64] | None,
        excluded: set[int],
        filters: Filters | None = None,
    ) -> tuple[npt.NDArray[np.int64], npt.NDArray[np.float32]]:
        if abs(alpha - self.artifacts.alpha) < 1e-9:
            query = fuse(vec, tvec, alpha=alpha)
            store = self.artifacts.fused_store
            return self._store_search(store, query, k, allowed, excluded, filters)
        # Another fusion weight than the index was built with (sweeps): exact scoring.
        scores = alpha * (self.artifacts.image_vectors @ vec) + (1 - alpha) * (
            self.artifacts.text_vectors @ tvec
        )
        rows = np.arange(len(scores), dtype=np.int64) if allowed is None else allowed
        if excluded:
            rows = rows[~np.isin(rows, list(excluded))]
        sub = scores[rows]
        order = np.lexsort((rows, -sub))[:k]
        return rows[order], sub[order].astype(np.float32)

    @staticmethod
    def _store_search(
        store: Any,
        query: Vector,
        k: int,
        allowed: npt.NDArray[np.int64] | None,
        excluded: set[int],
        filters: Filters | None = None,
    ) -> tuple[npt.NDArray[np.int64], npt.NDArray[np.float32]]:
        if isinstance(store, FilteringStore):  # Milvus: filters pushed down as expressions
            return store.search_filtered(query, k, filters=filters, excluded=excluded)
        if excluded and allowed is not None:
            allowed = allowed[~np.isin(allowed, list(excluded))]
            excluded = set()
        # Over-fetch by the number of excluded rows, then drop them: k hits whenever k remain.
        fetch = min(k + len(excluded), store.ntotal)
        if fetch <= 0:
            return np.empty(0, np.int64), np.empty(0, np.float32)
        scores, ids = store.search(query.reshape(1, -1), fetch, allowed=allowed)
        keep = [
            (int(i), float(s))
            for i, s in zip(ids[0], scores[0], strict=True)
            if i >= 0 and i not in excluded
        ][:k]
        rows = np.array([i for i, _ in keep], dtype=np.int64)
        return rows, np.array([s for _, s in keep], dtype=np.float32)

    def _hit(self, row: int, score: float, rank: int) -> Hit:
        item = self.artifacts.items[row]
        return replace(
            self._shown(tuple(item.labels.items()), item.zone),
            id=item.id,
            rank=rank,
            score=max(-1.0, min(1.0, score)),
            description=item.description,
            image=item.image,
            group=item.group,
        )


def embed_with_patches(
    image: Image.Image, encoder: ImageEncoderProtocol
) -> tuple[Vector, QueryPatches, dict[str, float]]:
    """One image -> its vector and :class:`QueryPatches` (tokens and size) from one forward pass."""
    prepared = prepare_image(image, encoder)
    encode = getattr(encoder, "encode_with_patches", None)
    if encode is None:
        raise QueryError(f"{encoder.model_id} gives no patch tokens: no region queries")
    t0 = time.perf_counter()
    vectors, grids = encode([prepared.pixels])
    stages = {
        "decode": prepared.decode_seconds,
        "preprocess": prepared.preprocess_seconds,
        "encode": time.perf_counter() - t0,
    }
    width, height = prepared.size
    return np.asarray(vectors[0], np.float32), QueryPatches(grids[0], width, height), stages


def filter_terms(filters: Filters | None, tax: Taxonomy) -> tuple[FilterTerm, ...]:
    """The query's filter, one display-ready term per restricting field."""
    if not filters:
        return ()
    fields: tuple[tuple[FilterField, tuple[str, ...]], ...] = (
        ("labels_any", filters.labels_any),
        ("labels_all", filters.labels_all),
        ("zones", filters.zones),
        ("areas", filters.areas),
    )
    terms = []
    for field, ids in fields:
        if not ids:
            continue
        if field.startswith("labels"):
            names = tuple(Name(lb.en, lb.es) for lb in map(tax.normalise, ids))
        elif field == "zones":
            names = tuple(Name(z.en, z.es) for z in map(tax.normalise_zone, ids))
        else:
            names = tuple(Name(tax.area_name(a, "en"), tax.area_name(a, "es")) for a in ids)
        terms.append(FilterTerm(field, ids, names))
    return tuple(terms)


def _label_set(
    head: LabelHead | None,
    proba: npt.NDArray[np.float64] | None,
    estimates: tuple[LabelEstimate, ...],
    alpha: float,
) -> LabelSet | None:
    """The estimates of the labels in the head's conformal set for ``alpha``."""
    if head is None or proba is None:
        return None
    cut = grid_threshold(list(head.info.get("conformal", [])), alpha)
    inside = {lb for lb, keep in zip(head.labels, label_set(proba, cut), strict=True) if keep}
    members = sorted(
        (e for e in estimates if e.label in inside), key=lambda e: (-e.probability, e.label)
    )
    every = not np.isfinite(cut)
    return LabelSet(tuple(members), round(1.0 - alpha, 4), every_label=every)


def _shown(tax: Taxonomy, item_labels: tuple[tuple[str, int], ...], item_zone: str) -> Hit:
    """What a hit shows of catalogue labels on a zone (names, template description), in a hit
    whose own fields (id, rank, score, ...) the caller fills in."""
    labels = tuple(
        LabelCount(
            id=lb.id,
            count=int(n),
            name=Name(lb.en, lb.es),
            coarse=lb.coarse,
            phrase=Name(tax.counted(lb.id, int(n), "en"), tax.counted(lb.id, int(n), "es")),
        )
        for lb, n in (
            (tax.normalise(label), n) for label, n in tax.sort_counts(dict(item_labels)).items()
        )
    )
    zone = tax.normalise_zone(item_zone)
    counts = {lb.id: lb.count for lb in labels}
    return Hit(
        id="",
        rank=0,
        score=0.0,
        labels=labels,
        zone=zone.id,
        zone_name=Name(zone.en, zone.es),
        area=zone.area,
        area_name=Name(tax.area_name(zone.area, "en"), tax.area_name(zone.area, "es")),
        summary=Name(
            describe(counts, zone.id, tax, language="en"),
            describe(counts, zone.id, tax, language="es"),
        ),
        description="",
        image="",
    )
