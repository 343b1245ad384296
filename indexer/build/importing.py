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
"""

from __future__ import annotations

import json
import logging
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np

from indexer.build.mapper import Mapped, embed_descriptions
from indexer.build.writer import StoreLayout, write_index
from indexer.index.catalogue import CatalogueItem, dataset_summary
from indexer.index.manifest import (
    ImageModel,
    IndexManifest,
    describe_text_encoder,
    manifest_body,
)
from indexer.index.stores import StoreTarget
from indexer.readers.naming import zone_from_name
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
    image_vectors = l2_normalise(vectors)

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

    image_model = _image_model(entries, metadata_json, image_vectors.shape[1])
    if image_model_id:
        image_model["id"] = image_model_id
    if image_model["id"] is None:
        raise EmbeddingImportError("no image model id in the metadata: pass image_model_id")
    if pooling:
        image_model["pooling"] = pooling
    manifest = manifest_body(
        image_model=ImageModel.model_validate(image_model),
        text_model=describe_text_encoder(text_encoder),
        alpha=alpha,
        taxonomy=taxonomy,
        dataset=dataset_summary(
            items,
            source=str(embeddings_npy.resolve()),
            format="embeddings",
            metadata=str(metadata_json.resolve()),
            root=None,
            coverage=coverage.as_dict(),
            input_norms={"min": float(norms.min()), "max": float(norms.max())},
        ),
        history=({"op": "import", "count": len(items)},),
    )
    written = write_index(
        out,
        manifest,
        Mapped(items, image_vectors, text_vectors),
        StoreLayout(alpha, index_type, index_params, store),
        taxonomy.no_damage_id,
    )
    logger.info("imported %d vectors; label coverage %s", len(items), coverage.as_dict())
    return written
