"""Bring-your-own vectors: precomputed image embeddings + metadata -> an artifact directory.

Input: an ``.npy`` (N, D) of image embeddings and a JSON list of N metadata objects, row i =
object i. Recognised fields (first present wins):

- id: ``id``, ``crop_id`` (else ``row-<i>``); image: ``image``, ``crop_path``;
- labels: ``labels`` (list or {label: count}), ``damage_types`` (list, may repeat a label),
  else ``dominant_type``; normalised through the taxonomy, with a coverage report;
- group: ``group``, ``source_image`` (so leave-one-out can exclude crops of the same photo);
- zone: ``zone`` if it names a taxonomy zone, else ``zona_<N>`` in the source image or image
  name, else ``unknown``. The seed crops' ``spatial_zone`` (``middle_center``...) is a 3×3 position
  inside the photo, not a vehicle zone: it is kept as ``position`` in the item's defects summary.

The image model is read from ``embedding_model_full`` / ``embedding_model`` or a
``generation_info.json`` next to the metadata; preprocessing of imported vectors is unknown and
left out of the manifest (so it is not compared). Descriptions come from the one template and are
embedded with the text encoder, exactly as a build does.

:func:`import_regions` reads the same input as crops of photos instead (``--as-regions``): each
row a crop of its ``source_image``, at ``cluster_bbox`` (``x0, y0, x1, y1`` in the photo's
pixels, ``source_image_size``), holding the ``included_defects`` polygons. The photos become the
items (labels: their defects, counted once each, or the union of their crops' labels), the crops
their regions (kind ``imported``). A photo has no whole-image vector of its own here: its item
vector is the L2-normalised mean of its crops' vectors, and the manifest says so
(``image_model.item_vector`` and ``dataset.item_vectors``).
"""

from __future__ import annotations

import json
import logging
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt

from indexer.build.mapper import Mapped, embed_descriptions
from indexer.build.writer import StoreLayout, write_index
from indexer.index.catalogue import CatalogueItem, dataset_summary
from indexer.index.manifest import (
    ImageModel,
    IndexManifest,
    describe_text_encoder,
    manifest_body,
)
from indexer.index.regions import Region, RegionTable
from indexer.index.stores import StoreTarget
from indexer.readers.naming import zone_from_name
from models import regions as geometry
from models.base import TextEncoderProtocol
from models.description import describe
from models.errors import VisragError
from models.fusion import l2_normalise
from models.taxonomy import Coverage, Taxonomy

logger = logging.getLogger(__name__)


class EmbeddingImportError(VisragError):
    """Embeddings and metadata that do not fit together."""


def _first(entry: Mapping[str, Any], *keys: str) -> Any:
    return next((entry[k] for k in keys if entry.get(k) not in (None, "", [])), None)


def _zone(entry: Mapping[str, Any], taxonomy: Taxonomy) -> str:
    raw = entry.get("zone")
    if raw is not None:
        zone = taxonomy.normalise_zone(raw)
        if zone.id != taxonomy.unknown_id:
            return zone.id
    names = [str(entry[k]) for k in ("source_image", "image", "crop_path", "crop_id") if k in entry]
    number = zone_from_name(*names)
    return taxonomy.normalise_zone(number).id if number else taxonomy.unknown_id


def _image_model(entries: list[dict[str, Any]], metadata: Path, dim: int) -> dict[str, Any]:
    info: dict[str, Any] = {"id": None, "dim": dim, "source": "imported"}
    generation = metadata.parent / "generation_info.json"
    if generation.is_file():
        model = json.loads(generation.read_text("utf-8")).get("model", {})
        info["id"] = model.get("model_name")
        if model.get("dtype"):
            info["dtype"] = str(model["dtype"]).removeprefix("torch.")
        if model.get("patch_size"):
            info["patch_size"] = model["patch_size"]
    first = entries[0] if entries else {}
    info["id"] = _first(first, "embedding_model_full", "embedding_model") or info["id"]
    return info


def _read_input(
    embeddings_npy: Path, metadata_json: Path
) -> tuple[list[dict[str, Any]], npt.NDArray[np.float64], npt.NDArray[np.float32]]:
    """(metadata entries, input norms, unit vectors), row-aligned; checked."""
    vectors = np.load(embeddings_npy, allow_pickle=False)
    entries = json.loads(metadata_json.read_text("utf-8"))
    if isinstance(entries, Mapping):  # {"items": [...]} style
        entries = entries.get("items") or entries.get("metadata") or []
    if vectors.ndim != 2 or len(vectors) != len(entries):
        raise EmbeddingImportError(
            f"{embeddings_npy.name} has shape {vectors.shape} but {metadata_json.name} has "
            f"{len(entries)} entries; row i must describe vector i"
        )
    norms = np.linalg.norm(vectors, axis=1)
    bad = np.flatnonzero(~np.isfinite(norms) | (norms < 1e-6))
    if len(bad):
        raise EmbeddingImportError(f"rows {bad[:10].tolist()} are zero or not finite")
    return list(entries), norms, l2_normalise(vectors).astype(np.float32)


def import_embeddings(
    embeddings_npy: str | Path,
    metadata_json: str | Path,
    out: str | Path,
    *,
    taxonomy: Taxonomy,
    text_encoder: TextEncoderProtocol,
    alpha: float = 0.6,
    image_model_id: str | None = None,
    index_type: str = "flat",
    index_params: dict[str, Any] | None = None,
    store: StoreTarget | None = None,
    pooling: str | None = "cls",
) -> IndexManifest:
    """Import precomputed image vectors; returns the manifest written (with a coverage report).

    Raises:
        EmbeddingImportError: row count mismatch, non-finite or zero vectors, duplicate ids.
    """
    embeddings_npy, metadata_json = Path(embeddings_npy), Path(metadata_json)
    entries, norms, image_vectors = _read_input(embeddings_npy, metadata_json)

    coverage = Coverage()
    items: list[CatalogueItem] = []
    for row, entry in enumerate(entries):
        raw_labels = _first(entry, "labels", "damage_types")
        if raw_labels is None and entry.get("dominant_type"):
            raw_labels = [entry["dominant_type"]]
        labels = taxonomy.normalise_counts(raw_labels, coverage)
        labels = {k: v for k, v in labels.items() if k != taxonomy.no_damage_id}
        zone = _zone(entry, taxonomy)
        defects: dict[str, Any] = {"count": int(sum(labels.values()))}
        if entry.get("dominant_type"):
            defects["dominant"] = taxonomy.normalise(entry["dominant_type"]).id
        for key, name in (
            ("spatial_zone", "position"),
            ("relative_size", "relative_size"),
            ("cluster_bbox", "bbox"),
            ("cluster_area", "area"),
        ):
            if key in entry:
                defects[name] = entry[key]
        item_id = str(_first(entry, "id", "crop_id") or f"row-{row}")
        items.append(
            CatalogueItem(
                row=row,
                id=item_id,
                image=str(_first(entry, "image", "crop_path") or ""),
                labels=labels,
                zone=zone,
                area=taxonomy.zone(zone).area,
                description=describe(labels, zone, taxonomy),
                group=str(_first(entry, "group", "source_image") or item_id),
                defects=defects,
            )
        )
    if len({it.id for it in items}) != len(items):
        raise EmbeddingImportError("metadata ids are not unique")

    text_vectors = embed_descriptions(items, text_encoder)

    written = _write_import(
        out,
        _Imported(items, image_vectors, text_vectors),
        entries=entries,
        sources=(embeddings_npy, metadata_json),
        options=_ImportOptions(
            taxonomy, text_encoder, alpha, image_model_id, pooling, index_type, index_params, store
        ),
        dataset={"format": "embeddings", "coverage": coverage.as_dict(), "norms": norms},
        history={"op": "import", "count": len(items)},
    )
    logger.info("imported %d vectors; label coverage %s", len(items), coverage.as_dict())
    return written


#: How an imported photo's item vector is made from its crops (recorded in the manifest).
ITEM_VECTOR_RULE = "L2-normalised mean of the photo's imported crop vectors (no whole-image vector)"


def import_regions(
    embeddings_npy: str | Path,
    metadata_json: str | Path,
    out: str | Path,
    *,
    taxonomy: Taxonomy,
    text_encoder: TextEncoderProtocol,
    alpha: float = 0.6,
    image_model_id: str | None = None,
    index_type: str = "flat",
    index_params: dict[str, Any] | None = None,
    store: StoreTarget | None = None,
    pooling: str | None = "cls",
) -> IndexManifest:
    """Import precomputed crop vectors as regions (kind ``imported``) of their source photos.

    Items: one per ``source_image`` (in order of first appearance), labelled with its defects
    (each ``included_defects`` entry counted once by ``defect_idx``; else the union of its
    crops' ``damage_types``), item vector :data:`ITEM_VECTOR_RULE`. Regions: one per row, id
    ``crop_id``, box ``cluster_bbox`` as ``x, y, w, h``, polygon the defect's own for a
    single-defect crop, else the box; area the defects' area, members their count.

    Raises:
        EmbeddingImportError: as :func:`import_embeddings`, or a row without ``source_image``,
            or a ``cluster_bbox`` that is not ``x0, y0, x1, y1`` with ``x1 > x0``, ``y1 > y0``.
    """
    embeddings_npy, metadata_json = Path(embeddings_npy), Path(metadata_json)
    entries, norms, vectors = _read_input(embeddings_npy, metadata_json)
    photos: dict[str, list[int]] = {}
    for row, entry in enumerate(entries):
        source = entry.get("source_image")
        if not source:
            raise EmbeddingImportError(f"row {row} has no source_image: cannot place the crop")
        photos.setdefault(str(source), []).append(row)
    coverage = Coverage()
    crop_labels = [_crop_labels(entry, taxonomy, coverage) for entry in entries]
    items: list[CatalogueItem] = []
    regions: list[Region] = []
    item_vectors = np.zeros((len(photos), vectors.shape[1]), np.float32)
    for item_row, (source, rows) in enumerate(photos.items()):
        crops = [entries[i] for i in rows]
        item_id = Path(source).stem
        shapes = _photo_defects(crops, taxonomy)
        labels: dict[str, int] = {}
        for shape in shapes:
            labels[shape["label"]] = labels.get(shape["label"], 0) + 1
        for i in rows:
            for label in crop_labels[i]:
                labels.setdefault(label, 1)
        labels = taxonomy.sort_counts(labels)
        zone = _zone(crops[0], taxonomy)
        defects: dict[str, Any] = {"count": len(shapes), "crops": len(crops)}
        if labels:
            defects["by_label"] = dict(labels)
        if crops[0].get("source_image_size"):
            defects["size"] = [int(v) for v in crops[0]["source_image_size"]]
        if shapes:
            defects["shapes"] = shapes
        items.append(
            CatalogueItem(
                row=item_row,
                id=item_id,
                image=source,
                labels=labels,
                zone=zone,
                area=taxonomy.zone(zone).area,
                description=describe(labels, zone, taxonomy),
                group=source,
                defects=defects,
            )
        )
        item_vectors[item_row] = l2_normalise(vectors[rows].mean(axis=0, keepdims=True))[0]
        regions.extend(_crop_region(entries[i], i, item_row, crop_labels[i]) for i in rows)
    if len({it.id for it in items}) != len(items):
        raise EmbeddingImportError("two source photos share a file name (item ids must differ)")
    if len({r.id for r in regions}) != len(regions):
        raise EmbeddingImportError("crop ids are not unique")
    order = [i for rows in photos.values() for i in rows]
    table = RegionTable("imported", regions, vectors[order].astype(np.float32))

    text_vectors = embed_descriptions(items, text_encoder)
    written = _write_import(
        out,
        _Imported(items, item_vectors, text_vectors, table),
        entries=entries,
        sources=(embeddings_npy, metadata_json),
        options=_ImportOptions(
            taxonomy, text_encoder, alpha, image_model_id, pooling, index_type, index_params, store
        ),
        dataset={
            "format": "embeddings as regions",
            "coverage": coverage.as_dict(),
            "norms": norms,
            "item_vectors": ITEM_VECTOR_RULE,
            "regions": len(regions),
        },
        history={"op": "import", "count": len(items), "regions": len(regions)},
        item_vector=ITEM_VECTOR_RULE,
    )
    logger.info(
        "imported %d crops as regions of %d photos; label coverage %s",
        len(regions),
        len(items),
        coverage.as_dict(),
    )
    return written


@dataclass(frozen=True)
class _Imported:
    items: list[CatalogueItem]
    image_vectors: npt.NDArray[np.float32]
    text_vectors: npt.NDArray[np.float32]
    regions: RegionTable | None = None


@dataclass(frozen=True)
class _ImportOptions:
    taxonomy: Taxonomy
    text_encoder: TextEncoderProtocol
    alpha: float
    image_model_id: str | None
    pooling: str | None
    index_type: str
    index_params: dict[str, Any] | None
    store: StoreTarget | None


def _write_import(
    out: str | Path,
    imported: _Imported,
    *,
    entries: list[dict[str, Any]],
    sources: tuple[Path, Path],
    options: _ImportOptions,
    dataset: dict[str, Any],
    history: dict[str, Any],
    item_vector: str | None = None,
) -> IndexManifest:
    """The manifest of an import (image model from the metadata or the options) and the index
    written: what a plain import and an import as regions share."""
    embeddings_npy, metadata_json = sources
    image_model = _image_model(entries, metadata_json, imported.image_vectors.shape[1])
    if options.image_model_id:
        image_model["id"] = options.image_model_id
    if image_model["id"] is None:
        raise EmbeddingImportError("no image model id in the metadata: pass image_model_id")
    if options.pooling:
        image_model["pooling"] = options.pooling
    if item_vector:
        image_model["item_vector"] = item_vector
    norms = dataset.pop("norms")
    manifest = manifest_body(
        image_model=ImageModel.model_validate(image_model),
        text_model=describe_text_encoder(options.text_encoder),
        alpha=options.alpha,
        taxonomy=options.taxonomy,
        dataset=dataset_summary(
            imported.items,
            source=str(embeddings_npy.resolve()),
            metadata=str(metadata_json.resolve()),
            root=None,
            input_norms={"min": float(norms.min()), "max": float(norms.max())},
            **dataset,
        ),
        history=(history,),
    )
    return write_index(
        out,
        manifest,
        Mapped(
            imported.items,
            imported.image_vectors,
            imported.text_vectors,
            regions=imported.regions,
        ),
        StoreLayout(options.alpha, options.index_type, options.index_params, options.store),
        options.taxonomy.no_damage_id,
    )


def _crop_labels(entry: Mapping[str, Any], taxonomy: Taxonomy, coverage: Coverage) -> list[str]:
    raw = _first(entry, "labels", "damage_types")
    if raw is None and entry.get("dominant_type"):
        raw = [entry["dominant_type"]]
    counts = taxonomy.normalise_counts(raw, coverage)
    return sorted((k for k in counts if k != taxonomy.no_damage_id), key=taxonomy.order)


def _photo_defects(crops: list[dict[str, Any]], taxonomy: Taxonomy) -> list[dict[str, Any]]:
    """The photo's defect outlines (``label``, ``polygon``), each ``defect_idx`` once."""
    seen: dict[Any, dict[str, Any]] = {}
    for crop in crops:
        for j, defect in enumerate(crop.get("included_defects") or ()):
            key = defect.get("defect_idx", (crop.get("crop_id"), j))
            points = defect.get("polygon_coords") or ()
            label = taxonomy.normalise(defect.get("damage_type") or "unknown").id
            if key in seen or len(points) < 3 or label == taxonomy.no_damage_id:
                continue
            polygon = [[round(float(x), 1), round(float(y), 1)] for x, y in points]
            seen[key] = {"label": label, "polygon": polygon}
    return list(seen.values())


def _crop_region(entry: Mapping[str, Any], row: int, item_row: int, labels: list[str]) -> Region:
    bbox = entry.get("cluster_bbox")
    try:
        x0, y0, x1, y1 = (float(v) for v in bbox)  # type: ignore[union-attr]
    except (TypeError, ValueError):
        raise EmbeddingImportError(
            f"row {row}: cluster_bbox {bbox!r} is not [x0, y0, x1, y1]"
        ) from None
    if x1 <= x0 or y1 <= y0:
        raise EmbeddingImportError(
            f"row {row}: cluster_bbox {bbox!r} is empty (x1 <= x0 or y1 <= y0)"
        )
    box = (x0, y0, x1 - x0, y1 - y0)
    defects = entry.get("included_defects") or []
    polygon: tuple[tuple[float, float], ...] = geometry.box_polygon(*box)
    if len(defects) == 1 and len(defects[0].get("polygon_coords") or ()) >= 3:
        polygon = tuple((float(x), float(y)) for x, y in defects[0]["polygon_coords"])
    area = entry.get("cluster_area")
    return Region(
        id=str(_first(entry, "crop_id", "id") or f"row-{row}"),
        item=item_row,
        labels=tuple(labels),
        polygon=polygon,
        box=box,
        area=float(area) if area is not None else geometry.polygon_area(polygon),
        members=max(1, int(entry.get("defect_count") or len(defects) or 1)),
    )
