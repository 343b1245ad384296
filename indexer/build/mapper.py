"""The mapper stage of a build: records -> image vectors, catalogue items and text vectors.

The images go through an engine (:data:`ImageEngine`: :func:`indexer.build.embed.embed_images` in
this process, or :func:`indexer.build.ray_engine.ray_engine` on Ray Data); the catalogue and the
description vectors are computed here, the same whichever engine ran.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import numpy.typing as npt

from indexer.build.cache import EmbeddingCache
from indexer.build.crops import crop_regions
from indexer.build.embed import embed_images
from indexer.build.regions import RegionSink, background_bank, calibrate_where, region_table
from indexer.index.catalogue import CatalogueItem, catalogue_items
from indexer.index.regions import RegionTable
from indexer.readers.records import Problem, Record
from models.base import ImageEncoderProtocol, TextEncoderProtocol
from models.taxonomy import Taxonomy

Vectors = npt.NDArray[np.float32]
#: The map stage's image engine: :func:`~indexer.build.embed.embed_images` (in process, the
#: default) or :func:`indexer.build.ray_engine.ray_engine` (a Ray Data pipeline); same signature.
ImageEngine = Callable[..., tuple[list[Record], Vectors, list[Problem], dict[str, float]]]


@dataclass(frozen=True)
class Mapped:
    """What the writer stores: items row-aligned with their image and text vectors."""

    items: list[CatalogueItem]
    image_vectors: Vectors
    text_vectors: Vectors
    failed: list[Problem] = field(default_factory=list)  # images the engine could not read
    stats: dict[str, float] = field(default_factory=dict)  # the engine's (embedded, cached...)
    root: Path | None = None  # the folder the items' image paths are relative to
    regions: RegionTable | None = None  # None: built without regions


def embed_descriptions(
    items: Sequence[CatalogueItem], text_encoder: TextEncoderProtocol
) -> Vectors:
    """Text vectors row-aligned with items; each distinct description is encoded once."""
    unique = sorted({it.description for it in items})
    if not unique:
        return np.zeros((0, text_encoder.dim), np.float32)
    encoded = np.asarray(text_encoder.encode(unique), np.float32)
    by_text = dict(zip(unique, encoded, strict=True))
    return np.stack([by_text[it.description] for it in items]).astype(np.float32)


@dataclass(frozen=True)
class Mapper:
    """Records -> :class:`Mapped`, with one image engine and one pair of encoders."""

    image_encoder: ImageEncoderProtocol
    text_encoder: TextEncoderProtocol
    taxonomy: Taxonomy
    engine: ImageEngine = embed_images
    batch_size: int = 8
    workers: int = 2
    cache: EmbeddingCache | None = None
    progress: bool = True
    #: region vectors: False (none), True or "patches" (pooled from the patch tokens,
    #: indexer.build.regions), "crops" (each region's crop re-encoded, indexer.build.crops)
    regions: bool | str = False

    def __call__(
        self,
        records: Sequence[Record],
        *,
        catalogue_root: Callable[[list[Record]], Path | None],
        first_row: int = 0,
    ) -> Mapped:
        """``catalogue_root``: the records kept -> the folder their image paths are stored
        relative to; ``first_row``: the row of the first new item (rows already indexed)."""
        sink = RegionSink() if self.regions else None
        kept, image_vectors, failed, stats = self.engine(
            records,
            image_encoder=self.image_encoder,
            batch_size=self.batch_size,
            workers=self.workers,
            cache=self.cache,
            progress=self.progress,
            **({"region_sink": sink} if sink is not None else {}),
        )
        root = catalogue_root(kept)
        items = catalogue_items(kept, self.taxonomy, root=root, first_row=first_row)
        text_vectors = embed_descriptions(items, self.text_encoder)
        regions = None
        if sink is not None:
            dim = int(getattr(self.image_encoder, "hidden_size", 0) or 0)
            rows = {it.id: it.row for it in items}
            regions = region_table(list(rows.items()), sink.drafts, dim=dim)
            if self.regions != "crops":  # "where" meets patch regions only
                regions.background = background_bank(sink, rows, dim=dim)
                groups = {it.row: it.group for it in items}
                regions.calibration = calibrate_where(regions, sink.all_samples(), groups)
            else:
                t0 = time.perf_counter()
                images = {rows[r.id]: Path(r.image_path) for r in kept}
                regions = crop_regions(
                    regions, images, self.image_encoder, batch_size=self.batch_size
                )
                stats["crop_seconds"] = time.perf_counter() - t0
        return Mapped(items, image_vectors, text_vectors, failed, stats, root, regions)
