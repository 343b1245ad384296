"""The writer stage of a build: vector stores + the artifact directory, written atomically."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from indexer.build.mapper import Mapped
from indexer.index.artifacts import write_artifacts
from indexer.index.manifest import IndexManifest, ManifestBody
from indexer.index.stores import StoreTarget, make_stores


@dataclass(frozen=True)
class StoreLayout:
    """How the vectors are stored: fusion weight, index type and parameters, backend."""

    alpha: float = 0.6
    index_type: str = "flat"
    params: dict[str, Any] | None = None
    target: StoreTarget | None = None  # None: FAISS files in the artifact directory


def write_index(
    out: str | Path, manifest: ManifestBody, mapped: Mapped, layout: StoreLayout, no_damage_id: str
) -> IndexManifest:
    """Build the image and fused stores and write the artifact directory; the manifest written."""
    image_store, fused_store = make_stores(
        mapped.image_vectors,
        mapped.text_vectors,
        alpha=layout.alpha,
        items=mapped.items,
        index_type=layout.index_type,
        params=layout.params,
        target=layout.target,
        no_damage_id=no_damage_id,
    )
    return write_artifacts(
        out,
        manifest=manifest,
        items=mapped.items,
        image_vectors=mapped.image_vectors,
        text_vectors=mapped.text_vectors,
        image_store=image_store,
        fused_store=fused_store,
        regions=mapped.regions,
    )
