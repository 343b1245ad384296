"""Open an index for querying: the artifacts plus the encoders and taxonomy that fit them.

:func:`open_index` is the one place that turns a manifest back into encoders, by one rule: the
image model's id, revision, preprocessing image size and pooling, and the text model's id,
come from the manifest; :class:`Overrides` may change only how (device, dtype, a local copy of the
same model, the taxonomy file), and :func:`.compatibility.check_compatible` then refuses
anything that does not describe the same vectors. The dtype is *not* taken from the manifest: the
query side runs ``auto`` for its own hardware (bf16 weights where native, fp32 elsewhere), since
any float dtype of the same model gives the same vectors (cosine >= 0.999, tested); the encoder's
``info()`` (``/info``) says what runs, the manifest what the build ran. The service, the
evaluation, ``index add``, the demo and the tests open indexes through it.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from indexer.errors import ManifestMismatchError
from indexer.index.artifacts import Artifacts, load_artifacts
from indexer.index.compatibility import check_compatible
from indexer.index.manifest import IndexManifest, describe_image_encoder, describe_text_encoder
from models.base import ImageEncoderProtocol, TextEncoderProtocol
from models.taxonomy import Taxonomy, load_taxonomy

if TYPE_CHECKING:
    from indexer.retrieval.retriever import Retriever

logger = logging.getLogger(__name__)

DEFAULT_IMAGE_SIZE = 448  # what a format 1 manifest without preprocessing was built with
DEFAULT_POOLING = "cls"


@dataclass(frozen=True)
class Overrides:
    """What a caller may change when opening an index; everything else follows the manifest.

    ``image_model`` / ``text_model``: a local copy of the recorded model (checked to be the same
    model). ``dtype``: ``None`` = ``auto`` for this hardware (not the recorded one).
    ``load_image`` / ``load_text``: whether that encoder is needed at all (e.g. leave-one-out
    over stored vectors needs no image model).
    """

    device: str = "auto"
    dtype: str | None = None
    image_model: str | None = None
    text_model: str | None = None
    taxonomy: Taxonomy | str | Path | None = None
    load_image: bool = True
    load_text: bool = True
    verify: bool = True
    mmap: bool = False
    image_root: Path | None = None  # the dataset moved: relative catalogue paths resolve here


@dataclass(frozen=True)
class OpenedIndex:
    """Artifacts and the encoders and taxonomy checked to fit them (``None``: not loaded)."""

    artifacts: Artifacts
    image_encoder: ImageEncoderProtocol | None
    text_encoder: TextEncoderProtocol | None
    taxonomy: Taxonomy

    @property
    def manifest(self) -> IndexManifest:
        return self.artifacts.manifest

    def retriever(self, *, rerank_candidates: int = 20) -> Retriever:
        """A :class:`~indexer.retrieval.retriever.Retriever` over these artifacts, encoders and
        taxonomy."""
        from indexer.retrieval.retriever import Retriever

        return Retriever(
            self.artifacts,
            image_encoder=self.image_encoder,
            text_encoder=self.text_encoder,
            taxonomy=self.taxonomy,
            rerank_candidates=rerank_candidates,
        )

    def with_encoders(self, overrides: Overrides) -> OpenedIndex:
        """These artifacts with the encoders ``overrides`` asks for loaded (if not yet), checked.

        Raises:
            ManifestMismatchError / ModelNotAvailableError: as :func:`open_index`.
        """
        image, text = self.image_encoder, self.text_encoder
        if image is None and overrides.load_image:
            image = load_recorded_image_encoder(self.manifest, overrides)
        if text is None and overrides.load_text:
            text = load_recorded_text_encoder(self.manifest, overrides)
        check_compatible(
            self.manifest,
            image_model=describe_image_encoder(image) if image is not None else None,
            text_model=describe_text_encoder(text) if text is not None else None,
            taxonomy=self.taxonomy,
        )
        return OpenedIndex(self.artifacts, image, text, self.taxonomy)


def load_recorded_image_encoder(
    manifest: IndexManifest, overrides: Overrides
) -> ImageEncoderProtocol:
    """The image encoder the manifest records (model, revision, image size, pooling), in the
    dtype ``overrides`` asks for (``None``: ``auto`` for this hardware, whatever the build ran)."""
    from models.backbones import PoolingError
    from models.image_encoder import load_image_encoder

    recorded = manifest.image_model
    pre = recorded.preprocessing
    image_size = pre.image_size if pre is not None and pre.image_size else DEFAULT_IMAGE_SIZE
    try:
        return load_image_encoder(
            overrides.image_model or recorded.id,
            device=overrides.device,
            dtype=overrides.dtype or "auto",
            image_size=image_size,
            pooling=recorded.pooling or DEFAULT_POOLING,
            revision=None if overrides.image_model else recorded.revision,
        )
    except PoolingError as exc:  # another backbone (e.g. SigLIP for a DINO index): no such pooling
        raise ManifestMismatchError(
            "image_model.pooling",
            f"artifacts were built with image_model.pooling = {recorded.pooling!r} "
            f"(backbone {recorded.model_type or 'unrecorded'}), which the configured image model "
            f"cannot produce: {exc}; rebuild the index or configure the same model",
        ) from exc


def load_recorded_text_encoder(
    manifest: IndexManifest, overrides: Overrides
) -> TextEncoderProtocol:
    """The text encoder the manifest records (or the local copy ``overrides`` names)."""
    from models.text_encoder import load_text_encoder

    return load_text_encoder(
        overrides.text_model or manifest.text_model.id, device=overrides.device
    )


def open_index(
    directory: str | Path,
    overrides: Overrides = Overrides(),
    *,
    image_encoder: ImageEncoderProtocol | None = None,
    text_encoder: TextEncoderProtocol | None = None,
) -> OpenedIndex:
    """Load (and checksum) an artifact directory and the encoders that fit it, checked.

    ``image_encoder`` / ``text_encoder``: already loaded encoders to use instead of loading the
    recorded ones (the demo built the index with them); they are checked all the same.

    Raises:
        ArtifactError / ChecksumError: the directory is unreadable, invalid or corrupt.
        ManifestMismatchError: an encoder or the taxonomy differs from the record (``.field``).
        ModelNotAvailableError: weights are missing (no download is attempted when offline).
    """
    # The artifacts first: a wrong path or a corrupt file fails fast, before torch is imported.
    artifacts = load_artifacts(
        directory, verify=overrides.verify, mmap=overrides.mmap, image_root=overrides.image_root
    )
    taxonomy = overrides.taxonomy
    if not isinstance(taxonomy, Taxonomy):
        taxonomy = load_taxonomy(taxonomy)
    opened = OpenedIndex(artifacts, image_encoder, text_encoder, taxonomy).with_encoders(overrides)
    logger.info("opened %s: %d items", directory, len(artifacts))
    return opened
