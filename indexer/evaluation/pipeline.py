"""`visrag evaluate` end to end: options -> queries -> retriever -> evaluation -> report files."""

from __future__ import annotations

import os
import platform
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from indexer.evaluation.queries import (
    ORACLE,
    EvaluationError,
    leave_one_out_queries,
    load_queries,
    open_retriever,
)
from indexer.evaluation.report import write_report
from indexer.evaluation.results import Evaluation
from indexer.evaluation.runner import evaluate
from indexer.evaluation.uncertainty import DEFAULT_REPEATS
from indexer.query import QUERY_MODES

RANDOM_WEIGHTS_WARNING = (
    "THE IMAGE MODEL HAS RANDOM WEIGHTS ({model}): a tiny, randomly initialised test checkpoint. "
    "These figures measure the pipeline, not retrieval quality; do not report them."
)


def split_list(values: Sequence[str] | str | None) -> list[str]:
    """'image,rerank' or ['image', 'rerank,hybrid'] -> ['image', 'rerank', 'hybrid']."""
    if values is None:
        return []
    items = [values] if isinstance(values, str) else list(values)
    return [part.strip() for v in items for part in v.split(",") if part.strip()]


def parse_numbers(values: Sequence[str] | str | None, kind: type, name: str) -> list:
    try:
        return [kind(v) for v in split_list(values)]
    except ValueError as exc:
        raise EvaluationError(f"--{name}: {exc}") from exc


def run_evaluation(
    *,
    artifacts: Path,
    out: Path,
    queries: Path | None = None,
    leave_one_out: bool = False,
    modes: Sequence[str] = ("image",),
    ks: Sequence[int] = (1, 3, 5, 10),
    alphas: Sequence[float] | None = None,
    text_source: str | None = None,
    taxonomy: str | Path | None = None,
    device: str = "auto",
    image_model: str | None = None,
    text_model: str | None = None,
    rerank_candidates: int = 20,
    random_repeats: int = 20,
    seed: int = 0,
    bootstrap: int = DEFAULT_REPEATS,
    progress: Callable[[int, int], None] | None = None,
) -> tuple[Evaluation, dict[str, Path]]:
    """Evaluate artifacts on held-out queries (or leave-one-out) and write the three reports."""
    from models.taxonomy import load_taxonomy

    if (queries is None) == (not leave_one_out):
        raise EvaluationError("give exactly one of --queries FILE or --leave-one-out")
    modes = list(dict.fromkeys(modes)) or ["image"]
    for mode in modes:
        if mode not in QUERY_MODES:
            raise EvaluationError(f"unknown mode {mode!r}; expected {', '.join(QUERY_MODES)}")
    if "hybrid" in modes and not text_source:
        raise EvaluationError(
            "mode 'hybrid' needs --text-source FIELD (a JSONL field holding e.g. a VLM caption), "
            f"or --text-source {ORACLE} for a ground-truth upper bound"
        )
    if leave_one_out and text_source not in (None, ORACLE):
        raise EvaluationError("leave-one-out queries have no caption field; only 'oracle' text")
    tax = load_taxonomy(taxonomy)
    retriever = open_retriever(
        artifacts,
        taxonomy=tax,
        image=not leave_one_out,
        text=any(m in ("hybrid", "rerank") for m in modes),
        device=device,
        image_model=image_model,
        text_model=text_model,
        rerank_candidates=rerank_candidates,
    )
    if leave_one_out:
        query_list = leave_one_out_queries(retriever.artifacts, text_source=text_source)
    else:
        assert queries is not None
        query_list = load_queries(queries, tax, text_source=text_source)
    ev = evaluate(
        retriever,
        query_list,
        modes=modes,
        ks=ks,
        alphas=alphas or None,
        text_source=text_source,
        leave_one_out=leave_one_out,
        random_repeats=random_repeats,
        seed=seed,
        bootstrap=bootstrap,
        progress=progress,
    )
    image_info = retriever.artifacts.manifest.image_model
    if image_info.random_weights:
        ev.warnings.insert(0, RANDOM_WEIGHTS_WARNING.format(model=image_info.id))
    ev.setting.update(
        {
            "random_weights": image_info.random_weights,
            "artifacts": str(artifacts),
            "queries_file": str(queries) if queries else None,
            "machine": f"{platform.machine()} {platform.processor() or ''}, "
            f"{os.cpu_count()} CPUs, {platform.system()} {platform.release()}".replace(" ,", ","),
            "image_model": _model_id(retriever.manifest.get("image_model")),
            "text_model": _model_id(retriever.manifest.get("text_model")),
        }
    )
    return ev, write_report(ev, out)


def _model_id(info: object) -> str | None:
    if isinstance(info, dict):
        value = info.get("id") or info.get("model_id")
        return None if value is None else str(value)
    return None if info is None else str(info)


def run_region_evaluation(
    *,
    artifacts: Path,
    out: Path,
    queries: Path | None = None,
    leave_one_out: bool = False,
    ks: Sequence[int] = (1, 3, 5, 10),
    taxonomy: str | Path | None = None,
    device: str = "auto",
    image_model: str | None = None,
    localisation: bool | None = None,
    random_repeats: int = 20,
    seed: int = 0,
    bootstrap: int = DEFAULT_REPEATS,
    progress: Callable[[int, int], None] | None = None,
) -> tuple[Evaluation, dict[str, Path]]:
    """``--unit region``: region queries beside the whole-image baseline, localisation on the
    photos with polygons (``localisation``: None = wherever the index allows it), three reports.

    Leave-one-out queries are the index's own regions; ``queries`` (a held-out JSONL) are the
    test photos' regions, embedded with the index's image model. Imported regions are
    precomputed vectors: leave-one-photo-out region-to-region only.
    """
    from indexer.evaluation.region_runner import (
        evaluate_regions,
        held_out_region_queries,
        index_region_queries,
    )
    from indexer.index.artifacts import load_artifacts
    from models.taxonomy import load_taxonomy

    if (queries is None) == (not leave_one_out):
        raise EvaluationError("give exactly one of --queries FILE or --leave-one-out")
    manifest = load_artifacts(artifacts, verify=False).manifest
    section = manifest.regions
    if section is None:
        raise EvaluationError(
            f"{artifacts} has no region table: build it with --regions patches|crops, or import "
            "crop vectors with --as-regions"
        )
    imported = section.kind == "imported"
    if imported and not leave_one_out:
        raise EvaluationError(
            "imported regions are precomputed vectors (no encoder to embed new photos with): "
            "evaluate them with --leave-one-out (region-to-region)"
        )
    if localisation and section.kind != "patches":
        raise EvaluationError(
            f"localisation needs patch regions (the heatmap); this index's are {section.kind}"
        )
    locate = section.kind == "patches" if localisation is None else localisation
    tax = load_taxonomy(taxonomy)
    retriever = open_retriever(
        artifacts,
        taxonomy=tax,
        image=not imported and (locate or not leave_one_out),
        text=False,
        device=device,
        image_model=image_model,
    )
    if leave_one_out:
        query_list = index_region_queries(retriever.artifacts, with_photos=not imported)
    else:
        assert queries is not None
        records = _records(queries, tax)
        query_list = held_out_region_queries(retriever, records, kind=section.kind)
    ev = evaluate_regions(
        retriever,
        query_list,
        ks=ks,
        leave_one_out=leave_one_out,
        random_repeats=random_repeats,
        seed=seed,
        bootstrap=bootstrap,
        progress=progress,
    )
    if locate:
        ev.localisation = _localise(
            retriever, None if leave_one_out else records, bootstrap=bootstrap, seed=seed
        )
    image_info = retriever.artifacts.manifest.image_model
    if image_info.random_weights:
        ev.warnings.insert(0, RANDOM_WEIGHTS_WARNING.format(model=image_info.id))
    if imported:
        ev.warnings.append(
            "imported regions: precomputed crop vectors, compared region-to-region only (their "
            "photos' vectors are means of the crops', not whole-image vectors)"
        )
    ev.setting.update(
        {
            "random_weights": image_info.random_weights,
            "artifacts": str(artifacts),
            "queries_file": str(queries) if queries else None,
            "machine": _machine(),
            "image_model": image_info.id,
            "item_vectors": manifest.dataset.get("item_vectors", "the photos' image vectors"),
        }
    )
    return ev, write_report(ev, out)


def _records(path: Path, taxonomy: Any) -> list[Any]:
    from indexer.readers.dataset import read_dataset

    scan = read_dataset(path, taxonomy=taxonomy, format="jsonl")
    return list(scan.records)


def _localise(
    retriever: Any, records: Sequence[Any] | None, *, bootstrap: int, seed: int
) -> dict[str, Any]:
    """Pointing game and overlap on the held-out ``records`` with polygons, or (leave-one-out,
    ``records`` None) on the indexed photos with polygons, each against the other groups."""
    from indexer.evaluation.localisation import Photo, localise

    photos: list[Photo] = []
    if records is not None:
        for r in records:
            polygons = tuple(tuple(d.polygon) for d in r.defects if len(d.polygon) >= 3)
            photos.append(Photo(r.id, Path(r.image_path), polygons, r.group))
    else:
        for item in retriever.artifacts.items:
            shapes = item.defects.get("shapes") or []
            path = retriever.image_path(item.id)
            polygons = tuple(
                tuple((float(x), float(y)) for x, y in s["polygon"])
                for s in shapes
                if len(s.get("polygon") or ()) >= 3
            )
            if path is None or not polygons:
                continue
            photos.append(
                Photo(
                    item.id,
                    path,
                    polygons,
                    item.group,
                    exclude_ids=(item.id,),
                    exclude_groups=(item.group,) if item.group else (),
                )
            )
    photos = [p for p in photos if p.polygons]
    if not photos:
        return {"photos": 0, "with_areas": 0, "skipped": "no photo with polygons and an image"}
    return localise(retriever, photos, repeats=bootstrap, seed=seed)


def _machine() -> str:
    return (
        f"{platform.machine()} {platform.processor() or ''}, "
        f"{os.cpu_count()} CPUs, {platform.system()} {platform.release()}"
    ).replace(" ,", ",")
