"""`visrag evaluate --unit region`: damage regions as queries, beside the whole-image baseline.

Each query is one region (a labelled polygon, a cluster of near defects, or an imported crop),
scored on its own labels:

- **region**: its vector meets the region index (its own vector space: a query only meets regions
  of its kind); leave-one-out queries are the index's own regions (the stored vectors: for
  ``patches`` regions, exactly what pooling the photo's patch tokens again gives), with every
  region of the query's photo and of its group excluded. Held-out queries are the test photos'
  polygons, pooled from the photo's own forward pass (``patches``) or re-encoded as crops
  (``crops``).
- **image** (the baseline, when the index holds real photo vectors): the image vector of the photo
  holding the region, searched among the indexed photos under the same exclusions; a retrieved
  photo counts with all its labels (a photo carries every label of its defects, so a label hit
  is easier for it than for a single region).

Imported crop vectors have no photo vectors (an imported photo's vector is the mean of its crops',
never an independent whole-image vector), so they are evaluated region-to-region only. Both runs
are scored by the functions every evaluation uses (:func:`~indexer.evaluation.results.
score_rankings`), beside the majority-label and random baselines drawn from the region pool.
"""

from __future__ import annotations

import time
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime, timezone
from typing import TYPE_CHECKING, Any

import numpy as np
import numpy.typing as npt

from indexer.evaluation.baselines import majority_baseline, random_baseline
from indexer.evaluation.metrics import label_set, latency_summary, tie_break
from indexer.evaluation.queries import EvaluationError, Query
from indexer.evaluation.results import Evaluation, Neighbour, Scoring, score_rankings
from indexer.evaluation.uncertainty import DEFAULT_REPEATS, evaluation_intervals

if TYPE_CHECKING:
    from indexer.index.artifacts import Artifacts
    from indexer.index.regions import RegionTable
    from indexer.readers.records import Record
    from indexer.retrieval.retriever import Retriever

Vectors = npt.NDArray[np.float32]


@dataclass(frozen=True)
class RegionQuery:
    """One region as a query: ``query`` carries its id, labels (scoring only), group and
    exclusions; ``vector`` its region vector; ``photo_vector`` its photo's image vector (``None``:
    no whole-image baseline)."""

    query: Query
    vector: Vectors
    photo_vector: Vectors | None = None


def index_region_queries(artifacts: Artifacts, *, with_photos: bool) -> list[RegionQuery]:
    """Leave-one-photo-out: every region of the index, its photo and group excluded."""
    table = artifacts.regions
    if table is None or not len(table):
        raise EvaluationError(f"{artifacts.path} has no region table: nothing to query by region")
    out = []
    for row, region in enumerate(table.regions):
        item = artifacts.items[region.item]
        query = Query(
            id=region.id,
            labels=dict.fromkeys(region.labels, 1),
            zone=item.zone,
            group=item.group or item.id,
            exclude_groups=(item.group,) if item.group else (),
            exclude_ids=(item.id,),
        )
        photo = artifacts.image_vectors[region.item] if with_photos else None
        out.append(RegionQuery(query, np.asarray(table.vectors[row], np.float32), photo))
    return out


def held_out_region_queries(
    retriever: Retriever, records: Sequence[Record], *, kind: str
) -> list[RegionQuery]:
    """The regions of held-out photos (their polygons and clusters), each photo embedded once:
    ``patches`` regions pooled from its forward pass, ``crops`` regions re-encoded as crops."""
    from indexer.build.crops import crop_vectors
    from indexer.build.embed import encode_with_patches
    from indexer.build.regions import original_size, record_regions
    from models.embedding import prepare_image

    encoder = retriever.image_encoder
    if encoder is None:
        raise EvaluationError("held-out region queries need the index's image encoder")
    out = []
    for record in records:
        if not record.defects:
            continue
        prepared = prepare_image(record.image_path, encoder)
        vectors, grids = encode_with_patches(encoder, [prepared.pixels], 1)
        drafts = record_regions(record, grids[0], original_size(record))
        if not drafts:
            continue
        if kind == "crops":
            region_vectors = crop_vectors(
                record.image_path, [d.region.box for d in drafts], encoder
            )
        else:
            region_vectors = np.stack([d.vector for d in drafts]).astype(np.float32)
        for j, draft in enumerate(drafts):
            query = Query(
                id=draft.region.id,
                labels=dict.fromkeys(draft.region.labels, 1),
                zone=record.zone,
                group=record.group or record.id,
            )
            out.append(RegionQuery(query, region_vectors[j], vectors[0]))
    return out


def _region_pool(table: RegionTable, items: Sequence[Any], q: Query) -> npt.NDArray[np.int64]:
    """Region rows a query may meet: none of its excluded items or groups."""
    ids, groups = set(q.exclude_ids), set(q.exclude_groups)
    banned = [it.row for it in items if it.id in ids or (groups and it.group in groups)]
    rows = table.item_rows()
    return np.flatnonzero(~np.isin(rows, banned)).astype(np.int64)


def _photo_pool(items: Sequence[Any], q: Query) -> npt.NDArray[np.int64]:
    ids, groups = set(q.exclude_ids), set(q.exclude_groups)
    return np.array(
        [it.row for it in items if it.id not in ids and not (groups and it.group in groups)],
        np.int64,
    )


def evaluate_regions(
    retriever: Retriever,
    queries: Sequence[RegionQuery],
    *,
    ks: Sequence[int],
    leave_one_out: bool,
    random_repeats: int = 20,
    seed: int = 0,
    vote_k: int = 5,
    bootstrap: int = DEFAULT_REPEATS,
    progress: Callable[[int, int], None] | None = None,
) -> Evaluation:
    """Score region queries against the region index (and their photos against the image
    index, when they have photo vectors) beside the baselines drawn from the region pool."""
    if not queries:
        raise EvaluationError("no region queries (no indexed or held-out photo has a region)")
    ks = tuple(sorted({int(k) for k in ks}))
    if not ks or ks[0] < 1:
        raise EvaluationError(f"k values must be >= 1, got {ks}")
    kmax = ks[-1]
    vote_k = vote_k if vote_k in ks else ks[min(len(ks) - 1, len(ks) // 2)]
    artifacts = retriever.artifacts
    table = artifacts.regions
    if table is None or artifacts.region_store is None:
        raise EvaluationError(f"{artifacts.path} has no region table: rebuild with --regions")
    taxonomy = retriever.taxonomy
    nd = taxonomy.no_damage_id
    items = artifacts.items
    region_sets = [label_set(r.labels, no_damage=nd) for r in table.regions]
    photo_sets = [label_set(it.labels, no_damage=nd) for it in items]
    qs = [rq.query for rq in queries]
    truths = [label_set(q.labels, no_damage=nd) for q in qs]
    region_pools = [_region_pool(table, items, q) for q in qs]
    with_photos = all(rq.photo_vector is not None for rq in queries)

    region_rankings: list[list[Neighbour]] = []
    photo_rankings: list[list[Neighbour]] = []
    timings: dict[str, dict[str, list[float]]] = {"region": {}, "image": {}}
    for n, rq in enumerate(queries):
        t0 = time.perf_counter()
        found = retriever.search_regions(  # what the service's region query answers
            rq.vector,
            k=kmax,
            exclude_ids=rq.query.exclude_ids,
            exclude_groups=rq.query.exclude_groups,
        )
        timings["region"].setdefault("search", []).append(time.perf_counter() - t0)
        rows = [table.row_of(h.id) for h in found]
        order = tie_break([h.id for h in found], [h.score for h in found])
        region_rankings.append(
            [
                Neighbour(found[j].id, float(found[j].score), tuple(sorted(region_sets[row])))
                for j in order
                if (row := rows[j]) is not None
            ]
        )
        if with_photos:
            t0 = time.perf_counter()
            result = retriever.search(
                rq.photo_vector,  # type: ignore[arg-type]
                k=kmax,
                mode="image",
                exclude_ids=rq.query.exclude_ids,
                exclude_groups=rq.query.exclude_groups,
            )
            timings["image"].setdefault("search", []).append(time.perf_counter() - t0)
            hits = result.hits
            ranked = tie_break([h.id for h in hits], [h.score for h in hits])
            photo_rankings.append(
                [
                    Neighbour(
                        hits[i].id,
                        float(hits[i].score),
                        tuple(sorted(label_set([lc.id for lc in hits[i].labels], no_damage=nd))),
                        retriever.image_path(hits[i].id),
                    )
                    for i in ranked
                ]
            )
        if progress is not None:
            progress(n + 1, len(queries))

    seen = set().union(*truths, *region_sets) if truths or region_sets else set()
    labels = sorted(seen, key=lambda label: (taxonomy.order(label), label))
    region_counts = [Counter(region_sets[r] for r in pool) for pool in region_pools]
    scoring = Scoring(qs, truths, region_counts, ks, vote_k, labels, taxonomy.order)
    runs = [score_rankings("region", region_rankings, scoring)]
    runs[0].mode = f"region ({table.kind})"
    if with_photos:
        photo_pools = [_photo_pool(items, q) for q in qs]
        photo_counts = [Counter(photo_sets[r] for r in pool) for pool in photo_pools]
        photo_scoring = Scoring(qs, truths, photo_counts, ks, vote_k, labels, taxonomy.order)
        runs.insert(0, score_rankings("image", photo_rankings, photo_scoring))
        runs[0].mode = "image (the region's photo)"
    for run in runs:
        run.latency = latency_summary(timings["region" if run.name == "region" else "image"])
    regions_as_items = table.regions
    baselines = {
        "majority": majority_baseline(scoring, regions_as_items, region_sets, region_pools),
        "random": random_baseline(
            scoring,
            regions_as_items,
            region_sets,
            region_pools,
            repeats=random_repeats,
            seed=seed,
        ),
    }
    counted = Counter(len(rq.query.labels) for rq in queries)
    setting = {
        "created_at": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "unit": "region",
        "protocol": "leave-one-photo-out (the query's photo and its group excluded)"
        if leave_one_out
        else "held-out photos' regions",
        "queries": len(queries),
        "queries_by_label_count": dict(sorted(counted.items())),
        "region_kind": table.kind,
        "region_pooling": artifacts.manifest.regions.pooling if artifacts.manifest.regions else "",
        "indexed_regions": len(table),
        "catalogue_items": len(items),
        "whole_image_baseline": "the image vector of the region's photo among the indexed photos"
        if with_photos
        else "none: the regions are precomputed vectors without photo vectors (region-to-region)",
        "ks": list(ks),
        "vote_k": vote_k,
        "random_repeats": random_repeats,
        "seed": seed,
        "no_damage_convention": f"a region or photo without labels has the label set {{{nd}}}",
        "taxonomy": f"{taxonomy.name} {taxonomy.version}",
    }
    uncertainty = (
        evaluation_intervals(
            runs, baselines["majority"], truths, qs, ks, repeats=bootstrap, seed=seed
        )
        if bootstrap > 0
        else None
    )
    return Evaluation(setting, runs, baselines, labels, vote_k, ks, [], None, uncertainty)
