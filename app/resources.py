"""What the lifespan loads: encoders, artifacts, the Retriever. Tests hand in fakes instead.

:func:`load_resources` is the only place that touches weights and index files. It refuses to
serve artifacts built with other models (``check_compatible`` names the field that differs) or
with a failed checksum (both through :func:`indexer.opening.open_index`).
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from app.settings import Settings

logger = logging.getLogger(__name__)

Runner = Callable[..., Any]


class OnWorker:
    """A text encoder whose ``encode`` runs on the inference worker once one is bound."""

    def __init__(self, inner: Any) -> None:
        self._inner = inner
        self.runner: Runner | None = None

    def encode(self, texts: list[str], **kwargs: Any) -> Any:
        if self.runner is None:
            return self._inner.encode(texts, **kwargs)
        return self.runner(self._inner.encode, texts, **kwargs)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._inner, name)


@dataclass
class Resources:
    """The loaded, heavy things one app serves.

    ``retriever`` needs ``search(vector, *, k, mode, text, filters, alpha)``, ``image_path(id)``,
    ``size``, ``manifest`` and ``taxonomy``; ``image_encoder`` needs ``preprocess(PIL)``,
    ``encode_preprocessed(list, *, batch_size)``, ``info()``, ``device`` and ``dtype``.
    """

    retriever: Any
    image_encoder: Any
    text_encoder: OnWorker | None = None
    extra_info: dict[str, Any] = field(default_factory=dict)

    @property
    def manifest(self) -> dict[str, Any]:
        return dict(self.retriever.manifest)

    @property
    def taxonomy(self) -> Any:
        return self.retriever.taxonomy

    def bind_worker(self, runner: Runner) -> None:
        """Route the text encoder's calls through the inference worker's thread."""
        if self.text_encoder is not None:
            self.text_encoder.runner = runner

    def runtime(self) -> dict[str, Any]:
        enc = self.image_encoder
        info: dict[str, Any] = {
            "device": str(getattr(enc, "device", "unknown")),
            "dtype": str(getattr(enc, "dtype", "unknown")),
            "image_model": enc.info() if hasattr(enc, "info") else {},
            "index_size": int(self.retriever.size),
        }
        if self.text_encoder is not None and hasattr(self.text_encoder, "info"):
            info["text_model"] = self.text_encoder.info()
        return {**info, **self.extra_info}


def load_resources(settings: Settings) -> Resources:
    """Open the index with the encoders its manifest records and build the Retriever (blocking).

    Raises:
        ArtifactError / ChecksumError: the artifact directory is unreadable or corrupt.
        ManifestMismatchError: the configured models differ from the ones the index was built with.
        ModelNotAvailableError: weights are missing (no download is attempted when offline).
    """
    from indexer.opening import Overrides, open_index

    opened = open_index(
        settings.artifacts,
        Overrides(
            device=settings.device,
            dtype=settings.dtype,
            image_model=settings.image_model,
            text_model=settings.text_model,
            taxonomy=settings.taxonomy,
        ),
    )
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
    artifacts: Any,
    *,
    image_encoder: Any,
    text_encoder: Any,
    taxonomy: Any,
    rerank_candidates: int = 20,
) -> Resources:
    """Resources from loaded, checked parts (``visrag demo`` reuses its encoders)."""
    from indexer.retriever import Retriever

    on_worker = OnWorker(text_encoder)
    retriever = Retriever(
        artifacts,
        image_encoder=image_encoder,
        text_encoder=on_worker,
        taxonomy=taxonomy,
        rerank_candidates=rerank_candidates,
    )
    return Resources(retriever=retriever, image_encoder=image_encoder, text_encoder=on_worker)
