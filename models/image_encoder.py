"""The image encoder: a ``transformers`` vision backbone, its pooling, bucketed batching, and
:func:`load_image_encoder`.

Which backbones (DINOv3, DINOv2, SigLIP 2, SigLIP), their poolings and how pixels enter each are
the rules of :mod:`models.backbones`; where weights come from is :mod:`models.hub`; device and
dtype resolution is :mod:`models.device`. Every vector is L2-normalised float32.
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt
import torch
from PIL import Image

from models import imaging
from models.backbones import (
    DEFAULT_IMAGE_SIZE,
    Backbone,
    PoolingError,
    backbone_for,
    model_inputs,
    patch_size_of,
    pool,
    vision_config,
)
from models.base import POOLINGS
from models.device import (
    DTYPE_NAMES,
    DTYPES,
    EncoderSettingError,
    resolve_device,
    resolve_precision,
)
from models.fingerprint import hub_snapshot, weights_sha256
from models.hub import (
    DEFAULT_IMAGE_MODEL,
    IMAGENET_MEAN,
    IMAGENET_STD,
    hub_kwargs_for,
    is_random_init,
    load_config,
    load_model,
    read_mean_std,
    resolve_source,
)

logger = logging.getLogger(__name__)

SQUARE_RESIZE = "square_stretch"
Vectors = npt.NDArray[np.float32]


class ImageEncoder:
    """A loaded vision backbone plus the preprocessing and pooling that define its vectors."""

    def __init__(
        self,
        model: torch.nn.Module,
        *,
        model_id: str,
        revision: str | None = None,
        image_size: int = 448,
        pooling: str = "cls",
        device: torch.device | str = "cpu",
        dtype: str = "fp32",
        autocast: bool = False,
        mean: Sequence[float] = IMAGENET_MEAN,
        std: Sequence[float] = IMAGENET_STD,
        weights_sha256: str | None = None,
        backbone: Backbone | None = None,
    ) -> None:
        config: Any = vision_config(model.config)
        self.backbone = backbone or backbone_for(config.model_type, model_id)
        self.backbone.check_pooling(pooling)
        if pooling == "pooler" and not getattr(config, "vision_use_head", True):
            raise PoolingError(
                f"pooling 'pooler': {model_id!r} has no attention-pool head (vision_use_head is "
                "false); use mean or gem"
            )
        self.model = model.eval()
        self.model_id = model_id
        self.revision = revision
        self.image_size = image_size
        self.patch_size = patch_size_of(config)
        self.native_size = int(getattr(config, "image_size", 0) or 0) or None
        self.pooling = pooling
        self.device = str(device)
        self.dtype = dtype
        self.autocast = autocast
        # The pixels enter the model in its weights' dtype (bf16 weights take bf16 input).
        self.input_dtype = next(model.parameters()).dtype
        self.mean = tuple(float(v) for v in mean)
        self.std = tuple(float(v) for v in std)
        self.weights_sha256 = weights_sha256  # models.fingerprint: recorded, checked at open
        self.num_register_tokens = int(getattr(config, "num_register_tokens", 0) or 0)
        self.random_init = is_random_init(config)
        self.prefix_tokens = self.backbone.prefix_tokens(config)
        self.model_type = str(config.model_type)
        hidden = int(config.hidden_size)
        self.hidden_size = hidden  # the dim of a patch token, so of a pooled region vector
        self.dim = 2 * hidden if pooling in ("cls+mean", "contrast") else hidden

    def info(self) -> dict[str, Any]:
        """What the index manifest records about this encoder."""
        return {
            "model_id": self.model_id,
            "family": self.backbone.family,
            "model_type": self.model_type,
            "revision": self.revision,
            "dtype": self.dtype,
            "device": self.device,
            "autocast": self.autocast,
            "weights_dtype": DTYPE_NAMES.get(self.input_dtype, str(self.input_dtype)),
            "pooling": self.pooling,
            "dim": self.dim,
            "hidden_size": self.hidden_size,
            "num_register_tokens": self.num_register_tokens,
            "weights_sha256": self.weights_sha256,
            **({"random_init": True} if self.random_init else {}),
            "preprocessing": {
                "resize": self.resize_policy,
                "image_size": self.image_size,
                "patch_size": self.patch_size,
                "mean": list(self.mean),
                "std": list(self.std),
                "interpolation": imaging.INTERPOLATION,
            },
        }

    @property
    def resize_policy(self) -> str:
        return SQUARE_RESIZE if self.backbone.pixels == "square" else imaging.RESIZE_POLICY

    def preprocess(self, image: Image.Image) -> npt.NDArray[np.float32]:
        """An RGB PIL image -> normalised float32 (3, H, W), H and W multiples of the patch.

        Aspect-preserving (longer side ``image_size``) except for fixed-resolution backbones,
        which take the whole image stretched to ``image_size`` x ``image_size``.
        """
        if self.backbone.pixels == "square":
            image = imaging.to_rgb(image)
            side = self.image_size
            if image.size != (side, side):
                image = image.resize((side, side), Image.Resampling.BICUBIC, reducing_gap=2.0)
        return imaging.preprocess(
            image,
            image_size=self.image_size,
            patch_size=self.patch_size,
            mean=self.mean,
            std=self.std,
        )

    def encode(self, images: Sequence[Image.Image], *, batch_size: int = 8) -> Vectors:
        """PIL images -> (n, dim) unit float32 rows, in input order."""
        return self.encode_preprocessed(
            [self.preprocess(im) for im in images], batch_size=batch_size
        )

    def encode_preprocessed(
        self, arrays: Sequence[npt.NDArray[np.float32]], *, batch_size: int = 8
    ) -> Vectors:
        """Preprocessed (3, H, W) arrays -> (n, dim) unit float32 rows, in input order.

        Arrays of equal shape are batched together (at most ``batch_size`` per forward pass).
        """
        if batch_size < 1:
            raise ValueError(f"batch_size must be >= 1, got {batch_size}")
        out = np.empty((len(arrays), self.dim), dtype=np.float32)
        for rows in _buckets(arrays, batch_size):
            batch = torch.from_numpy(np.stack([arrays[i] for i in rows]))
            out[rows] = self.forward(batch).numpy()
        return out

    def forward(self, pixel_values: torch.Tensor) -> torch.Tensor:
        """(b, 3, H, W) normalised pixels -> (b, dim) unit float32 vectors on the CPU."""
        return self.forward_with_patches(pixel_values, patches=False)[0]

    def forward_with_patches(
        self, pixel_values: torch.Tensor, *, patches: bool = True
    ) -> tuple[torch.Tensor, torch.Tensor | None]:
        """One forward pass -> ((b, dim) unit vectors, (b, H/p, W/p, hidden) final patch tokens
        or ``None``), both float32 on the CPU.

        The patch tokens are the last hidden state after the final norm, prefix tokens (CLS,
        registers) dropped, in row-major grid order: what region vectors pool
        (:mod:`models.regions`).
        """
        if pixel_values.ndim != 4 or pixel_values.shape[1] != 3:
            raise ValueError(f"expected (b, 3, H, W) pixels, got {tuple(pixel_values.shape)}")
        device = torch.device(self.device)
        with torch.inference_mode(), self._autocast():
            pixels = pixel_values.to(device, dtype=self.input_dtype, non_blocking=True)
            inputs = model_inputs(
                self.backbone, pixels, patch=self.patch_size, native_size=self.native_size
            )
            output = self.model(**inputs)
            tokens = output.last_hidden_state
            features = pool(
                self.pooling,
                tokens,
                getattr(output, "pooler_output", None),
                prefix=self.prefix_tokens,
            )
        features = torch.nn.functional.normalize(features.float(), dim=-1)
        if not patches:
            return features.cpu(), None
        b, _, h, w = pixel_values.shape
        rows, cols = h // self.patch_size, w // self.patch_size
        grid = tokens[:, self.prefix_tokens :, :]
        if grid.shape[1] != rows * cols:
            raise PoolingError(
                f"{self.model_id}: {grid.shape[1]} patch tokens for a {rows}×{cols} grid; this "
                "backbone's tokens cannot be placed on the image"
            )
        return features.cpu(), grid.float().reshape(b, rows, cols, -1).cpu()

    def encode_with_patches(
        self, arrays: Sequence[npt.NDArray[np.float32]], *, batch_size: int = 8
    ) -> tuple[Vectors, list[npt.NDArray[np.float32]]]:
        """Like :meth:`encode_preprocessed`, plus each image's ``(H/p, W/p, hidden)`` patch
        tokens from the same forward pass."""
        if batch_size < 1:
            raise ValueError(f"batch_size must be >= 1, got {batch_size}")
        out = np.empty((len(arrays), self.dim), dtype=np.float32)
        grids: list[npt.NDArray[np.float32]] = [np.empty(0, np.float32)] * len(arrays)
        for rows in _buckets(arrays, batch_size):
            batch = torch.from_numpy(np.stack([arrays[i] for i in rows]))
            vectors, tokens = self.forward_with_patches(batch)
            assert tokens is not None
            out[rows] = vectors.numpy()
            for i, grid in zip(rows, tokens.numpy(), strict=True):
                grids[i] = grid
        return out, grids

    def _autocast(self) -> contextlib.AbstractContextManager[Any]:
        if not self.autocast:
            return contextlib.nullcontext()
        return torch.autocast(torch.device(self.device).type, dtype=DTYPES[self.dtype])


def _buckets(arrays: Sequence[npt.NDArray[np.float32]], batch_size: int) -> Iterator[list[int]]:
    by_shape: dict[tuple[int, ...], list[int]] = {}
    for i, arr in enumerate(arrays):
        by_shape.setdefault(tuple(arr.shape), []).append(i)
    for rows in by_shape.values():
        for start in range(0, len(rows), batch_size):
            yield rows[start : start + batch_size]


def load_image_encoder(
    model: str | Path = DEFAULT_IMAGE_MODEL,
    *,
    device: str | torch.device = "auto",
    dtype: str | torch.dtype | None = None,
    image_size: int | None = None,
    pooling: str | None = None,
    revision: str | None = None,
    token: str | None = None,
) -> ImageEncoder:
    """Load a vision backbone (DINOv3, DINOv2, SigLIP 2, SigLIP: :mod:`models.backbones`) from
    a Hugging Face id or a local checkpoint directory.

    Args:
        model: hub id (``owner/name``) or a directory holding ``config.json`` and weights. A full
            SigLIP/SigLIP 2 checkpoint (text + vision) loads its vision tower only.
        device: ``auto`` (cuda when available, else cpu), ``cpu``, ``cuda``, ``cuda:1``...
        dtype: ``auto`` (= ``None``, the default), ``fp32``, ``bf16`` or ``fp16``. ``auto`` is bf16
            weights on CUDA and on CPUs with native bf16 (AVX512-BF16/AMX), fp32 elsewhere; bf16
            on a CPU without native bf16 falls back to fp32 with a warning.
        image_size: longer side of the resized image, in pixels; ``None``: 448, or the
            checkpoint's own size for fixed-resolution (square) backbones.
        pooling: one of the backbone's poolings; ``None``: its default (``cls`` for DINO,
            ``pooler`` for SigLIP).
        revision: hub branch, tag or commit.
        token: hub token; defaults to ``HF_TOKEN`` from the environment. Never prompts.

    Raises:
        ModelNotAvailableError: the checkpoint is absent, gated, not cached while offline, or of
            a model type without a backbone rule.
        ValueError: a bad device, dtype or pooling (the error names the backbone's poolings).
    """
    if pooling is not None and pooling not in POOLINGS:
        raise EncoderSettingError(f"pooling must be one of {POOLINGS}, got {pooling!r}")
    torch_device = resolve_device(device)
    precision = resolve_precision(dtype, torch_device)
    source, local = resolve_source(model)
    hub_kwargs: dict[str, Any] = {}
    if local is None:
        hub_kwargs = hub_kwargs_for(revision, token)
    config = load_config(source, hub_kwargs)
    backbone = backbone_for(config.model_type, source)
    pooling = pooling or backbone.default_pooling
    backbone.check_pooling(pooling)
    if image_size is None:
        native = getattr(vision_config(config), "image_size", None)
        image_size = int(native) if backbone.pixels == "square" and native else DEFAULT_IMAGE_SIZE
    net = load_model(source, precision.weights, hub_kwargs, model_class=backbone.model_class)
    mean, std = read_mean_std(source, local, hub_kwargs)
    commit = getattr(net.config, "_commit_hash", None) if local is None else None
    encoder = ImageEncoder(
        net.to(torch_device),
        model_id=source,
        revision=commit or None,
        image_size=image_size,
        pooling=pooling,
        device=torch_device,
        dtype=precision.name,
        autocast=precision.autocast,
        mean=mean,
        std=std,
        weights_sha256=weights_sha256(local or hub_snapshot(source, commit)),
        backbone=backbone,
    )
    logger.info("image encoder ready: %s", encoder.info())
    return encoder
