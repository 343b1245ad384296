"""What the lifespan loads: the encoders, the artifacts and the Retriever over them.

:func:`load_resources` is the only place that touches weights and index files. It refuses to
serve artifacts built with other models (``check_compatible`` names the field that differs) or
with a failed checksum (both through :func:`indexer.retrieval.opening.open_index`). Tests build
:class:`Resources` with :func:`assemble_resources` over a real (small) artifact directory and
fake encoders.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from app.settings import Settings
from indexer.index.stores import FilteringStore
from models.base import ImageEncoderProtocol, TextEncoderProtocol

if TYPE_CHECKING:
    from indexer.index.artifacts import Artifacts
    from indexer.retrieval.retriever import Retriever
    from models.taxonomy import Taxonomy

logger = logging.getLogger(__name__)


@dataclass
class Resources:
    """The loaded, heavy things one app serves.

    The text encoder is called by the service only (on its inference thread), never by the
    Retriever behind the service's back: the service hands the Retriever an ``encode_text``
    callable per query.
    """

    retriever: Retriever
    image_encoder: ImageEncoderProtocol
    text_encoder: TextEncoderProtocol | None = None
    extra_info: dict[str, Any] = field(default_factory=dict)

    @property
    def manifest(self) -> dict[str, Any]:
        return dict(self.retriever.manifest)

    @property
    def taxonomy(self) -> Taxonomy:
        return self.retriever.taxonomy

    def store_problem(self) -> str | None:
        """Why the vector store cannot answer now (a Milvus store unreachable), else None."""
        store = self.retriever.artifacts.image_store
        return store.problem() if isinstance(store, FilteringStore) else None

    def runtime(self) -> dict[str, Any]:
        enc = self.image_encoder
        info: dict[str, Any] = {
            "device": str(enc.device),
            "dtype": str(enc.dtype),
            "image_model": enc.info(),
            "index_size": int(self.retriever.size),
        }
        if self.text_encoder is not None:
            info["text_model"] = self.text_encoder.info()
        return {**info, **self.extra_info}


def load_resources(settings: Settings) -> Resources:
    """Open the index with the encoders its manifest records and build the Retriever (blocking).

    Raises:
        ArtifactError / ChecksumError: the artifact directory is unreadable or corrupt.
        ManifestMismatchError: the configured models differ from the ones the index was built with.
        ModelNotAvailableError: weights are missing (no download is attempted when offline).
    """
    from indexer.retrieval.opening import Overrides, open_index

    opened = open_index(
        settings.artifacts,
        Overrides(
            device=settings.device,
            dtype=settings.dtype,
            image_model=settings.image_model,
            text_model=settings.text_model,
            taxonomy=settings.taxonomy,
            image_root=settings.data_root,
        ),
    )
    if opened.image_encoder is None:  # open_index loads it unless told not to
        raise RuntimeError("open_index returned no image encoder")
    resources = assemble_resources(
        opened.artifacts,
        image_encoder=opened.image_encoder,
        text_encoder=opened.text_encoder,
        taxonomy=opened.taxonomy,
        rerank_candidates=settings.rerank_candidates,
    )
    logger.info("loaded %d indexed items from %s", resources.retriever.size, settings.artifacts)
    return resources


def assemble_resources(
    artifacts: Artifacts,
    *,
    image_encoder: ImageEncoderProtocol,
    text_encoder: TextEncoderProtocol | None,
    taxonomy: Taxonomy,
    rerank_candidates: int = 20,
) -> Resources:
    """Resources from loaded, checked parts (``visrag demo`` reuses its encoders; tests fakes)."""
    from indexer.retrieval.retriever import Retriever

    retriever = Retriever(
        artifacts,
        image_encoder=image_encoder,
        text_encoder=text_encoder,
        taxonomy=taxonomy,
        rerank_candidates=rerank_candidates,
    )
    return Resources(retriever=retriever, image_encoder=image_encoder, text_encoder=text_encoder)
