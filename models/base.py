"""The encoder contracts every layer above ``models`` programs against.

Encoders are :class:`typing.Protocol` s, not base classes: the DINOv3 encoder, any other
``AutoModel`` backbone, and the small fakes of the tests satisfy them structurally. The split of
an image encoder into ``preprocess`` (CPU, per image, runs in worker threads) and
``encode_preprocessed`` (the model, batched, runs on the one inference worker) is what makes
micro-batching and overlapped decoding small changes.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, Protocol, runtime_checkable

import numpy as np
import numpy.typing as npt
from PIL import Image

Vectors = npt.NDArray[np.float32]
Pixels = npt.NDArray[np.float32]

#: How an image encoder pools its tokens into one vector (see :mod:`models.backbones`; which
#: ones a backbone supports is its rule there).
POOLINGS: tuple[str, ...] = ("cls", "cls+mean", "contrast", "gem", "mean", "pooler")


@runtime_checkable
class ImageEncoderProtocol(Protocol):
    """An image model plus the preprocessing and pooling that define its vectors."""

    model_id: str
    revision: str | None
    dim: int
    image_size: int
    patch_size: int
    pooling: str
    device: str
    dtype: str

    def info(self) -> dict[str, Any]:
        """What the index manifest records about this encoder (model, dtype, preprocessing)."""
        ...

    def preprocess(self, image: Image.Image) -> Pixels:
        """An RGB PIL image -> normalised float32 (3, H, W)."""
        ...

    def encode_preprocessed(self, arrays: Sequence[Pixels], *, batch_size: int = 8) -> Vectors:
        """Preprocessed arrays -> (n, dim) unit float32 rows, in input order."""
        ...


@runtime_checkable
class TextEncoderProtocol(Protocol):
    """A sentence-embedding model; ``encode`` returns unit float32 rows."""

    model_id: str
    dim: int

    def info(self) -> dict[str, Any]:
        """What the index manifest records about this encoder."""
        ...

    def encode(self, texts: Sequence[str], *, batch_size: int = 64) -> Vectors:
        """Texts -> (n, dim) unit float32 rows, in input order."""
        ...
