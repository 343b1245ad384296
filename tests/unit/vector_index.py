"""A small real flat artifact directory from hand-made items and vectors (no image model).

Written by the production ``write_artifacts`` and read back by ``load_artifacts``, so the tests
that use it run the real catalogue, filters and FAISS search; only the encoders are stand-ins.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from indexer.index.artifacts import Artifacts, load_artifacts, write_artifacts
from indexer.index.catalogue import CatalogueItem, dataset_summary
from indexer.index.manifest import ImageModel, describe_text_encoder, manifest_body
from indexer.index.stores import StoreTarget, make_stores
from indexer.retrieval.retriever import Retriever
from models.description import describe
from models.fusion import l2_normalise
from models.taxonomy import Taxonomy


class KeywordTextEncoder:
    """Deterministic text vectors: one dimension per keyword present in the text."""

    model_id = "test/keywords"
    words = ("scratch", "dent", "crack", "no visible damage")
    dim = len(words)

    def info(self) -> dict[str, Any]:
        return {"id": self.model_id, "dim": self.dim}

    def encode(self, texts: Sequence[str], **_: Any) -> np.ndarray:
        v = np.array([[float(w in t) for w in self.words] for t in texts], np.float32) + 1e-3
        return l2_normalise(v)


def item(
    row: int,
    labels: dict[str, int],
    *,
    zone: str = "hood_center",
    group: str = "",
    image: str = "",
    taxonomy: Taxonomy,
) -> CatalogueItem:
    """A catalogue item whose description is the template text of its labels and zone."""
    area = taxonomy.normalise_zone(zone).area
    return CatalogueItem(
        row=row,
        id=f"item{row}",
        image=image,
        labels=labels,
        zone=zone,
        area=area,
        description=describe(labels, zone, taxonomy),
        group=group,
    )


def write_vector_index(
    out: Path,
    items: Sequence[CatalogueItem],
    image_vectors: np.ndarray,
    taxonomy: Taxonomy,
    *,
    alpha: float = 0.6,
    store: StoreTarget | None = None,
) -> Artifacts:
    """Text vectors = the keyword encoder over the items' descriptions; flat FAISS stores."""
    img = l2_normalise(np.asarray(image_vectors, np.float32))
    txt = KeywordTextEncoder().encode([it.description for it in items])
    image_store, fused_store = make_stores(
        img, txt, alpha=alpha, items=items, target=store, no_damage_id=taxonomy.no_damage_id
    )
    manifest = manifest_body(
        image_model=ImageModel(id="test/vectors", dim=int(img.shape[1])),
        text_model=describe_text_encoder(KeywordTextEncoder()),
        alpha=alpha,
        taxonomy=taxonomy,
        dataset=dataset_summary(items, source="test", root=str(out.parent)),
    )
    write_artifacts(
        out,
        manifest=manifest,
        items=list(items),
        image_vectors=img,
        text_vectors=txt,
        image_store=image_store,
        fused_store=fused_store,
    )
    return load_artifacts(out)


def keyword_retriever(artifacts: Artifacts, taxonomy: Taxonomy, **options: Any) -> Retriever:
    """The real Retriever over ``artifacts`` with the keyword text encoder and no image model."""
    return Retriever(
        artifacts,
        image_encoder=None,
        text_encoder=KeywordTextEncoder(),
        taxonomy=taxonomy,
        **options,
    )
